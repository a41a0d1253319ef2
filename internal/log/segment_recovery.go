package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Loading and recovery of a partition directory.
//
// After a clean shutdown every segment is trusted: its indexes are read
// and checked (header, monotonic entries, positions inside the log, last
// entry on a batch boundary) and only the bytes after the last offset-index
// entry are scanned (headers only) to find the log end and the max
// timestamp. After an unclean stop, segments from the one holding the
// recovery point onwards are scanned batch by batch with CRC checks and
// their indexes rebuilt. A trusted segment whose indexes fail the checks is
// scanned the same way.
//
// A scan that stops before the end of the file found either a torn tail or
// damage. In the last segment, invalid bytes are a torn tail and are cut
// off (the longest valid prefix is kept) unless a whole batch with a bad
// CRC is followed by a valid batch: that is damage in the middle, reported
// as ErrCorruption, as is any invalid batch in an earlier segment (appends
// only ever go to the last one).

// recoveryBufSize is the read size of a recovery scan.
const recoveryBufSize = 1 << 20

// chunkReader serves byte windows of a file from a reusable buffer.
type chunkReader struct {
	f      *os.File
	size   int64
	buf    []byte
	bufPos int64
	bufLen int64
}

// window returns the bytes [pos, pos+n). The caller has checked that
// pos+n <= size, so n is bounded by the file.
func (r *chunkReader) window(pos, n int64) ([]byte, error) {
	if pos >= r.bufPos && pos+n <= r.bufPos+r.bufLen {
		return r.buf[pos-r.bufPos : pos-r.bufPos+n], nil
	}
	want := max(n, min(int64(recoveryBufSize), r.size-pos))
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, pos)
	if int64(m) < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.bufPos, r.bufLen = pos, int64(m)
	return r.buf[:n], nil
}

// scanResult is where and why a full scan stopped.
type scanResult struct {
	end      int64 // end of the longest valid prefix
	next     int64 // offset after the last valid batch
	err      error // why the scan stopped before the file end; nil if it did not
	midwayAt int64 // >= 0: a valid batch follows the damage at end (damage in the middle)
}

// scanSegment validates every batch of s from position 0 (CRC, lengths,
// increasing offsets inside the segment's range) and rebuilds the in-memory
// indexes and timestamp bookkeeping. It does not change the file.
func scanSegment(s *segment, size int64, interval int64) (scanResult, error) {
	s.offIdx.set(nil)
	s.timeIdx.set(nil)
	s.maxTs.Store(-1)
	s.maxTsOffset.Store(-1)
	s.bytesSinceIndex = 0
	r := &chunkReader{f: s.log, size: size}
	res := scanResult{next: s.base, midwayAt: -1}
	pos := int64(0)
	for pos < size {
		h, n, err := validateAt(r, pos)
		if err == nil && (h.BaseOffset < res.next || h.LastOffset()-s.base > maxRelOffset) {
			err = fmt.Errorf("%w: batch offsets [%d, %d] out of order (expected >= %d)", batch.ErrCorrupt, h.BaseOffset, h.LastOffset(), res.next)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return res, err // an I/O problem, not a format one
		}
		if err != nil {
			res.err = err
			// Damage in the middle: this batch's header is intact, it fits,
			// and a valid batch follows it.
			if n > 0 && pos+n < size {
				if h2, _, err2 := validateAt(r, pos+n); err2 == nil && h2.BaseOffset >= res.next {
					res.midwayAt = pos + n
				}
			}
			break
		}
		s.observe(pos, h, interval)
		res.next = h.NextOffset()
		pos += n
	}
	res.end = pos
	return res, nil
}

// validateAt validates the batch at pos. n is the batch's declared size
// when the header parses and the batch fits in the file (else 0).
func validateAt(r *chunkReader, pos int64) (batch.Header, int64, error) {
	if r.size-pos < batch.HeaderSize {
		return batch.Header{}, 0, batch.ErrShort
	}
	hb, err := r.window(pos, batch.HeaderSize)
	if err != nil {
		return batch.Header{}, 0, err
	}
	h, err := batch.ParseHeader(hb)
	if err != nil {
		return h, 0, err
	}
	if h.Length < batch.MinLength {
		return h, 0, batch.ErrLength
	}
	n := int64(h.Size())
	if n > r.size-pos {
		return h, 0, batch.ErrShort
	}
	b, err := r.window(pos, n)
	if err != nil {
		return h, 0, err
	}
	h, err = batch.Validate(b)
	return h, n, err
}

