package broker_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

var (
	chaosRecords = flag.Int("txn.chaos.records", 3000, "input records of TestTxnChaosReadProcessWrite (make stress: 100000)")
	chaosSeed    = flag.Int64("txn.chaos.seed", 0, "seed of TestTxnChaosReadProcessWrite and TestTxnDelayedMessages (0: time based)")
)

// testSeed is -txn.chaos.seed or a fresh one, logged so a failing run can
// be repeated.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (repeat with -txn.chaos.seed=%d)", seed, seed)
	return seed
}

// lockedRand is a math/rand source shared by goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed int64) *lockedRand { return &lockedRand{r: rand.New(rand.NewSource(seed))} }

func (r *lockedRand) Intn(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.r.Intn(n)
}

func (r *lockedRand) Float64() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.r.Float64()
}

// between is a uniformly random duration in [lo, hi).
func (r *lockedRand) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Float64()*float64(hi-lo))
}

// waitStable waits until every partition of topics has its last stable
// offset (ListOffsets read_committed) at its high watermark (read_uncommitted):
// no transaction is left open. On the deadline it fails, naming the stuck
// partitions and the producers with an open transaction on them.
func waitStable(t *testing.T, adm *kadm.Client, addr string, d time.Duration, topics ...string) {
	t.Helper()
	ctx := testCtx(t, d+30*time.Second)
	deadline := time.Now().Add(d)
	for {
		hw, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = hw.Error()
		}
		if err != nil {
			t.Fatalf("ListOffsets read_uncommitted: %v", err)
		}
		lso, err := adm.ListCommittedOffsets(ctx, topics...)
		if err == nil {
			err = lso.Error()
		}
		if err != nil {
			t.Fatalf("ListOffsets read_committed: %v", err)
		}
		var stuck []string
		hw.Each(func(o kadm.ListedOffset) {
			l, _ := lso.Lookup(o.Topic, o.Partition)
			if l.Offset != o.Offset {
				stuck = append(stuck, fmt.Sprintf("%s/%d LSO %d HW %d", o.Topic, o.Partition, l.Offset, o.Offset))
			}
		})
		if len(stuck) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(stuck)
			var open []string
			if dp, err := adm.DescribeProducers(ctx, topicSet(hw)); err == nil {
				dp.EachProducer(func(p kadm.DescribedProducer) {
					if p.CurrentTxnStartOffset >= 0 {
						open = append(open, fmt.Sprintf("%s/%d producer %d epoch %d txn from offset %d (last seq %d)",
							p.Topic, p.Partition, p.ProducerID, p.ProducerEpoch, p.CurrentTxnStartOffset, p.LastSequence))
					}
				})
			}
			from := map[string]map[int32]kgo.EpochOffset{}
			lso.Each(func(o kadm.ListedOffset) {
				if h, _ := hw.Lookup(o.Topic, o.Partition); h.Offset != o.Offset {
					if from[o.Topic] == nil {
						from[o.Topic] = map[int32]kgo.EpochOffset{}
					}
					from[o.Topic][o.Partition] = kgo.EpochOffset{Epoch: -1, Offset: max(0, o.Offset-4)}
				}
			})
			t.Fatalf("hanging transaction: LSO below the high watermark after %v on %d partitions: %s; open transactions: %s; log from LSO-4:\n%s",
				d, len(stuck), strings.Join(stuck, ", "), strings.Join(open, "; "), dumpLog(ctx, addr, from))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpLog lists the records (control records too, read_uncommitted) of
// the given partitions from the given offsets up to 40 per partition, for
// failure messages.
func dumpLog(ctx context.Context, addr string, from map[string]map[int32]kgo.EpochOffset) string {
	parts := map[string]map[int32]kgo.Offset{}
	for tp, ps := range from {
		parts[tp] = map[int32]kgo.Offset{}
		for p, eo := range ps {
			parts[tp][p] = kgo.NewOffset().At(eo.Offset)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(parts), kgo.KeepControlRecords())
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	var lines []string
	count := map[string]int{}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
			if count[k]++; count[k] <= 40 {
				what := fmt.Sprintf("%q", r.Value)
				if r.Attrs.IsControl() {
					what = "ABORT marker"
					if len(r.Key) == 4 && r.Key[3] == 1 {
						what = "COMMIT marker"
					}
				}
				lines = append(lines, fmt.Sprintf("  %s@%d producer %d epoch %d txn %v: %s",
					k, r.Offset, r.ProducerID, r.ProducerEpoch, r.Attrs.IsTransactional(), what))
			}
		})
	}
	return strings.Join(lines, "\n")
}

