package log

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

var compactCfg = Config{CleanupPolicy: CleanupCompact, SegmentBytes: 64 << 10, IndexIntervalBytes: 256}

type kv struct {
	key, value string
	tombstone  bool
}

// keyedBatch builds a batch of records with keys and values (tombstones
// have a null value), compressed with codec.
func keyedBatch(t testing.TB, h batch.Header, codec int8, ts int64, kvs ...kv) []byte {
	t.Helper()
	recs := make([]batch.Record, len(kvs))
	for i, e := range kvs {
		recs[i] = batch.Record{Offset: int64(i), Timestamp: ts + int64(i), Key: []byte(e.key)}
		if !e.tombstone {
			recs[i].Value = []byte(e.value)
		}
	}
	h.BaseOffset = 0
	h.LastOffsetDelta = 0
	b, err := batch.Build(h, recs, codec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var noProducer = batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}

// logRecord is one record as read back, with its batch header.
type logRecord struct {
	h batch.Header
	r batch.Record
}

// readLog decodes every batch of the partition from the log start.
func readLog(t testing.TB, p *Partition) (hdrs []batch.Header, recs []logRecord) {
	t.Helper()
	res, err := p.Read(p.LogStartOffset(), 1<<40, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	b := readRegions(t, res)
	it := batch.NewIter(b)
	for it.Next() {
		h, rs, err := batch.DecodeRecords(it.Batch())
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
		for _, r := range rs {
			recs = append(recs, logRecord{h, r})
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return hdrs, recs
}

// latest returns key -> (offset, value, tombstone) of the last record per key.
func latest(recs []logRecord) map[string]logRecord {
	m := make(map[string]logRecord)
	for _, r := range recs {
		if r.h.IsControl() || r.r.Key == nil {
			continue
		}
		m[string(r.r.Key)] = r
	}
	return m
}

func activeBytes(t testing.TB, p *Partition) []byte {
	t.Helper()
	s := p.active()
	b := make([]byte, s.size.Load())
	if _, err := s.log.ReadAt(b, 0); err != nil && len(b) > 0 {
		t.Fatal(err)
	}
	return b
}

// fillKeys appends rounds of overwrites of nKeys keys, rolling a segment
// every few batches, and leaves some batches in the active segment.
func fillKeys(t testing.TB, p *Partition, codec int8, nKeys, rounds int, rng *rand.Rand) {
	t.Helper()
	for round := range rounds {
		var kvs []kv
		for k := range nKeys {
			kvs = append(kvs, kv{key: fmt.Sprintf("key-%03d", k), value: fmt.Sprintf("v%d-%d-%s", round, k, bytes.Repeat([]byte("x"), rng.IntN(50)))})
		}
		rng.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
		for len(kvs) > 0 {
			n := min(len(kvs), 1+rng.IntN(8))
			mustAppend(t, p, keyedBatch(t, noProducer, codec, int64(1000+round), kvs[:n]...))
			kvs = kvs[n:]
		}
		if round%3 == 2 {
			if err := p.Roll(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCleanerKeepsLatestPerKey(t *testing.T) {
	for _, codec := range []int8{batch.CodecNone, batch.CodecGzip, batch.CodecSnappy, batch.CodecLz4, batch.CodecZstd} {
		t.Run(batch.CodecName(codec), func(t *testing.T) {
			m := testManager(t, "")
			p := openPart(t, m, compactCfg)
			rng := rand.New(rand.NewPCG(1, uint64(codec)))
			fillKeys(t, p, codec, 40, 20, rng)
			// One more round that stays in the active segment.
			mustAppend(t, p, keyedBatch(t, noProducer, codec, 5000, kv{key: "key-000", value: "in-active"}, kv{key: "key-001", value: "in-active"}))

			_, before := readLog(t, p)
			want := latest(before)
			leo, active, activeB := p.LogEndOffset(), p.active(), activeBytes(t, p)
			segsBefore := p.NumSegments()

			st, err := p.Clean()
			if err != nil {
				t.Fatal(err)
			}
			if !st.Cleaned || st.RecordsKept >= st.RecordsRead {
				t.Fatalf("stats %+v", st)
			}
			hdrs, after := readLog(t, p)
			if p.LogEndOffset() != leo {
				t.Fatalf("log end %d, was %d", p.LogEndOffset(), leo)
			}
			if p.active() != active || !bytes.Equal(activeBytes(t, p), activeB) {
				t.Fatal("active segment changed")
			}
			if p.NumSegments() >= segsBefore {
				t.Fatalf("%d segments, was %d: small segments not grouped", p.NumSegments(), segsBefore)
			}
			got := latest(after)
			if len(got) != len(want) {
				t.Fatalf("%d keys, want %d", len(got), len(want))
			}
			for k, w := range want {
				g := got[k]
				if g.r.Offset != w.r.Offset || !bytes.Equal(g.r.Value, w.r.Value) || g.r.Timestamp != w.r.Timestamp {
					t.Fatalf("key %s: got offset %d %q, want offset %d %q", k, g.r.Offset, g.r.Value, w.r.Offset, w.r.Value)
				}
			}
			// In the cleaned segments each key appears once; the active
			// segment keeps its duplicates.
			seen := map[string]int{}
			for _, r := range after {
				if r.r.Offset < active.base {
					seen[string(r.r.Key)]++
				}
			}
			for k, n := range seen {
				if n != 1 {
					t.Fatalf("key %s appears %d times in cleaned segments", k, n)
				}
			}
			// Offsets increase and each batch keeps its codec.
			prev := int64(-1)
			for _, r := range after {
				if r.r.Offset <= prev {
					t.Fatalf("offset %d after %d", r.r.Offset, prev)
				}
				prev = r.r.Offset
			}
			for _, h := range hdrs {
				if h.NumRecords > 0 && h.Compression() != codec {
					t.Fatalf("batch at %d has codec %d, want %d", h.BaseOffset, h.Compression(), codec)
				}
			}
			// Reopen: the cleaned log recovers and reads the same.
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			m2 := testManager(t, m.Dir())
			p2 := openPart(t, m2, compactCfg)
			_, again := readLog(t, p2)
			if len(again) != len(after) {
				t.Fatalf("after reopen %d records, want %d", len(again), len(after))
			}
			// A second pass has nothing left to remove.
			st, err = p2.Clean()
			if err != nil {
				t.Fatal(err)
			}
			_, again = readLog(t, p2)
			if len(again) != len(after) {
				t.Fatalf("second pass: %d records, want %d", len(again), len(after))
			}
		})
	}
}

func TestCleanerTombstones(t *testing.T) {
	m := testManager(t, "")
	cfg := compactCfg
	cfg.DeleteRetentionMs = 60_000
	p := openPart(t, m, cfg)
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 1, kv{key: "a", value: "1"}, kv{key: "b", value: "1"}))
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 2, kv{key: "a", tombstone: true}, kv{key: "c", value: "1"}))
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecLz4, 3, kv{key: "b", tombstone: true}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 4, kv{key: "d", value: "1"}))

	t0 := time.UnixMilli(1_000_000_000)
	state := func() map[string]logRecord {
		_, recs := readLog(t, p)
		return latest(recs)
	}
	clean := func(at time.Time) {
		t.Helper()
		if _, err := p.clean(at, cleanOptions{force: true}); err != nil {
			t.Fatal(err)
		}
	}
	clean(t0)
	s := state()
	if r, ok := s["a"]; !ok || r.r.Value != nil || !r.h.HasDeleteHorizon() || r.h.BaseTimestamp != t0.UnixMilli()+60_000 {
		t.Fatalf("tombstone a after first pass: %+v (present %v)", r, ok)
	}
	if r, ok := s["b"]; !ok || r.r.Value != nil || r.h.Compression() != batch.CodecLz4 {
		t.Fatalf("tombstone b after first pass: %+v", r)
	}
	if r := s["a"]; r.r.Timestamp != 2 {
		t.Fatalf("tombstone timestamp %d, want 2 (kept through the delete horizon)", r.r.Timestamp)
	}
	if ck := p.loadCleanerCheckpoint(); ck.horizon != t0.UnixMilli()+60_000 {
		t.Fatalf("checkpoint horizon %d", ck.horizon)
	}
	clean(t0.Add(59 * time.Second))
	if s := state(); s["a"].r.Key == nil || s["b"].r.Key == nil {
		t.Fatal("tombstones removed before delete.retention.ms")
	}
	clean(t0.Add(60 * time.Second))
	s = state()
	if _, ok := s["a"]; ok {
		t.Fatal("tombstone a kept after delete.retention.ms")
	}
	if _, ok := s["b"]; ok {
		t.Fatal("tombstone b kept after delete.retention.ms")
	}
	if string(s["c"].r.Value) != "1" || string(s["d"].r.Value) != "1" {
		t.Fatalf("live keys lost: %+v", s)
	}
	if ck := p.loadCleanerCheckpoint(); ck.horizon != -1 {
		t.Fatalf("checkpoint horizon %d after removal", ck.horizon)
	}
}

// TestCleanerDueByHorizon: with no dirty data at all, a passed delete
// horizon alone makes the round clean the partition.
func TestCleanerDueByHorizon(t *testing.T) {
	var nowMs atomic.Int64
	nowMs.Store(5_000_000)
	m := testManager(t, "", func(c *ManagerConfig) { c.Now = func() time.Time { return time.UnixMilli(nowMs.Load()) } })
	cfg := compactCfg
	cfg.DeleteRetentionMs = 1000
	p := openPart(t, m, cfg)
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 1, kv{key: "a", value: "1"}, kv{key: "a", tombstone: true}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	if got := m.RunCleaner(); !got[p.tp].Cleaned {
		t.Fatalf("first round: %+v", got)
	}
	if got := m.RunCleaner(); got[p.tp].Cleaned {
		t.Fatalf("round before the horizon cleaned: %+v", got)
	}
	nowMs.Add(1000)
	if got := m.RunCleaner(); !got[p.tp].Cleaned || got[p.tp].TombstonesGone != 1 {
		t.Fatalf("round after the horizon: %+v", got)
	}
	if _, recs := readLog(t, p); len(recs) != 0 {
		t.Fatalf("%d records left", len(recs))
	}
}

func TestCleanerDirtyRatio(t *testing.T) {
	m := testManager(t, "")
	cfg := compactCfg
	cfg.MinCleanableDirtyRatio = 0.9
	p := openPart(t, m, cfg)
	rng := rand.New(rand.NewPCG(3, 3))
	fillKeys(t, p, batch.CodecNone, 20, 6, rng)
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	if got := m.RunCleaner(); !got[p.tp].Cleaned { // never cleaned: all dirty
		t.Fatalf("first round did not clean: %+v", got)
	}
	// A little new data is far below a 0.9 ratio.
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 9, kv{key: "key-000", value: "new"}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	if got := m.RunCleaner(); got[p.tp].Cleaned {
		t.Fatalf("cleaned below the dirty ratio: %+v", got[p.tp])
	}
	// The delete policy alone is never compacted.
	p2, err := m.Open("plain", 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p2.Clean(); err != nil || st.Cleaned {
		t.Fatalf("delete-policy partition cleaned: %+v %v", st, err)
	}
}

func TestCleanerMinCompactionLag(t *testing.T) {
	m := testManager(t, "")
	cfg := compactCfg
	cfg.MinCompactionLagMs = 10_000
	p := openPart(t, m, cfg)
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 1000, kv{key: "a", value: "old"}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 50_000, kv{key: "a", value: "new"}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	// At 55 s the second segment is younger than the lag: "new" is not in
	// the offset map, so "old" stays.
	if _, err := p.clean(time.UnixMilli(55_000), cleanOptions{force: true}); err != nil {
		t.Fatal(err)
	}
	if _, recs := readLog(t, p); len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if _, err := p.clean(time.UnixMilli(61_000), cleanOptions{force: true}); err != nil {
		t.Fatal(err)
	}
	if _, recs := readLog(t, p); len(recs) != 1 || string(recs[0].r.Value) != "new" {
		t.Fatalf("after the lag: %+v", recs)
	}
}

func txnHeader(pid int64, epoch int16, seq int32) batch.Header {
	return batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Attributes: batch.AttrTransactional}
}

func marker(t testing.TB, pid int64, epoch int16, typ batch.ControlType) []byte {
	t.Helper()
	b, err := batch.ControlBatch(0, pid, epoch, batch.ControlRecord{Type: typ, CoordinatorEpoch: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCleanerTransactions(t *testing.T) {
	m := testManager(t, "")
	cfg := compactCfg
	cfg.DeleteRetentionMs = 1000
	p := openPart(t, m, cfg)
	// Producer 7: a committed transaction, then an aborted one that
	// rewrote "a", then an idempotent (non-transactional) producer 9
	// overwriting "b", then an open transaction of producer 8.
	mustAppend(t, p, keyedBatch(t, txnHeader(7, 1, 0), batch.CodecZstd, 1, kv{key: "a", value: "committed"}, kv{key: "b", value: "committed"}))
	mustAppend(t, p, marker(t, 7, 1, batch.ControlCommit))
	mustAppend(t, p, keyedBatch(t, txnHeader(7, 1, 2), batch.CodecNone, 2, kv{key: "a", value: "aborted"}))
	mustAppend(t, p, marker(t, 7, 1, batch.ControlAbort))
	mustAppend(t, p, keyedBatch(t, batch.Header{ProducerID: 9, ProducerEpoch: 0, BaseSequence: 0}, batch.CodecNone, 3, kv{key: "b", value: "p9-1"}))
	mustAppend(t, p, keyedBatch(t, batch.Header{ProducerID: 9, ProducerEpoch: 0, BaseSequence: 1}, batch.CodecNone, 3, kv{key: "b", value: "p9-2"}))
	openAt := p.LogEndOffset()
	mustAppend(t, p, keyedBatch(t, txnHeader(8, 0, 0), batch.CodecNone, 4, kv{key: "c", value: "open"}))
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 5, kv{key: "c", value: "after-open"}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_000_000)
	st, err := p.clean(t0, cleanOptions{force: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.EndOffset > openAt {
		t.Fatalf("offset map went to %d, past the open transaction at %d", st.EndOffset, openAt)
	}
	hdrs, recs := readLog(t, p)
	lat := latest(recs)
	if v := string(lat["a"].r.Value); v != "committed" {
		t.Fatalf("a = %q: the aborted write must neither survive nor shadow the committed one", v)
	}
	if v := string(lat["b"].r.Value); v != "p9-2" {
		t.Fatalf("b = %q", v)
	}
	if v := string(lat["c"].r.Value); v != "after-open" {
		t.Fatalf("c = %q", v)
	}
	var markers, p9batches int
	for _, h := range hdrs {
		if h.IsControl() {
			markers++
			if !h.IsTransactional() || h.ProducerID != 7 {
				t.Fatalf("marker header %+v", h)
			}
		}
		if h.ProducerID == 9 {
			p9batches++
			if h.NumRecords == 1 && h.BaseSequence != 1 {
				t.Fatalf("producer 9 batch %+v", h)
			}
		}
		if h.ProducerID == 7 && !h.IsControl() && (!h.IsTransactional() || h.ProducerEpoch != 1) {
			t.Fatalf("producer 7 batch lost its attributes: %+v", h)
		}
	}
	if markers != 2 {
		t.Fatalf("%d markers kept, want 2", markers)
	}
	// The open transaction's record is still there (above the bound).
	found := false
	for _, r := range recs {
		if r.h.ProducerID == 8 && string(r.r.Value) == "open" {
			found = true
		}
	}
	if !found {
		t.Fatal("open transaction data was removed")
	}
	// The first batch of producer 9 lost its record; the last batch of
	// each producer stays. Producer 7's committed batch keeps "a".
	for _, r := range recs {
		if r.h.ProducerID == 7 && string(r.r.Value) == "aborted" {
			t.Fatal("aborted data kept")
		}
	}
	// Markers of transactions with no data left go after their horizon,
	// except the last entry of producer 7, which keeps its epoch alive.
	if _, err := p.clean(t0.Add(time.Hour), cleanOptions{force: true}); err != nil {
		t.Fatal(err)
	}
	hdrs, _ = readLog(t, p)
	markers = 0
	for _, h := range hdrs {
		if h.IsControl() {
			markers++
		}
	}
	if markers < 1 {
		t.Fatal("producer 7's last marker batch was removed")
	}
}

// TestCleanerCrashDuringSwap stops the swap after each step, opens a copy
// of the directory as a crash would leave it, and checks that nothing is
// lost and the log validates; then the original finishes normally.
func TestCleanerCrashDuringSwap(t *testing.T) {
	for step := swapStepWritten; step < swapSteps; step++ {
		t.Run(fmt.Sprintf("after-step-%d", step), func(t *testing.T) {
			m := testManager(t, "")
			p := openPart(t, m, compactCfg)
			rng := rand.New(rand.NewPCG(5, uint64(step)))
			fillKeys(t, p, batch.CodecSnappy, 30, 12, rng)
			mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 9999, kv{key: "key-000", value: "active"}))
			_, before := readLog(t, p)
			want := latest(before)
			leo := p.LogEndOffset()
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}

			_, err := p.clean(p.now(), cleanOptions{force: true, crashAfter: step})
			if !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("err %v, want the simulated crash", err)
			}
			img := crashImage(t, m.Dir())
			m2 := testManager(t, img)
			p2 := openPart(t, m2, compactCfg)
			if p2.LogEndOffset() != leo {
				t.Fatalf("log end %d after crash, want %d", p2.LogEndOffset(), leo)
			}
			_, got := readLog(t, p2)
			checkLatest(t, latest(got), want)
			for _, e := range dirEntries(t, partDir(img)) {
				if filepath.Ext(e) == swapSuffix || filepath.Ext(e) == cleanedSuffix {
					t.Fatalf("leftover %s after recovery", e)
				}
			}
			// The recovered log cleans again, to the same content.
			if _, err := p2.Clean(); err != nil {
				t.Fatal(err)
			}
			_, got = readLog(t, p2)
			checkLatest(t, latest(got), want)
		})
	}
}

func checkLatest(t testing.TB, got, want map[string]logRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d keys, want %d", len(got), len(want))
	}
	for k, w := range want {
		if g := got[k]; g.r.Offset != w.r.Offset || !bytes.Equal(g.r.Value, w.r.Value) {
			t.Fatalf("key %s: offset %d %q, want %d %q", k, g.r.Offset, g.r.Value, w.r.Offset, w.r.Value)
		}
	}
}

func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestCleanerAbandonsChangedSegments: retention deleting a segment while a
// pass runs makes the swap give up rather than resurrect it.
func TestCleanerAbandonsChangedSegments(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, compactCfg)
	rng := rand.New(rand.NewPCG(6, 6))
	fillKeys(t, p, batch.CodecNone, 10, 9, rng)
	segs := p.segments()
	group := segs[:2]
	sizes := []int64{group[0].size.Load(), group[1].size.Load()}
	ns, err := createCleanedSegment(p.dir, group[0].base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecordsBefore(segs[1].base); err != nil {
		t.Fatal(err)
	}
	committed, err := p.swapIn(group, sizes, ns, &cleanOptions{})
	if committed || !errors.Is(err, errCleanAborted) {
		t.Fatalf("committed %v, err %v", committed, err)
	}
	ns.close()
}

func TestCleanerStopsOnClose(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, compactCfg)
	rng := rand.New(rand.NewPCG(7, 7))
	fillKeys(t, p, batch.CodecNone, 10, 6, rng)
	stop := make(chan struct{})
	close(stop)
	if _, err := p.clean(p.now(), cleanOptions{force: true, stop: stop}); !errors.Is(err, errCleanAborted) {
		t.Fatalf("err %v", err)
	}
	for _, e := range dirEntries(t, p.dir) {
		if filepath.Ext(e) == cleanedSuffix || filepath.Ext(e) == swapSuffix {
			t.Fatalf("leftover %s", e)
		}
	}
}

