package broker

import (
	"io"
	"testing"
)

// maxProduceAllocs bounds the heap allocations of one produce request of
// one batch (decode, handler, append, response). It is a small constant:
// nothing on the produce path is done per record.
const maxProduceAllocs = 12

// allocSlack is how far allocation counts may differ (and exceed the
// bounds) under the race detector, whose sync.Pool drops pooled buffers
// at random; without -race the counts must be equal.
func allocSlack() float64 {
	if raceEnabled {
		return 4
	}
	return 0
}

// TestProduceAllocsIndependentOfRecordCount checks that the allocations of
// a produce request do not grow with the number of records in its batch:
// a batch of 1, 100 or 1000 records costs the same number of allocations,
// at most maxProduceAllocs. (Not timed; BenchmarkProduceRequest measures
// the time.)
func TestProduceAllocsIndependentOfRecordCount(t *testing.T) {
	h := newHotPath(t, "p", map[string]string{"write.caching": "true", "segment.bytes": "1073741824"})
	got := map[int]float64{}
	for _, n := range produceRecordCounts {
		frame := produceFrame(t, "p", n, 100)
		h.handle(t, frame, io.Discard) // warm pools and lazily built state
		// The broker's background goroutines (metadata, flusher) may
		// allocate meanwhile; take the least of a few measurements.
		best := -1.0
		for range 3 {
			a := testing.AllocsPerRun(200, func() { h.handle(t, frame, io.Discard) })
			if best < 0 || a < best {
				best = a
			}
		}
		got[n] = best
		t.Logf("records=%d: %.0f allocs per produce request", n, best)
	}
	base := got[produceRecordCounts[0]]
	for _, n := range produceRecordCounts {
		if got[n] > maxProduceAllocs+allocSlack() {
			t.Errorf("records=%d: %.0f allocs per produce request, want <= %d", n, got[n], maxProduceAllocs)
		}
		if d := got[n] - base; d > allocSlack() || -d > allocSlack() {
			t.Errorf("records=%d: %.0f allocs per produce request, records=%d: %.0f; want the same", n, got[n], produceRecordCounts[0], base)
		}
	}
}

// maxFetchAllocs bounds the heap allocations of one fetch request of one
// partition that finds data at once (decode, handler, index lookup,
// response assembly).
const maxFetchAllocs = 20

// TestFetchAllocsIndependentOfSize checks that a fetch's allocations do not
// grow with the bytes it returns: the records are file regions, never
// read into memory.
func TestFetchAllocsIndependentOfSize(t *testing.T) {
	h := newHotPath(t, "f", map[string]string{"write.caching": "true"})
	frame := produceFrame(t, "f", 16, 1000)
	for range 200 { // ~3.2 MiB
		h.handle(t, frame, io.Discard)
	}
	got := map[int32]float64{}
	sizes := []int32{1 << 10, 64 << 10, 2 << 20}
	for _, max := range sizes {
		f := fetchFrame("f", 0, max)
		h.handleNoRegions(t, f)
		best := -1.0
		for range 3 {
			a := testing.AllocsPerRun(200, func() { h.handleNoRegions(t, f) })
			if best < 0 || a < best {
				best = a
			}
		}
		got[max] = best
		t.Logf("max bytes %d: %.0f allocs per fetch request", max, best)
	}
	for _, max := range sizes {
		if got[max] > maxFetchAllocs+allocSlack() {
			t.Errorf("max bytes %d: %.0f allocs per fetch request, want <= %d", max, got[max], maxFetchAllocs)
		}
		if d := got[max] - got[sizes[0]]; d > allocSlack() || -d > allocSlack() {
			t.Errorf("max bytes %d: %.0f allocs, max bytes %d: %.0f; want the same", max, got[max], sizes[0], got[sizes[0]])
		}
	}
}
