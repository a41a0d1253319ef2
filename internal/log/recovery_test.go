package log

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// crashImage copies a data directory as it is now, as a crash (SIGKILL)
// would leave it: the page cache holds every completed write.
func crashImage(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		// A file may vanish while the image is taken (the flusher renames
		// a producer-state snapshot's temp file): skip it, as a crash at
		// that moment would have.
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// fillLog appends n batches of varying size and returns their stored bytes.
func fillLog(t testing.TB, p *Partition, n int, rng *rand.Rand) [][]byte {
	var out [][]byte
	for i := range n {
		b := testBatch(1+rng.IntN(4), 10+rng.IntN(200), int64(1000+i))
		mustAppend(t, p, b)
		out = append(out, b)
	}
	return out
}

func partDir(dir string) string { return filepath.Join(dir, "t-0") }

func checkLog(t testing.TB, p *Partition, want [][]byte) {
	t.Helper()
	r, err := p.Read(p.LogStartOffset(), 1<<30, p.LogEndOffset(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := readRegions(t, r)
	if !bytes.Equal(got, bytes.Join(want, nil)) {
		t.Fatalf("log holds %d bytes, want %d (%d batches)", len(got), len(bytes.Join(want, nil)), len(want))
	}
	var next int64
	if len(want) > 0 {
		h, _ := batch.ParseHeader(want[len(want)-1])
		next = h.NextOffset()
	}
	if p.LogEndOffset() != next {
		t.Fatalf("log end %d, want %d", p.LogEndOffset(), next)
	}
}

func TestCleanReopen(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 2000, IndexIntervalBytes: 100})
	want := fillLog(t, p, 60, rand.New(rand.NewPCG(1, 2)))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
		t.Fatal("no clean-shutdown marker")
	}
	m = testManager(t, dir)
	if !m.WasCleanShutdown() {
		t.Fatal("not clean")
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("marker not removed on open")
	}
	p = openPart(t, m, Config{SegmentBytes: 2000, IndexIntervalBytes: 100})
	checkLog(t, p, want)
	if p.RecoveryPoint() != p.LogEndOffset() {
		t.Fatalf("recovery point %d", p.RecoveryPoint())
	}
	// Appending continues at the right offset with the right indexes.
	more := fillLog(t, p, 10, rand.New(rand.NewPCG(3, 4)))
	checkLog(t, p, append(want, more...))
	tps, err := m.OnDisk()
	if err != nil || len(tps) != 1 || tps[0] != (TopicPartition{"t", 0}) {
		t.Fatalf("OnDisk %v %v", tps, err)
	}
}

func TestUncleanReopen(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir, func(c *ManagerConfig) {})
	p := openPart(t, m, Config{SegmentBytes: 2000, IndexIntervalBytes: 100})
	want := fillLog(t, p, 60, rand.New(rand.NewPCG(1, 2)))
	if err := m.writeCheckpoints(); err != nil {
		t.Fatal(err)
	}
	img := crashImage(t, dir)
	m2 := testManager(t, img)
	if m2.WasCleanShutdown() {
		t.Fatal("clean")
	}
	p2 := openPart(t, m2, Config{SegmentBytes: 2000, IndexIntervalBytes: 100})
	checkLog(t, p2, want)
	if p2.DurableOffset() != p2.LogEndOffset() {
		t.Fatalf("recovered data not flushed: durable %d", p2.DurableOffset())
	}
}

func TestRecoveryTornTailAndFlippedBytes(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{IndexIntervalBytes: 100})
	want := fillLog(t, p, 20, rand.New(rand.NewPCG(5, 6)))
	active := p.active().logPath()
	total := len(bytes.Join(want, nil))
	lastStart := total - len(want[len(want)-1])

	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		keep   int // batches kept
	}{
		{"flip in last batch payload", func(t *testing.T, path string) { flipByte(t, path, int64(total-3)) }, 19},
		{"flip in last batch header", func(t *testing.T, path string) { flipByte(t, path, int64(lastStart+9)) }, 19},
		{"cut mid last batch", func(t *testing.T, path string) { truncFile(t, path, int64(total-10)) }, 19},
		{"cut mid last header", func(t *testing.T, path string) { truncFile(t, path, int64(lastStart+30)) }, 19},
		{"zeros appended", func(t *testing.T, path string) { appendFile(t, path, make([]byte, 4096)) }, 20},
		{"garbage appended", func(t *testing.T, path string) { appendFile(t, path, []byte("not a batch at all, definitely not")) }, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := crashImage(t, dir)
			rel, _ := filepath.Rel(dir, active)
			tc.damage(t, filepath.Join(img, rel))
			m2 := testManager(t, img)
			p2 := openPart(t, m2, Config{IndexIntervalBytes: 100})
			checkLog(t, p2, want[:tc.keep])
			// And it keeps working.
			b := testBatch(1, 5, 1)
			mustAppend(t, p2, b)
			checkLog(t, p2, append(append([][]byte(nil), want[:tc.keep]...), b))
		})
	}
}