// BenchmarkCleaner measures cleaning throughput (bytes of log read per
// second, i.e. compressed bytes for zstd): 8 MiB of 1 KiB values (half
// random, half repeated: about 2:1 compressible) over 2,000 keys in
// 16-record batches, of which about 1/4 survive.
func BenchmarkCleaner(b *testing.B) {
	for _, codec := range []int8{batch.CodecNone, batch.CodecZstd} {
		b.Run(batch.CodecName(codec), func(b *testing.B) {
			vrng := rand.New(rand.NewPCG(2, 2))
			value := bytes.Repeat([]byte("0123456789abcdef"), 64)
			var total int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m := testManager(b, "")
				p, err := m.Open(fmt.Sprintf("bench%d", i), 0, Config{CleanupPolicy: CleanupCompact, SegmentBytes: 1 << 20})
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 1))
				for written := 0; written < 8<<20; {
					kvs := make([]kv, 16)
					for j := range kvs {
						for k := range 512 {
							value[k] = byte(vrng.Uint32())
						}
						kvs[j] = kv{key: fmt.Sprintf("key-%d", rng.IntN(2000)), value: string(value)}
					}
					bb := keyedBatch(b, noProducer, codec, 1, kvs...)
					mustAppend(b, p, bb)
					written += 16 * len(value)
				}
				if err := p.Roll(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				st, err := p.Clean()
				if err != nil {
					b.Fatal(err)
				}
				total += st.BytesRead
				b.StopTimer()
				if err := m.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.SetBytes(total / int64(b.N))
		})
	}
}

