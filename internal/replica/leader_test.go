package replica

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/metadata"
)

type leaderEnv struct {
	t     *testing.T
	clock *fakeClock
	log   *fakeLog
	prop  *fakeProposer
	l     *Leader

	hwMu sync.Mutex
	hws  []int64
}

// newLeaderEnv makes node 1 the leader at epoch 5 of replicas 1,2,3 with
// the given ISR and a log ending at leo.
func newLeaderEnv(t *testing.T, isr []int32, leo int64, mod func(*LeaderConfig)) *leaderEnv {
	t.Helper()
	e := &leaderEnv{t: t, clock: newFakeClock(), log: newFakeLog(leo), prop: newFakeProposer()}
	e.log.hw = 0
	lc := LeaderConfig{
		State: PartitionState{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 7,
			Replicas: []int32{1, 2, 3}, ISR: isr},
		Log: e.log, Proposer: e.prop, WriteCaching: true, MinInsyncReplicas: 2,
		OnHighWatermark: func(hw int64) {
			e.hwMu.Lock()
			e.hws = append(e.hws, hw)
			e.hwMu.Unlock()
		},
	}
	if mod != nil {
		mod(&lc)
	}
	e.prop.current = metadata.Partition{ID: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 7, Replicas: []int32{1, 2, 3}, ISR: isr}
	l, err := NewLeader(Config{NodeID: 1, Clock: e.clock, ReplicaLagTimeMax: 30 * time.Second, AlterPartitionBackoff: time.Millisecond}, lc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	e.l = l
	return e
}

func (e *leaderEnv) fetch(id int32, offset int64) FollowerFetchResult {
	e.t.Helper()
	return e.l.OnFollowerFetch(FollowerFetch{ReplicaID: id, BrokerEpoch: -1, CurrentLeaderEpoch: 5,
		FetchOffset: offset, LastFetchedEpoch: -1})
}

func (e *leaderEnv) mustFetch(id int32, offset int64) FollowerFetchResult {
	e.t.Helper()
	r := e.fetch(id, offset)
	if r.Err != nil || r.Diverging != nil {
		e.t.Fatalf("fetch by %d at %d: err %v diverging %v", id, offset, r.Err, r.Diverging)
	}
	return r
}

// answer completes a proposal with the ISR it asked for.
func (e *leaderEnv) accept(pr proposal) {
	e.prop.mu.Lock()
	e.prop.current.ISR = slices.Clone(pr.req.ISR)
	e.prop.current.PartitionEpoch++
	p := e.prop.current.Clone()
	e.prop.mu.Unlock()
	pr.answer <- proposalAnswer{p: p}
}

func (e *leaderEnv) isr() []int32 { return e.l.Snapshot().ISR }

func TestLeaderHighWatermarkIsMinOverISR(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
	if hw := e.l.HighWatermark(); hw != 0 {
		t.Fatalf("new leader HW %d, want 0 (followers unknown)", hw)
	}
	if r := e.mustFetch(2, 5); r.HighWatermark != 0 || r.ReadUpTo != 10 {
		t.Fatalf("HW %d ReadUpTo %d: follower 3 is unknown, HW must hold; followers read to the LEO", r.HighWatermark, r.ReadUpTo)
	}
	if r := e.mustFetch(3, 7); r.HighWatermark != 5 {
		t.Fatalf("HW %d, want min(10, 5, 7) = 5", r.HighWatermark)
	}
	if r := e.mustFetch(2, 10); r.HighWatermark != 7 {
		t.Fatalf("HW %d, want 7", r.HighWatermark)
	}
	// A follower fetching a lower offset again does not move it back.
	if r := e.mustFetch(3, 6); r.HighWatermark != 7 {
		t.Fatalf("HW %d went backwards", r.HighWatermark)
	}
	if got := e.log.HighWatermark(); got != 7 {
		t.Fatalf("log HW %d, want 7 (SetHighWatermark)", got)
	}
	e.mustFetch(3, 10)
	if hw := e.l.HighWatermark(); hw != 10 {
		t.Fatalf("HW %d, want 10", hw)
	}
	e.hwMu.Lock()
	defer e.hwMu.Unlock()
	if !slices.Equal(e.hws, []int64{5, 7, 10}) {
		t.Fatalf("OnHighWatermark calls %v, want [5 7 10]", e.hws)
	}
}

func TestLeaderDurableOffsetCounts(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2}, 10, func(lc *LeaderConfig) { lc.WriteCaching = false })
	e.log.append(10) // LEO 20, durable 10
	e.mustFetch(2, 20)
	if hw := e.l.HighWatermark(); hw != 10 {
		t.Fatalf("HW %d, want the leader's durable offset 10", hw)
	}
	e.log.sync()
	waitFor(t, "HW to follow the durable offset", func() bool { return e.l.HighWatermark() == 20 })
}

