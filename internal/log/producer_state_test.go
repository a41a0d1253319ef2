package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"
)

// idemBatch is testBatch with an idempotent producer's id, epoch and base
// sequence.
func idemBatch(n int, pid int64, epoch int16, seq int32, ts int64) []byte {
	b := testBatch(n, 8, ts)
	binary.BigEndian.PutUint64(b[43:], uint64(pid))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	fixCRC(b)
	return b
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestProducerSequenceRules(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	now := time.Now().UnixMilli()

	// Unknown producer: any sequence is accepted (Kafka 4).
	r := mustAppend(t, p, idemBatch(3, 7, 0, 10, now)) // seqs 10..12, offsets 0..2
	if r.Duplicate || r.FirstOffset != 0 || r.LastOffset != 2 {
		t.Fatalf("first append %+v", r)
	}
	// In sequence.
	for i := range 5 {
		mustAppend(t, p, idemBatch(2, 7, 0, int32(13+2*i), now)) // seqs 13..22, offsets 3..12
	}
	leo := p.LogEndOffset()
	// The last batch retried: a duplicate with the original offsets.
	r = mustAppend(t, p, idemBatch(2, 7, 0, 21, now))
	if !r.Duplicate || r.FirstOffset != 11 || r.LastOffset != 12 || p.LogEndOffset() != leo {
		t.Fatalf("retry of the last batch: %+v, log end %d", r, p.LogEndOffset())
	}
	// The oldest of the last five (seqs 13..14, offsets 3..4) too.
	r = mustAppend(t, p, idemBatch(2, 7, 0, 13, now))
	if !r.Duplicate || r.FirstOffset != 3 || r.LastOffset != 4 {
		t.Fatalf("retry of the fifth-last batch: %+v", r)
	}
	// Older than the last five: out of order.
	_, err := p.Append(idemBatch(3, 7, 0, 10, now))
	wantErr(t, err, ErrOutOfOrderSequence)
	// Same first sequence, other range: not a duplicate, out of order.
	_, err = p.Append(idemBatch(3, 7, 0, 21, now))
	wantErr(t, err, ErrOutOfOrderSequence)
	// A gap.
	_, err = p.Append(idemBatch(1, 7, 0, 24, now))
	wantErr(t, err, ErrOutOfOrderSequence)
	// A duplicate mixed with new data in one append is refused.
	_, err = p.Append(append(idemBatch(2, 7, 0, 21, now), idemBatch(1, 7, 0, 23, now)...))
	wantErr(t, err, ErrInvalidRecord)
	// A producer id without a sequence is invalid.
	_, err = p.Append(idemBatch(1, 8, 0, -1, now))
	wantErr(t, err, ErrInvalidRecord)
	// Two batches of one producer in one append chain.
	mustAppend(t, p, append(idemBatch(1, 7, 0, 23, now), idemBatch(1, 7, 0, 24, now)...))
	if p.LogEndOffset() != leo+2 {
		t.Fatalf("log end %d, want %d", p.LogEndOffset(), leo+2)
	}
	// ... but not with a gap between them; nothing is written.
	_, err = p.Append(append(idemBatch(1, 7, 0, 25, now), idemBatch(1, 7, 0, 27, now)...))
	wantErr(t, err, ErrOutOfOrderSequence)
	if p.LogEndOffset() != leo+2 {
		t.Fatal("a refused append wrote something")
	}

	// Epochs: a higher epoch must start at 0; an older one is fenced.
	_, err = p.Append(idemBatch(1, 7, 1, 5, now))
	wantErr(t, err, ErrOutOfOrderSequence)
	mustAppend(t, p, idemBatch(1, 7, 1, 0, now))
	_, err = p.Append(idemBatch(1, 7, 0, 25, now))
	wantErr(t, err, ErrInvalidProducerEpoch)
	// A retry from the old epoch is no duplicate any more either.
	_, err = p.Append(idemBatch(1, 7, 0, 24, now))
	wantErr(t, err, ErrInvalidProducerEpoch)
	mustAppend(t, p, idemBatch(1, 7, 1, 1, now))

	// Sequences wrap from MaxInt32 to 0.
	mustAppend(t, p, idemBatch(2, 9, 0, math.MaxInt32-1, now)) // seqs MaxInt32-1, MaxInt32
	mustAppend(t, p, idemBatch(1, 9, 0, 0, now))
	mustAppend(t, p, idemBatch(3, 10, 0, math.MaxInt32-1, now)) // seqs MaxInt32-1, MaxInt32, 0
	r = mustAppend(t, p, idemBatch(3, 10, 0, math.MaxInt32-1, now))
	if !r.Duplicate {
		t.Fatal("wrapping batch retried: not a duplicate")
	}
	mustAppend(t, p, idemBatch(1, 10, 0, 1, now))

	// Batches without a producer id are never checked.
	mustAppend(t, p, testBatch(2, 8, now))
	mustAppend(t, p, testBatch(2, 8, now))

	ps := p.Producers()
	if len(ps) != 3 || ps[0].ProducerID != 7 || ps[0].Epoch != 1 || len(ps[0].Batches) != 2 || ps[0].Batches[1].LastSeq != 1 {
		t.Fatalf("producers %+v", ps)
	}
}

// appendIdem appends n batches spread over producers, in sequence.
func appendIdem(t *testing.T, p *Partition, producers, n int, ts int64) {
	t.Helper()
	seqs := make([]int32, producers)
	for i := range n {
		pid := int64(i % producers)
		mustAppend(t, p, idemBatch(1+i%3, 100+pid, 0, seqs[pid], ts))
		seqs[pid] += int32(1 + i%3)
	}
}

func TestProducerStateRecovery(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 2048}
	now := time.Now().UnixMilli()

	m := testManager(t, dir)
	p := openPart(t, m, cfg)
	appendIdem(t, p, 4, 60, now)
	if p.NumSegments() < 3 {
		t.Fatalf("only %d segments", p.NumSegments())
	}
	eventually(t, "roll snapshots", func() bool {
		offs, _ := listProducerSnapshots(p.Dir())
		return len(offs) >= 2
	})
	want := p.Producers()
	leo := p.LogEndOffset()

	// Crash: nothing written at close; rebuilt from the last roll snapshot
	// plus a header scan.
	m.abandon()
	m = testManager(t, dir)
	p = openPart(t, m, cfg)
	if got := p.Producers(); !reflect.DeepEqual(got, want) || p.LogEndOffset() != leo {
		t.Fatalf("after crash:\n got %+v\nwant %+v", got, want)
	}

	// Clean close: a snapshot at the log end.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(snapshotPath(p.Dir(), leo)); err != nil {
		t.Fatalf("no snapshot at the log end: %v", err)
	}
	m = testManager(t, dir)
	p = openPart(t, m, cfg)
	if got := p.Producers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after clean close:\n got %+v\nwant %+v", got, want)
	}
	// A retry of the last batch is still a duplicate after the restart.
	last := want[len(want)-1].Batches[len(want[len(want)-1].Batches)-1]
	r := mustAppend(t, p, idemBatch(int(last.LastSeq-last.FirstSeq+1), want[len(want)-1].ProducerID, 0, last.FirstSeq, now))
	if !r.Duplicate || r.FirstOffset != last.FirstOffset {
		t.Fatalf("retry after restart: %+v, want duplicate at %d", r, last.FirstOffset)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// A damaged latest snapshot is ignored; without any, a full scan.
	f, err := os.OpenFile(snapshotPath(p.Dir(), leo), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m = testManager(t, dir)
	p = openPart(t, m, cfg)
	if got := p.Producers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("with a damaged snapshot:\n got %+v\nwant %+v", got, want)
	}
	m.abandon()
	if err := removeProducerSnapshots(p.Dir(), func(int64) bool { return true }); err != nil {
		t.Fatal(err)
	}
	m = testManager(t, dir)
	p = openPart(t, m, cfg)
	if got := p.Producers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("without snapshots:\n got %+v\nwant %+v", got, want)
	}
}

