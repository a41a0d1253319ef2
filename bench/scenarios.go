package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Figure names, in table order.
const (
	figRecords = "records/s"
	figMB      = "MB/s"
	figP50     = "p50 ms"
	figP99     = "p99 ms"
	figP999    = "p99.9 ms"
	figCPU     = "CPU s/GB"
	figRSS     = "RSS KiB/conn"
)

// figures is one measurement of one scenario on one server.
type figures map[string]float64

// scenario is one workload. Kind is produce, consume, e2e or idle.
type scenario struct {
	Kind       string
	Size       int    // record value bytes
	Partitions int    //
	Acks       string // "1" or "all" (produce, e2e)
	Conns      int    // producer clients (produce), idle connections (idle)
	Tag        string // appended to the topic name
	// RF is the replication factor of a replication scenario, run on the
	// three-broker cluster (acks=all; min.insync.replicas=2 when RF > 1);
	// 0 for the single-node scenarios (RF 1 on a one-node server).
	RF int
}

func (s scenario) String() string {
	n := s.name()
	if s.RF > 0 {
		n += fmt.Sprintf(" rf=%d", s.RF)
	}
	return n
}

// name is String without the replication factor.
func (s scenario) name() string {
	size := fmt.Sprintf("%dB", s.Size)
	if s.Size%1024 == 0 {
		size = fmt.Sprintf("%dKiB", s.Size/1024)
	}
	switch s.Kind {
	case "produce":
		n := fmt.Sprintf("produce %s p%d acks=%s", size, s.Partitions, s.Acks)
		if s.Conns > 1 {
			n += fmt.Sprintf(" conns=%d", s.Conns)
		}
		return n
	case "consume":
		return fmt.Sprintf("consume %s p%d", size, s.Partitions)
	case "e2e":
		return fmt.Sprintf("e2e %s p%d", size, s.Partitions)
	case "idle":
		return fmt.Sprintf("idle conns=%d", s.Conns)
	}
	return s.Kind
}

// topic is the topic a produce scenario writes and the matching consume
// scenario reads.
func (s scenario) topic() string {
	if s.Kind == "idle" {
		return ""
	}
	acks := s.Acks
	if s.Kind == "consume" {
		acks = "all"
	}
	rf := ""
	if s.RF > 0 {
		rf = fmt.Sprintf("-rf%d", s.RF)
	}
	return fmt.Sprintf("bench-%s-%d-p%d-acks%s-c%d%s%s", map[bool]string{true: "e2e", false: "data"}[s.Kind == "e2e"], s.Size, s.Partitions, acks, max(1, s.Conns), rf, s.Tag)
}

// limits bound every scenario in records and time.
type limits struct {
	produceBytes int64         // value bytes per produce scenario
	produceTime  time.Duration // and at most this long
	e2eRate      float64       // records/s
	e2eRecords   int64
	consumeTime  time.Duration // a consume scenario gives up after this
	// traceDir, if set, makes runE2E save a per-record timeline, a
	// runtime/trace of the harness and one of the broker (sluice) in this
	// directory and print where the slowest records' time went (-trace).
	traceDir string
	// compression is the producers' batch codec (-compression): "none"
	// by default, so that the bytes the servers store and send are the
	// value bytes the tables count and the physical limits move.
	compression string
}

// codecs are the -compression choices, as kgo names them.
var codecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// producerOpts are the options every producing client of a scenario
// starts from: the server, the topic and the batch codec.
func (l limits) producerOpts(srv *server, topic string) []kgo.Opt {
	codec, ok := codecs[l.compression]
	if !ok {
		codec = kgo.NoCompression()
	}
	return []kgo.Opt{kgo.SeedBrokers(srv.seeds()...), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec)}
}

// latencyRecorder collects durations from several goroutines.
type latencyRecorder struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencyRecorder) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// into sets the percentile figures of f.
func (l *latencyRecorder) into(f figures) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.d)
	slices.Sort(s)
	pct := func(p float64) float64 {
		if len(s) == 0 {
			return 0
		}
		i := int(p*float64(len(s))+0.5) - 1
		return float64(s[max(0, min(i, len(s)-1))].Nanoseconds()) / 1e6
	}
	f[figP50], f[figP99], f[figP999] = pct(0.50), pct(0.99), pct(0.999)
}