func TestLeaderCaughtUpRule(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
	t0 := e.clock.Now()
	e.mustFetch(2, 10)
	e.mustFetch(3, 10) // caught up at t0 (at the leader's LEO)
	e.log.append(10)   // LEO 20
	e.clock.Advance(5 * time.Second)
	e.mustFetch(2, 20)
	e.mustFetch(3, 15) // < LEO 20 but >= LEO of its previous fetch (10): caught up as of t0
	e.log.append(10)   // LEO 30
	e.clock.Advance(5 * time.Second)
	e.mustFetch(2, 30)
	e.mustFetch(3, 20) // >= LEO at its previous fetch (20): caught up as of t0+5s
	var got time.Time
	for _, f := range e.l.Snapshot().Followers {
		if f.ReplicaID == 3 {
			got = f.LastCaughtUpTime
		}
	}
	if want := t0.Add(5 * time.Second); !got.Equal(want) {
		t.Fatalf("follower 3 last caught up %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	// Lagging from then on: 30 s after t0+5s it is still in, just after it
	// is out.
	e.clock.Advance(25 * time.Second) // t0+35s: 30 s since t0+5s
	e.mustFetch(2, 30)
	e.l.MaybeShrinkISR()
	if e.l.Snapshot().Pending {
		t.Fatal("shrink proposed at exactly replica.lag.time.max.ms")
	}
	e.clock.Advance(time.Millisecond)
	e.l.MaybeShrinkISR()
	pr := e.prop.next(t)
	if !slices.Equal(pr.req.ISR, []int32{1, 2}) || pr.req.LeaderEpoch != 5 || pr.req.PartitionEpoch != 7 || pr.req.BrokerID != 1 {
		t.Fatalf("proposal %+v, want ISR [1 2] at epochs 5/7", pr.req)
	}
	// Pending shrink: the maximal ISR still holds 3, so the HW stays at 20.
	if s := e.l.Snapshot(); !s.Pending || !slices.Equal(s.MaximalISR, []int32{1, 2, 3}) || s.HighWatermark != 20 {
		t.Fatalf("pending state %+v", s)
	}
	// One in flight at a time.
	e.l.MaybeShrinkISR()
	select {
	case pr2 := <-e.prop.reqs:
		t.Fatalf("second proposal while one is in flight: %+v", pr2.req)
	default:
	}
	e.accept(pr)
	waitFor(t, "shrink applied", func() bool { s := e.l.Snapshot(); return !s.Pending && slices.Equal(s.ISR, []int32{1, 2}) })
	if s := e.l.Snapshot(); s.HighWatermark != 30 || s.PartitionEpoch != 8 {
		t.Fatalf("after shrink: HW %d partition epoch %d, want 30 and 8", s.HighWatermark, s.PartitionEpoch)
	}
}

func TestLeaderExpandWhenCaughtUp(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2}, 10, nil)
	e.mustFetch(2, 10) // HW 10
	e.mustFetch(3, 5)  // below HW: not in sync
	if e.l.Snapshot().Pending {
		t.Fatal("expansion proposed below the HW")
	}
	e.log.append(5) // LEO 15
	e.mustFetch(3, 10)
	pr := e.prop.next(t)
	if !slices.Equal(pr.req.ISR, []int32{1, 2, 3}) {
		t.Fatalf("proposal %v, want [1 2 3]", pr.req.ISR)
	}
	// Pending expansion: 3 counts for the HW already.
	e.mustFetch(2, 15)
	if hw := e.l.HighWatermark(); hw != 10 {
		t.Fatalf("HW %d, want 10 (held by 3 in the maximal ISR)", hw)
	}
	e.accept(pr)
	waitFor(t, "expansion applied", func() bool { return slices.Equal(e.isr(), []int32{1, 2, 3}) })
}

