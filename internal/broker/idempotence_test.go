package broker_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// dropProxy forwards Kafka connections to a broker and swallows every
// dropEvery-th Produce response (at most maxDrops): the request reached the
// broker and was appended, the client never hears of it. After swallowing a
// response the proxy closes the connection, so the client retries at once
// (rather than after its request timeout) with the same sequence numbers.
type dropProxy struct {
	ln        net.Listener
	target    string
	dropEvery int64
	maxDrops  int64

	produceResponses atomic.Int64
	dropped          atomic.Int64
	wg               sync.WaitGroup
}

func newDropProxy(t *testing.T, dropEvery, maxDrops int64) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, dropEvery: dropEvery, maxDrops: maxDrops}
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }

// serve accepts until the listener closes. target must be set.
func (p *dropProxy) serve() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				p.handle(c)
			}()
		}
	}()
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 200<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, 4+n)
	copy(b, size[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

func (p *dropProxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var once sync.Once
	closeBoth := func() { once.Do(func() { client.Close(); server.Close() }) }
	defer closeBoth()
	var mu sync.Mutex
	produces := map[int32]bool{} // correlation ids of Produce requests in flight

	done := make(chan struct{})
	go func() { // client -> broker
		defer close(done)
		defer closeBoth()
		for {
			f, err := readFrame(client)
			if err != nil || len(f) < 12 {
				return
			}
			key := int16(binary.BigEndian.Uint16(f[4:]))
			corr := int32(binary.BigEndian.Uint32(f[8:]))
			if key == 0 {
				mu.Lock()
				produces[corr] = true
				mu.Unlock()
			}
			if _, err := server.Write(f); err != nil {
				return
			}
		}
	}()
	for { // broker -> client
		f, err := readFrame(server)
		if err != nil || len(f) < 8 {
			break
		}
		corr := int32(binary.BigEndian.Uint32(f[4:]))
		mu.Lock()
		isProduce := produces[corr]
		delete(produces, corr)
		mu.Unlock()
		if isProduce && p.produceResponses.Add(1)%p.dropEvery == 0 && p.dropped.Load() < p.maxDrops {
			p.dropped.Add(1)
			break // swallowed; the connection goes down with it
		}
		if _, err := client.Write(f); err != nil {
			break
		}
	}
	closeBoth()
	<-done
}

// startBehindProxy starts a broker that advertises the proxy's address, so
// every client connection (also those made after Metadata) goes through it.
func startBehindProxy(t *testing.T, dropEvery, maxDrops int64, opts ...sluicetest.Option) (*sluicetest.Broker, *dropProxy) {
	t.Helper()
	px := newDropProxy(t, dropEvery, maxDrops)
	b := sluicetest.New(t, append(opts, sluicetest.Advertise(px.addr()))...)
	px.target = b.Addr()
	px.serve()
	return b, px
}

// checkExactlyOnce reads every partition of topic to its end and checks
// that partition p holds exactly the values p, p+parts, p+2*parts, ...
// below total, in order, each once.
func checkExactlyOnce(t *testing.T, addr, topic string, parts int32, total int) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	ends, err := adm.ListEndOffsets(testCtx(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	if sum != int64(total) {
		t.Fatalf("log end offsets sum to %d, want %d records exactly once", sum, total)
	}
	recs := consumeAll(t, addr, topic, total)
	next := map[int32]int{}
	for p := range parts {
		next[p] = int(p)
	}
	for _, r := range recs {
		v, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("value %q", r.Value)
		}
		if v != next[r.Partition] {
			t.Fatalf("partition %d offset %d holds %d, want %d", r.Partition, r.Offset, v, next[r.Partition])
		}
		next[r.Partition] += int(parts)
	}
	if len(recs) != total {
		t.Fatalf("consumed %d records, want %d", len(recs), total)
	}
}

// TestIdempotentProducerLostResponses: franz-go's idempotent producer
// retries batches whose Produce responses the proxy swallowed; the broker
// answers the retries as duplicates with their original offsets, and the
// log holds every record once, in order.
func TestIdempotentProducerLostResponses(t *testing.T) {
	const (
		topic = "idem"
		parts = 3
		total = 20_000
	)
	b, px := startBehindProxy(t, 3, 100, sluicetest.Topic(topic, parts))
	cl := newClient(t, px.addr(),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequestRetries(1000),
		kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }),
		kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchMaxBytes(4096), // many small batches, many requests
		kgo.MaxBufferedRecords(2000),
	)
	ctx := testCtx(t, 2*time.Minute)
	var failed atomic.Pointer[error]
	for i := range total {
		r := &kgo.Record{Value: []byte(strconv.Itoa(i)), Partition: int32(i % parts)}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e := failed.Load(); e != nil {
		t.Fatalf("produce: %v", *e)
	}
	if px.dropped.Load() == 0 {
		t.Fatalf("the proxy dropped no Produce response (%d seen)", px.produceResponses.Load())
	}
	t.Logf("%d produce responses, %d swallowed", px.produceResponses.Load(), px.dropped.Load())
	checkExactlyOnce(t, b.Addr(), topic, parts, total)
}

// TestIdempotentProducerSarama: sarama's idempotent producer (one request
// in flight, acks=all) through the same lossy proxy.
func TestIdempotentProducerSarama(t *testing.T) {
	const (
		topic = "idem-sarama"
		parts = 3
		total = 600
	)
	b, px := startBehindProxy(t, 4, 15, sluicetest.Topic(topic, parts))
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 100
	cfg.Producer.Retry.Backoff = 5 * time.Millisecond
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Metadata.Retry.Backoff = 5 * time.Millisecond
	prod, err := sarama.NewSyncProducer([]string{px.addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for i := range total {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % parts), Value: sarama.StringEncoder(strconv.Itoa(i))})
	}
	// In chunks, so batches stay in order per partition across retries.
	for i := 0; i < total; i += 50 {
		if err := prod.SendMessages(msgs[i : i+50]); err != nil {
			var pe sarama.ProducerErrors
			if errors.As(err, &pe) && len(pe) > 0 {
				t.Fatalf("sarama produce: %d errors, first %v", len(pe), pe[0].Err)
			}
			t.Fatalf("sarama produce: %v", err)
		}
	}
	t.Logf("%d produce responses, %d swallowed", px.produceResponses.Load(), px.dropped.Load())
	checkExactlyOnce(t, b.Addr(), topic, parts, total)
}