func throughput(f figures, records, bytes int64, secs, cpu float64) {
	f[figRecords] = float64(records) / secs
	f[figMB] = float64(bytes) / secs / 1e6
	f[figCPU] = cpu / (float64(bytes) / 1e9)
}

// newAdmin is an admin client whose cached topic metadata is at most 50 ms
// old (kgo's default is 5 s): a cluster answers CreateTopics before every
// broker knows the new topic, and createTopic polls until they do.
func newAdmin(seeds []string) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// createTopic creates topic with partitions and replication factor rf
// (min.insync.replicas=2 when rf > 1, so that acks=all waits for at least
// one follower) and waits until every partition has a leader, rf in-sync
// replicas, and answers ListOffsets.
func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions, rf int) error {
	var configs map[string]*string
	if rf > 1 {
		configs = map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}
	}
	r, err := adm.CreateTopic(ctx, int32(partitions), int16(rf), configs, topic)
	if err == nil {
		err = r.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := readyPartitions(ctx, adm, topic, rf)
		if err == nil && n == partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s not ready after 30s (%d of %d partitions with a leader and %d in-sync replicas): %v", topic, n, partitions, rf, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// readyPartitions counts the partitions of topic that have a leader and rf
// in-sync replicas (metadata), when every partition answers ListOffsets.
func readyPartitions(ctx context.Context, adm *kadm.Client, topic string, rf int) (int, error) {
	tds, err := adm.ListTopics(ctx, topic)
	if err == nil {
		err = tds.Error()
	}
	if err != nil {
		return 0, err
	}
	n := 0
	tds.EachPartition(func(p kadm.PartitionDetail) {
		if p.Err == nil && p.Leader >= 0 && len(p.ISR) == rf {
			n++
		}
	})
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, err
	}
	listed := 0
	ends.Each(func(kadm.ListedOffset) { listed++ })
	return min(n, listed), nil
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte('A' + rand.IntN(26))
	}
	return p
}

// runProduce produces as fast as the client allows until lim.produceBytes
// or lim.produceTime, from s.Conns clients, and measures per-record
// promise latency and the server's CPU.
func runProduce(ctx context.Context, srv *server, s scenario, lim limits) (figures, error) {
	adm, err := newAdmin(srv.seeds())
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	if err := createTopic(ctx, adm, s.topic(), s.Partitions, max(1, s.RF)); err != nil {
		return nil, err
	}
	conns := max(1, s.Conns)
	opts := lim.producerOpts(srv, s.topic())
	if s.Acks == "1" {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	}
	clients := make([]*kgo.Client, conns)
	for i := range clients {
		if clients[i], err = kgo.NewClient(opts...); err != nil {
			return nil, err
		}
		defer clients[i].Close()
		// Warm up: metadata, connection, producer id; not measured.
		if err := clients[i].ProduceSync(ctx, &kgo.Record{Value: payload(s.Size)}).FirstErr(); err != nil {
			return nil, fmt.Errorf("warm-up produce: %w", err)
		}
	}
	if s.RF > 0 {
		if err := warmPartitions(ctx, srv, s, lim); err != nil {
			return nil, err
		}
	}
	value := payload(s.Size)
	maxRecords := max(1, lim.produceBytes/int64(s.Size))
	var (
		lat           latencyRecorder
		sent          atomic.Int64
		acked, bytes  atomic.Int64
		failed        atomic.Int64
		firstErr      atomic.Value
		wg            sync.WaitGroup
		cpu0, cpuErr0 = srv.cpu()
	)
	if cpuErr0 != nil {
		return nil, cpuErr0
	}
	start := time.Now()
	deadline := start.Add(lim.produceTime)
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= maxRecords && time.Now().Before(deadline) {
				r := &kgo.Record{Value: value, Timestamp: time.Now()}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					lat.add(time.Since(r.Timestamp))
					acked.Add(1)
					bytes.Add(int64(len(r.Value)))
				})
			}
			fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			_ = cl.Flush(fctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu1, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	if failed.Load() > 0 {
		return nil, fmt.Errorf("%d records failed: %v", failed.Load(), firstErr.Load())
	}
	f := figures{}
	throughput(f, acked.Load(), bytes.Load(), elapsed, cpu1-cpu0)
	lat.into(f)
	return f, nil
}

