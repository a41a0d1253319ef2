package broker

import (
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzHandleFrame feeds request frames (size prefix stripped) to a real
// broker's dispatch: decode, version check, handler, deferred completion.
// Invariants: no panic reaches the broker (a recovered handler panic counts
// as a failure here, since it would close a client's connection), and every
// frame either gets a response or an error that closes the connection.
//
//	go test -run '^$' -fuzz FuzzHandleFrame -fuzztime 60s ./internal/broker
func FuzzHandleFrame(f *testing.F) {
	b, err := New(Config{Listen: "127.0.0.1:0", DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.CreateTopic(ctx, "t", 2, nil); err != nil {
		f.Fatal(err)
	}

	formatter := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	rng := rand.New(rand.NewPCG(7, 9))
	for key, h := range handlers {
		for v := h.min; v <= h.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			seedFields(req, rng)
			frame := formatter.AppendRequest(nil, req, 1)
			f.Add(frame[4:])
			f.Add(frame[4 : 4+len(frame[4:])/2])
		}
	}

	server, client := net.Pipe()
	f.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	c := newConn(b, server)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 8 {
			return
		}
		// A short context ends parked fetches and durable waits quickly
		// whatever wait the fuzzed request asks for.
		rctx, rcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer rcancel()
		p, _, err := c.handleFrame(rctx, frame)
		if got := testutil.ToFloat64(b.metrics.panics); got > 0 {
			t.Fatalf("handler panicked on %x", frame)
		}
		if err != nil {
			return
		}
		if p.ready != nil {
			select {
			case <-p.ready:
			case <-time.After(time.Minute):
				t.Fatal("deferred response never completed")
			}
		}
		if p.fail != nil {
			t.Fatalf("deferred completion failed: %v", p.fail)
		}
		if !p.none && p.msg == nil {
			t.Fatal("no response and not marked as none")
		}
		p.msg.Release()
	})
}

// seedFields fills a request with plausible values so seeds reach the
// handlers' logic: topic "t", partitions 0-1, small waits.
func seedFields(req kmsg.Request, rng *rand.Rand) {
	switch r := req.(type) {
	case *kmsg.FetchRequest:
		r.MaxWaitMillis = 1
		r.MaxBytes = 1 << 20
		r.SessionEpoch = int32(rng.IntN(3)) - 1
		t := kmsg.NewFetchRequestTopic()
		t.Topic = "t"
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.ProduceRequest:
		r.Acks = int16(rng.IntN(3)) - 1
		r.TimeoutMillis = 100
		t := kmsg.NewProduceRequestTopic()
		t.Topic = "t"
		p := kmsg.NewProduceRequestTopicPartition()
		p.Records = make([]byte, 61+rng.IntN(20))
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.MetadataRequest:
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr("t")
		r.Topics = append(r.Topics, t)
	case *kmsg.ListOffsetsRequest:
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = "t"
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Timestamp = int64(rng.IntN(6)) - 5
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	case *kmsg.DescribeConfigsRequest:
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType = kmsg.ConfigResourceTypeTopic
		res.ResourceName = "t"
		r.Resources = append(r.Resources, res)
	case *kmsg.DeleteRecordsRequest:
		t := kmsg.NewDeleteRecordsRequestTopic()
		t.Topic = "t"
		p := kmsg.NewDeleteRecordsRequestTopicPartition()
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
	}
}
