package log

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkIndexLookup measures the offset index lookup alone (binary
// search of the in-memory entries, as published to lock-free readers)
// and findBatch (lookup plus the header scan from the entry to the batch
// holding the offset) on a full 64 MiB segment of 16 KiB batches.
//
//	go test -run '^$' -bench BenchmarkIndexLookup -count 6 ./internal/log
func BenchmarkIndexLookup(b *testing.B) {
	_, p := benchLog(b, "", 60<<20)
	s := p.segments()[0]
	next := s.next.Load()
	for _, scan := range []bool{false, true} {
		b.Run(fmt.Sprintf("entries=%d/scan=%v", len(s.offIdx.load()), scan), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for range b.N {
				off := s.base + rng.Int64N(next-s.base)
				if !scan {
					if pos := lookupOffset(s.offIdx.load(), uint32(off-s.base)); int64(pos) > s.size.Load() {
						b.Fatal("index entry past the segment")
					}
					continue
				}
				_, h, found, err := s.findBatch(off, s.size.Load())
				if err != nil || !found || h.LastOffset() < off || h.BaseOffset > off {
					b.Fatalf("findBatch(%d) = %+v, %v, %v", off, h, found, err)
				}
			}
		})
	}
}

// BenchmarkReadTail measures Read of a consumer that is nearly caught up:
// the last few batches of the active segment, within the budget and below
// the bound. "batch-start" reads at a batch's base offset (what a consumer
// asks for after its previous fetch), which the index answers without
// reading any header; "mid-batch" at an offset inside a batch, which
// reads the header at the start.
//
//	go test -run '^$' -bench BenchmarkReadTail -count 6 ./internal/log
func BenchmarkReadTail(b *testing.B) {
	_, p := benchLog(b, "", 16<<20)
	buf := batch16K(100)
	var starts []int64
	for range 4 {
		starts = append(starts, p.LogEndOffset())
		if _, err := p.Append(buf); err != nil {
			b.Fatal(err)
		}
	}
	leo := p.LogEndOffset()
	for _, mid := range []int64{0, 1} {
		b.Run(map[int64]string{0: "batch-start", 1: "mid-batch"}[mid], func(b *testing.B) {
			b.ReportAllocs()
			var total int64
			for i := range b.N {
				off := starts[i%len(starts)] + mid
				res, err := p.Read(off, 1<<20, leo, true)
				if err != nil || res.Bytes == 0 {
					b.Fatalf("read at %d: %v", off, err)
				}
				total += res.Bytes
			}
			b.SetBytes(total / int64(b.N))
		})
	}
}
