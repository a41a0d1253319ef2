package log

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGroupCommit(t *testing.T) {
	var syncs atomic.Int64
	m := testManager(t, "", func(c *ManagerConfig) {
		c.hooks = &faultHooks{sync: func(string) error { syncs.Add(1); return nil }}
	})
	p := openPart(t, m, Config{})
	const appenders, per = 16, 20
	var wg sync.WaitGroup
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				res, err := p.Append(testBatch(2, 50, 1))
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = p.WaitDurable(ctx, res.LastOffset)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				if d := p.DurableOffset(); d <= res.LastOffset {
					t.Errorf("durable %d after wait for %d", d, res.LastOffset)
				}
			}
		}()
	}
	wg.Wait()
	if n := syncs.Load(); n == 0 || n > appenders*per {
		t.Fatalf("%d fdatasyncs for %d appends", n, appenders*per)
	}
	t.Logf("%d appends, %d fdatasyncs", appenders*per, syncs.Load())
}

func TestWaitDurableContext(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitDurable(ctx, 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestStickyWriteError(t *testing.T) {
	for _, kind := range []string{"write", "sync"} {
		t.Run(kind, func(t *testing.T) {
			var fail atomic.Bool
			boom := errors.New("injected I/O error")
			hook := func(string) error {
				if fail.Load() {
					return boom
				}
				return nil
			}
			h := &faultHooks{}
			if kind == "write" {
				h.write = hook
			} else {
				h.sync = hook
			}
			dir := t.TempDir()
			m := testManager(t, dir, func(c *ManagerConfig) { c.hooks = h })
			p := openPart(t, m, Config{})
			res := mustAppend(t, p, testBatch(1, 10, 1))
			if err := p.WaitDurable(context.Background(), res.LastOffset); err != nil {
				t.Fatal(err)
			}
			fail.Store(true)
			res2, err := p.Append(testBatch(1, 10, 1))
			if kind == "write" {
				if !errors.Is(err, ErrWriteFailed) || !errors.Is(err, boom) {
					t.Fatalf("append: %v", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := p.WaitDurable(context.Background(), res2.LastOffset); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, boom) {
					t.Fatalf("wait: %v", err)
				}
			}
			// Sticky even after the fault goes away.
			fail.Store(false)
			if _, err := p.Append(testBatch(1, 10, 1)); !errors.Is(err, ErrWriteFailed) {
				t.Fatalf("later append: %v", err)
			}
			if err := p.Flush(); !errors.Is(err, ErrWriteFailed) {
				t.Fatalf("flush: %v", err)
			}
			// Reads still work; reopening clears it.
			if _, err := p.Read(0, 100, p.LogEndOffset(), true); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); !errors.Is(err, ErrWriteFailed) {
				t.Fatalf("close: %v", err)
			}
			p = openPart(t, m, Config{})
			if p.LogEndOffset() < 1 {
				t.Fatalf("lost the durable batch: end %d", p.LogEndOffset())
			}
			mustAppend(t, p, testBatch(1, 10, 1))
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			m2 := testManager(t, dir)
			if m2.WasCleanShutdown() != true {
				t.Fatal("expected clean shutdown after reopen and close")
			}
		})
	}
}

func TestWriteCachingFlushMessages(t *testing.T) {
	var syncs atomic.Int64
	m := testManager(t, "", func(c *ManagerConfig) {
		c.hooks = &faultHooks{sync: func(string) error { syncs.Add(1); return nil }}
	})
	p := openPart(t, m, Config{WriteCaching: true, FlushMessages: 10})
	for range 4 {
		mustAppend(t, p, testBatch(2, 10, 1))
	}
	if p.DurableOffset() != 0 {
		t.Fatalf("flushed before flush.messages: %d", p.DurableOffset())
	}
	mustAppend(t, p, testBatch(2, 10, 1)) // 10 unflushed messages
	eventually(t, "flush.messages flush", func() bool { return p.DurableOffset() == 10 })
}

func TestWriteCachingFlushMs(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	m := testManager(t, "", func(c *ManagerConfig) {
		c.FlushCheckInterval = time.Millisecond
		c.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	})
	p := openPart(t, m, Config{WriteCaching: true, FlushMs: 1000})
	mustAppend(t, p, testBatch(2, 10, 1))
	// Give the scheduler many ticks; with the clock frozen it must not flush.
	for i := 0; i < 20 && p.DurableOffset() == 0; i++ {
		runtime.Gosched()
	}
	if p.DurableOffset() != 0 {
		t.Fatal("flushed before flush.ms")
	}
	now.Add(1000)
	eventually(t, "flush.ms flush", func() bool { return p.DurableOffset() == 2 })
}

func TestFlushSyncsDirAndIndexes(t *testing.T) {
	var synced []string
	var mu sync.Mutex
	m := testManager(t, "", func(c *ManagerConfig) {
		c.hooks = &faultHooks{sync: func(path string) error { mu.Lock(); synced = append(synced, path); mu.Unlock(); return nil }}
	})
	p := openPart(t, m, Config{SegmentBytes: 500})
	for range 10 {
		mustAppend(t, p, testBatch(1, 100, 1))
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if p.NumSegments() < 3 {
		t.Fatalf("%d segments", p.NumSegments())
	}
	segs := p.segments()
	if rp := p.RecoveryPoint(); rp != segs[len(segs)-1].base {
		t.Fatalf("recovery point %d, active base %d", rp, segs[len(segs)-1].base)
	}
	for _, s := range segs[:len(segs)-1] {
		if !s.indexSynced || !s.dirSynced {
			t.Fatalf("segment %d: indexSynced %v dirSynced %v", s.base, s.indexSynced, s.dirSynced)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(fmt.Sprint(synced), ".log") {
		t.Fatalf("synced %v", synced)
	}
}
