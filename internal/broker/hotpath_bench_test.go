package broker

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// hotPath is a real broker and a connection whose handleFrame the
// micro-benchmarks call directly: no socket, no client, just the broker's
// work per request (decode, handler, storage, response encoding).
type hotPath struct {
	b *Broker
	c *conn
}

func newHotPath(tb testing.TB, topic string, configs map[string]string) *hotPath {
	tb.Helper()
	b, err := New(Config{Listen: "127.0.0.1:0", DataDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.CreateTopic(ctx, topic, 1, configs); err != nil {
		tb.Fatal(err)
	}
	server, client := net.Pipe()
	tb.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return &hotPath{b: b, c: newConn(b, server)}
}

// handle runs one request frame (size prefix stripped) through the
// connection's dispatch, waits for a deferred response, and serializes the
// response to w (io.Discard in benchmarks) as the writer goroutine would,
// minus the socket.
func (h *hotPath) handle(tb testing.TB, frame []byte, w io.Writer) {
	p, _, err := h.c.handleFrame(context.Background(), frame)
	if err != nil {
		tb.Fatal(err)
	}
	if p.ready != nil {
		<-p.ready
	}
	if p.fail != nil {
		tb.Fatal(p.fail)
	}
	h.b.metrics.observe(p)
	if p.none {
		return
	}
	if _, err := p.msg.WriteTo(w); err != nil {
		tb.Fatal(err)
	}
	p.msg.Release()
}

// produceFrame is a Produce v9 request (acks=-1) of one uncompressed batch
// of n records of size bytes each, as a client sends it, without the size
// prefix.
func produceFrame(tb testing.TB, topic string, n, size int) []byte {
	tb.Helper()
	recs := make([]batch.Record, n)
	val := make([]byte, size)
	for i := range val {
		val[i] = byte(i)
	}
	now := time.Now().UnixMilli()
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), Timestamp: now, Value: val}
	}
	records, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, batch.CodecNone)
	if err != nil {
		tb.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return hotFormatter.AppendRequest(nil, req, 1)[4:]
}

// fetchFrame is a sessionless Fetch v11 request of partition 0 of topic
// from offset, without the size prefix.
func fetchFrame(topic string, offset int64, maxBytes int32) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxBytes = maxBytes
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = maxBytes
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return hotFormatter.AppendRequest(nil, req, 1)[4:]
}

// produceRecordCounts are the batch sizes of the produce micro-benchmark
// and of TestProduceAllocsIndependentOfRecordCount.
var produceRecordCounts = []int{1, 100, 1000}

// BenchmarkProduceRequest measures the broker's work for one produce
// request of one batch (acks=all on a write-caching topic, so answered
// after the append): frame decode, handler, validation (header and CRC),
// offset assignment, the segment write, the index, the wake-up of parked
// fetches and the response encoding. The same frame is reused: the
// storage engine rewrites the base offset in place, as it does in the
// request buffer of a connection.
//
//	go test -run '^$' -bench BenchmarkProduceRequest -count 6 ./internal/broker
func BenchmarkProduceRequest(b *testing.B) {
	for _, n := range produceRecordCounts {
		b.Run(fmt.Sprintf("records=%d/rec=100B", n), func(b *testing.B) {
			h := newHotPath(b, "p", map[string]string{"write.caching": "true", "segment.bytes": "1073741824"})
			frame := produceFrame(b, "p", n, 100)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.handle(b, frame, io.Discard)
			}
		})
	}
}

// BenchmarkFetchRequest measures the broker's work for one fetch request
// that finds data at once: frame decode, handler, index lookup and
// batch-boundary scan, response assembly (EncodeFetchResponse with file
// regions). The regions themselves are not read (on a socket they go
// through sendfile); WriteTo's copy is left out by writing only the
// message's byte parts.
//
//	go test -run '^$' -bench BenchmarkFetchRequest -count 6 ./internal/broker
func BenchmarkFetchRequest(b *testing.B) {
	for _, maxBytes := range []int32{16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("max=%dKiB", maxBytes>>10), func(b *testing.B) {
			h := newHotPath(b, "f", map[string]string{"write.caching": "true"})
			frame := produceFrame(b, "f", 16, 1000)
			for range 2000 { // ~32 MiB
				h.handle(b, frame, io.Discard)
			}
			p, _ := h.b.parts.get("f", 0)
			leo := p.log.LogEndOffset()
			frames := make([][]byte, 64)
			for i := range frames {
				frames[i] = fetchFrame("f", leo*int64(i)/int64(len(frames)), maxBytes)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.handleNoRegions(b, frames[i%len(frames)])
			}
		})
	}
}

// handleNoRegions is handle for fetches, dropping the response after its
// assembly (the bytes would go to sendfile).
func (h *hotPath) handleNoRegions(tb testing.TB, frame []byte) {
	p, _, err := h.c.handleFrame(context.Background(), frame)
	if err != nil {
		tb.Fatal(err)
	}
	if p.ready != nil {
		<-p.ready
	}
	if p.fail != nil || p.msg == nil || p.msg.Err() != nil {
		tb.Fatalf("fetch failed: %v", p.fail)
	}
	h.b.metrics.observe(p)
	p.msg.Release()
}

var hotFormatter = kmsg.NewRequestFormatter(kmsg.FormatterClientID("sluice-bench"))
