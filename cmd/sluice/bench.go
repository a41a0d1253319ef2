package main

// sluice bench produce|consume|e2e: a load generator in the spirit of
// kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh, on kgo.
// Every loop is bounded by --records and/or --duration.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func runBench(ctx context.Context, args []string, env cmdEnv) error {
	return family("bench", []subcommand{
		{"produce", "produce records as fast as allowed; throughput and send-to-ack latency", func(ctx context.Context, args []string, env cmdEnv) error {
			return runBenchMode(ctx, "produce", args, env)
		}},
		{"consume", "consume a topic from the beginning; throughput", func(ctx context.Context, args []string, env cmdEnv) error {
			return runBenchMode(ctx, "consume", args, env)
		}},
		{"e2e", "produce and consume at once; produce-to-consume latency", func(ctx context.Context, args []string, env cmdEnv) error {
			return runBenchMode(ctx, "e2e", args, env)
		}},
	})(ctx, args, env)
}

// benchOptions are the flags of every bench mode.
type benchOptions struct {
	topic      string
	records    int64
	recordSize int
	rate       float64
	partitions int
	duration   time.Duration
}

// benchResult is the final summary (and the JSON of --format json).
type benchResult struct {
	Mode          string          `json:"mode"`
	Topic         string          `json:"topic"`
	Records       int64           `json:"records"`
	Bytes         int64           `json:"bytes"`
	Errors        int64           `json:"errors"`
	Seconds       float64         `json:"seconds"`
	RecordsPerSec float64         `json:"records_per_sec"`
	MBPerSec      float64         `json:"mb_per_sec"`
	Latency       *latencySummary `json:"latency_ms,omitempty"`
}