func TestProducerStateTruncate(t *testing.T) {
	now := time.Now().UnixMilli()
	cfg := Config{SegmentBytes: 2048}
	// The reference: a log holding only the first 30 batches.
	ref := openPart(t, testManager(t, ""), cfg)
	appendIdem(t, ref, 3, 30, now)
	want := ref.Producers()
	cut := ref.LogEndOffset()

	m := testManager(t, "")
	p := openPart(t, m, cfg)
	appendIdem(t, p, 3, 70, now)
	if err := p.Roll(); err != nil { // a queued snapshot above the cut
		t.Fatal(err)
	}
	eventually(t, "snapshots", func() bool {
		offs, _ := listProducerSnapshots(p.Dir())
		return len(offs) > 0 && offs[len(offs)-1] > cut
	})
	if err := p.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	if got := p.Producers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after truncation:\n got %+v\nwant %+v", got, want)
	}
	offs, _ := listProducerSnapshots(p.Dir())
	for _, o := range offs {
		if o > cut {
			t.Fatalf("snapshot %d above the truncation point %d kept", o, cut)
		}
	}
	// The batch after the cut is new again, not a duplicate.
	next := want[0].Batches[len(want[0].Batches)-1].LastSeq + 1
	if r := mustAppend(t, p, idemBatch(1, want[0].ProducerID, 0, next, now)); r.Duplicate || r.FirstOffset != cut {
		t.Fatalf("append after truncation: %+v", r)
	}
}

