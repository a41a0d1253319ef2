package log

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

var crashCycles = flag.Int("crash.cycles", 5, "SIGKILL cycles of TestCrash (use 200 for the long run; env SLUICE_CRASH_CYCLES also works)")

const crashDirEnv = "SLUICE_LOG_CRASH_DIR"

var crashCfg = Config{SegmentBytes: 64 << 10, IndexIntervalBytes: 512}

// TestCrashChild is the child side of TestCrash: it appends with group
// commit from several goroutines until it is killed, and reports every
// durable batch on fd 3 as "<base offset> <length> <sha256>".
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child of TestCrash only")
	}
	report := os.NewFile(3, "report")
	m, err := OpenManager(ManagerConfig{Dir: dir, CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintf(report, "ERR %v\n", err)
		t.Fatal(err)
	}
	p, err := m.Open("t", 0, crashCfg)
	if err != nil {
		fmt.Fprintf(report, "ERR %v\n", err)
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(g)))
			for {
				b := testBatch(1+rng.IntN(5), rng.IntN(3000), time.Now().UnixMilli())
				res, err := p.Append(b)
				if err == nil {
					err = p.WaitDurable(context.Background(), res.LastOffset)
				}
				if err != nil {
					fmt.Fprintf(report, "ERR %v\n", err)
					return
				}
				sum := sha256.Sum256(b)
				mu.Lock()
				fmt.Fprintf(report, "%d %d %s\n", res.FirstOffset, len(b), hex.EncodeToString(sum[:]))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

type durableBatch struct {
	n   int
	sum string
}

// TestCrash runs a child process that appends with group commit, kills it
// with SIGKILL after a random number of durable reports, reopens the log
// and checks that every batch reported durable is there byte for byte and
// that the whole log validates.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cycles := *crashCycles
	if s := os.Getenv("SLUICE_CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	seed := rand.Uint64()
	t.Logf("seed %d, %d cycles", seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	durable := map[int64]durableBatch{}
	for c := range cycles {
		cmd, lines := startCrashChild(t, "TestCrashChild", crashDirEnv, dir)
		killAfter := 1 + rng.IntN(300)
		deadline := time.NewTimer(60 * time.Second)
		got, killed := 0, false
		for l := range lines {
			if strings.HasPrefix(l, "ERR") {
				t.Fatalf("cycle %d: child: %s", c, l)
			}
			var off int64
			var db durableBatch
			if _, err := fmt.Sscanf(l, "%d %d %s", &off, &db.n, &db.sum); err != nil {
				t.Fatalf("cycle %d: bad report %q", c, l)
			}
			durable[off] = db
			got++
			if !killed && got >= killAfter {
				cmd.Process.Kill() // SIGKILL; reports already in the pipe still count
				killed = true
			}
			select {
			case <-deadline.C:
				t.Fatalf("cycle %d: child made no progress", c)
			default:
			}
		}
		deadline.Stop()
		if !killed {
			cmd.Process.Kill()
		}
		cmd.Wait()

		m, err := OpenManager(ManagerConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if m.WasCleanShutdown() {
			t.Fatalf("cycle %d: killed child left a clean marker", c)
		}
		p, err := m.Open("t", 0, crashCfg)
		if err != nil {
			t.Fatalf("cycle %d (seed %d): reopen: %v", c, seed, err)
		}
		for off, db := range durable {
			b := readBatchBytes(t, p, off)
			sum := sha256.Sum256(b)
			if len(b) != db.n || hex.EncodeToString(sum[:]) != db.sum {
				t.Fatalf("cycle %d (seed %d): durable batch at %d differs (len %d want %d)", c, seed, off, len(b), db.n)
			}
		}
		// The whole log validates, with contiguous offsets.
		r, err := p.Read(0, 1<<40, p.LogEndOffset(), false)
		if err != nil {
			t.Fatal(err)
		}
		next := int64(0)
		for _, reg := range r.Regions {
			buf := make([]byte, reg.Len)
			if _, err := reg.File.ReadAt(buf, reg.Pos); err != nil {
				t.Fatal(err)
			}
			it := batch.NewIter(buf)
			for it.Next() {
				if it.Header().BaseOffset != next {
					t.Fatalf("cycle %d: batch at %d, expected %d", c, it.Header().BaseOffset, next)
				}
				next = it.Header().NextOffset()
			}
			if it.Err() != nil {
				t.Fatalf("cycle %d: %v", c, it.Err())
			}
		}
		if next != p.LogEndOffset() {
			t.Fatalf("cycle %d: batches end at %d, log end %d", c, next, p.LogEndOffset())
		}
		t.Logf("cycle %d: killed after %d reports; log end %d, %d segments, %d durable batches checked", c, got, next, p.NumSegments(), len(durable))
		// Alternate clean and unclean handovers to the next child.
		if c%2 == 0 {
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			p.shutdown()
			m.abandon()
		}
	}
}

// startCrashChild re-executes the test binary running only the test named
// child, with env=dir, and returns the child and the lines it reports on
// its fd 3 (closed when the child exits).
func startCrashChild(t *testing.T, child, env, dir string) (*exec.Cmd, <-chan string) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+dir)
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}
