package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func testFetchRequest() *FetchRequest {
	return &FetchRequest{ReplicaID: 2, BrokerEpoch: 77, MaxWait: 500 * time.Millisecond, MinBytes: 1, MaxBytes: 10 << 20,
		Partitions: []FetchPartition{
			{Topic: "a", TopicID: [16]byte{1}, Partition: 0, CurrentLeaderEpoch: 4, FetchOffset: 100, LastFetchedEpoch: 3, LogStartOffset: 10, MaxBytes: 1 << 20},
			{Topic: "a", TopicID: [16]byte{1}, Partition: 1, CurrentLeaderEpoch: 4, FetchOffset: 5, LastFetchedEpoch: -1, LogStartOffset: 0, MaxBytes: 1 << 20},
			{Topic: "b", TopicID: [16]byte{2}, Partition: 0, CurrentLeaderEpoch: 9, FetchOffset: 0, LastFetchedEpoch: -1, LogStartOffset: 0, MaxBytes: 1 << 20},
		}}
}

// TestBuildFetchOnTheWire encodes the follower's Fetch at the versions kgo
// may negotiate and decodes it as a broker would.
func TestBuildFetchOnTheWire(t *testing.T) {
	for _, v := range []int16{12, 13, 15, 17, 18} {
		req := buildFetch(testFetchRequest())
		req.SetVersion(v)
		wire := req.AppendTo(nil)
		got := kmsg.NewPtrFetchRequest()
		got.SetVersion(v)
		if err := got.ReadFrom(wire); err != nil {
			t.Fatalf("v%d: decode: %v", v, err)
		}
		replica := got.ReplicaID
		if v >= 15 {
			replica = got.ReplicaState.ID
			if got.ReplicaState.Epoch != 77 {
				t.Errorf("v%d: replica epoch %d, want 77", v, got.ReplicaState.Epoch)
			}
		}
		if replica != 2 {
			t.Errorf("v%d: replica id %d, want 2", v, replica)
		}
		if got.SessionEpoch != -1 || got.IsolationLevel != 0 || got.MaxWaitMillis != 500 || got.MinBytes != 1 {
			t.Errorf("v%d: session epoch %d isolation %d wait %d min %d", v, got.SessionEpoch, got.IsolationLevel, got.MaxWaitMillis, got.MinBytes)
		}
		if len(got.Topics) != 2 || len(got.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: topics %+v", v, got.Topics)
		}
		if v >= 13 && got.Topics[0].TopicID != ([16]byte{1}) || v < 13 && got.Topics[0].Topic != "a" {
			t.Errorf("v%d: topic %q id %v", v, got.Topics[0].Topic, got.Topics[0].TopicID)
		}
		p := got.Topics[0].Partitions[0]
		if p.CurrentLeaderEpoch != 4 || p.FetchOffset != 100 || p.LastFetchedEpoch != 3 || p.LogStartOffset != 10 || p.PartitionMaxBytes != 1<<20 {
			t.Errorf("v%d: partition %+v", v, p)
		}
	}
}

func TestBuildEpochRequestOnTheWire(t *testing.T) {
	r := &EpochRequest{ReplicaID: 3, Partitions: []EpochPartition{{Topic: "a", Partition: 0, CurrentLeaderEpoch: 5, LeaderEpoch: 4}, {Topic: "a", Partition: 2, CurrentLeaderEpoch: 5, LeaderEpoch: 2}}}
	for _, v := range []int16{3, 4} {
		req := buildEpochRequest(r)
		req.SetVersion(v)
		got := kmsg.NewPtrOffsetForLeaderEpochRequest()
		got.SetVersion(v)
		if err := got.ReadFrom(req.AppendTo(nil)); err != nil {
			t.Fatal(err)
		}
		if got.ReplicaID != 3 || len(got.Topics) != 1 || len(got.Topics[0].Partitions) != 2 {
			t.Fatalf("v%d: %+v", v, got)
		}
		if p := got.Topics[0].Partitions[1]; p.Partition != 2 || p.CurrentLeaderEpoch != 5 || p.LeaderEpoch != 2 {
			t.Errorf("v%d: partition %+v", v, p)
		}
	}
}

