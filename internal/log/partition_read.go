package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Region is a byte range of a segment file holding whole record batches:
// what a zero-copy sender hands to sendfile. The file stays open for at least
// FileDeleteDelayMs after the segment is deleted, so a region handed out
// stays valid for the duration of one fetch.
type Region struct {
	File *os.File
	Pos  int64
	Len  int64
}

// ReadResult is the answer to Read.
type ReadResult struct {
	Regions        []Region // whole batches, in offset order, possibly empty
	Bytes          int64    // sum of region lengths
	LogStartOffset int64
	LogEndOffset   int64
}

// segmentFor returns the index of the segment that holds offset (the last
// one whose base is <= offset), or 0.
func segmentFor(segs []*segment, offset int64) int {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	return max(i, 0)
}

// Read returns whole batches starting with the one containing offset, up to
// maxBytes, never including a batch whose last offset is >= maxOffset (the
// high watermark or last stable offset). If minOne is set, the first batch is
// returned even when larger than maxBytes (KIP-74). Reading at exactly the
// log end offset returns no regions and no error; outside
// [LogStartOffset, LogEndOffset] returns ErrOffsetOutOfRange.
//
// Regions may span several segments. Read takes no lock.
func (p *Partition) Read(offset int64, maxBytes int64, maxOffset int64, minOne bool) (ReadResult, error) {
	if p.closed.Load() {
		return ReadResult{}, ErrClosed
	}
	leo := p.logEnd.Load()
	segs := p.segments()
	ls := p.logStart.Load()
	res := ReadResult{LogStartOffset: ls, LogEndOffset: leo}
	if offset < ls || offset > leo {
		return res, fmt.Errorf("%w: %s: offset %d, log is [%d, %d]", ErrOffsetOutOfRange, p.tp, offset, ls, leo)
	}
	bound := min(maxOffset, leo)
	if offset >= bound {
		return res, nil
	}
	budget := max(maxBytes, 0)
	for i := segmentFor(segs, offset); i < len(segs); i++ {
		s := segs[i]
		if s.base >= bound {
			break
		}
		idx, entries := s.offIdx.loadArray() // before size: every entry lies below the size loaded next
		next1 := s.next.Load()
		size := s.size.Load()
		next2 := s.next.Load()
		// A caught-up consumer: the offset starts a batch the index knows
		// (or the segment), and the rest of the segment fits the budget
		// and lies below bound. Then the region is known without reading
		// a header. The same index array before and after rules out a
		// truncation in between (see the scan-free case below).
		if next1 == next2 && next2 <= bound && offset < next2 && s.offIdx.view.Load() == idx {
			pos, exact := int64(0), offset <= s.base
			if !exact {
				var p uint32
				p, exact = exactOffset(entries, uint32(min(offset-s.base, maxRelOffset)))
				pos = int64(p)
			}
			if exact && pos < size && size-pos <= budget {
				res.Regions = append(res.Regions, Region{File: s.log, Pos: pos, Len: size - pos})
				res.Bytes += size - pos
				budget -= size - pos
				continue
			}
		}
		pos, h, found, err := s.findBatch(offset, size)
		if err != nil {
			return res, fmt.Errorf("%s: read at %d: %w", p.tp, offset, err)
		}
		if !found {
			continue
		}
		if h.LastOffset() >= bound {
			break
		}
		if int64(h.Size()) > budget {
			if minOne && res.Bytes == 0 {
				res.Regions = append(res.Regions, Region{File: s.log, Pos: pos, Len: int64(h.Size())})
				res.Bytes += int64(h.Size())
			}
			break
		}
		start, end := pos, pos+int64(h.Size())
		limit := min(start+budget, size)
		if limit == size && next1 == next2 && next2 <= bound {
			// The whole rest of the segment fits the budget and lies below
			// bound: no header scan. (Append stores next before size, so
			// every batch below size ends before next2; equal loads around
			// size rule out a truncation in between.)
			res.Regions = append(res.Regions, Region{File: s.log, Pos: start, Len: size - start})
			res.Bytes += size - start
			budget -= size - start
			continue
		}
		// Jump through the index: every batch before an entry whose base
		// offset is <= bound ends below bound.
		j1 := sort.Search(len(entries), func(k int) bool { return int64(entries[k].pos) > limit })
		j2 := sort.Search(len(entries), func(k int) bool { return s.base+int64(entries[k].rel) > bound })
		if j := min(j1, j2) - 1; j >= 0 && int64(entries[j].pos) > end {
			end = int64(entries[j].pos)
		}
		stopped := false
		err = s.scanHeaders(end, size, func(q int64, bh batch.Header) bool {
			if bh.LastOffset() >= bound || q+int64(bh.Size()) > limit {
				stopped = true
				return false
			}
			end = q + int64(bh.Size())
			return true
		})
		if err != nil {
			return res, fmt.Errorf("%s: read at %d: %w", p.tp, offset, err)
		}
		res.Regions = append(res.Regions, Region{File: s.log, Pos: start, Len: end - start})
		res.Bytes += end - start
		budget -= end - start
		if stopped || end < size {
			break
		}
	}
	return res, nil
}

