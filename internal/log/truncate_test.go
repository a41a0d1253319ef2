package log

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// prefixReplica is a reference follower that replicated exactly the
// leader's batches below end: what a truncated follower must equal.
func prefixReplica(t *testing.T, leader *Partition, end int64, cfg Config) *Partition {
	t.Helper()
	ref := openPart(t, testManager(t, ""), cfg)
	for ref.LogEndOffset() < end {
		r, err := leader.Read(ref.LogEndOffset(), 1, end, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Regions) == 0 {
			break
		}
		mustFollow(t, ref, readRegions(t, r))
	}
	return ref
}

// Truncating a follower anywhere leaves the same log, producer state,
// aborted transactions, LSO and leader epochs as a follower that only ever
// replicated the prefix; after a restart too. It then re-appends from a
// leader with a diverged suffix.
func TestTruncateFollowerState(t *testing.T) {
	cfg := Config{SegmentBytes: 600}
	leader := openPart(t, testManager(t, ""), cfg)
	leaderWorkload(t, leader)
	var bounds []int64 // batch boundaries
	for _, h := range headersOf(t, allBytes(t, leader)) {
		bounds = append(bounds, h.BaseOffset)
	}
	for _, cut := range bounds {
		dir := t.TempDir()
		fm := testManager(t, dir)
		f := openPart(t, fm, cfg)
		replicate(t, leader, f, 1<<20)
		if err := f.TruncateTo(cut); err != nil {
			t.Fatal(err)
		}
		ref := prefixReplica(t, leader, cut, cfg)
		sameState(t, "truncated", ref, f)
		if err := fm.Close(); err != nil {
			t.Fatal(err)
		}
		fm = testManager(t, dir)
		f = openPart(t, fm, cfg)
		sameState(t, "truncated and reopened", ref, f)

		// A new leader (epoch 9) with a different suffix: the follower
		// re-appends it and matches it.
		nl := prefixReplica(t, leader, cut, cfg)
		if err := nl.AssignEpochStart(9, cut); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		mustAppend(t, nl, testBatch(2, 30, now))
		mustAppend(t, nl, txnBatch(2, 11, 0, 0, now))
		mustAppend(t, nl, txnMarker(t, 11, 0, batch.ControlAbort, now))
		replicate(t, nl, f, 100)
		sameState(t, "re-appended", nl, f)
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 600})
	leaderWorkload(t, p)
	p.SetHighWatermark(10)
	if hw := p.HighWatermark(); hw != 10 {
		t.Fatalf("high watermark %d", hw)
	}
	if len(p.Producers()) == 0 || p.LastStableOffset() == p.LogEndOffset() {
		t.Fatal("workload left no producer or open transaction")
	}
	for _, start := range []int64{p.LogEndOffset() + 50, 7} {
		if err := p.TruncateFullyAndStartAt(start); err != nil {
			t.Fatal(err)
		}
		check := func(p *Partition) {
			t.Helper()
			if p.LogStartOffset() != start || p.LogEndOffset() != start || p.NumSegments() != 1 {
				t.Fatalf("log [%d, %d) in %d segments, want empty at %d", p.LogStartOffset(), p.LogEndOffset(), p.NumSegments(), start)
			}
			if len(p.Producers()) != 0 || len(p.AbortedTransactions(0, 1<<62)) != 0 || p.LastStableOffset() != start {
				t.Fatalf("producers %+v, aborted %+v, LSO %d", p.Producers(), p.AbortedTransactions(0, 1<<62), p.LastStableOffset())
			}
			if es := p.epochs.entries(); len(es) != 0 {
				t.Fatalf("epochs %+v", es)
			}
			if hw := p.HighWatermark(); hw != start {
				t.Fatalf("high watermark %d, want %d", hw, start)
			}
		}
		check(p)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m = testManager(t, dir)
		p = openPart(t, m, Config{SegmentBytes: 600})
		check(p)
		snaps, err := filepath.Glob(filepath.Join(p.Dir(), "*.snapshot"))
		if err != nil || len(snaps) > 1 {
			t.Fatalf("snapshots left: %v %v", snaps, err)
		}
		now := time.Now().UnixMilli()
		mustFollow(t, p, withEpoch(withBase(txnBatch(3, 4, 0, 0, now), start), 12))
		if p.LastStableOffset() != start || p.LogEndOffset() != start+3 {
			t.Fatalf("after re-append: LSO %d, log end %d", p.LastStableOffset(), p.LogEndOffset())
		}
		if err := p.TruncateTo(start); err != nil {
			t.Fatal(err)
		}
	}
	// Truncating below the log start truncates fully.
	mustAppend(t, p, testBatch(5, 10, time.Now().UnixMilli()))
	p.SetHighWatermark(p.LogEndOffset())
	if _, err := p.DeleteRecordsBefore(p.LogStartOffset() + 3); err != nil {
		t.Fatal(err)
	}
	if err := p.TruncateTo(2); err != nil {
		t.Fatal(err)
	}
	if p.LogStartOffset() != 2 || p.LogEndOffset() != 2 {
		t.Fatalf("log [%d, %d), want empty at 2", p.LogStartOffset(), p.LogEndOffset())
	}
}