func topicSet(l kadm.ListedOffsets) kadm.TopicsSet {
	s := kadm.TopicsSet{}
	l.Each(func(o kadm.ListedOffset) { s.Add(o.Topic, o.Partition) })
	return s
}

// readToSentinels appends a plain record (header "sentinel") to every
// partition of topics, then reads every partition from the start at the
// given isolation level until it reaches its sentinel, and returns the
// records before the sentinels. Call it once no producer is writing.
func readToSentinels(t *testing.T, addr string, level kgo.IsolationLevel, topics ...string) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 5*time.Minute)
	prod := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ends, err := kadm.NewClient(prod).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		r := &kgo.Record{Topic: o.Topic, Partition: o.Partition, Value: []byte("sentinel"),
			Headers: []kgo.RecordHeader{{Key: "sentinel"}}}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("sentinel to %s/%d: %v", o.Topic, o.Partition, err)
		}
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]int64{}
		}
		want[o.Topic][o.Partition] = r.Offset
	})
	cl := newClient(t, addr, kgo.ConsumeTopics(topics...), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20))
	defer cl.Close()
	left := 0 // partitions short of their sentinel
	for _, ps := range want {
		left += len(ps)
	}
	var got []*kgo.Record
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d records, %d partitions short of their sentinel: %v", len(got), left, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Headers) > 0 && r.Headers[0].Key == "sentinel" {
				if r.Offset == want[r.Topic][r.Partition] {
					left--
				}
				return
			}
			got = append(got, r)
		})
	}
	return got
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

const (
	chaosIn    = "chaos-in"
	chaosOut   = "chaos-out"
	chaosGroup = "chaos"
	chaosParts = 4
)

// chaosStats counts what the workers and the chaos loop did.
type chaosStats struct {
	commits, aborts, endErrs, midTxnKills, ctxKills, hardKills, workers, reusedIDs atomic.Int64
}

// chaosWorker is one incarnation of a read-process-write worker.
type chaosWorker struct {
	name   string
	txnID  string
	sess   *kgo.GroupTransactSession
	ks     *killSwitch
	cancel context.CancelFunc // the worker loop's context
	kill   context.CancelFunc // the client's context (WithContext): a crash
	dieMid atomic.Bool        // die after producing, before ending the transaction
	done   chan struct{}
}