// recoverSegment scans s fully, truncates a torn tail if s is the last
// segment, and rewrites its index files.
func (p *Partition) recoverSegment(s *segment, last bool) error {
	st, err := s.log.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	res, err := scanSegment(s, size, int64(p.config().IndexIntervalBytes))
	if err != nil {
		return fmt.Errorf("%s: recover %s: %w", p.tp, s.logPath(), err)
	}
	if res.err != nil {
		switch {
		case !last:
			return corruptionf("%s: segment %s: invalid batch at position %d of %d: %v", p.tp, s.logPath(), res.end, size, res.err)
		case res.midwayAt >= 0:
			return corruptionf("%s: segment %s: invalid batch at position %d followed by a valid batch at %d: %v", p.tp, s.logPath(), res.end, res.midwayAt, res.err)
		}
		p.recoveredUnclean.Store(true)
		p.logger.Warn("truncating torn tail", "segment", s.logPath(), "position", res.end, "dropped_bytes", size-res.end, "reason", res.err)
		if err := s.log.Truncate(res.end); err != nil {
			return err
		}
	}
	s.size.Store(res.end)
	s.next.Store(res.next)
	s.lastModMs.Store(st.ModTime().UnixMilli())
	s.rollTs = p.now().UnixMilli()
	if !last {
		s.maybeAddTimeEntry()
		s.sealed.Store(true)
	}
	s.syncedSize = 0
	s.dirSynced = true
	return s.rewriteIndexes()
}

// readIndexBytes reads an index file whose size is bounded by what a log of
// logSize bytes can need (one entry per batch at most).
func readIndexBytes(f *os.File, logSize int64, entrySize int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > indexHeaderSize+(logSize/batch.HeaderSize+1)*entrySize {
		return nil, errIndexTooLarge
	}
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// loadTrusted loads a segment from a clean shutdown: indexes from their
// files (validated) and a header scan of the bytes after the last index
// entry. An error means the segment must be recovered by a full scan.
func (p *Partition) loadTrusted(s *segment, last bool) error {
	st, err := s.log.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	ib, err := readIndexBytes(s.indexFile, size, offsetEntrySize)
	if err != nil {
		return err
	}
	oes, err := parseOffsetIndex(ib, s.base, size)
	if err != nil {
		return err
	}
	tb, err := readIndexBytes(s.timeFile, size, timeEntrySize)
	if err != nil {
		return err
	}
	tes, err := parseTimeIndex(tb, s.base, maxRelOffset)
	if err != nil {
		return err
	}
	maxTs, maxTsOffset := int64(-1), int64(-1)
	if n := len(tes); n > 0 {
		maxTs, maxTsOffset = tes[n-1].ts, s.base+int64(tes[n-1].rel)
	}
	start, next := int64(0), s.base
	if n := len(oes); n > 0 {
		start, next = int64(oes[n-1].pos), s.base+int64(oes[n-1].rel)
	}
	first := true
	var bad error
	err = s.scanHeaders(start, size, func(pos int64, h batch.Header) bool {
		if (first && len(oes) > 0 && h.BaseOffset != next) || h.BaseOffset < next || h.LastOffset()-s.base > maxRelOffset {
			bad = corruptionf("segment %s: batch at %d has offset %d, expected >= %d", s.logPath(), pos, h.BaseOffset, next)
			return false
		}
		first = false
		if h.MaxTimestamp > maxTs {
			maxTs, maxTsOffset = h.MaxTimestamp, h.LastOffset()
		}
		next = h.NextOffset()
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	if maxTsOffset >= next {
		return corruptionf("segment %s: time index offset %d beyond segment end %d", s.logPath(), maxTsOffset, next)
	}
	s.offIdx.set(oes)
	s.timeIdx.set(tes)
	s.offWritten, s.timeWritten = len(oes), len(tes)
	s.bytesSinceIndex = size - start
	s.maxTs.Store(maxTs)
	s.maxTsOffset.Store(maxTsOffset)
	s.size.Store(size)
	s.next.Store(next)
	s.lastModMs.Store(st.ModTime().UnixMilli())
	s.rollTs = p.now().UnixMilli()
	s.syncedSize = size
	s.dirSynced = true
	s.indexSynced = true
	s.sealed.Store(!last)
	return nil
}

// parseSegmentName returns the base offset of "<20 digits><suffix>".
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// cleanDir removes leftovers of interrupted operations: deleted segments,
// unfinished compactions and temp files; and completes swaps.
func (p *Partition) cleanDir() error {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	var swaps []int64
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, deletedSuffix), strings.HasSuffix(name, cleanedSuffix), strings.HasSuffix(name, tmpSuffix):
			if err := os.Remove(filepath.Join(p.dir, name)); err != nil {
				return err
			}
		case strings.HasSuffix(name, swapSuffix):
			if base, ok := parseSegmentName(strings.TrimSuffix(name, swapSuffix), logSuffix); ok {
				swaps = append(swaps, base)
			} else if err := os.Remove(filepath.Join(p.dir, name)); err != nil {
				return err // index .swap files: the index is rebuilt
			}
		}
	}
	for _, base := range swaps {
		if err := p.completeSwap(base); err != nil {
			return err
		}
	}
	return nil
}

