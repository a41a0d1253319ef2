package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

func wantHW(t *testing.T, p *Partition, want int64) {
	t.Helper()
	if got := p.HighWatermark(); got != want {
		t.Fatalf("high watermark %d, want %d (log end %d)", got, want, p.LogEndOffset())
	}
}

func TestHighWatermarkDefaultsToLogEnd(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{})
	now := time.Now().UnixMilli()
	mustAppend(t, p, testBatch(5, 10, now))
	wantHW(t, p, 5)
	mustAppend(t, p, txnBatch(2, 3, 0, 0, now))
	if hw, lso := p.FetchBounds(); hw != 7 || lso != 5 {
		t.Fatalf("FetchBounds = %d, %d; want 7, 5", hw, lso)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, highWatermarkFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s written without replication: %v", highWatermarkFile, err)
	}
	p = openPart(t, testManager(t, dir), Config{})
	mustAppend(t, p, testBatch(1, 10, now))
	wantHW(t, p, 8)
}

func TestHighWatermark(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 2000})
	now := time.Now().UnixMilli()
	for range 20 {
		mustAppend(t, p, testBatch(5, 50, now)) // offsets 0..99
	}
	if got := p.SetHighWatermark(40); got != 40 {
		t.Fatalf("SetHighWatermark(40) = %d", got)
	}
	mustAppend(t, p, testBatch(5, 50, now)) // 100..104: above the high watermark
	wantHW(t, p, 40)
	if got := p.SetHighWatermark(30); got != 40 {
		t.Fatalf("lower SetHighWatermark moved it to %d", got)
	}
	if got := p.SetHighWatermark(500); got != 105 {
		t.Fatalf("SetHighWatermark beyond the log end = %d, want 105", got)
	}
	p.SetHighWatermark(60)
	// Consumers read up to the high watermark.
	r, err := p.Read(0, 1<<30, p.HighWatermark(), false)
	if err != nil {
		t.Fatal(err)
	}
	hs := headersOf(t, readRegions(t, r))
	if last := hs[len(hs)-1].LastOffset(); last >= 105 {
		t.Fatalf("read to the high watermark returned offset %d", last)
	}
	// An open transaction below the high watermark bounds read_committed;
	// above it, the high watermark does.
	mustAppend(t, p, txnBatch(2, 3, 0, 0, now)) // 105..106
	if hw, lso := p.FetchBounds(); hw != 105 || lso != 105 {
		t.Fatalf("FetchBounds = %d, %d; want 105, 105", hw, lso)
	}
	p.SetHighWatermark(107)
	if hw, lso := p.FetchBounds(); hw != 107 || lso != 105 {
		t.Fatalf("FetchBounds = %d, %d; want 107, 105", hw, lso)
	}
	p.SetHighWatermark(0) // never moved back
	wantHW(t, p, 107)
	// Checkpointed and restored: clean close, then a crash image.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = testManager(t, dir)
	p = openPart(t, m, Config{SegmentBytes: 2000})
	wantHW(t, p, 107)
	mustAppend(t, p, testBatch(3, 50, now))
	wantHW(t, p, 107)
	// DeleteRecords stops at the high watermark, as Kafka's does.
	if _, err := p.DeleteRecordsBefore(108); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("DeleteRecordsBefore above the high watermark: %v", err)
	}
	// Truncation lowers it; the lower value is checkpointed at once.
	if err := p.TruncateTo(50); err != nil {
		t.Fatal(err)
	}
	wantHW(t, p, 50)
	p2 := openPart(t, testManager(t, crashImage(t, dir)), Config{SegmentBytes: 2000})
	wantHW(t, p2, 50)
	if !p2.RecoveredUnclean() {
		t.Fatal("crash image not marked unclean")
	}
	// A checkpoint above the recovered log end is clamped to it.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	ck := fmt.Sprintf("%d\n1\nt 0 1000\n", checkpointVersion)
	if err := os.WriteFile(filepath.Join(dir, highWatermarkFile), []byte(ck), 0o644); err != nil {
		t.Fatal(err)
	}
	p = openPart(t, testManager(t, dir), Config{SegmentBytes: 2000})
	wantHW(t, p, 50)
	if p.RecoveredUnclean() {
		t.Fatal("clean reopen marked unclean")
	}
	mustAppend(t, p, testBatch(3, 50, now))
	wantHW(t, p, 50)
}

func TestRecoveredUnclean(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{})
	if p.RecoveredUnclean() {
		t.Fatal("new log marked unclean")
	}
	mustAppend(t, p, testBatch(3, 10, 1))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = testManager(t, dir)
	p = openPart(t, m, Config{})
	if p.RecoveredUnclean() {
		t.Fatal("clean reopen marked unclean")
	}
	mustAppend(t, p, testBatch(3, 10, 1))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	m.abandon() // no clean-shutdown marker
	p = openPart(t, testManager(t, dir), Config{})
	if !p.RecoveredUnclean() || p.LogEndOffset() != 6 {
		t.Fatalf("unclean reopen: unclean %v, log end %d", p.RecoveredUnclean(), p.LogEndOffset())
	}
}

// The cleaner never cleans at or above the high watermark: a record a
// follower truncation could still remove must not shadow an older value.
func TestCleanerStopsAtHighWatermark(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, compactCfg)
	round := func(r int) {
		for k := range 10 {
			mustAppend(t, p, keyedBatch(t, noProducer, batch.CodecNone, 1000, kv{key: fmt.Sprintf("k%d", k), value: fmt.Sprintf("v%d", r)}))
		}
		if err := p.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	round(0) // 0..9
	round(1) // 10..19
	round(2) // 20..29
	p.SetHighWatermark(10)
	if _, err := p.Clean(); err != nil {
		t.Fatal(err)
	}
	_, recs := readLog(t, p)
	if len(recs) != 30 {
		t.Fatalf("cleaning below a high watermark of 10 left %d of 30 records", len(recs))
	}
	p.SetHighWatermark(25)
	if _, err := p.Clean(); err != nil {
		t.Fatal(err)
	}
	_, recs = readLog(t, p)
	kept := map[int64]bool{}
	for _, r := range recs {
		kept[r.r.Offset] = true
	}
	for off := int64(0); off < 10; off++ {
		if kept[off] {
			t.Fatalf("record %d (round 0) survived: its key was rewritten below the high watermark", off)
		}
	}
	// Keys 5..9 were rewritten at 25..29, at or above the high watermark:
	// their round-1 values (15..19) must stay.
	for off := int64(15); off < 20; off++ {
		if !kept[off] {
			t.Fatalf("record %d was removed, but its key's newer value (offset %d) is above the high watermark", off, off+10)
		}
	}
}

// The high watermark is checkpointed every HighWatermarkCheckpointInterval
// (not only with the 60 s checkpoints), so a crash loses little of it.
func TestHighWatermarkCheckpointInterval(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir, func(c *ManagerConfig) {
		c.CheckpointInterval = time.Hour
		c.HighWatermarkCheckpointInterval = 5 * time.Millisecond
	})
	p := openPart(t, m, Config{})
	mustAppend(t, p, testBatch(50, 10, 1))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	p.SetHighWatermark(40)
	path := filepath.Join(dir, highWatermarkFile)
	eventually(t, "high-watermark checkpoint", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), "t 0 40\n")
	})
	p2 := openPart(t, testManager(t, crashImage(t, dir)), Config{})
	wantHW(t, p2, 40)
}
