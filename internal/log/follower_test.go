package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// replicate copies the leader's batches from the follower's log end up to
// the leader's log end, in fetches of at most maxBytes, the way a replica
// fetcher does (Read, then AppendAsFollower of the fetched bytes).
func replicate(t testing.TB, leader, follower *Partition, maxBytes int64) {
	t.Helper()
	for i := 0; follower.LogEndOffset() < leader.LogEndOffset(); i++ {
		if i > 100000 {
			t.Fatal("replication makes no progress")
		}
		r, err := leader.Read(follower.LogEndOffset(), maxBytes, leader.LogEndOffset(), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := follower.AppendAsFollower(readRegions(t, r)); err != nil {
			t.Fatalf("AppendAsFollower at %d: %v", follower.LogEndOffset(), err)
		}
	}
}

// allBytes is the partition's whole log from the log start.
func allBytes(t testing.TB, p *Partition) []byte {
	t.Helper()
	if p.LogEndOffset() == p.LogStartOffset() {
		return nil
	}
	r, err := p.Read(p.LogStartOffset(), 1<<40, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	return readRegions(t, r)
}

// sameState checks that two partitions hold the same log and the same
// state derived from it.
func sameState(t testing.TB, what string, want, got *Partition) {
	t.Helper()
	sameLog(t, what, want, got)
	if w, g := want.epochs.entries(), got.epochs.entries(); !reflect.DeepEqual(w, g) {
		t.Fatalf("%s: leader epochs %+v, want %+v", what, g, w)
	}
}

// sameLog is sameState without the leader epochs.
func sameLog(t testing.TB, what string, want, got *Partition) {
	t.Helper()
	if w, g := want.LogEndOffset(), got.LogEndOffset(); w != g {
		t.Fatalf("%s: log end %d, want %d", what, g, w)
	}
	if !bytes.Equal(allBytes(t, want), allBytes(t, got)) {
		t.Fatalf("%s: logs differ", what)
	}
	if w, g := want.Producers(), got.Producers(); !reflect.DeepEqual(w, g) {
		t.Fatalf("%s: producers\n got %+v\nwant %+v", what, g, w)
	}
	if w, g := want.AbortedTransactions(0, 1<<62), got.AbortedTransactions(0, 1<<62); !reflect.DeepEqual(w, g) {
		t.Fatalf("%s: aborted transactions\n got %+v\nwant %+v", what, g, w)
	}
	if w, g := want.LastStableOffset(), got.LastStableOffset(); w != g {
		t.Fatalf("%s: last stable offset %d, want %d", what, g, w)
	}
}

// leaderWorkload appends plain, idempotent and transactional batches with
// commit and abort markers under leader epochs 1 and 3, leaving producer 7's
// transaction open at the end.
func leaderWorkload(t *testing.T, p *Partition) {
	t.Helper()
	now := time.Now().UnixMilli()
	if err := p.AssignEpochStart(1, p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, testBatch(3, 10, now))
	mustAppend(t, p, idemBatch(2, 5, 0, 0, now))
	mustAppend(t, p, txnBatch(2, 6, 0, 0, now))
	mustAppend(t, p, idemBatch(3, 5, 0, 2, now))
	mustAppend(t, p, txnMarker(t, 6, 0, batch.ControlAbort, now))
	if err := p.AssignEpochStart(3, p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, txnBatch(1, 6, 1, 0, now))
	mustAppend(t, p, testBatch(2, 100, now))
	mustAppend(t, p, txnMarker(t, 6, 1, batch.ControlCommit, now))
	mustAppend(t, p, txnBatch(4, 7, 0, 0, now))
	mustAppend(t, p, idemBatch(1, 5, 0, 5, now))
}

func TestFollowerReplicatesLeader(t *testing.T) {
	lm := testManager(t, "")
	leader := openPart(t, lm, Config{SegmentBytes: 600})
	leaderWorkload(t, leader)
	if leader.NumSegments() < 2 {
		t.Fatalf("leader has %d segments; want a roll in the workload", leader.NumSegments())
	}
	// The leader stamped its epoch into every batch.
	for _, h := range headersOf(t, allBytes(t, leader)) {
		if h.PartitionLeaderEpoch != 1 && h.PartitionLeaderEpoch != 3 {
			t.Fatalf("batch at %d has leader epoch %d", h.BaseOffset, h.PartitionLeaderEpoch)
		}
	}
	for _, maxBytes := range []int64{1, 200, 1 << 20} {
		fdir := t.TempDir()
		fm := testManager(t, fdir)
		follower := openPart(t, fm, Config{SegmentBytes: 600})
		replicate(t, leader, follower, maxBytes)
		sameState(t, "replicated", leader, follower)
		if lso := follower.LastStableOffset(); lso >= follower.LogEndOffset() {
			t.Fatalf("open transaction not reflected in the follower's LSO %d", lso)
		}
		// A restart rebuilds the same state from the follower's files.
		if err := fm.Close(); err != nil {
			t.Fatal(err)
		}
		follower = openPart(t, testManager(t, fdir), Config{SegmentBytes: 600})
		sameState(t, "reopened", leader, follower)

		// The follower becomes leader (epoch 4): it knows the producers,
		// so a retry is a duplicate and a gap is refused.
		if err := follower.AssignEpochStart(4, follower.LogEndOffset()); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		if res := mustAppend(t, follower, idemBatch(1, 5, 0, 5, now)); !res.Duplicate {
			t.Fatalf("retried batch on the new leader: %+v", res)
		}
		if _, err := follower.Append(idemBatch(1, 5, 0, 8, now)); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("sequence gap on the new leader: %v", err)
		}
		res := mustAppend(t, follower, idemBatch(1, 5, 0, 6, now))
		if h, _ := batch.ParseHeader(readBatchBytes(t, follower, res.FirstOffset)); h.PartitionLeaderEpoch != 4 {
			t.Fatalf("new leader stamped epoch %d", h.PartitionLeaderEpoch)
		}
	}
}

// Appends, truncations, high-watermark updates and reads running at once
// (for the race detector) keep lso <= hw <= log end as readers see them.
func TestFollowerConcurrent(t *testing.T) {
	p := openPart(t, testManager(t, ""), Config{SegmentBytes: 4000})
	stop := make(chan struct{})
	errs := make(chan error, 2)
	for g := range 2 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if g == 0 {
					p.SetHighWatermark(p.LogEndOffset() - 3)
				}
				hw, lso := p.FetchBounds()
				if lso > hw {
					errs <- fmt.Errorf("lso %d above hw %d", lso, hw)
					return
				}
				if _, err := p.Read(hw, 1<<16, hw, false); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
					errs <- err
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Now().UnixMilli()
	epoch := int32(0)
	for i := range 400 {
		if i%25 == 24 {
			if err := p.TruncateTo(max(p.LogStartOffset(), p.LogEndOffset()-int64(rng.IntN(20)))); err != nil {
				t.Fatal(err)
			}
			epoch++
			continue
		}
		b := withEpoch(withBase(txnBatch(1+rng.IntN(4), int64(rng.IntN(3)), 0, 0, now), p.LogEndOffset()), epoch)
		mustFollow(t, p, b)
	}
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if hw := p.HighWatermark(); hw > p.LogEndOffset() {
		t.Fatalf("hw %d above log end %d", hw, p.LogEndOffset())
	}
}

func headersOf(t testing.TB, b []byte) []batch.Header {
	t.Helper()
	var hs []batch.Header
	it := batch.NewIter(b)
	for it.Next() {
		hs = append(hs, it.Header())
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return hs
}

// withEpoch sets a batch's partitionLeaderEpoch (outside the CRC).
func withEpoch(b []byte, epoch int32) []byte {
	c := bytes.Clone(b)
	batch.SetPartitionLeaderEpoch(c, epoch)
	return c
}

func TestFollowerAppendRefusesGapsAndOverlaps(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	now := time.Now().UnixMilli()
	b := func(base int64, n int) []byte { return withEpoch(withBase(testBatch(n, 5, now), base), 2) }
	res, err := p.AppendAsFollower(append(b(0, 3), b(3, 2)...))
	if err != nil || res.FirstOffset != 0 || res.LastOffset != 4 || res.NumBatches != 2 {
		t.Fatalf("append: %+v, %v", res, err)
	}
	for name, bad := range map[string][]byte{
		"gap at the start":        b(6, 1),
		"overlap at the start":    b(4, 2),
		"below the log end":       b(0, 1),
		"gap between batches":     append(b(5, 1), b(7, 1)...),
		"overlap between batches": append(b(5, 2), b(6, 1)...),
		"decreasing offsets":      append(b(5, 2), b(5, 2)...),
	} {
		if _, err := p.AppendAsFollower(bad); !errors.Is(err, ErrUnexpectedAppendOffset) {
			t.Fatalf("%s: err = %v, want ErrUnexpectedAppendOffset", name, err)
		}
	}
	corrupt := b(5, 1)
	corrupt[len(corrupt)-1] ^= 0xff
	if _, err := p.AppendAsFollower(corrupt); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("bad CRC: err = %v", err)
	}
	wrongCount := b(5, 2)
	binary.BigEndian.PutUint32(wrongCount[batch.NumRecordsOffset:], 3)
	fixCRC(wrongCount)
	if _, err := p.AppendAsFollower(wrongCount); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("more records than offsets: err = %v", err)
	}
	if p.LogEndOffset() != 5 {
		t.Fatalf("refused appends moved the log end to %d", p.LogEndOffset())
	}
	// Offsets are kept, never reassigned; the leader's epoch is recorded.
	mustFollow(t, p, b(5, 4))
	hs := headersOf(t, allBytes(t, p))
	if len(hs) != 3 || hs[2].BaseOffset != 5 || hs[2].PartitionLeaderEpoch != 2 {
		t.Fatalf("headers %+v", hs)
	}
	if e, off := p.EndOffsetForEpoch(2); e != 2 || off != 9 {
		t.Fatalf("EndOffsetForEpoch(2) = %d, %d", e, off)
	}
	if got := p.epochs.entries(); !reflect.DeepEqual(got, []epochEntry{{2, 0}}) {
		t.Fatalf("epochs %+v", got)
	}
}