// warmPartitions produces one record (acks=all) to every partition of a
// replication scenario's new topic and waits for each, so that the
// measurement starts once every follower fetches every partition: a
// follower adds a new partition to its fetch session only after its
// current fetch returns, which can wait replica.fetch.wait.max.ms (500 ms)
// at the leader; the first acks=all produce to that partition would wait
// as long. kgo's default partitioner ignores Record.Partition, hence a
// client with the manual partitioner. Its values are not the e2e
// scenario's measured records (value[8] is a letter).
func warmPartitions(ctx context.Context, srv *server, s scenario, lim limits) error {
	cl, err := kgo.NewClient(append(lim.producerOpts(srv, s.topic()), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range s.Partitions {
		rs = append(rs, &kgo.Record{Value: payload(s.Size), Partition: int32(i)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("warm-up produce to every partition: %w", err)
	}
	return nil
}

// runConsume reads s.topic() from the start to its current end with one
// consumer; the data were just written, so they are in the page cache.
func runConsume(ctx context.Context, srv *server, s scenario, lim limits) (figures, error) {
	adm, err := newAdmin(srv.seeds())
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ends, err := adm.ListEndOffsets(ctx, s.topic())
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	if want == 0 {
		return nil, fmt.Errorf("topic %s is empty", s.topic())
	}
	// The client starts fetching as soon as it exists: the clock and the
	// CPU reading start before it.
	cpu0, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.seeds()...), kgo.ConsumeTopics(s.topic()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, lim.consumeTime)
	defer cancel()
	var n, bytes int64
	for n < want {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			return nil, fmt.Errorf("consumed %d of %d records in %v", n, want, lim.consumeTime)
		}
		if err := fs.Err(); err != nil {
			return nil, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Value))
		})
	}
	elapsed := time.Since(start).Seconds()
	cpu1, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	f := figures{}
	throughput(f, n, bytes, elapsed, cpu1-cpu0)
	return f, nil
}