func TestProducerExpiryAndRetention(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	m := testManager(t, "", func(c *ManagerConfig) {
		c.Now = now
		c.ProducerIDExpiration = time.Hour
	})
	p := openPart(t, m, Config{})
	ts := now().UnixMilli()
	mustAppend(t, p, idemBatch(2, 1, 0, 0, ts))
	mustAppend(t, p, idemBatch(2, 2, 0, 0, ts+int64(90*time.Minute/time.Millisecond)))
	mu.Lock()
	clock = clock.Add(61 * time.Minute)
	mu.Unlock()
	m.ExpireProducers()
	if ps := p.Producers(); len(ps) != 1 || ps[0].ProducerID != 2 {
		t.Fatalf("after expiry: %+v", ps)
	}
	// An expired producer is unknown: any sequence is accepted.
	mustAppend(t, p, idemBatch(1, 1, 0, 40, now().UnixMilli()))

	// Moving the log start past a producer's last batch forgets it.
	mustAppend(t, p, idemBatch(1, 3, 0, 0, now().UnixMilli()))
	if _, err := p.DeleteRecordsBefore(5); err != nil { // producer 1's batch is at 4
		t.Fatal(err)
	}
	ps := p.Producers()
	if len(ps) != 1 || ps[0].ProducerID != 3 {
		t.Fatalf("after DeleteRecords: %+v", ps)
	}
}

// FuzzProducerSnapshot: the snapshot reader never panics, marks every
// refusal as corruption, allocates only what the input holds, and what it
// accepts re-encodes to the same bytes.
func FuzzProducerSnapshot(f *testing.F) {
	st := producerStates{
		3: {ProducerID: 3, Epoch: 2, CoordinatorEpoch: -1, TxnFirstOffset: -1, Batches: []ProducerBatch{{0, 4, 10, 14, 99}, {5, 5, 20, 20, 100}}},
		9: {ProducerID: 9, CoordinatorEpoch: -1, TxnFirstOffset: -1},
	}
	f.Add(encodeProducerSnapshot(st, 30))
	f.Add(encodeProducerSnapshot(producerStates{}, 0))
	f.Add([]byte("SLPS\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, off, err := parseProducerSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("unmarked error %v", err)
			}
			return
		}
		if !bytes.Equal(encodeProducerSnapshot(m, off), b) {
			t.Fatal("re-encode differs")
		}
	})
}
