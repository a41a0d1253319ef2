package log

import (
	"encoding/binary"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// txnBatch is idemBatch with the transactional bit.
func txnBatch(n int, pid int64, epoch int16, seq int32, ts int64) []byte {
	b := idemBatch(n, pid, epoch, seq, ts)
	a := binary.BigEndian.Uint16(b[batch.AttributesOffset:])
	binary.BigEndian.PutUint16(b[batch.AttributesOffset:], a|batch.AttrTransactional)
	fixCRC(b)
	return b
}

func txnMarker(t *testing.T, pid int64, epoch int16, typ batch.ControlType, ts int64) []byte {
	t.Helper()
	b, err := batch.ControlBatch(0, pid, epoch, batch.ControlRecord{Type: typ, CoordinatorEpoch: 3}, ts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantLSO(t *testing.T, p *Partition, want int64) {
	t.Helper()
	if got := p.LastStableOffset(); got != want {
		t.Fatalf("LastStableOffset = %d, want %d (log end %d)", got, want, p.LogEndOffset())
	}
}

func wantAborted(t *testing.T, p *Partition, from, to int64, want []AbortedTxn) {
	t.Helper()
	if got := p.AbortedTransactions(from, to); !reflect.DeepEqual(got, want) {
		t.Fatalf("AbortedTransactions(%d, %d) = %+v, want %+v", from, to, got, want)
	}
}

func TestTransactionsLSOAndAbortedIndex(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UnixMilli()
	m := testManager(t, dir)
	p := openPart(t, m, Config{})

	wantLSO(t, p, 0)
	mustAppend(t, p, txnBatch(3, 1, 0, 0, now)) // 0..2, txn of producer 1
	wantLSO(t, p, 0)
	mustAppend(t, p, txnBatch(2, 2, 0, 0, now)) // 3..4, txn of producer 2
	mustAppend(t, p, testBatch(2, 8, now))      // 5..6, not transactional
	wantLSO(t, p, 0)
	if r, err := p.Read(0, 1<<20, p.LastStableOffset(), true); err != nil || len(r.Regions) != 0 {
		t.Fatalf("read_committed read below the LSO: %+v, %v", r, err)
	}
	mustAppend(t, p, txnMarker(t, 1, 0, batch.ControlAbort, now)) // 7
	wantLSO(t, p, 3)
	first := AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 7, LastStableOffset: 3}
	wantAborted(t, p, 0, 100, []AbortedTxn{first})
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, txnMarker(t, 2, 0, batch.ControlCommit, now)) // 8
	wantLSO(t, p, 9)
	mustAppend(t, p, txnBatch(2, 1, 0, 3, now)) // 9..10
	wantLSO(t, p, 9)
	mustAppend(t, p, txnMarker(t, 1, 0, batch.ControlAbort, now)) // 11
	wantLSO(t, p, 12)
	second := AbortedTxn{ProducerID: 1, FirstOffset: 9, LastOffset: 11, LastStableOffset: 12}
	all := []AbortedTxn{first, second}
	wantAborted(t, p, 0, 100, all)
	wantAborted(t, p, 8, 100, []AbortedTxn{second})
	wantAborted(t, p, 0, 5, []AbortedTxn{first})
	wantAborted(t, p, 12, 100, nil)
	// A marker without an ongoing transaction changes nothing.
	mustAppend(t, p, txnMarker(t, 1, 0, batch.ControlAbort, now)) // 12
	wantAborted(t, p, 0, 100, all)
	mustAppend(t, p, txnBatch(1, 3, 0, 0, now)) // 13: left open
	wantLSO(t, p, 13)
	eventually(t, "first segment's txn index", func() bool {
		es, err := readTxnIndex(dir+"/t-0", 0)
		return err == nil && reflect.DeepEqual(es, []AbortedTxn{first})
	})

	reopen := func(what string, crash bool) {
		t.Helper()
		if crash {
			m.abandon()
		} else if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m = testManager(t, dir)
		p = openPart(t, m, Config{})
		wantLSO(t, p, 13)
		if got := p.AbortedTransactions(0, 100); !reflect.DeepEqual(got, all) {
			t.Fatalf("%s: aborted %+v, want %+v", what, got, all)
		}
	}
	reopen("after a crash", true)
	reopen("after a clean close", false)
	if _, err := os.Stat(segmentPath(p.Dir(), 8, txnIndexSuffix)); err != nil {
		t.Fatalf("second segment's txn index: %v", err)
	}
	// Without snapshots: a full replay.
	m.abandon()
	if err := removeProducerSnapshots(p.Dir(), func(int64) bool { return true }); err != nil {
		t.Fatal(err)
	}
	m = testManager(t, dir)
	p = openPart(t, m, Config{})
	wantLSO(t, p, 13)
	wantAborted(t, p, 0, 100, all)
	// A damaged .txnindex forces a full replay too.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segmentPath(p.Dir(), 0, txnIndexSuffix), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = testManager(t, dir)
	p = openPart(t, m, Config{})
	wantLSO(t, p, 13)
	wantAborted(t, p, 0, 100, all)

	// The open transaction ends; a truncation below the last abort
	// reopens producer 1's transaction.
	mustAppend(t, p, txnMarker(t, 3, 0, batch.ControlCommit, now)) // 14
	wantLSO(t, p, 15)
	if err := p.TruncateTo(11); err != nil {
		t.Fatal(err)
	}
	wantLSO(t, p, 9)
	wantAborted(t, p, 0, 100, []AbortedTxn{first})
	if st := p.OngoingTransactions(); !reflect.DeepEqual(st, map[int64]int64{1: 9}) {
		t.Fatalf("ongoing %v", st)
	}
}

func TestTxnIndexCodec(t *testing.T) {
	es := []AbortedTxn{{1, 10, 20, 15}, {2, 5, 30, 31}}
	b := encodeTxnIndex(10, es)
	got, err := decodeTxnIndex(b, 10)
	if err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("decode = %+v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"short":    b[:10],
		"trailing": b[:len(b)-1],
		"magic":    append([]byte("XXXX"), b[4:]...),
	} {
		if _, err := decodeTxnIndex(bad, 10); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := decodeTxnIndex(b, 11); err == nil {
		t.Error("wrong base: no error")
	}
}