// runE2E produces lim.e2eRecords at lim.e2eRate (acks=all, no linger) while
// one consumer long-polls, and measures produce-to-consume latency (the
// send time travels in the value).
func runE2E(ctx context.Context, srv *server, s scenario, lim limits) (figures, error) {
	adm, err := newAdmin(srv.seeds())
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	if err := createTopic(ctx, adm, s.topic(), s.Partitions, max(1, s.RF)); err != nil {
		return nil, err
	}
	var tl *e2eTimeline
	if lim.traceDir != "" {
		tl = newE2ETimeline(lim.e2eRecords)
	}
	copts := []kgo.Opt{kgo.SeedBrokers(srv.seeds()...), kgo.ConsumeTopics(s.topic()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500 * time.Millisecond)}
	if tl != nil {
		copts = append(copts, kgo.WithHooks(tl)) // buffered records, Fetch requests
	}
	consumer, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	popts := append(lim.producerOpts(srv, s.topic()), kgo.ProducerLinger(0))
	if tl != nil {
		popts = append(popts, kgo.WithHooks(producerHooks{tl}))
	}
	producer, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, err
	}
	defer producer.Close()

	const measured = 1 // value[8]: 0 for warm-up records
	var (
		lat      latencyRecorder
		got      atomic.Int64 // measured records consumed
		warm     atomic.Int64 // warm-up records consumed
		bytes    atomic.Int64
		cerr     atomic.Value
		cctx, cc = context.WithCancel(ctx)
		wg       sync.WaitGroup
	)
	defer cc()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for cctx.Err() == nil {
			fs := consumer.PollFetches(cctx)
			if cctx.Err() != nil {
				return
			}
			if err := fs.Err(); err != nil {
				cerr.CompareAndSwap(nil, err)
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if r.Value[8] != measured {
					warm.Add(1)
					return
				}
				lat.add(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))))
				if tl != nil {
					tl.polled(r, now)
				}
				bytes.Add(int64(len(r.Value)))
				got.Add(1)
			})
		}
	}()
	mk := func(kind byte, seq int64) []byte {
		v := make([]byte, s.Size)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		v[8] = kind
		if len(v) >= 17 {
			binary.BigEndian.PutUint64(v[9:], uint64(seq)) // for the timeline
		}
		return v
	}
	// Warm-up: one record per partition's worth, until the consumer sees
	// them (its fetch sessions are then established).
	if s.RF > 0 {
		if err := warmPartitions(ctx, srv, s, lim); err != nil {
			return nil, err
		}
	}
	for i := 0; i < s.Partitions; i++ {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: mk(0, 0), Partition: int32(i)}).FirstErr(); err != nil {
			return nil, fmt.Errorf("warm-up produce: %w", err)
		}
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { return warm.Load() >= int64(s.Partitions) || cerr.Load() != nil }); err != nil {
		return nil, fmt.Errorf("warm-up records not consumed: %w", err)
	}
	cpu0, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	// Collect what earlier scenarios left in the harness's heap now, not
	// during the measurement (the same for every server).
	runtime.GC()
	var stopTrace func() error
	if tl != nil {
		secs := int(float64(lim.e2eRecords)/lim.e2eRate) + 2
		if stopTrace, err = startTraces(lim.traceDir, srv, s, secs, tl); err != nil {
			return nil, err
		}
		defer stopTrace() // on the error paths; a no-op once stopped
	}
	var failed atomic.Int64
	start := time.Now()
	for i := int64(0); i < lim.e2eRecords; i++ {
		slot := start.Add(time.Duration(float64(i) / lim.e2eRate * float64(time.Second)))
		if d := time.Until(slot); d > 0 {
			time.Sleep(d) // pacing to the fixed rate
		}
		if tl != nil {
			tl.sched[i] = slot.UnixNano()
		}
		producer.Produce(ctx, &kgo.Record{Value: mk(measured, i)}, func(r *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			if tl != nil {
				tl.acked(r)
			}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		return nil, err
	}
	if failed.Load() > 0 {
		return nil, fmt.Errorf("%d records failed", failed.Load())
	}
	if err := waitFor(ctx, 60*time.Second, func() bool { return got.Load() >= lim.e2eRecords || cerr.Load() != nil }); err != nil {
		return nil, fmt.Errorf("consumed %d of %d: %w", got.Load(), lim.e2eRecords, err)
	}
	elapsed := time.Since(start).Seconds()
	cpu1, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	if tl != nil {
		if err := stopTrace(); err != nil {
			return nil, err
		}
		if err := tl.report(lim.traceDir, srv, s, os.Stderr); err != nil {
			return nil, err
		}
	}
	cc()
	wg.Wait()
	if e := cerr.Load(); e != nil {
		return nil, e.(error)
	}
	f := figures{}
	throughput(f, got.Load(), bytes.Load(), elapsed, cpu1-cpu0)
	lat.into(f)
	return f, nil
}

// waitFor polls cond every millisecond until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met after %v", d)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// runIdle opens s.Conns TCP connections, sends one ApiVersions request on
// each (so the broker has set the connection up), and reports how much the
// broker's resident memory grew per connection.
func runIdle(ctx context.Context, srv *server, s scenario) (figures, error) {
	before, err := rssBytes(srv.pid())
	if err != nil {
		return nil, err
	}
	conns := make([]net.Conn, s.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	// ApiVersions v0: size, key 18, version 0, correlation id, client id "b".
	req := []byte{0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 1, 0, 1, 'b'}
	var next atomic.Int64
	errc := make(chan error, 32)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			for {
				i := next.Add(1) - 1
				if i >= int64(len(conns)) {
					return
				}
				c, err := d.DialContext(ctx, "tcp", srv.addr)
				if err != nil {
					errc <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(30 * time.Second))
				var size [4]byte
				_, err = c.Write(req)
				if err == nil {
					_, err = io.ReadFull(c, size[:])
				}
				if err == nil {
					_, err = io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(size[:])))
				}
				if err != nil {
					errc <- fmt.Errorf("connection %d: ApiVersions: %w", i, err)
					return
				}
				c.SetDeadline(time.Time{})
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	after, err := rssBytes(srv.pid())
	if err != nil {
		return nil, err
	}
	return figures{figRSS: float64(after-before) / float64(s.Conns) / 1024}, nil
}

// readLater reports whether a later scenario of all reads the topic s
// wrote (a consume scenario reads what the acks=all produce wrote).
func readLater(s scenario, all []scenario) bool {
	if s.Kind != "produce" {
		return false
	}
	for _, o := range all {
		if o.Kind == "consume" && o.topic() == s.topic() {
			return true
		}
	}
	return false
}

// deleteTopic deletes a topic a scenario is done with.
func deleteTopic(ctx context.Context, seeds []string, topic string) error {
	if topic == "" {
		return nil
	}
	adm, err := newAdmin(seeds)
	if err != nil {
		return err
	}
	defer adm.Close()
	r, err := adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = r.Err
	}
	return err
}