func TestLeaderExpandNeedsEpochStartAndEligibility(t *testing.T) {
	eligible := false
	var mu sync.Mutex
	e := newLeaderEnv(t, []int32{1}, 10, func(lc *LeaderConfig) {
		lc.Eligible = func(int32) bool { mu.Lock(); defer mu.Unlock(); return eligible }
	})
	// HW is 0 (log HW), epoch 5 starts at 10: a follower at 5 is >= HW
	// but below the epoch start.
	e.mustFetch(2, 5)
	if e.l.Snapshot().Pending {
		t.Fatal("expanded below the leader epoch start offset")
	}
	e.mustFetch(2, 10)
	if e.l.Snapshot().Pending {
		t.Fatal("expanded an ineligible (fenced) replica")
	}
	mu.Lock()
	eligible = true
	mu.Unlock()
	e.mustFetch(2, 10)
	if pr := e.prop.next(t); !slices.Equal(pr.req.ISR, []int32{1, 2}) {
		t.Fatalf("proposal %v", pr.req.ISR)
	}
}

func TestLeaderUncleanFollower(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
	e.mustFetch(2, 10)
	e.mustFetch(3, 10)
	e.l.MarkUnclean(3)
	pr := e.prop.next(t)
	if !slices.Equal(pr.req.ISR, []int32{1, 2}) {
		t.Fatalf("proposal %v, want 3 removed at once", pr.req.ISR)
	}
	e.accept(pr)
	waitFor(t, "shrink", func() bool { return slices.Equal(e.isr(), []int32{1, 2}) })
	e.log.append(10) // LEO 20
	e.mustFetch(2, 20)
	e.mustFetch(3, 15)
	e.mustFetch(3, 19)
	if e.l.Snapshot().Pending {
		t.Fatal("unclean follower expanded before catching up")
	}
	// It reaches the log end the leader had at its previous fetch (20),
	// while the leader moved on to 25: caught up by Kafka's rule.
	e.log.append(5)
	e.mustFetch(3, 20)
	if pr := e.prop.next(t); !slices.Equal(pr.req.ISR, []int32{1, 2, 3}) {
		t.Fatalf("proposal %v", pr.req.ISR)
	}
}

func TestLeaderAcksAllWaiters(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2, 3}, 0, nil)
	e.log.append(10)
	done := make(chan error, 1)
	go func() { done <- e.l.WaitCommitted(context.Background(), 9) }()
	e.mustFetch(2, 10)
	e.mustFetch(3, 9)
	select {
	case err := <-done:
		t.Fatalf("completed at HW 9: %v", err)
	default:
	}
	e.mustFetch(3, 10)
	if err := <-done; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	// Already covered: immediate.
	if err := e.l.WaitCommitted(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	// Timeout.
	e.log.append(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := e.l.WaitCommitted(ctx, 10); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("timeout: %v", err)
	}
	if n := len(e.l.mu.waiters); n != 0 {
		t.Fatalf("%d waiters left after timeout", n)
	}
}