// completeSwap finishes a compaction whose cleaned segment was renamed to
// "<base>.log.swap": the segments it replaces (bases in [base, swap end))
// are removed and the swap file becomes "<base>.log"; its indexes are
// rebuilt on load.
func (p *Partition) completeSwap(base int64) error {
	swapPath := segmentPath(p.dir, base, logSuffix) + swapSuffix
	f, err := os.Open(swapPath)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s := &segment{base: base, dir: p.dir, log: f}
	res, err := scanSegment(s, st.Size(), int64(p.config().IndexIntervalBytes))
	f.Close()
	if err != nil {
		return err
	}
	if res.err != nil {
		return corruptionf("%s: swap segment %s invalid at %d: %v", p.tp, swapPath, res.end, res.err)
	}
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, ok := parseSegmentName(e.Name(), logSuffix)
		if !ok || b < base || b >= res.next {
			continue
		}
		for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
			if err := os.Remove(segmentPath(p.dir, b, suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentPath(p.dir, base, suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(swapPath, segmentPath(p.dir, base, logSuffix)); err != nil {
		return err
	}
	p.logger.Info("completed segment swap", "base", base, "end", res.next)
	return syncDir(p.dir)
}

// load opens the partition's segments, recovering them if needed. clean
// says the last shutdown was clean; recoveryPoint and logStart come from
// the checkpoints (-1 if unknown).
func (p *Partition) load(clean bool, recoveryPoint, logStart int64) (err error) {
	if err := p.cleanDir(); err != nil {
		return err
	}
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	var bases []int64
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name(), logSuffix); ok {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	p.recoveredUnclean.Store(!clean && len(bases) > 0)
	var segs []*segment
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.close()
			}
		}
	}()
	nowMs := p.now().UnixMilli()
	if len(bases) == 0 {
		s, err := createSegment(p.dir, max(logStart, 0), nowMs)
		if err != nil {
			return err
		}
		segs = append(segs, s)
		clean = true
	}
	for _, b := range bases {
		s, err := openSegment(p.dir, b)
		if err != nil {
			return err
		}
		segs = append(segs, s)
	}
	// Segments from the one holding the recovery point on are scanned.
	firstScan := len(segs)
	if !clean {
		firstScan = 0
		if recoveryPoint >= 0 {
			firstScan = segmentFor(segs, recoveryPoint)
		}
	}
	scanned := 0
	for i, s := range segs {
		last := i == len(segs)-1
		if len(bases) == 0 {
			break
		}
		if i < firstScan {
			if terr := p.loadTrusted(s, last); terr == nil {
				continue
			} else {
				p.logger.Warn("segment failed validation; rebuilding its indexes", "segment", s.logPath(), "err", terr)
				p.recoveredUnclean.Store(true)
			}
		}
		if err := p.recoverSegment(s, last); err != nil {
			return err
		}
		scanned++
	}
	for i := 1; i < len(segs); i++ {
		if prev := segs[i-1]; prev.next.Load() > segs[i].base {
			return corruptionf("%s: segment %d ends at offset %d, after the next segment's base %d", p.tp, prev.base, prev.next.Load(), segs[i].base)
		}
	}
	p.segs.Store(&segs)
	leo := segs[len(segs)-1].next.Load()
	p.logEnd.Store(leo)
	ls := max(logStart, segs[0].base)
	if ls > leo {
		ls = leo
	}
	p.logStart.Store(ls)
	if scanned > 0 {
		p.logger.Info("recovered partition", "segments_scanned", scanned, "segments", len(segs), "log_end", leo)
		if err := p.flush(false); err != nil {
			return err
		}
	} else {
		p.durable.Store(leo)
		p.recoveryPoint.Store(leo)
	}
	if err := p.epochs.truncateFromEnd(leo); err != nil {
		return err
	}
	if err := p.epochs.truncateFromStart(ls); err != nil {
		return err
	}
	return p.rebuildProducerState(leo, ls)
}