func TestRecoveryMidFileCorruption(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 3000, IndexIntervalBytes: 100})
	want := fillLog(t, p, 60, rand.New(rand.NewPCG(7, 8)))
	segs := p.segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	t.Run("active segment", func(t *testing.T) {
		img := crashImage(t, dir)
		flipByte(t, filepath.Join(partDir(img), filepath.Base(segs[len(segs)-1].logPath())), 70)
		m2 := testManager(t, img)
		_, err := m2.Open("t", 0, Config{})
		if !errors.Is(err, ErrCorruption) || !IsCorruption(err) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("sealed segment after recovery point", func(t *testing.T) {
		img := crashImage(t, dir) // no checkpoint written: everything is scanned
		flipByte(t, filepath.Join(partDir(img), filepath.Base(segs[0].logPath())), 70)
		m2 := testManager(t, img)
		if _, err := m2.Open("t", 0, Config{}); !errors.Is(err, ErrCorruption) {
			t.Fatalf("got %v", err)
		}
	})
	_ = want
}

func TestIndexDamageRebuilt(t *testing.T) {
	for _, clean := range []bool{true, false} {
		for _, dmg := range []string{"delete", "truncate", "garbage", "zero-length", "bad-entry"} {
			t.Run(map[bool]string{true: "clean", false: "unclean"}[clean]+"/"+dmg, func(t *testing.T) {
				dir := t.TempDir()
				m := testManager(t, dir)
				p := openPart(t, m, Config{SegmentBytes: 3000, IndexIntervalBytes: 100})
				want := fillLog(t, p, 60, rand.New(rand.NewPCG(9, 10)))
				var img string
				if clean {
					if err := m.Close(); err != nil {
						t.Fatal(err)
					}
					img = dir
				} else {
					img = crashImage(t, dir)
				}
				ents, _ := os.ReadDir(partDir(img))
				for _, e := range ents {
					path := filepath.Join(partDir(img), e.Name())
					if !strings.HasSuffix(path, indexSuffix) && !strings.HasSuffix(path, timeIndexSuffix) {
						continue
					}
					switch dmg {
					case "delete":
						os.Remove(path)
					case "truncate":
						st, _ := os.Stat(path)
						truncFile(t, path, st.Size()-3)
					case "garbage":
						appendFile(t, path, []byte("garbage!garbage!garbage!"))
					case "zero-length":
						truncFile(t, path, 0)
					case "bad-entry":
						st, _ := os.Stat(path)
						if st.Size() > indexHeaderSize+8 {
							flipByte(t, path, indexHeaderSize+5)
						}
					}
				}
				m2 := testManager(t, img)
				p2 := openPart(t, m2, Config{SegmentBytes: 3000, IndexIntervalBytes: 100})
				checkLog(t, p2, want)
				for off := range p2.LogEndOffset() {
					h, err := batch.Validate(readBatchBytes(t, p2, off))
					if err != nil || h.BaseOffset > off || h.LastOffset() < off {
						t.Fatalf("offset %d: %v %+v", off, err, h)
					}
				}
				if off, _, ok, err := p2.OffsetForTimestamp(1030); err != nil || !ok || off == 0 {
					t.Fatalf("offset for time: %d %v %v", off, ok, err)
				}
			})
		}
	}
}

func TestHalfWrittenCheckpoints(t *testing.T) {
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{SegmentBytes: 3000})
	want := fillLog(t, p, 40, rand.New(rand.NewPCG(11, 12)))
	if err := p.AssignEpochStart(3, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{recoveryPointFile, logStartFile, filepath.Join("t-0", leaderEpochFile)} {
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		truncFile(t, path, st.Size()/2)
	}
	os.Remove(filepath.Join(dir, cleanShutdownFile))
	m2 := testManager(t, dir)
	p2 := openPart(t, m2, Config{SegmentBytes: 3000})
	checkLog(t, p2, want)
	if e, off := p2.EndOffsetForEpoch(3); e != -1 || off != -1 {
		t.Fatalf("epoch cache survived a damaged checkpoint: %d %d", e, off)
	}
}

// TestTornTailProperty: 1,000 random cases of truncation plus random
// garbage on the active segment and its index. Recovery must keep exactly
// the longest valid prefix and never panic.
func TestTornTailProperty(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 42))
	cases := 1000
	if testing.Short() {
		cases = 100
	}
	dir := t.TempDir()
	m := testManager(t, dir)
	p := openPart(t, m, Config{IndexIntervalBytes: 64})
	want := fillLog(t, p, 40, rng)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	logName := filepath.Base(segmentPath("", 0, logSuffix))
	golden, _ := os.ReadFile(filepath.Join(partDir(dir), logName))
	goldenIdx, _ := os.ReadFile(filepath.Join(partDir(dir), segmentPath("", 0, indexSuffix)))
	goldenTime, _ := os.ReadFile(filepath.Join(partDir(dir), segmentPath("", 0, timeIndexSuffix)))
	ends := []int{0}
	for _, b := range want {
		ends = append(ends, ends[len(ends)-1]+len(b))
	}
	for c := range cases {
		cut := rng.IntN(len(golden) + 1)
		var garbage []byte
		switch rng.IntN(3) {
		case 0:
		case 1:
			garbage = make([]byte, rng.IntN(300))
		case 2:
			garbage = make([]byte, rng.IntN(300))
			for i := range garbage {
				garbage[i] = byte(rng.Uint32())
			}
		}
		img := t.TempDir()
		pd := partDir(img)
		os.MkdirAll(pd, 0o755)
		content := append(bytes.Clone(golden[:cut]), garbage...)
		os.WriteFile(filepath.Join(pd, logName), content, 0o644)
		for _, ix := range []struct {
			name string
			b    []byte
		}{{segmentPath("", 0, indexSuffix), goldenIdx}, {segmentPath("", 0, timeIndexSuffix), goldenTime}} {
			if rng.IntN(4) == 0 {
				continue // missing
			}
			b := bytes.Clone(ix.b[:rng.IntN(len(ix.b)+1)])
			for range rng.IntN(3) {
				b = append(b, byte(rng.Uint32()))
			}
			if len(b) > 0 && rng.IntN(3) == 0 {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
			os.WriteFile(filepath.Join(pd, ix.name), b, 0o644)
		}
		if rng.IntN(2) == 0 { // half the cases claim a clean shutdown
			os.WriteFile(filepath.Join(img, cleanShutdownFile), nil, 0o644)
		}
		// The longest prefix of whole original batches in what was written
		// (garbage may by chance restore a cut byte).
		keep := 0
		for keep+1 < len(ends) && ends[keep+1] <= len(content) && bytes.Equal(content[ends[keep]:ends[keep+1]], golden[ends[keep]:ends[keep+1]]) {
			keep++
		}
		m2, err := OpenManager(ManagerConfig{Dir: img})
		if err != nil {
			t.Fatalf("case %d (seed %d): %v", c, seed, err)
		}
		p2, err := m2.Open("t", 0, Config{IndexIntervalBytes: 64})
		if err != nil {
			t.Fatalf("case %d (seed %d, cut %d, garbage %d): %v", c, seed, cut, len(garbage), err)
		}
		r, err := p2.Read(0, 1<<30, p2.LogEndOffset(), false)
		if err != nil {
			t.Fatalf("case %d (seed %d): %v", c, seed, err)
		}
		got := readRegions(t, r)
		if !bytes.Equal(got, golden[:ends[keep]]) {
			t.Fatalf("case %d (seed %d, cut %d, garbage %d): kept %d bytes, want %d", c, seed, cut, len(garbage), len(got), ends[keep])
		}
		var wantEnd int64
		if keep > 0 {
			h, _ := batch.ParseHeader(want[keep-1])
			wantEnd = h.NextOffset()
		}
		if p2.LogEndOffset() != wantEnd {
			t.Fatalf("case %d (seed %d): log end %d want %d", c, seed, p2.LogEndOffset(), wantEnd)
		}
		// Indexes must be usable: every offset finds its batch.
		for off := int64(0); off < wantEnd; off += 3 {
			r, err := p2.Read(off, 1, wantEnd, true)
			if err != nil || r.Bytes == 0 {
				t.Fatalf("case %d (seed %d): read %d: %v", c, seed, off, err)
			}
		}
		if err := m2.Close(); err != nil {
			t.Fatalf("case %d (seed %d): close: %v", c, seed, err)
		}
		os.RemoveAll(img)
	}
}

func flipByte(t testing.TB, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

func truncFile(t testing.TB, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}