// TestTxnChaosReadProcessWrite: franz-go GroupTransactSession workers
// move the records of a 4-partition input topic to an output topic
// (value "out:"+value, origin partition/offset in a header), committing
// the consumed offsets in each transaction, while a chaos loop kills
// workers (mid-transaction, at a random point, or as a crash that cuts
// the connections and skips LeaveGroup) and starts new ones, with
// transactional ids reused (fencing) or fresh; workers also abort on
// purpose. In the end the group's offsets reach the input's end, and the
// read_committed output holds every input record exactly once;
// read_uncommitted shows the aborted copies too.
func TestTxnChaosReadProcessWrite(t *testing.T) {
	seed := testSeed(t)
	rng := newLockedRand(seed)
	n := *chaosRecords
	b := sluicetest.New(t,
		sluicetest.Topic(chaosIn, chaosParts), sluicetest.Topic(chaosOut, chaosParts),
		sluicetest.Setting("transaction.state.log.num.partitions", "3"),
		sluicetest.Setting("offsets.topic.num.partitions", "3"),
		sluicetest.Setting("group.min.session.timeout.ms", "500"),
		sluicetest.Setting("transaction.abort.timed.out.transaction.cleanup.interval.ms", "100"))
	ctx, cancelAll := context.WithCancel(testCtx(t, 10*time.Minute))
	var bg sync.WaitGroup // the input producer, and clients closing in the background
	var workers []*chaosWorker
	var stop func(w *chaosWorker, crash bool)
	defer func() { // also on failure: every goroutine ends before the broker stops
		cancelAll()
		for _, w := range workers {
			stop(w, false)
		}
		bg.Wait()
	}()
	began := time.Now()
	adm := kadm.NewClient(newClient(t, b.Addr()))

	// The input arrives over about 10 s, in 40 chunks, so the chaos
	// overlaps the whole run.
	inDone := make(chan error, 1)
	bg.Add(1)
	go func() {
		defer bg.Done()
		in, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			inDone <- err
			return
		}
		defer in.Close()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		chunk := (n + 39) / 40
		var perr atomic.Pointer[error]
		for i := 0; i < n; {
			for end := min(i+chunk, n); i < end; i++ {
				in.Produce(ctx, &kgo.Record{Topic: chaosIn, Partition: int32(i % chaosParts), Value: []byte("in-" + strconv.Itoa(i))},
					func(_ *kgo.Record, err error) {
						if err != nil {
							perr.CompareAndSwap(nil, &err)
						}
					})
			}
			if err := in.Flush(ctx); err != nil {
				inDone <- err
				return
			}
			if err := perr.Load(); err != nil {
				inDone <- *err
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				inDone <- ctx.Err()
				return
			}
		}
		inDone <- nil
	}()

	var st chaosStats
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	const slots = 3
	incarnation := 0
	start := func(slot int) *chaosWorker {
		incarnation++
		w := &chaosWorker{name: fmt.Sprintf("w%d.%d", slot, incarnation), ks: &killSwitch{}, done: make(chan struct{})}
		// Half the incarnations reuse the slot's transactional id (their
		// InitProducerId fences the previous one and aborts its open
		// transaction); the others take a fresh id, whose predecessor's
		// open transaction only times out.
		w.txnID = fmt.Sprintf("chaos-%d", slot)
		if rng.Intn(2) == 0 {
			w.txnID = fmt.Sprintf("chaos-%d-%d", slot, incarnation)
		} else if incarnation > slots {
			st.reusedIDs.Add(1)
		}
		cctx, kill := context.WithCancel(context.Background())
		sess, err := kgo.NewGroupTransactSession(
			kgo.WithContext(cctx),
			kgo.SeedBrokers(b.Addr()),
			kgo.Dialer(w.ks.DialContext),
			kgo.TransactionalID(w.txnID),
			kgo.TransactionTimeout(2*time.Second),
			kgo.ConsumerGroup(chaosGroup),
			kgo.ConsumeTopics(chaosIn),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.SessionTimeout(1500*time.Millisecond),
			kgo.HeartbeatInterval(150*time.Millisecond),
			kgo.RebalanceTimeout(5*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
		)
		if err != nil {
			kill()
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		w.sess, w.cancel, w.kill = sess, cancel, kill
		st.workers.Add(1)
		wrng := rand.New(rand.NewSource(seed + int64(incarnation)))
		go func() {
			defer close(w.done)
			w.run(wctx, wrng, &st, report)
		}()
		return w
	}
	// stop ends a worker: cleanly (Close leaves the group; an open
	// transaction stays open), or as a crash.
	stop = func(w *chaosWorker, crash bool) {
		w.cancel()
		if crash {
			w.kill()
			w.ks.kill()
		}
		bg.Add(1)
		go func() {
			defer bg.Done()
			<-w.done
			w.sess.Close()
			w.kill()
		}()
	}

	workers = make([]*chaosWorker, slots)
	for i := range workers {
		workers[i] = start(i)
	}

	committed := func() int64 {
		offs, err := adm.FetchOffsets(ctx, chaosGroup)
		if err != nil {
			return -1
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == chaosIn && o.Err == nil {
				sum += o.At
			}
		})
		return sum
	}

	// The chaos loop: every 300 ms - 2 s one worker dies and a new one
	// takes its slot, until the input is processed (at most maxKills
	// kills, then the survivors finish).
	const maxKills = 40
	deadline := time.Now().Add(4 * time.Minute)
	nextKill := time.Now().Add(rng.between(300*time.Millisecond, 2*time.Second))
	kills := 0
	inputDone := false
	for {
		if !inputDone {
			select {
			case err := <-inDone:
				if err != nil {
					t.Fatalf("input: %v", err)
				}
				inputDone = true
			default:
			}
		}
		if inputDone && committed() == int64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the group committed %d of %d input offsets (commits %d, aborts %d, kills %d)",
				time.Since(began).Round(time.Millisecond), committed(), n, st.commits.Load(), st.aborts.Load(), kills)
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		for i, w := range workers {
			select {
			case <-w.done: // gave up (fenced, or an error End cannot recover)
				stop(w, false)
				workers[i] = start(i)
			default:
			}
		}
		if kills < maxKills && time.Now().After(nextKill) {
			i := rng.Intn(slots)
			w := workers[i]
			switch rng.Intn(3) {
			case 0: // after producing, before EndTxn
				st.midTxnKills.Add(1)
				w.dieMid.Store(true)
				select {
				case <-w.done:
				case <-time.After(3 * time.Second): // idle in a poll: stop it anyway
				}
				stop(w, rng.Intn(2) == 0)
			case 1: // wherever it is
				st.ctxKills.Add(1)
				stop(w, false)
			case 2: // a crash: connections cut, no LeaveGroup
				st.hardKills.Add(1)
				stop(w, true)
			}
			workers[i] = start(i)
			kills++
			nextKill = time.Now().Add(rng.between(300*time.Millisecond, 2*time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("input processed in %v: %d commits, %d aborts (on purpose or by a rebalance), %d End errors, kills: %d mid-transaction, %d at a random point, %d crashes; %d workers (%d reusing a transactional id)",
		time.Since(began).Round(time.Millisecond), st.commits.Load(), st.aborts.Load(), st.endErrs.Load(),
		st.midTxnKills.Load(), st.ctxKills.Load(), st.hardKills.Load(), st.workers.Load(), st.reusedIDs.Load())
	for _, w := range workers {
		stop(w, false)
	}
	workers = nil
	bg.Wait()

	// Transactions of killed workers with a fresh id end by timeout.
	waitStable(t, adm, b.Addr(), 30*time.Second, chaosOut)
	out := readToSentinels(t, b.Addr(), kgo.ReadCommitted(), chaosOut)
	seen := make(map[string]int, n)
	for _, r := range out {
		// Input record i is at partition i%4, offset i/4.
		origin := header(r, "origin")
		i, err := strconv.Atoi(strings.TrimPrefix(string(r.Value), "out:in-"))
		if err != nil || origin != fmt.Sprintf("%d/%d", i%chaosParts, i/chaosParts) || r.Partition != int32(i%chaosParts) {
			t.Fatalf("output %s/%d@%d: value %q, origin %q", r.Topic, r.Partition, r.Offset, r.Value, origin)
		}
		seen[origin]++
	}
	var missing, dups []string
	for i := range n {
		origin := fmt.Sprintf("%d/%d", i%chaosParts, i/chaosParts)
		switch c := seen[origin]; {
		case c == 0:
			missing = append(missing, origin)
		case c > 1:
			dups = append(dups, fmt.Sprintf("%s x%d", origin, c))
		}
		delete(seen, origin)
	}
	if len(missing) > 0 || len(dups) > 0 || len(seen) > 0 {
		t.Fatalf("read_committed output of %d records: %d input records missing (first %v), %d duplicated (first %v), %d unknown",
			len(out), len(missing), missing[:min(5, len(missing))], len(dups), dups[:min(5, len(dups))], len(seen))
	}
	all := readToSentinels(t, b.Addr(), kgo.ReadUncommitted(), chaosOut)
	t.Logf("output: %d records read_committed (each input once), %d read_uncommitted (%d aborted copies)", len(out), len(all), len(all)-len(out))
	if len(all) < len(out) {
		t.Fatalf("read_uncommitted shows %d records, fewer than read_committed's %d", len(all), len(out))
	}
	if st.aborts.Load()+st.midTxnKills.Load() >= 5 && len(all) == len(out) {
		t.Fatalf("%d aborts and %d mid-transaction kills left no aborted record in the log", st.aborts.Load(), st.midTxnKills.Load())
	}
}

// run is the worker loop: poll, produce the transformed records in a
// transaction, commit (or, 1 in 10, abort on purpose). It returns when
// ctx ends, when told to die mid-transaction, or when End fails (the
// session is then unusable; the chaos loop replaces the worker).
func (w *chaosWorker) run(ctx context.Context, rng *rand.Rand, st *chaosStats, report func(error)) {
	for ctx.Err() == nil {
		fs := w.sess.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			return
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := w.sess.Begin(); err != nil {
			st.endErrs.Add(1)
			return
		}
		for _, r := range recs {
			if string(r.Value[:3]) != "in-" {
				report(fmt.Errorf("%s consumed %q from %s/%d@%d", w.name, r.Value, r.Topic, r.Partition, r.Offset))
				return
			}
			out := &kgo.Record{Topic: chaosOut, Partition: r.Partition, Value: append([]byte("out:"), r.Value...),
				Headers: []kgo.RecordHeader{{Key: "origin", Value: fmt.Appendf(nil, "%d/%d", r.Partition, r.Offset)}}}
			w.sess.Produce(ctx, out, nil) // a failed produce makes End abort
		}
		if w.dieMid.Load() {
			if rng.Intn(2) == 0 {
				_ = w.sess.Client().Flush(ctx) // the records reach the log first
			}
			return
		}
		commit := rng.Intn(10) != 0
		ok, err := w.sess.End(ctx, kgo.TransactionEndTry(commit))
		switch {
		case err != nil:
			if ctx.Err() == nil {
				st.endErrs.Add(1)
			}
			return
		case ok:
			st.commits.Add(1)
		default: // on purpose, or forced by a rebalance
			st.aborts.Add(1)
		}
	}
}
