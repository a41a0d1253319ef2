package log

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

func TestRetentionBytes(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{SegmentBytes: 1000, RetentionBytes: 2500, RetentionMs: -1})
	for range 40 {
		mustAppend(t, p, testBatch(1, 100, 1))
	}
	before := p.NumSegments()
	n, err := p.ApplyRetention()
	if err != nil || n == 0 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	if p.NumSegments() != before-n {
		t.Fatalf("%d segments, was %d, deleted %d", p.NumSegments(), before, n)
	}
	if p.Size() > 2500+1000 || p.Size() < 2500-1000 {
		t.Fatalf("size %d after retention.bytes 2500", p.Size())
	}
	ls := p.LogStartOffset()
	if ls != p.segments()[0].base || ls == 0 {
		t.Fatalf("log start %d", ls)
	}
	if _, err := p.Read(ls-1, 100, p.LogEndOffset(), true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	if r, err := p.Read(ls, 100, p.LogEndOffset(), true); err != nil || r.Bytes == 0 {
		t.Fatalf("read at log start: %v", err)
	}
	// Deleted segments were renamed and are still open.
	ents, _ := os.ReadDir(p.Dir())
	deleted := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), deletedSuffix) {
			deleted++
		}
	}
	if deleted != 3*n {
		t.Fatalf("%d .deleted files for %d segments", deleted, n)
	}
}

func TestRetentionMs(t *testing.T) {
	var now atomic.Int64
	now.Store(1_000_000)
	m := testManager(t, "", func(c *ManagerConfig) { c.Now = func() time.Time { return time.UnixMilli(now.Load()) } })
	p := openPart(t, m, Config{SegmentBytes: 1000, RetentionMs: 500})
	for i := range 20 {
		mustAppend(t, p, testBatch(1, 100, 1_000_000+int64(i)*100))
	}
	now.Store(1_000_000 + 1000) // batches with ts < 500_500.. expire
	n, err := p.ApplyRetention()
	if err != nil || n == 0 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	for _, s := range p.segments()[:p.NumSegments()-1] {
		if s.maxTs.Load() < now.Load()-500 {
			t.Fatalf("expired segment %d kept", s.base)
		}
	}
	// Everything expired: a new empty active segment is rolled.
	now.Store(10_000_000)
	if _, err := p.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if p.NumSegments() != 1 || p.Size() != 0 || p.LogStartOffset() != 20 || p.LogEndOffset() != 20 {
		t.Fatalf("segments %d size %d start %d end %d", p.NumSegments(), p.Size(), p.LogStartOffset(), p.LogEndOffset())
	}
	mustAppend(t, p, testBatch(1, 10, 10_000_000))
	if p.LogEndOffset() != 21 {
		t.Fatal(p.LogEndOffset())
	}
}

func TestRetentionLoopAndDeleteDelay(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir, func(c *ManagerConfig) { c.RetentionCheckInterval = time.Millisecond })
	p := openPart(t, m, Config{SegmentBytes: 1000, RetentionBytes: 1000, FileDeleteDelayMs: 1})
	for range 20 {
		mustAppend(t, p, testBatch(1, 100, 1))
	}
	eventually(t, "background retention", func() bool { return p.LogStartOffset() > 0 })
	eventually(t, "delayed file removal", func() bool {
		ents, _ := os.ReadDir(p.Dir())
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), deletedSuffix) {
				return false
			}
		}
		return true
	})
}

func TestRegionStaysReadableAfterDelete(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{SegmentBytes: 1000})
	for range 20 {
		mustAppend(t, p, testBatch(1, 100, 1))
	}
	r, err := p.Read(0, 1<<20, p.LogEndOffset(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecordsBefore(p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	checkWholeBatches(t, readRegions(t, r)) // files still open (file.delete.delay.ms)
}

func TestDeleteRecordsBefore(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 1000})
	for range 20 {
		mustAppend(t, p, testBatch(2, 100, 1))
	}
	if _, err := p.DeleteRecordsBefore(p.LogEndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond end: %v", err)
	}
	ls, err := p.DeleteRecordsBefore(15)
	if err != nil || ls != 15 || p.LogStartOffset() != 15 {
		t.Fatalf("%d %v", ls, err)
	}
	if p.segments()[0].base > 15 {
		t.Fatal("deleted the segment holding the new start")
	}
	if _, err := p.Read(14, 100, 40, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below: %v", err)
	}
	r, err := p.Read(15, 1<<20, 40, false)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := batch.ParseHeader(readRegions(t, r))
	if h.LastOffset() < 15 || h.BaseOffset > 15 {
		t.Fatalf("%+v", h)
	}
	if ls, _ := p.DeleteRecordsBefore(3); ls != 15 {
		t.Fatalf("moved back to %d", ls)
	}
	// Survives a crash: the checkpoint is written before returning.
	img := crashImage(t, dir)
	m2 := testManager(t, img)
	p2 := openPart(t, m2, Config{SegmentBytes: 1000})
	if p2.LogStartOffset() != 15 {
		t.Fatalf("log start after crash %d", p2.LogStartOffset())
	}
	// And a clean restart.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := testManager(t, dir)
	p3 := openPart(t, m3, Config{SegmentBytes: 1000})
	if p3.LogStartOffset() != 15 {
		t.Fatalf("log start after restart %d", p3.LogStartOffset())
	}
}