// TestCleanerCopiesSurvivingBatches: a batch none of whose records is
// superseded is copied byte for byte (no recompression).
func TestCleanerCopiesSurvivingBatches(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, compactCfg)
	mustAppend(t, p, keyedBatch(t, batch.Header{ProducerID: 3, ProducerEpoch: 1, BaseSequence: 5}, batch.CodecGzip, 1, kv{key: "x", value: "1"}, kv{key: "y", value: "1"}))
	mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecGzip, 2, kv{key: "x", value: "2"}, kv{key: "z", value: "2"}))
	if err := p.Roll(); err != nil {
		t.Fatal(err)
	}
	second := readBatchBytes(t, p, 2)
	if _, err := p.Clean(); err != nil {
		t.Fatal(err)
	}
	if got := readBatchBytes(t, p, 2); !bytes.Equal(got, second) {
		t.Fatal("untouched batch was rewritten")
	}
	// The first batch lost "x" and was rebuilt: same base offset, last
	// offset, producer fields and codec.
	first := readBatchBytes(t, p, 0)
	h, recs, err := batch.DecodeRecords(first)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Key) != "y" || recs[0].Offset != 1 || h.BaseOffset != 0 || h.LastOffset() != 1 ||
		h.ProducerID != 3 || h.ProducerEpoch != 1 || h.BaseSequence != 5 || h.Compression() != batch.CodecGzip {
		t.Fatalf("rebuilt batch %+v %+v", h, recs)
	}
}