func TestLeaderNotEnoughReplicasAfterAppend(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2, 3}, 10, func(lc *LeaderConfig) { lc.MinInsyncReplicas = 3 })
	e.mustFetch(2, 10)
	e.mustFetch(3, 10)
	if err := e.l.CheckAppend(-1); err != nil {
		t.Fatal(err)
	}
	e.log.append(5) // LEO 15
	done := make(chan error, 1)
	go func() { done <- e.l.WaitCommitted(context.Background(), 14) }()
	waitFor(t, "waiter parked", func() bool { e.l.mu.Lock(); defer e.l.mu.Unlock(); return len(e.l.mu.waiters) == 1 })
	e.clock.Advance(31 * time.Second)
	e.mustFetch(2, 15)
	e.l.MaybeShrinkISR()
	e.accept(e.prop.next(t))
	if err := <-done; !errors.Is(err, kerr.NotEnoughReplicasAfterAppend) {
		t.Fatalf("waiter: %v, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", err)
	}
	if err := e.l.CheckAppend(-1); !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("CheckAppend(acks=all) with ISR %v: %v", e.isr(), err)
	}
	if err := e.l.CheckAppend(1); err != nil {
		t.Fatalf("CheckAppend(acks=1): %v", err)
	}
}

func TestLeaderEpochChecks(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
	cases := []struct {
		name string
		f    FollowerFetch
		want error
	}{
		{"older epoch", FollowerFetch{ReplicaID: 2, CurrentLeaderEpoch: 4, FetchOffset: 10, LastFetchedEpoch: -1}, kerr.FencedLeaderEpoch},
		{"newer epoch", FollowerFetch{ReplicaID: 2, CurrentLeaderEpoch: 6, FetchOffset: 10, LastFetchedEpoch: -1}, kerr.UnknownLeaderEpoch},
		{"not a replica", FollowerFetch{ReplicaID: 9, CurrentLeaderEpoch: 5, FetchOffset: 10, LastFetchedEpoch: -1}, kerr.NotLeaderForPartition},
		{"above log end", FollowerFetch{ReplicaID: 2, CurrentLeaderEpoch: 5, FetchOffset: 11, LastFetchedEpoch: -1}, kerr.OffsetOutOfRange},
		{"no epoch sent", FollowerFetch{ReplicaID: 2, CurrentLeaderEpoch: -1, FetchOffset: 10, LastFetchedEpoch: -1}, nil},
	}
	for _, c := range cases {
		r := e.l.OnFollowerFetch(c.f)
		if c.want == nil && r.Err != nil || c.want != nil && !errors.Is(r.Err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, r.Err, c.want)
		}
	}
	if _, err := e.l.OffsetForLeaderEpoch(4, 5); !errors.Is(err, kerr.FencedLeaderEpoch) {
		t.Errorf("OffsetForLeaderEpoch older: %v", err)
	}
	if _, err := e.l.OffsetForLeaderEpoch(6, 5); !errors.Is(err, kerr.UnknownLeaderEpoch) {
		t.Errorf("OffsetForLeaderEpoch newer: %v", err)
	}
	e.l.Close()
	if r := e.fetch(2, 10); !errors.Is(r.Err, kerr.NotLeaderForPartition) {
		t.Errorf("after Close: %v", r.Err)
	}
	if err := e.l.CheckAppend(1); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Errorf("CheckAppend after Close: %v", err)
	}
}

