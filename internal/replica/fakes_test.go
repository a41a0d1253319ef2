package replica

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/metadata"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type epochEntry struct {
	epoch int32
	start int64
}

// fakeLog is a LeaderLog with settable offsets. Its epoch lookup follows
// Kafka's LeaderEpochFileCache.endOffsetFor, as internal/log does.
type fakeLog struct {
	mu        sync.Mutex
	start     int64
	leo       int64
	durable   int64
	hw        int64 // -1: not set (HW = LEO)
	epochs    []epochEntry
	durableCh chan struct{}
	failErr   error
}

func newFakeLog(leo int64) *fakeLog {
	return &fakeLog{leo: leo, durable: leo, hw: -1, durableCh: make(chan struct{})}
}

func (f *fakeLog) LogStartOffset() int64 { f.mu.Lock(); defer f.mu.Unlock(); return f.start }
func (f *fakeLog) LogEndOffset() int64   { f.mu.Lock(); defer f.mu.Unlock(); return f.leo }
func (f *fakeLog) DurableOffset() int64  { f.mu.Lock(); defer f.mu.Unlock(); return f.durable }

func (f *fakeLog) HighWatermark() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hw < 0 {
		return f.leo
	}
	return f.hw
}

func (f *fakeLog) SetHighWatermark(hw int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(max(hw, 0), f.leo)
	if f.hw < 0 || n > f.hw {
		f.hw = n
	}
	return f.hw
}

func (f *fakeLog) AssignEpochStart(epoch int32, offset int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.epochs); n > 0 && f.epochs[n-1].epoch == epoch {
		return nil
	}
	f.epochs = append(f.epochs, epochEntry{epoch, offset})
	return nil
}

func (f *fakeLog) EndOffsetForEpoch(epoch int32) (int32, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.epochs)
	if epoch < 0 || n == 0 {
		return -1, -1
	}
	if f.epochs[n-1].epoch == epoch {
		return epoch, f.leo
	}
	for i, e := range f.epochs {
		if e.epoch > epoch {
			if i == 0 {
				return epoch, e.start
			}
			return f.epochs[i-1].epoch, e.start
		}
	}
	return -1, -1
}

func (f *fakeLog) WaitDurable(ctx context.Context, offset int64) error {
	for {
		f.mu.Lock()
		d, ch, err := f.durable, f.durableCh, f.failErr
		f.mu.Unlock()
		if err != nil {
			return err
		}
		if d > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// append adds n offsets (not yet durable).
func (f *fakeLog) append(n int64) {
	f.mu.Lock()
	f.leo += n
	f.mu.Unlock()
}

// sync makes everything durable.
func (f *fakeLog) sync() {
	f.mu.Lock()
	f.durable = f.leo
	close(f.durableCh)
	f.durableCh = make(chan struct{})
	f.mu.Unlock()
}

// fakeProposer hands every AlterPartition to the test, which answers it.
type fakeProposer struct {
	reqs    chan proposal
	mu      sync.Mutex
	current metadata.Partition
}

type proposal struct {
	req    metadata.AlterPartitionRequest
	answer chan proposalAnswer
}

type proposalAnswer struct {
	p   metadata.Partition
	err error
}

func newFakeProposer() *fakeProposer { return &fakeProposer{reqs: make(chan proposal, 16)} }

func (f *fakeProposer) AlterPartition(ctx context.Context, req metadata.AlterPartitionRequest) (metadata.Partition, error) {
	pr := proposal{req: req, answer: make(chan proposalAnswer, 1)}
	select {
	case f.reqs <- pr:
	case <-ctx.Done():
		return metadata.Partition{}, ctx.Err()
	}
	select {
	case a := <-pr.answer:
		return a.p, a.err
	case <-ctx.Done():
		return metadata.Partition{}, ctx.Err()
	}
}

func (f *fakeProposer) Partition(string, int32) (metadata.Partition, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current.Clone(), true
}

// next waits for the next proposal.
func (f *fakeProposer) next(t *testing.T) proposal {
	t.Helper()
	select {
	case pr := <-f.reqs:
		return pr
	case <-time.After(5 * time.Second):
		t.Fatal("no AlterPartition proposal")
		return proposal{}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var errTest = errors.New("test error")