func TestTruncateTo(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 1000, IndexIntervalBytes: 100})
	want := fillLog(t, p, 50, rand.New(rand.NewPCG(1, 1)))
	for _, e := range []struct {
		epoch int32
		off   int64
	}{{1, 0}, {2, 30}, {4, 60}} {
		if err := p.AssignEpochStart(e.epoch, e.off); err != nil {
			t.Fatal(err)
		}
	}
	// Truncate to the start of batch 30.
	h, _ := batch.ParseHeader(want[30])
	if err := p.TruncateTo(h.BaseOffset); err != nil {
		t.Fatal(err)
	}
	checkLog(t, p, want[:30])
	if p.DurableOffset() > h.BaseOffset {
		t.Fatalf("durable %d", p.DurableOffset())
	}
	if e, _ := p.LatestEpoch(); h.BaseOffset <= 60 && e == 4 {
		t.Fatal("epoch 4 not truncated")
	}
	// Appends continue; reopen (clean and crash) sees the same.
	b := testBatch(2, 10, 5)
	mustAppend(t, p, b)
	want2 := append(append([][]byte(nil), want[:30]...), b)
	checkLog(t, p, want2)
	img := crashImage(t, dir)
	p2 := openPart(t, testManager(t, img), Config{SegmentBytes: 1000, IndexIntervalBytes: 100})
	checkLog(t, p2, want2)
	// Truncate below the log start: start over.
	if _, err := p.DeleteRecordsBefore(10); err != nil {
		t.Fatal(err)
	}
	if err := p.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	if p.LogStartOffset() != 5 || p.LogEndOffset() != 5 || p.Size() != 0 {
		t.Fatalf("start %d end %d size %d", p.LogStartOffset(), p.LogEndOffset(), p.Size())
	}
	if res := mustAppend(t, p, testBatch(1, 1, 1)); res.FirstOffset != 5 {
		t.Fatal(res.FirstOffset)
	}
}

func TestLeaderEpochs(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{})
	if e, off := p.EndOffsetForEpoch(0); e != -1 || off != -1 {
		t.Fatal("empty cache")
	}
	for range 10 {
		mustAppend(t, p, testBatch(1, 1, 1))
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.AssignEpochStart(1, 0))
	must(p.AssignEpochStart(3, 4))
	must(p.AssignEpochStart(5, 8))
	must(p.AssignEpochStart(5, 9)) // same epoch: keeps 8
	mustAppend(t, p, testBatch(1, 1, 1))
	h, _ := batch.ParseHeader(readBatchBytes(t, p, 10))
	if h.PartitionLeaderEpoch != 5 {
		t.Fatalf("append stamped epoch %d", h.PartitionLeaderEpoch)
	}
	tests := []struct {
		epoch   int32
		wantE   int32
		wantOff int64
	}{
		{0, 0, 0}, // below the first: (requested, first start)
		{1, 1, 4},
		{2, 1, 4},
		{3, 3, 8},
		{4, 3, 8},
		{5, 5, 11}, // latest: log end
		{6, -1, -1},
		{-1, -1, -1},
	}
	for _, tc := range tests {
		if e, off := p.EndOffsetForEpoch(tc.epoch); e != tc.wantE || off != tc.wantOff {
			t.Errorf("epoch %d: got (%d, %d) want (%d, %d)", tc.epoch, e, off, tc.wantE, tc.wantOff)
		}
	}
	must(p.AssignEpochStart(4, 6)) // conflicting: removes 5@8
	if e, off := p.EndOffsetForEpoch(5); e != -1 || off != -1 {
		t.Fatalf("after conflict: %d %d", e, off)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "t-0", leaderEpochFile))
	if string(b) != "0\n3\n1 0\n3 4\n4 6\n" {
		t.Fatalf("checkpoint %q", b)
	}
	p2 := openPart(t, testManager(t, dir), Config{})
	if e, off := p2.EndOffsetForEpoch(3); e != 3 || off != 6 {
		t.Fatalf("reloaded: %d %d", e, off)
	}
}

func TestOffsetsByTime(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{SegmentBytes: 600, IndexIntervalBytes: 50})
	if _, _, ok, err := p.MaxTimestamp(); ok || err != nil {
		t.Fatal("empty log has a max timestamp")
	}
	// Batch i holds 3 records with timestamps 100i, 100i+1, 100i+2, except
	// batch 7, which holds the max (9000..9002).
	for i := range 20 {
		ts := int64(100 * i)
		if i == 7 {
			ts = 9000
		}
		mustAppend(t, p, testBatch(3, 20, ts))
	}
	tests := []struct {
		ts      int64
		wantOff int64
		wantTs  int64
		ok      bool
	}{
		{0, 0, 0, true},
		{1, 1, 1, true},
		{3, 3, 100, true},
		{650, 21, 9000, true},  // first in offset order: batch 7 (offsets 21..23)
		{1901, 21, 9000, true}, // likewise, though batch 19 holds 1902
		{9001, 22, 9001, true},
		{9003, 0, 0, false},
	}
	for _, tc := range tests {
		off, ts, ok, err := p.OffsetForTimestamp(tc.ts)
		if err != nil || ok != tc.ok || (ok && (off != tc.wantOff || ts != tc.wantTs)) {
			t.Errorf("ts %d: got (%d, %d, %v, %v) want (%d, %d, %v)", tc.ts, off, ts, ok, err, tc.wantOff, tc.wantTs, tc.ok)
		}
	}
	ts, off, ok, err := p.MaxTimestamp()
	if err != nil || !ok || ts != 9002 || off != 23 {
		t.Fatalf("max timestamp (%d, %d, %v, %v)", ts, off, ok, err)
	}
}
