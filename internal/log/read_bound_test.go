package log

import (
	"sync"
	"testing"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// TestReadNeverPastBoundWhileAppending reads with budgets large enough to
// take Read's scan-free path (the rest of a segment below the bound) while
// an appender keeps adding batches and rolling segments: every read must
// return whole batches, start at the batch holding the offset, and never
// include a batch at or past the bound it was given.
func TestReadNeverPastBoundWhileAppending(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{SegmentBytes: 16 << 10, IndexIntervalBytes: 1000, WriteCaching: true})
	const n = 600
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads := 0
			for {
				select {
				case <-done:
					if reads > 0 {
						return
					}
				default:
				}
				bound := p.LogEndOffset()
				off := int64(0)
				if bound > 0 {
					off = int64(reads*7+r) % bound
				}
				res, err := p.Read(off, 1<<20, bound, false)
				if err != nil {
					t.Error(err)
					return
				}
				reads++
				b := readRegions(t, res)
				it := batch.NewIter(b)
				first := true
				for it.Next() {
					h := it.Header()
					if first && (h.BaseOffset > off || h.LastOffset() < off) {
						t.Errorf("read at %d starts with batch [%d, %d]", off, h.BaseOffset, h.LastOffset())
					}
					first = false
					if h.LastOffset() >= bound {
						t.Errorf("read at %d with bound %d returned batch [%d, %d]", off, bound, h.BaseOffset, h.LastOffset())
						return
					}
				}
				if it.Err() != nil {
					t.Error(it.Err())
					return
				}
			}
		}()
	}
	for range n {
		mustAppend(t, p, testBatch(3, 40, 1))
	}
	close(done)
	wg.Wait()
	if p.NumSegments() < 3 {
		t.Fatalf("only %d segments: the test did not cross segments", p.NumSegments())
	}
	res, err := p.Read(0, 1<<30, p.LogEndOffset(), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != p.Size() {
		t.Fatalf("whole read returned %d of %d bytes", res.Bytes, p.Size())
	}
}
