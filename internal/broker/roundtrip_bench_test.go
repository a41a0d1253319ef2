package broker_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// BenchmarkRoundTrip measures one request and its response on one loopback
// connection, one at a time (no pipelining): the per-request cost of the
// connection's read, dispatch and write path, including the scheduler
// wake-ups between them, for the small requests of a low-latency pipeline.
// fetch=1KiB reads one 1 KiB record (a small file region), produce=1KiB
// appends one (acks=1), apiversions has no storage work at all.
//
//	go test -run '^$' -bench BenchmarkRoundTrip -count 6 ./internal/broker
func BenchmarkRoundTrip(b *testing.B) {
	br := sluicetest.New(b, sluicetest.Topic("rt", 1, "write.caching", "true"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("rt"), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 1024)
	for i := range 64 {
		if err := cl.ProduceSync(testCtx(b, time.Minute), &kgo.Record{Value: val}).FirstErr(); err != nil {
			b.Fatalf("record %d: %v", i, err)
		}
	}
	cl.Close()

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.ReplicaID = -1
	fetch.MaxBytes = 1 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "rt"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = 10
	fp.PartitionMaxBytes = 1 // one batch: the first one is always returned
	fp.CurrentLeaderEpoch = -1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	produce := produceV9("rt", 1, 30000, oneRecordBatch(val))

	versions := kmsg.NewPtrApiVersionsRequest()
	versions.Version = 3
	versions.ClientSoftwareName = "bench"
	versions.ClientSoftwareVersion = "1"

	for _, bc := range []struct {
		name string
		req  kmsg.Request
	}{{"fetch=1KiB", fetch}, {"produce=1KiB", produce}, {"apiversions", versions}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", br.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rd := bufio.NewReaderSize(c, 64<<10)
			frame := reqFormatter.AppendRequest(nil, bc.req, 1)
			var body []byte
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(frame); err != nil {
					b.Fatal(err)
				}
				var size [4]byte
				if _, err := io.ReadFull(rd, size[:]); err != nil {
					b.Fatal(err)
				}
				n := int(binary.BigEndian.Uint32(size[:]))
				if cap(body) < n {
					body = make([]byte, n)
				}
				if _, err := io.ReadFull(rd, body[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if len(body) < 4 {
				b.Fatal("no response")
			}
			if err := checkRoundTripResponse(bc.req, body); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// checkRoundTripResponse decodes the last response (correlation id
// stripped from body) and checks it carries data and no error.
func checkRoundTripResponse(req kmsg.Request, body []byte) error {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	b := body[4:]
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		b = b[1:] // response header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		return err
	}
	switch r := resp.(type) {
	case *kmsg.FetchResponse:
		if p := r.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			return fmt.Errorf("fetch: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
		}
	case *kmsg.ProduceResponse:
		if p := r.Topics[0].Partitions[0]; p.ErrorCode != 0 {
			return fmt.Errorf("produce: error %d", p.ErrorCode)
		}
	case *kmsg.ApiVersionsResponse:
		if r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
			return fmt.Errorf("apiversions: error %d", r.ErrorCode)
		}
	}
	return nil
}