func TestLeaderDivergingEpoch(t *testing.T) {
	// Leader log: epoch 0 at 0, epoch 2 at 50, epoch 5 (this leader) at 80.
	e := newLeaderEnv(t, []int32{1, 2, 3}, 80, func(lc *LeaderConfig) {
		lg := lc.Log.(*fakeLog)
		lg.epochs = []epochEntry{{0, 0}, {2, 50}}
	})
	cases := []struct {
		name      string
		lastEpoch int32
		offset    int64
		diverging *EpochEndOffset
		err       error
	}{
		{"unknown middle epoch", 1, 60, &EpochEndOffset{0, 50}, nil},
		{"same epoch, longer", 0, 55, &EpochEndOffset{0, 50}, nil},
		{"same epoch, at its end", 0, 50, nil, nil},
		{"epoch 2 inside", 2, 70, nil, nil},
		{"epoch 2 past its end", 2, 81, &EpochEndOffset{2, 80}, nil},
		{"current epoch", 5, 80, nil, nil},
		{"epoch above all", 7, 80, nil, kerr.OffsetOutOfRange},
	}
	for _, c := range cases {
		r := e.l.OnFollowerFetch(FollowerFetch{ReplicaID: 2, BrokerEpoch: -1, CurrentLeaderEpoch: 5, FetchOffset: c.offset, LastFetchedEpoch: c.lastEpoch})
		switch {
		case c.err != nil:
			if !errors.Is(r.Err, c.err) {
				t.Errorf("%s: err %v, want %v", c.name, r.Err, c.err)
			}
		case r.Err != nil:
			t.Errorf("%s: err %v", c.name, r.Err)
		case (r.Diverging == nil) != (c.diverging == nil) || r.Diverging != nil && *r.Diverging != *c.diverging:
			t.Errorf("%s: diverging %v, want %v", c.name, r.Diverging, c.diverging)
		}
	}
	// A diverging answer does not count as the follower's position.
	for _, f := range e.l.Snapshot().Followers {
		if f.ReplicaID == 2 && f.LogEndOffset != 80 {
			t.Errorf("follower 2 position %d, want 80 (last non-diverging fetch)", f.LogEndOffset)
		}
	}
	for _, c := range []struct {
		epoch int32
		want  EpochEndOffset
	}{{0, EpochEndOffset{0, 50}}, {1, EpochEndOffset{0, 50}}, {2, EpochEndOffset{2, 80}}, {5, EpochEndOffset{5, 80}}, {6, EpochEndOffset{-1, -1}}} {
		got, err := e.l.OffsetForLeaderEpoch(5, c.epoch)
		if err != nil || got != c.want {
			t.Errorf("OffsetForLeaderEpoch(%d) = %v, %v; want %v", c.epoch, got, err, c.want)
		}
	}
}

func TestLeaderAlterPartitionErrors(t *testing.T) {
	t.Run("fenced", func(t *testing.T) {
		e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
		e.log.append(1)
		done := make(chan error, 1)
		go func() { done <- e.l.WaitCommitted(context.Background(), 10) }()
		e.l.MarkUnclean(3)
		pr := e.prop.next(t)
		pr.answer <- proposalAnswer{err: kerr.FencedLeaderEpoch}
		waitFor(t, "stop leading", func() bool { return !e.l.IsLeader() })
		if err := <-done; !errors.Is(err, kerr.NotLeaderForPartition) {
			t.Fatalf("waiter after fencing: %v", err)
		}
		if r := e.fetch(2, 10); !errors.Is(r.Err, kerr.NotLeaderForPartition) {
			t.Fatalf("fetch after fencing: %v", r.Err)
		}
	})
	t.Run("invalid update version refreshes and retries", func(t *testing.T) {
		e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
		e.l.MarkUnclean(3)
		pr := e.prop.next(t)
		// The controller moved on: partition epoch 9, same ISR.
		e.prop.mu.Lock()
		e.prop.current.PartitionEpoch = 9
		e.prop.mu.Unlock()
		pr.answer <- proposalAnswer{err: kerr.InvalidUpdateVersion}
		pr2 := e.prop.next(t)
		if pr2.req.PartitionEpoch != 9 || !slices.Equal(pr2.req.ISR, []int32{1, 2}) {
			t.Fatalf("retry %+v, want ISR [1 2] at partition epoch 9", pr2.req)
		}
		e.accept(pr2)
		waitFor(t, "applied", func() bool { s := e.l.Snapshot(); return s.PartitionEpoch == 10 && slices.Equal(s.ISR, []int32{1, 2}) })
	})
	t.Run("retriable", func(t *testing.T) {
		e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
		e.l.MarkUnclean(2)
		pr := e.prop.next(t)
		pr.answer <- proposalAnswer{err: kerr.NotController}
		pr2 := e.prop.next(t)
		if !slices.Equal(pr2.req.ISR, pr.req.ISR) {
			t.Fatalf("retry %v, want %v", pr2.req.ISR, pr.req.ISR)
		}
		e.accept(pr2)
		waitFor(t, "applied", func() bool { return slices.Equal(e.isr(), []int32{1, 3}) })
	})
	t.Run("metadata update supersedes", func(t *testing.T) {
		e := newLeaderEnv(t, []int32{1, 2, 3}, 10, nil)
		e.l.MarkUnclean(2)
		pr := e.prop.next(t)
		e.l.Update(PartitionState{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 8,
			Replicas: []int32{1, 2, 3}, ISR: []int32{1, 3}})
		if s := e.l.Snapshot(); s.Pending || !slices.Equal(s.ISR, []int32{1, 3}) {
			t.Fatalf("after update %+v", s)
		}
		e.accept(pr) // late answer: ignored
		e.l.Update(PartitionState{Topic: "t", Partition: 0, Leader: 2, LeaderEpoch: 6, PartitionEpoch: 9,
			Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3}})
		if e.l.IsLeader() {
			t.Fatal("still leading after metadata named another leader")
		}
	})
}

