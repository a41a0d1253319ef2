package log

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

const followerCrashDirEnv = "SLUICE_LOG_FOLLOWER_CRASH_DIR"

// TestFollowerCrashChild is the child side of TestFollowerCrash: a
// follower that appends batches with leader offsets and epochs, truncates
// (TruncateTo, now and then TruncateFullyAndStartAt) as after a leader
// change, and sets its high watermark, until it is killed. It reports on
// fd 3, each line only once what it says is durable:
//
//	A <base> <last> <len> <sha256>   a batch appended and fsynced
//	t <offset> / T <offset>          a TruncateTo about to start / done
//	f <offset> / F <offset>          a TruncateFullyAndStartAt about to start / done
func TestFollowerCrashChild(t *testing.T) {
	dir := os.Getenv(followerCrashDirEnv)
	if dir == "" {
		t.Skip("child of TestFollowerCrash only")
	}
	report := os.NewFile(3, "report")
	fail := func(err error) {
		fmt.Fprintf(report, "ERR %v\n", err)
		t.Fatal(err)
	}
	m, err := OpenManager(ManagerConfig{Dir: dir, CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		fail(err)
	}
	p, err := m.Open("t", 0, crashCfg)
	if err != nil {
		fail(err)
	}
	epoch := int32(0)
	if e, ok := p.LatestEpoch(); ok {
		epoch = e + 1
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := 0; ; i++ {
		leo, ls := p.LogEndOffset(), p.LogStartOffset()
		switch r := rng.IntN(1000); {
		case r < 5:
			x := leo + int64(rng.IntN(4))
			fmt.Fprintf(report, "f %d\n", x)
			if err := p.TruncateFullyAndStartAt(x); err != nil {
				fail(err)
			}
			fmt.Fprintf(report, "F %d\n", x)
			epoch++
		case r < 50 && leo > ls:
			x := max(ls, leo-1-int64(rng.IntN(80)))
			fmt.Fprintf(report, "t %d\n", x)
			if err := p.TruncateTo(x); err != nil {
				fail(err)
			}
			fmt.Fprintf(report, "T %d\n", x)
			epoch++
		default:
			var buf []byte
			var lines []string
			next := leo
			for range 1 + rng.IntN(3) {
				// The timestamp makes every batch's bytes unique.
				b := withEpoch(withBase(testBatch(1+rng.IntN(5), rng.IntN(2000), time.Now().UnixNano()+int64(i)), next), epoch)
				h, _ := batch.ParseHeader(b)
				sum := sha256.Sum256(b)
				lines = append(lines, fmt.Sprintf("A %d %d %d %s\n", next, h.LastOffset(), len(b), hex.EncodeToString(sum[:])))
				buf = append(buf, b...)
				next = h.NextOffset()
			}
			res, err := p.AppendAsFollower(buf)
			if err == nil {
				err = p.WaitDurable(context.Background(), res.LastOffset)
			}
			if err != nil {
				fail(err)
			}
			for _, l := range lines {
				fmt.Fprint(report, l)
			}
			if i%7 == 0 {
				p.SetHighWatermark(p.DurableOffset())
			}
		}
	}
}

type reportedBatch struct {
	base, last int64
	n          int
	sum        string
}

// TestFollowerCrash kills the follower child with SIGKILL at random points,
// reopens its log and checks that: every batch reported durable and not
// truncated since is there byte for byte; no batch a completed truncation
// removed is back; offsets are contiguous; every batch's leader epoch is
// the one the epoch cache gives for its offset and no cached epoch starts
// at or above the log end; the high watermark lies in [log start, log end].
func TestFollowerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cycles := 4
	if s := os.Getenv("SLUICE_FOLLOWER_CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	seed := rand.Uint64()
	t.Logf("seed %d, %d cycles", seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	var (
		required  = map[int64]reportedBatch{}  // by base offset
		maybe     = map[string]reportedBatch{} // by sum: a truncation of them may or may not have happened
		forbidden = map[string]bool{}          // removed by a completed truncation
	)
	forbid := func(pred func(reportedBatch) bool) {
		for k, b := range maybe {
			if pred(b) {
				forbidden[b.sum] = true
				delete(maybe, k)
			}
		}
	}
	truncations := 0
	for c := range cycles {
		cmd, lines := startCrashChild(t, "TestFollowerCrashChild", followerCrashDirEnv, dir)
		killAfter := 20 + rng.IntN(400)
		deadline := time.NewTimer(60 * time.Second)
		got, killed := 0, false
		for l := range lines {
			f := strings.Fields(l)
			switch {
			case f[0] == "ERR":
				t.Fatalf("cycle %d: child: %s", c, l)
			case f[0] == "A" && len(f) == 5:
				var b reportedBatch
				b.base, _ = strconv.ParseInt(f[1], 10, 64)
				b.last, _ = strconv.ParseInt(f[2], 10, 64)
				b.n, _ = strconv.Atoi(f[3])
				b.sum = f[4]
				// Batches a truncation may have removed are now
				// overwritten: they must be gone.
				forbid(func(o reportedBatch) bool { return o.last >= b.base })
				required[b.base] = b
			case len(f) == 2:
				x, _ := strconv.ParseInt(f[1], 10, 64)
				switch f[0] {
				case "t", "f":
					for base, b := range required {
						if f[0] == "f" || b.last >= x {
							maybe[b.sum] = b
							delete(required, base)
						}
					}
				case "T":
					forbid(func(o reportedBatch) bool { return o.last >= x })
					truncations++
				case "F":
					forbid(func(reportedBatch) bool { return true })
					truncations++
				}
			default:
				t.Fatalf("cycle %d: bad report %q", c, l)
			}
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
		p, err := m.Open("t", 0, crashCfg)
		if err != nil {
			t.Fatalf("cycle %d (seed %d): reopen: %v", c, seed, err)
		}
		if !p.RecoveredUnclean() {
			t.Fatalf("cycle %d: killed follower not marked unclean", c)
		}
		checkFollowerCrashImage(t, c, seed, p, required, forbidden)
		t.Logf("cycle %d: killed after %d reports; log [%d, %d), %d segments, %d required batches, %d truncations so far",
			c, got, p.LogStartOffset(), p.LogEndOffset(), p.NumSegments(), len(required), truncations)
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

func checkFollowerCrashImage(t *testing.T, c int, seed uint64, p *Partition, required map[int64]reportedBatch, forbidden map[string]bool) {
	t.Helper()
	present := map[int64]string{}
	epochs := p.epochs.entries()
	for _, e := range epochs {
		if e.StartOffset >= p.LogEndOffset() {
			t.Fatalf("cycle %d (seed %d): epoch %+v at or above the log end %d", c, seed, e, p.LogEndOffset())
		}
	}
	next := p.LogStartOffset()
	if p.LogEndOffset() > next {
		b := allBytes(t, p)
		it := batch.NewIter(b)
		for it.Next() {
			h := it.Header()
			if h.BaseOffset != next {
				t.Fatalf("cycle %d (seed %d): batch at %d, expected %d", c, seed, h.BaseOffset, next)
			}
			next = h.NextOffset()
			sum := sha256.Sum256(it.Batch())
			s := hex.EncodeToString(sum[:])
			if forbidden[s] {
				t.Fatalf("cycle %d (seed %d): batch at %d was removed by a completed truncation and is back", c, seed, h.BaseOffset)
			}
			present[h.BaseOffset] = s
			want := int32(-1)
			for _, e := range epochs {
				if e.StartOffset <= h.BaseOffset {
					want = e.Epoch
				}
			}
			if want != h.PartitionLeaderEpoch {
				t.Fatalf("cycle %d (seed %d): batch at %d has leader epoch %d, the cache says %d (%+v)", c, seed, h.BaseOffset, h.PartitionLeaderEpoch, want, epochs)
			}
		}
		if it.Err() != nil {
			t.Fatalf("cycle %d: %v", c, it.Err())
		}
	}
	if next != p.LogEndOffset() {
		t.Fatalf("cycle %d: batches end at %d, log end %d", c, next, p.LogEndOffset())
	}
	for base, b := range required {
		if present[base] != b.sum {
			t.Fatalf("cycle %d (seed %d): durable batch at %d (last %d) missing or different; log [%d, %d)", c, seed, base, b.last, p.LogStartOffset(), p.LogEndOffset())
		}
	}
	if hw := p.HighWatermark(); hw < p.LogStartOffset() || hw > p.LogEndOffset() {
		t.Fatalf("cycle %d: high watermark %d outside [%d, %d]", c, hw, p.LogStartOffset(), p.LogEndOffset())
	}
}