type latencySummary struct {
	Avg  float64 `json:"avg"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// maxLatencySamples bounds the memory of latency recording; beyond it,
// samples are kept by reservoir sampling (uniform over the whole run).
const maxLatencySamples = 1 << 20

// latencies records durations from several goroutines.
type latencies struct {
	mu      sync.Mutex
	samples []time.Duration
	seen    int64
	sum     time.Duration
	max     time.Duration
	window  []time.Duration // since the last progress line
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen++
	l.sum += d
	l.max = max(l.max, d)
	if len(l.samples) < maxLatencySamples {
		l.samples = append(l.samples, d)
	} else if i := rand.Int64N(l.seen); i < maxLatencySamples {
		l.samples[i] = d
	}
	if len(l.window) < 1<<16 {
		l.window = append(l.window, d)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (l *latencies) summary() *latencySummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == 0 {
		return nil
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	return &latencySummary{
		Avg: ms(l.sum / time.Duration(l.seen)), P50: ms(percentile(s, 0.50)), P95: ms(percentile(s, 0.95)),
		P99: ms(percentile(s, 0.99)), P999: ms(percentile(s, 0.999)), Max: ms(l.max),
	}
}

// windowP99 returns the p99 since the last call, and resets the window.
func (l *latencies) windowP99() (time.Duration, bool) {
	l.mu.Lock()
	w := l.window
	l.window = nil
	l.mu.Unlock()
	if len(w) == 0 {
		return 0, false
	}
	slices.Sort(w)
	return percentile(w, 0.99), true
}

// isTerminal reports whether w is a character device (a TTY), without
// golang.org/x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// pacer spaces sends to a rate (records/s); zero means unlimited.
type pacer struct {
	start time.Time
	rate  float64
}

func (p pacer) wait(ctx context.Context, n int64) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	due := p.start.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return ctx.Err()
}

func runBenchMode(ctx context.Context, mode string, args []string, env cmdEnv) error {
	var cf clientFlags
	var pf producerFlags
	var o benchOptions
	fs := newFlagSet("bench "+mode, "bench "+mode+" [-t topic] [--records N] [--duration D] [flags]", env)
	cf.register(fs, true)
	fs.StringVar(&o.topic, "t", "sluice-bench", "topic")
	fs.Int64Var(&o.records, "records", 100000, "records to produce or consume (0: no limit, then --duration is required)")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: no limit, then --records is required)")
	if mode != "consume" {
		fs.IntVar(&o.recordSize, "record-size", 1024, "value size in bytes")
		fs.Float64Var(&o.rate, "rate", 0, "records/s limit (0: unlimited)")
		fs.IntVar(&o.partitions, "partitions", 0, "partitions when the topic is created (it is created if missing; default: the broker's num.partitions)")
		pf.register(fs, false)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("unexpected arguments: %v", pos)}
	}
	if o.records < 0 || o.duration < 0 {
		return errUsage{"--records and --duration must not be negative"}
	}
	if o.records == 0 && o.duration == 0 {
		return errUsage{"give --records or --duration (or both): every run is bounded"}
	}
	if mode == "e2e" && o.recordSize < 8 {
		return errUsage{"--record-size must be at least 8 for e2e (the send time travels in the value)"}
	}
	if o.recordSize < 0 || o.rate < 0 || o.partitions < 0 {
		return errUsage{"--record-size, --rate and --partitions must not be negative"}
	}
	base, err := cf.kgoOpts(env)
	if err != nil {
		return err
	}
	var popts []kgo.Opt
	if mode != "consume" {
		if popts, err = pf.kgoOpts(fs); err != nil {
			return err
		}
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	if mode != "consume" {
		if err := ensureTopic(ctx, adm, o.topic, o.partitions); err != nil {
			return err
		}
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var res benchResult
	switch mode {
	case "produce":
		res, err = benchProduce(ctx, o, append(base, popts...), env)
	case "consume":
		res, err = benchConsume(ctx, o, base, adm, env)
	case "e2e":
		res, err = benchE2E(ctx, o, base, popts, adm, env)
	}
	if err != nil {
		return err
	}
	if cf.json() {
		return writeJSON(env.stdout, res)
	}
	fmt.Fprintf(env.stdout, "%s: %d records (%d bytes) in %.2fs: %.1f records/s, %.2f MB/s",
		res.Mode, res.Records, res.Bytes, res.Seconds, res.RecordsPerSec, res.MBPerSec)
	if res.Errors > 0 {
		fmt.Fprintf(env.stdout, ", %d errors", res.Errors)
	}
	fmt.Fprintln(env.stdout)
	if l := res.Latency; l != nil {
		what := "send to ack"
		if mode == "e2e" {
			what = "produce to consume"
		}
		fmt.Fprintf(env.stdout, "latency (%s) ms: avg %.2f, p50 %.2f, p95 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
			what, l.Avg, l.P50, l.P95, l.P99, l.P999, l.Max)
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d records failed", res.Errors)
	}
	return nil
}

// ensureTopic creates topic with partitions (0: the broker's default) if
// it does not exist.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int) error {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	if td, ok := tds[topic]; ok && td.Err == nil {
		return nil
	}
	p := int32(-1)
	if partitions > 0 {
		p = int32(partitions)
	}
	r, err := adm.CreateTopic(ctx, p, -1, nil, topic)
	if err == nil {
		err = r.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return kafkaErr(fmt.Sprintf("create topic %q", topic), err, r.ErrMessage)
	}
	// As with Kafka, a new topic may take a moment to show up everywhere.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// progress prints a line each second to stderr while the run lasts, if
// stderr is a terminal. count is the records done so far.
func progress(ctx context.Context, env cmdEnv, mode string, count, bytes *atomic.Int64, lat *latencies) func() {
	if !isTerminal(env.stderr) {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastN, lastB int64
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				n, b := count.Load(), bytes.Load()
				secs := now.Sub(last).Seconds()
				line := fmt.Sprintf("%s: %d records, %.1f records/s, %.2f MB/s", mode, n, float64(n-lastN)/secs, float64(b-lastB)/secs/1e6)
				if lat != nil {
					if p99, ok := lat.windowP99(); ok {
						line += fmt.Sprintf(", p99 %.2f ms", ms(p99))
					}
				}
				fmt.Fprintln(env.stderr, line)
				lastN, lastB, last = n, b, now
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func finish(mode, topic string, n, bytes, errs int64, elapsed time.Duration, lat *latencies) benchResult {
	secs := elapsed.Seconds()
	r := benchResult{Mode: mode, Topic: topic, Records: n, Bytes: bytes, Errors: errs, Seconds: secs}
	if secs > 0 {
		r.RecordsPerSec = float64(n) / secs
		r.MBPerSec = float64(bytes) / secs / 1e6
	}
	if lat != nil {
		r.Latency = lat.summary()
	}
	return r
}

// produceLoop sends records until o.records or ctx ends, calling value for
// each record's value. It returns when every sent record is acknowledged.
func produceLoop(ctx context.Context, cl *kgo.Client, o benchOptions, value func() []byte,
	onAck func(r *kgo.Record, err error)) (sent int64, err error) {
	p := pacer{start: time.Now(), rate: o.rate}
	for o.records == 0 || sent < o.records {
		if p.wait(ctx, sent) != nil {
			break
		}
		cl.Produce(ctx, &kgo.Record{Topic: o.topic, Value: value(), Timestamp: time.Now()}, onAck)
		sent++
	}
	// Records canceled by the run's deadline fail in onAck; wait for the
	// rest without the deadline.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return sent, cl.Flush(fctx)
}

func benchProduce(ctx context.Context, o benchOptions, opts []kgo.Opt, env cmdEnv) (benchResult, error) {
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(o.topic))...)
	if err != nil {
		return benchResult{}, err
	}
	defer cl.Close()
	// Random upper-case letters, as kafka-producer-perf-test.sh sends: a
	// constant payload would flatter every codec.
	payload := make([]byte, o.recordSize)
	for i := range payload {
		payload[i] = byte('A' + rand.IntN(26))
	}
	var (
		lat          latencies
		acked, bytes atomic.Int64
		failed       atomic.Int64
	)
	onAck := func(r *kgo.Record, err error) {
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				failed.Add(1)
			}
			return
		}
		lat.add(time.Since(r.Timestamp))
		acked.Add(1)
		bytes.Add(int64(len(r.Value)))
	}
	stop := progress(ctx, env, "produce", &acked, &bytes, &lat)
	start := time.Now()
	_, err = produceLoop(ctx, cl, o, func() []byte { return payload }, onAck)
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return benchResult{}, err
	}
	return finish("produce", o.topic, acked.Load(), bytes.Load(), failed.Load(), elapsed, &lat), nil
}

func benchConsume(ctx context.Context, o benchOptions, opts []kgo.Opt, adm *kadm.Client, env cmdEnv) (benchResult, error) {
	tds, err := adm.ListTopics(ctx, o.topic)
	if err != nil {
		return benchResult{}, err
	}
	if td, ok := tds[o.topic]; !ok || td.Err != nil {
		if ok {
			err = td.Err
		} else {
			err = errors.New("not in metadata")
		}
		return benchResult{}, kafkaErr(fmt.Sprintf("topic %q", o.topic), err, "")
	}
	// Without --records, consume what the topic holds now.
	want := o.records
	if want == 0 && o.duration == 0 {
		return benchResult{}, errUsage{"give --records or --duration"}
	}
	starts, err := adm.ListStartOffsets(ctx, o.topic)
	if err != nil {
		return benchResult{}, err
	}
	ends, err := adm.ListEndOffsets(ctx, o.topic)
	if err != nil {
		return benchResult{}, err
	}
	var available int64
	ends.Each(func(e kadm.ListedOffset) {
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && e.Err == nil && s.Err == nil {
			available += e.Offset - s.Offset
		}
	})
	if want == 0 || want > available {
		want = available // never wait for records nobody is producing
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(o.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return benchResult{}, err
	}
	defer cl.Close()
	var n, bytes atomic.Int64
	stop := progress(ctx, env, "consume", &n, &bytes, nil)
	start := time.Now()
	for n.Load() < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			stop()
			return benchResult{}, ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n.Add(1)
			bytes.Add(int64(len(r.Value)))
		})
	}
	elapsed := time.Since(start)
	stop()
	return finish("consume", o.topic, n.Load(), bytes.Load(), 0, elapsed, nil), nil
}

func benchE2E(ctx context.Context, o benchOptions, base, popts []kgo.Opt, adm *kadm.Client, env cmdEnv) (benchResult, error) {
	// The consumer starts at the current end of every partition, so it
	// sees exactly this run's records.
	ends, err := adm.ListEndOffsets(ctx, o.topic)
	if err != nil {
		return benchResult{}, err
	}
	if err := ends.Error(); err != nil {
		return benchResult{}, kafkaErr(fmt.Sprintf("topic %q", o.topic), err, "")
	}
	at := map[string]map[int32]kgo.Offset{o.topic: {}}
	ends.Each(func(e kadm.ListedOffset) { at[o.topic][e.Partition] = kgo.NewOffset().At(e.Offset) })
	consumer, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumePartitions(at), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return benchResult{}, err
	}
	defer consumer.Close()
	producer, err := kgo.NewClient(append(slices.Clone(base), append(popts, kgo.DefaultProduceTopic(o.topic))...)...)
	if err != nil {
		return benchResult{}, err
	}
	defer producer.Close()

	var (
		lat             latencies
		n, bytes        atomic.Int64
		sent            atomic.Int64
		failed          atomic.Int64
		produceErr      error
		consumeErr      error
		wg              sync.WaitGroup
		consumerCtx, cc = context.WithCancel(context.WithoutCancel(ctx))
	)
	defer cc()
	stop := progress(ctx, env, "e2e", &n, &bytes, &lat)
	start := time.Now()
	wg.Add(1)
	go func() { // consumer: until canceled below
		defer wg.Done()
		for {
			fetches := consumer.PollFetches(consumerCtx)
			if consumerCtx.Err() != nil {
				return
			}
			fetches.EachError(func(t string, p int32, err error) {
				if consumeErr == nil {
					consumeErr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
				}
			})
			if consumeErr != nil {
				return
			}
			now := time.Now()
			fetches.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					sentAt := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
					lat.add(now.Sub(sentAt))
				}
				n.Add(1)
				bytes.Add(int64(len(r.Value)))
			})
		}
	}()
	onAck := func(_ *kgo.Record, err error) {
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			failed.Add(1)
		}
		if err != nil {
			sent.Add(-1)
		}
	}
	_, produceErr = produceLoop(ctx, producer, o, func() []byte {
		v := make([]byte, o.recordSize)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		sent.Add(1)
		return v
	}, onAck)
	// Give the consumer a bounded grace to drain what was acknowledged.
	for grace := time.Now().Add(30 * time.Second); n.Load() < sent.Load() && time.Now().Before(grace); {
		time.Sleep(5 * time.Millisecond)
	}
	cc()
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	if produceErr != nil {
		return benchResult{}, produceErr
	}
	if consumeErr != nil {
		return benchResult{}, consumeErr
	}
	if got, want := n.Load(), sent.Load(); got < want {
		return benchResult{}, fmt.Errorf("consumed %d of %d acknowledged records within the grace period", got, want)
	}
	return finish("e2e", o.topic, n.Load(), bytes.Load(), failed.Load(), elapsed, &lat), nil
}