// After TruncateTo returns, a crash (an image of the directory without a
// clean shutdown) never brings the removed records back, and a crash image
// taken before it keeps the old log whole.
func TestTruncateCrashImage(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir, func(c *ManagerConfig) { c.CheckpointInterval = time.Hour })
	cfg := Config{SegmentBytes: 600}
	p := openPart(t, m, cfg)
	leaderWorkload(t, p)
	mustAppend(t, p, testBatch(30, 20, time.Now().UnixMilli()))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	before := crashImage(t, dir)
	want := allBytes(t, p)
	wantEnd := p.LogEndOffset()
	if err := p.TruncateTo(4); err != nil { // inside the batch [3, 4]
		t.Fatal(err)
	}
	cut := p.LogEndOffset()
	if cut != 3 {
		t.Fatalf("log end %d after truncating inside the batch at 3", cut)
	}
	ref := prefixReplica(t, p, cut, cfg)
	after := crashImage(t, dir)
	for _, c := range []struct {
		dir  string
		end  int64
		want []byte
	}{{before, wantEnd, want}, {after, cut, allBytes(t, ref)}} {
		cm := testManager(t, c.dir)
		cp := openPart(t, cm, cfg)
		if !cp.RecoveredUnclean() {
			t.Fatal("crash image not marked unclean")
		}
		if cp.LogEndOffset() != c.end || !reflectEqualBytes(allBytes(t, cp), c.want) {
			t.Fatalf("crash image: log end %d, want %d (or bytes differ)", cp.LogEndOffset(), c.end)
		}
		for _, e := range cp.epochs.entries() {
			if e.StartOffset >= cp.LogEndOffset() {
				t.Fatalf("epoch %+v at or above the log end %d", e, cp.LogEndOffset())
			}
		}
	}
}

func reflectEqualBytes(a, b []byte) bool { return bytes.Equal(a, b) }

// TestTruncateToLogEndDropsEmptyEpoch: a replica that led epoch E without
// appending keeps an epoch entry starting at its log end; when it follows a
// leader that never saw E, truncating to the log end must drop that entry
// (Kafka's UnifiedLog.truncateTo), or every fetch reports the same
// divergence and the follower never catches up. The cut is durable.
func TestTruncateToLogEndDropsEmptyEpoch(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{})
	leaderWorkload(t, p)
	leo := p.LogEndOffset()
	before, _ := p.LatestEpoch()
	if err := p.AssignEpochStart(before+5, leo); err != nil {
		t.Fatal(err)
	}
	if e, _ := p.LatestEpoch(); e != before+5 {
		t.Fatalf("latest epoch %d, want %d", e, before+5)
	}
	if err := p.TruncateTo(leo + 10); err != nil { // beyond the end: the entry starts below, kept
		t.Fatal(err)
	}
	if e, _ := p.LatestEpoch(); e != before+5 {
		t.Fatalf("truncate beyond the end dropped epoch: latest %d", e)
	}
	if err := p.TruncateTo(leo); err != nil {
		t.Fatal(err)
	}
	if e, _ := p.LatestEpoch(); e != before || p.LogEndOffset() != leo {
		t.Fatalf("latest epoch %d, log end %d; want %d, %d", e, p.LogEndOffset(), before, leo)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := testManager(t, dir)
	p2 := openPart(t, m2, Config{})
	if e, _ := p2.LatestEpoch(); e != before {
		t.Fatalf("after reopen: latest epoch %d, want %d", e, before)
	}
}
