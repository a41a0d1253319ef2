package protocol

import (
	"bytes"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// randomFetch builds a Fetch response with random contents, including
// aborted transactions, tagged fields and unknown tags, and random record
// data for each partition: nil (no regions), or 1-3 regions cut from file.
// It returns the response (RecordBatches empty where regions are used) and
// the regions per partition.
func randomFetch(rng *rand.Rand, version int16, file []byte, f regionFile) (*kmsg.FetchResponse, [][][]Region) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = version
	resp.ThrottleMillis = rng.Int32()
	resp.ErrorCode = int16(rng.IntN(100))
	resp.SessionID = rng.Int32()
	if rng.IntN(2) == 0 {
		for range rng.IntN(3) + 1 {
			b := kmsg.NewFetchResponseBroker()
			b.NodeID = rng.Int32N(10)
			b.Host = "broker.example"
			b.Port = 9092
			if rng.IntN(2) == 0 {
				b.Rack = kmsg.StringPtr("rack-a")
			}
			maybeTags(rng, &b.UnknownTags)
			resp.Brokers = append(resp.Brokers, b)
		}
	}
	maybeTags(rng, &resp.UnknownTags)
	var regions [][][]Region
	for t := range rng.IntN(4) {
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "topic-" + string(rune('a'+t))
		topic.TopicID[0], topic.TopicID[15] = byte(t+1), byte(rng.Uint32())
		maybeTags(rng, &topic.UnknownTags)
		var trs [][]Region
		for p := range rng.IntN(5) {
			part := kmsg.NewFetchResponseTopicPartition()
			part.Partition = int32(p)
			part.ErrorCode = int16(rng.IntN(3))
			part.HighWatermark = rng.Int64()
			part.LastStableOffset = rng.Int64()
			part.LogStartOffset = rng.Int64()
			part.PreferredReadReplica = rng.Int32N(5) - 1
			switch rng.IntN(3) {
			case 0: // null aborted transactions
			case 1:
				part.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			case 2:
				for range rng.IntN(3) + 1 {
					a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
					a.ProducerID, a.FirstOffset = rng.Int64(), rng.Int64()
					maybeTags(rng, &a.UnknownTags)
					part.AbortedTransactions = append(part.AbortedTransactions, a)
				}
			}
			if rng.IntN(2) == 0 {
				part.DivergingEpoch.Epoch, part.DivergingEpoch.EndOffset = rng.Int32(), rng.Int64()
			}
			if rng.IntN(2) == 0 {
				part.CurrentLeader.LeaderID, part.CurrentLeader.LeaderEpoch = rng.Int32N(5), rng.Int32()
			}
			if rng.IntN(4) == 0 { // a tagged struct that differs from its default by its tags only
				maybeTags(rng, []*kmsg.Tags{&part.DivergingEpoch.UnknownTags, &part.CurrentLeader.UnknownTags, &part.SnapshotID.UnknownTags}[rng.IntN(3)])
			}
			if rng.IntN(3) == 0 {
				part.SnapshotID.EndOffset, part.SnapshotID.Epoch = rng.Int64(), rng.Int32()
			}
			maybeTags(rng, &part.UnknownTags)
			var rs []Region
			switch rng.IntN(4) {
			case 0: // nil regions, nil inline records: null
			case 1: // nil regions, inline bytes (empty or not)
				part.RecordBatches = file[:rng.IntN(10)]
			default:
				rs = []Region{}
				for range rng.IntN(4) {
					pos := rng.Int64N(int64(len(file)))
					rs = append(rs, Region{File: f.f, Pos: pos, Len: rng.Int64N(int64(len(file)) - pos + 1)})
				}
			}
			trs = append(trs, rs)
			topic.Partitions = append(topic.Partitions, part)
		}
		regions = append(regions, trs)
		resp.Topics = append(resp.Topics, topic)
	}
	return resp, regions
}

type regionFile struct{ f *os.File }

// maybeTags sets unknown tags (keys from 10 up, so that decoding does not
// mistake them for known ones) half of the time.
func maybeTags(rng *rand.Rand, tags *kmsg.Tags) {
	if rng.IntN(2) == 0 {
		return
	}
	for range rng.IntN(3) + 1 {
		tags.Set(uint32(10+rng.IntN(300)), bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(4)))
	}
}