func mustFollow(t testing.TB, p *Partition, b []byte) AppendResult {
	t.Helper()
	res, err := p.AppendAsFollower(b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// An empty follower log whose start lies inside the leader's first batch
// (DeleteRecords on the leader) restarts at the batch's base, as Kafka's
// follower does.
func TestFollowerAppendLogStartInsideBatch(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	if err := p.TruncateFullyAndStartAt(105); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	if _, err := p.AppendAsFollower(withBase(testBatch(3, 5, now), 100)); !errors.Is(err, ErrUnexpectedAppendOffset) {
		t.Fatalf("batch ending below the log start: %v", err)
	}
	mustFollow(t, p, withBase(testBatch(10, 5, now), 100))
	if p.LogStartOffset() != 100 || p.LogEndOffset() != 110 {
		t.Fatalf("log [%d, %d), want [100, 110)", p.LogStartOffset(), p.LogEndOffset())
	}
}

func TestFollowerAcceptsCompactedBatches(t *testing.T) {
	lm := testManager(t, "")
	leader := openPart(t, lm, compactCfg)
	if err := leader.AssignEpochStart(4, 0); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fillKeys(t, leader, batch.CodecNone, 40, 12, rng)
	// A transaction, aborted, and its marker: control batches in a
	// compacted log.
	now := time.Now().UnixMilli()
	mustAppend(t, leader, keyedBatch(t, txnHeader(9, 0, 0), batch.CodecNone, now, kv{key: "key-000", value: "aborted"}))
	mustAppend(t, leader, marker(t, 9, 0, batch.ControlAbort))
	fillKeys(t, leader, batch.CodecNone, 40, 3, rng)
	if _, err := leader.Clean(); err != nil {
		t.Fatal(err)
	}
	hs := headersOf(t, allBytes(t, leader))
	gaps, partial := 0, 0
	for i, h := range hs {
		if i > 0 && h.BaseOffset != hs[i-1].NextOffset() {
			gaps++
		}
		if int64(h.NumRecords) < int64(h.LastOffsetDelta)+1 {
			partial++
		}
	}
	if gaps == 0 {
		t.Fatal("compaction left no offset gap; the test needs one")
	}
	t.Logf("%d batches, %d gaps, %d batches with removed records", len(hs), gaps, partial)
	for _, maxBytes := range []int64{1, 1500, 1 << 20} {
		follower := openPart(t, testManager(t, ""), compactCfg)
		replicate(t, leader, follower, maxBytes)
		sameLog(t, "compacted", leader, follower)
		// The follower learns epoch 4 at the first batch it holds (the
		// leader's cleaner removed the ones before).
		if got, want := follower.epochs.entries(), []epochEntry{{4, hs[0].BaseOffset}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("follower epochs %+v, want %+v", got, want)
		}
		if e, off := follower.EndOffsetForEpoch(4); e != 4 || off != leader.LogEndOffset() {
			t.Fatalf("follower EndOffsetForEpoch(4) = %d, %d", e, off)
		}
	}
	// The same gaps are refused in a log that is not compacted.
	plain := openPart(t, testManager(t, ""), Config{})
	r, err := leader.Read(0, 1<<30, leader.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.AppendAsFollower(readRegions(t, r)); !errors.Is(err, ErrUnexpectedAppendOffset) {
		t.Fatalf("gapped batches in a delete-policy log: %v", err)
	}
}

// Kafka's LeaderEpochFileCache.endOffsetFor, case by case.
func TestEndOffsetForEpoch(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	if e, off := p.EndOffsetForEpoch(0); e != -1 || off != -1 {
		t.Fatalf("empty cache: %d, %d", e, off)
	}
	now := time.Now().UnixMilli()
	follow := func(base int64, n int, epoch int32) {
		mustFollow(t, p, withEpoch(withBase(testBatch(n, 5, now), base), epoch))
	}
	follow(0, 6, -1) // no epoch: before leader epochs were recorded
	follow(6, 2, 2)
	follow(8, 4, 3)
	follow(12, 3, 5)
	follow(15, 5, 5)
	if got, want := p.epochs.entries(), []epochEntry{{2, 6}, {3, 8}, {5, 12}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("epochs %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		req, epoch int32
		end        int64
	}{
		{-1, -1, -1}, // undefined epoch requested
		{0, 0, 6},    // below the first epoch: the first epoch's start (Kafka)
		{1, 1, 6},
		{2, 2, 8},  // a known epoch: the next epoch's start
		{3, 3, 12}, //
		{4, 3, 12}, // between epochs: the largest epoch below, the next start
		{5, 5, 20}, // the latest epoch: the log end
		{6, -1, -1},
	} {
		if e, off := p.EndOffsetForEpoch(c.req); e != c.epoch || off != c.end {
			t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", c.req, e, off, c.epoch, c.end)
		}
	}
	// Truncation removes the epochs that start at or above the new end.
	if err := p.TruncateTo(12); err != nil {
		t.Fatal(err)
	}
	if e, off := p.EndOffsetForEpoch(5); e != -1 || off != -1 {
		t.Fatalf("after truncation EndOffsetForEpoch(5) = %d, %d; want -1, -1 (above the latest epoch)", e, off)
	}
	if e, off := p.EndOffsetForEpoch(3); e != 3 || off != 12 {
		t.Fatalf("after truncation EndOffsetForEpoch(3) = %d, %d; want 3, 12", e, off)
	}
	if err := p.TruncateTo(9); err != nil { // inside epoch 3's batch [8, 11]: removed whole
		t.Fatal(err)
	}
	if p.LogEndOffset() != 8 {
		t.Fatalf("log end %d after truncating inside the batch at 8", p.LogEndOffset())
	}
	if got, want := p.epochs.entries(), []epochEntry{{2, 6}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("epochs %+v, want %+v", got, want)
	}
	// The leader for epoch 7 appends; its batches carry epoch 7.
	if err := p.AssignEpochStart(7, p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	res := mustAppend(t, p, testBatch(2, 5, now))
	if h, _ := batch.ParseHeader(readBatchBytes(t, p, res.FirstOffset)); h.PartitionLeaderEpoch != 7 {
		t.Fatalf("leader append stamped epoch %d", h.PartitionLeaderEpoch)
	}
	if e, off := p.EndOffsetForEpoch(6); e != 2 || off != res.FirstOffset {
		t.Fatalf("EndOffsetForEpoch(6) = %d, %d", e, off)
	}
}

// Kafka's LeaderEpochFileCache.assign: same epoch later is a no-op, earlier
// moves it; a lower epoch or start offset removes the conflicting entries.
func TestEpochCacheAssign(t *testing.T) {
	c, err := loadEpochCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		epoch int32
		start int64
		want  []epochEntry
	}{
		{5, 11, []epochEntry{{5, 11}}},
		{6, 12, []epochEntry{{5, 11}, {6, 12}}},
		{7, 13, []epochEntry{{5, 11}, {6, 12}, {7, 13}}},
		{7, 14, []epochEntry{{5, 11}, {6, 12}, {7, 13}}},   // same epoch, later: kept
		{7, 12, []epochEntry{{5, 11}, {7, 12}}},            // same epoch, earlier offset
		{6, 20, []epochEntry{{5, 11}, {6, 20}}},            // lower epoch: later epochs go
		{8, 30, []epochEntry{{5, 11}, {6, 20}, {8, 30}}},   //
		{9, 25, []epochEntry{{5, 11}, {6, 20}, {9, 25}}},   // earlier start: later entries go
		{10, 25, []epochEntry{{5, 11}, {6, 20}, {10, 25}}}, // same start, new epoch
	}
	for i, s := range steps {
		if err := c.assign(s.epoch, s.start); err != nil {
			t.Fatal(err)
		}
		if got := c.entries(); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d assign(%d, %d): %+v, want %+v", i, s.epoch, s.start, got, s.want)
		}
	}
	if err := c.truncateFromStart(22); err != nil {
		t.Fatal(err)
	}
	if got, want := c.entries(), []epochEntry{{6, 22}, {10, 25}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("truncateFromStart: %+v", got)
	}
	if err := c.clear(); err != nil {
		t.Fatal(err)
	}
	reloaded, err := loadEpochCache(filepath.Dir(c.path))
	if err != nil || len(reloaded.entries()) != 0 {
		t.Fatalf("cleared cache reloaded: %+v, %v", reloaded.entries(), err)
	}
}