func TestLeaderReelectedNewEpoch(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2}, 10, nil)
	e.mustFetch(2, 10)
	e.log.append(5)
	e.l.Update(PartitionState{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 7, PartitionEpoch: 9, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}})
	if ep, end := e.log.EndOffsetForEpoch(5); ep != 5 || end != 15 {
		t.Fatalf("epoch 5 ends at %d/%d, want 15", ep, end)
	}
	if r := e.fetch(2, 15); !errors.Is(r.Err, kerr.FencedLeaderEpoch) {
		t.Fatalf("fetch at old epoch: %v", r.Err)
	}
	r := e.l.OnFollowerFetch(FollowerFetch{ReplicaID: 2, BrokerEpoch: -1, CurrentLeaderEpoch: 7, FetchOffset: 15, LastFetchedEpoch: 5})
	if r.Err != nil || r.Diverging != nil || r.HighWatermark != 15 {
		t.Fatalf("fetch at new epoch: %+v", r)
	}
}

func TestLeaderLogFailureFailsWaiters(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2}, 10, func(lc *LeaderConfig) { lc.WriteCaching = false })
	e.log.append(5)
	done := make(chan error, 1)
	go func() { done <- e.l.WaitCommitted(context.Background(), 14) }()
	waitFor(t, "waiter parked", func() bool { e.l.mu.Lock(); defer e.l.mu.Unlock(); return len(e.l.mu.waiters) == 1 })
	e.log.mu.Lock()
	e.log.failErr = errTest
	close(e.log.durableCh)
	e.log.durableCh = make(chan struct{})
	e.log.mu.Unlock()
	if err := <-done; !errors.Is(err, kerr.KafkaStorageError) || !errors.Is(err, errTest) {
		t.Fatalf("waiter: %v, want KAFKA_STORAGE_ERROR wrapping the log's error", err)
	}
	if err := e.l.WaitCommitted(context.Background(), 14); !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("later waiter: %v", err)
	}
}

func TestLeaderFollowerNewIncarnation(t *testing.T) {
	e := newLeaderEnv(t, []int32{1, 2}, 10, nil)
	fetch := func(epoch int64, offset int64) FollowerFetchResult {
		return e.l.OnFollowerFetch(FollowerFetch{ReplicaID: 2, BrokerEpoch: epoch, CurrentLeaderEpoch: 5, FetchOffset: offset, LastFetchedEpoch: -1})
	}
	if r := fetch(40, 10); r.Err != nil || r.HighWatermark != 10 {
		t.Fatalf("%+v", r)
	}
	// Restarted (new broker epoch) with a shorter log: its position is
	// what it reports now; the HW does not go back.
	if r := fetch(41, 6); r.Err != nil || r.HighWatermark != 10 {
		t.Fatalf("%+v", r)
	}
	for _, f := range e.l.Snapshot().Followers {
		if f.ReplicaID == 2 && f.LogEndOffset != 6 {
			t.Fatalf("position %d, want 6", f.LogEndOffset)
		}
	}
}