// withRecords returns a deep copy of resp with every partition's region
// bytes placed in RecordBatches, which is what the wire must carry.
func withRecords(t *testing.T, resp *kmsg.FetchResponse, regions [][][]Region, file []byte) *kmsg.FetchResponse {
	t.Helper()
	cp := *resp
	cp.Topics = append([]kmsg.FetchResponseTopic(nil), resp.Topics...)
	for ti := range cp.Topics {
		cp.Topics[ti].Partitions = append([]kmsg.FetchResponseTopicPartition(nil), resp.Topics[ti].Partitions...)
		for pi := range cp.Topics[ti].Partitions {
			rs := regions[ti][pi]
			if rs == nil {
				continue
			}
			recs := []byte{}
			for _, r := range rs {
				recs = append(recs, file[r.Pos:r.Pos+r.Len]...)
			}
			cp.Topics[ti].Partitions[pi].RecordBatches = recs
		}
	}
	return &cp
}

func TestEncodeFetchResponseMatchesKmsg(t *testing.T) {
	file := make([]byte, 4096)
	for i := range file {
		file[i] = byte(i * 7)
	}
	f := regionFile{tempFile(t, file)}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	maxV := kmsg.NewPtrFetchResponse().MaxVersion()
	for v := int16(0); v <= maxV; v++ {
		for i := 0; i < 200; i++ {
			resp, regions := randomFetch(rng, v, file, f)
			h := Header{Key: 1, Version: v, CorrelationID: rng.Int32()}

			m := EncodeFetchResponse(h, resp, func(t, p int) []Region { return regions[t][p] })
			got := messageBytes(t, m)
			full := withRecords(t, resp, regions, file)
			want := messageBytes(t, AppendResponse(h, full))
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d case %d: EncodeFetchResponse differs from kmsg\n got %x\nwant %x", v, i, got, want)
			}
			m.Release()

			// kmsg decodes what we wrote into the same response.
			var dec kmsg.FetchResponse
			dec.Version = v
			hdrLen := 8
			if v >= 12 {
				hdrLen = 9
			}
			if err := dec.ReadFrom(got[hdrLen:]); err != nil {
				t.Fatalf("v%d case %d: kmsg ReadFrom: %v", v, i, err)
			}
			if again := dec.AppendTo(nil); !bytes.Equal(again, want[hdrLen:]) {
				t.Fatalf("v%d case %d: decode/re-encode differs", v, i)
			}
			if v >= 4 {
				checkDecoded(t, full, &dec)
			}
		}
	}
}

// checkDecoded compares the fields every version >= 4 carries.
func checkDecoded(t *testing.T, want, got *kmsg.FetchResponse) {
	t.Helper()
	if len(got.Topics) != len(want.Topics) {
		t.Fatalf("topics: got %d want %d", len(got.Topics), len(want.Topics))
	}
	for ti := range want.Topics {
		for pi := range want.Topics[ti].Partitions {
			w, g := &want.Topics[ti].Partitions[pi], &got.Topics[ti].Partitions[pi]
			if g.Partition != w.Partition || g.HighWatermark != w.HighWatermark || g.LastStableOffset != w.LastStableOffset ||
				!bytes.Equal(g.RecordBatches, w.RecordBatches) || (g.RecordBatches == nil) != (w.RecordBatches == nil) ||
				len(g.AbortedTransactions) != len(w.AbortedTransactions) {
				t.Fatalf("topic %d partition %d: decoded %+v, want %+v", ti, pi, g, w)
			}
			if len(w.AbortedTransactions) > 0 && !reflect.DeepEqual(g.AbortedTransactions[0].ProducerID, w.AbortedTransactions[0].ProducerID) {
				t.Fatalf("aborted transactions differ")
			}
		}
	}
}

func TestEncodeFetchResponseNoRegionsFunc(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 16
	resp.Topics = []kmsg.FetchResponseTopic{{Partitions: []kmsg.FetchResponseTopicPartition{kmsg.NewFetchResponseTopicPartition()}}}
	resp.Topics[0].Partitions[0].RecordBatches = []byte{}
	h := Header{Key: 1, Version: 16, CorrelationID: 7}
	got := messageBytes(t, EncodeFetchResponse(h, resp, nil))
	want := messageBytes(t, AppendResponse(h, resp))
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x want %x", got, want)
	}
}

func TestEncodeFetchResponseBadRegion(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	resp.Topics = []kmsg.FetchResponseTopic{{Partitions: []kmsg.FetchResponseTopicPartition{kmsg.NewFetchResponseTopicPartition()}}}
	m := EncodeFetchResponse(Header{Key: 1, Version: 12}, resp, func(int, int) []Region { return []Region{{Len: 3}} })
	if m.Err() == nil {
		t.Fatal("nil-file region accepted")
	}
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err == nil || b.Len() != 0 {
		t.Fatalf("WriteTo = %v, wrote %d bytes", err, b.Len())
	}
}