// TestInitProducerID: ids are distinct and survive a restart without
// reuse; a transactional id is refused with NOT_COORDINATOR.
func TestInitProducerID(t *testing.T) {
	b := sluicetest.New(t)
	cl := newClient(t, b.Addr())
	ctx := testCtx(t, 30*time.Second)
	initPID := func(txnID *string) *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = txnID
		req.TransactionTimeoutMillis = 60000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	seen := map[int64]bool{}
	for range 5 {
		r := initPID(nil)
		if r.ErrorCode != 0 || r.ProducerEpoch != 0 || seen[r.ProducerID] || r.ProducerID < 0 {
			t.Fatalf("InitProducerId: %+v", r)
		}
		seen[r.ProducerID] = true
	}
	// Sent to the broker directly: the client would first look for a
	// transaction coordinator, which does not exist yet.
	treq := kmsg.NewPtrInitProducerIDRequest()
	treq.TransactionalID = kmsg.StringPtr("txn")
	treq.TransactionTimeoutMillis = 60000
	tresp, err := cl.Broker(1).Request(ctx, treq)
	if err != nil {
		t.Fatal(err)
	}
	if code := tresp.(*kmsg.InitProducerIDResponse).ErrorCode; code != kerr.NotCoordinator.Code {
		t.Fatalf("transactional InitProducerId: error %d, want NOT_COORDINATOR", code)
	}
	b.Restart()
	cl2 := newClient(t, b.Addr())
	req := kmsg.NewPtrInitProducerIDRequest()
	resp, err := req.RequestWith(ctx, cl2)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || seen[resp.ProducerID] {
		t.Fatalf("after restart: %+v (ids before: %v)", resp, seen)
	}
}
