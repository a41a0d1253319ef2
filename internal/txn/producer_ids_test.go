package txn

import (
	"context"
	"errors"
	"sync"
	"testing"
)

type fakeAlloc struct {
	mu    sync.Mutex
	next  int64
	calls int
	err   error
}

func (f *fakeAlloc) AllocateProducerIDs(_ context.Context, n int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return -1, f.err
	}
	f.calls++
	first := f.next
	f.next += int64(n)
	return first, nil
}

func TestProducerIDsUniqueAcrossBlocks(t *testing.T) {
	a := &fakeAlloc{next: 7}
	m := NewProducerIDs(a, 10)
	seen := map[int64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				id, err := m.Next(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 100 || a.calls != 10 {
		t.Fatalf("%d ids from %d blocks, want 100 from 10", len(seen), a.calls)
	}
	for id := range seen {
		if id < 7 || id >= 107 {
			t.Fatalf("id %d outside the allocated blocks", id)
		}
	}
	// A new manager (a restart) continues after the blocks already reserved.
	m2 := NewProducerIDs(a, 0)
	if id, err := m2.Next(context.Background()); err != nil || id != 107 {
		t.Fatalf("after restart: %d, %v", id, err)
	}
}

func TestProducerIDsAllocError(t *testing.T) {
	boom := errors.New("no controller")
	m := NewProducerIDs(&fakeAlloc{err: boom}, 10)
	if _, err := m.Next(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}