// readBatchAt reads the whole batch h at pos of s into a new buffer. The
// length comes from a header found inside the committed size.
func readBatchAt(s *segment, pos int64, h batch.Header) ([]byte, error) {
	b := make([]byte, h.Size())
	n, err := s.log.ReadAt(b, pos)
	if n == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = corruptionf("%s: short read of batch at %d", s.logPath(), pos)
	}
	return nil, err
}

// OffsetForTimestamp finds the first record with timestamp >= ts (record
// precision: it may decode one batch). ok is false if there is none.
func (p *Partition) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, ok bool, err error) {
	if p.closed.Load() {
		return 0, 0, false, ErrClosed
	}
	ls := p.logStart.Load()
	segs := p.segments()
	var dec batch.Decoder
	for _, s := range segs[segmentFor(segs, ls):] {
		if s.maxTs.Load() < ts {
			continue
		}
		size := s.size.Load()
		start := int64(0)
		if rel, found := lookupTime(s.timeIdx.load(), ts); found {
			start = int64(lookupOffset(s.offIdx.load(), rel))
		}
		if start >= size {
			start = 0
		}
		var ferr error
		err := s.scanHeaders(start, size, func(pos int64, h batch.Header) bool {
			if h.MaxTimestamp < ts || h.LastOffset() < ls {
				return true
			}
			if h.LogAppendTime() {
				offset, timestamp, ok = max(h.BaseOffset, ls), h.MaxTimestamp, true
				return false
			}
			b, err := readBatchAt(s, pos, h)
			if err != nil {
				ferr = err
				return false
			}
			_, recs, err := dec.Decode(b)
			if err != nil {
				ferr = corruptionf("%s: batch at offset %d: %v", p.tp, h.BaseOffset, err)
				return false
			}
			for _, r := range recs {
				if r.Timestamp >= ts && r.Offset >= ls {
					offset, timestamp, ok = r.Offset, r.Timestamp, true
					return false
				}
			}
			return true
		})
		if err == nil {
			err = ferr
		}
		if err != nil || ok {
			return offset, timestamp, ok, err
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp returns the largest timestamp in the log and the offset of
// the record that has it (KIP-734); ok is false for an empty log.
func (p *Partition) MaxTimestamp() (ts int64, offset int64, ok bool, err error) {
	if p.closed.Load() {
		return 0, 0, false, ErrClosed
	}
	ls := p.logStart.Load()
	segs := p.segments()
	var best *segment
	ts = -1
	for _, s := range segs[segmentFor(segs, ls):] {
		if t := s.maxTs.Load(); t > ts && s.maxTsOffset.Load() >= ls {
			ts, best = t, s
		}
	}
	if best == nil {
		return 0, 0, false, nil
	}
	last := best.maxTsOffset.Load()
	pos, h, found, err := best.findBatch(last, best.size.Load())
	if err != nil || !found {
		return ts, last, err == nil, err
	}
	if h.LogAppendTime() {
		return h.MaxTimestamp, max(h.BaseOffset, ls), true, nil
	}
	b, err := readBatchAt(best, pos, h)
	if err != nil {
		return 0, 0, false, err
	}
	_, recs, err := batch.DecodeRecords(b)
	if err != nil {
		return 0, 0, false, corruptionf("%s: batch at offset %d: %v", p.tp, h.BaseOffset, err)
	}
	for _, r := range recs {
		if r.Timestamp == h.MaxTimestamp && r.Offset >= ls {
			return r.Timestamp, r.Offset, true, nil
		}
	}
	return h.MaxTimestamp, h.LastOffset(), true, nil
}