// fakeRequester answers with a canned response at the request's version.
type fakeRequester struct {
	answer func(req kmsg.Request) kmsg.Response
}

func (f fakeRequester) Request(_ context.Context, req kmsg.Request) (kmsg.Response, error) {
	req.SetVersion(13)
	return f.answer(req), nil
}

func TestKgoClientParsesFetch(t *testing.T) {
	c := &kgoClient{br: fakeRequester{answer: func(kreq kmsg.Request) kmsg.Response {
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.SetVersion(req.Version)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.TopicID = rt.TopicID // v13: by id only
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.HighWatermark, sp.LogStartOffset = 42, 7
				if rp.Partition == 1 {
					sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = 2, 30
				}
				if rt.TopicID == ([16]byte{2}) {
					sp.ErrorCode = kerr.FencedLeaderEpoch.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		// Round-trip through the wire like a real answer.
		out := req.ResponseKind().(*kmsg.FetchResponse)
		out.SetVersion(req.Version)
		if err := out.ReadFrom(resp.AppendTo(nil)); err != nil {
			panic(err)
		}
		return out
	}}}
	resp, err := c.Fetch(context.Background(), testFetchRequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Partitions) != 3 {
		t.Fatalf("%d partitions", len(resp.Partitions))
	}
	for _, p := range resp.Partitions {
		switch {
		case p.Topic == "a" && p.Partition == 0:
			if p.Err != nil || p.Diverging != nil || p.HighWatermark != 42 || p.LogStartOffset != 7 {
				t.Errorf("a-0: %+v", p)
			}
		case p.Topic == "a" && p.Partition == 1:
			if p.Diverging == nil || *p.Diverging != (EpochEndOffset{2, 30}) {
				t.Errorf("a-1 diverging %v", p.Diverging)
			}
		case p.Topic == "b":
			if !errors.Is(p.Err, kerr.FencedLeaderEpoch) {
				t.Errorf("b-0 err %v", p.Err)
			}
		default:
			t.Errorf("unexpected %s-%d", p.Topic, p.Partition)
		}
	}
}

func TestKgoClientRefusesOldFetch(t *testing.T) {
	c := &kgoClient{br: fakeRequester{answer: func(kreq kmsg.Request) kmsg.Response {
		resp := kreq.ResponseKind()
		resp.SetVersion(11)
		return resp
	}}}
	if _, err := c.Fetch(context.Background(), testFetchRequest()); err == nil {
		t.Fatal("Fetch v11 answer accepted")
	}
}

// TestKgoClientAgainstKfake sends the follower's requests over TCP to
// franz-go's fake cluster (a real Kafka protocol server): Fetch returns the
// produced records; OffsetForLeaderEpoch arrives with the replica id set
// (kfake refuses replica requests with UNKNOWN_SERVER_ERROR, which proves
// the id went on the wire: without it kfake answers normally).
func TestKgoClientAgainstKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 3 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), MinVersions())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var topicID [16]byte
	for _, mt := range meta.Topics {
		if mt.Topic != nil && *mt.Topic == "t" {
			topicID = mt.TopicID
		}
	}
	lc := NewKgoClient(cl, meta.Brokers[0].NodeID)
	resp, err := lc.Fetch(ctx, &FetchRequest{ReplicaID: 5, BrokerEpoch: -1, MaxWait: 100 * time.Millisecond, MinBytes: 1, MaxBytes: 1 << 20,
		Partitions: []FetchPartition{{Topic: "t", TopicID: topicID, Partition: 0, CurrentLeaderEpoch: -1, FetchOffset: 0, LastFetchedEpoch: -1, MaxBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Partitions) != 1 || resp.Partitions[0].Err != nil || resp.Partitions[0].HighWatermark != 3 || len(wholeBatches(resp.Partitions[0].Records)) == 0 {
		t.Fatalf("fetch answer %+v", resp.Partitions)
	}
	er, err := lc.OffsetForLeaderEpoch(ctx, &EpochRequest{ReplicaID: 5, Partitions: []EpochPartition{{Topic: "t", Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(er.Partitions) != 1 || !errors.Is(er.Partitions[0].Err, kerr.UnknownServerError) {
		t.Fatalf("OffsetForLeaderEpoch answer %+v", er.Partitions)
	}
}
