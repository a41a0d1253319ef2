package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// segment is one .log file with its two indexes. Fields are grouped by who
// may touch them:
//
//   - immutable after creation: base, dir and the files;
//   - atomics, read by anyone: size (committed bytes), next, maxTs...;
//   - appender-owned (the partition's append lock): offIdx.buf, timeIdx.buf,
//     bytesSinceIndex, rollTs, sealed transitions;
//   - flusher-owned (the partition's flush lock): syncedSize, offWritten,
//     timeWritten, dirSynced, indexSynced.
type segment struct {
	base      int64
	dir       string
	log       *os.File
	indexFile *os.File
	timeFile  *os.File

	size        atomic.Int64 // bytes of whole, committed batches; readers stop here
	next        atomic.Int64 // offset after the segment's last batch (base if empty)
	maxTs       atomic.Int64 // largest batch maxTimestamp, -1 if none
	maxTsOffset atomic.Int64 // last offset of the first batch reaching maxTs
	lastModMs   atomic.Int64 // wall time of the last append (or file mtime)
	sealed      atomic.Bool  // rolled: no more appends, indexes final
	txnDirty    atomic.Bool  // aborted transactions changed: the flusher rewrites .txnindex

	offIdx  entryList[offsetEntry]
	timeIdx entryList[timeEntry]

	bytesSinceIndex int64
	rollTs          int64 // ms: first batch's max timestamp, or creation time; for segment.ms

	syncedSize  int64
	offWritten  int
	timeWritten int
	dirSynced   bool
	indexSynced bool
}

func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf(segmentNameFormat, base)+suffix)
}

func (s *segment) logPath() string { return segmentPath(s.dir, s.base, logSuffix) }

// createSegment creates the three files of a new, empty segment. The
// directory is not fsynced here; the flusher does that before it reports
// any offset of this segment durable.
func createSegment(dir string, base int64, nowMs int64) (s *segment, err error) {
	s = &segment{base: base, dir: dir, rollTs: nowMs}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.log, err = os.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return nil, err
	}
	if s.indexFile, err = createIndexFile(segmentPath(dir, base, indexSuffix), offsetIndexMagic, base); err != nil {
		return nil, err
	}
	if s.timeFile, err = createIndexFile(segmentPath(dir, base, timeIndexSuffix), timeIndexMagic, base); err != nil {
		return nil, err
	}
	s.next.Store(base)
	s.maxTs.Store(-1)
	s.maxTsOffset.Store(-1)
	s.lastModMs.Store(nowMs)
	return s, nil
}

func createIndexFile(path, magic string, base int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(appendIndexHeader(nil, magic, base), 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openSegment opens the files of an existing segment without loading
// anything. Missing index files are created empty (and so fail validation
// and get rebuilt).
func openSegment(dir string, base int64) (s *segment, err error) {
	s = &segment{base: base, dir: dir, dirSynced: true}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.log, err = os.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR, 0); err != nil {
		return nil, err
	}
	if s.indexFile, err = os.OpenFile(segmentPath(dir, base, indexSuffix), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	if s.timeFile, err = os.OpenFile(segmentPath(dir, base, timeIndexSuffix), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	s.next.Store(base)
	s.maxTs.Store(-1)
	s.maxTsOffset.Store(-1)
	return s, nil
}

// close closes the segment's files.
func (s *segment) close() error {
	var errs []error
	for _, f := range []*os.File{s.log, s.indexFile, s.timeFile} {
		if f != nil {
			if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// renameDeleted renames the segment's files to "<name>.deleted" (the files
// stay open). A crash after this leaves files that open removes.
func (s *segment) renameDeleted() error {
	var errs []error
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		p := segmentPath(s.dir, s.base, suf)
		if err := os.Rename(p, p+deletedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeDeleted removes the "<name>.deleted" files of the segment.
func (s *segment) removeDeleted() error {
	var errs []error
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if err := os.Remove(segmentPath(s.dir, s.base, suf) + deletedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// observe updates the segment's timestamp bookkeeping for an appended or
// scanned batch. Appender-owned (or single-threaded during load).
func (s *segment) observe(pos int64, h batch.Header, indexInterval int64) {
	if h.MaxTimestamp > s.maxTs.Load() {
		s.maxTs.Store(h.MaxTimestamp)
		s.maxTsOffset.Store(h.LastOffset())
	}
	if s.bytesSinceIndex > indexInterval && pos > 0 {
		s.offIdx.add(offsetEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		s.maybeAddTimeEntry()
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += int64(h.Size())
}

// maybeAddTimeEntry appends (maxTs, maxTsOffset) to the time index if the
// max timestamp grew since the last entry.
func (s *segment) maybeAddTimeEntry() {
	ts := s.maxTs.Load()
	if ts < 0 {
		return
	}
	es := s.timeIdx.load()
	if len(es) > 0 && es[len(es)-1].ts >= ts {
		return
	}
	s.timeIdx.add(timeEntry{ts: ts, rel: uint32(s.maxTsOffset.Load() - s.base)})
}

// indexFull reports whether either index has reached maxBytes.
func (s *segment) indexFull(maxBytes int32) bool {
	return int64(len(s.offIdx.buf)+1)*offsetEntrySize > int64(maxBytes) ||
		int64(len(s.timeIdx.buf)+1)*timeEntrySize > int64(maxBytes)
}

// writeIndexes appends index entries not yet in the index files. Caller
// holds the partition's flush lock.
func (s *segment) writeIndexes() error {
	if es := s.offIdx.load(); len(es) > s.offWritten {
		b := appendOffsetEntries(nil, es[s.offWritten:])
		if _, err := s.indexFile.WriteAt(b, int64(indexHeaderSize+s.offWritten*offsetEntrySize)); err != nil {
			return err
		}
		s.offWritten = len(es)
	}
	if es := s.timeIdx.load(); len(es) > s.timeWritten {
		b := appendTimeEntries(nil, es[s.timeWritten:])
		if _, err := s.timeFile.WriteAt(b, int64(indexHeaderSize+s.timeWritten*timeEntrySize)); err != nil {
			return err
		}
		s.timeWritten = len(es)
	}
	return nil
}

// rewriteIndexes replaces both index files with the in-memory entries.
// Caller holds the flush lock (or is loading).
func (s *segment) rewriteIndexes() error {
	ob := appendOffsetEntries(appendIndexHeader(nil, offsetIndexMagic, s.base), s.offIdx.load())
	tb := appendTimeEntries(appendIndexHeader(nil, timeIndexMagic, s.base), s.timeIdx.load())
	for _, w := range []struct {
		f *os.File
		b []byte
	}{{s.indexFile, ob}, {s.timeFile, tb}} {
		if _, err := w.f.WriteAt(w.b, 0); err != nil {
			return err
		}
		if err := w.f.Truncate(int64(len(w.b))); err != nil {
			return err
		}
	}
	s.offWritten = len(s.offIdx.load())
	s.timeWritten = len(s.timeIdx.load())
	s.indexSynced = false
	return nil
}

// truncateIndexFilesLocked shrinks the index files to the in-memory entries
// after a truncation. Caller holds the flush lock.
func (s *segment) truncateIndexFilesLocked() error {
	no, nt := len(s.offIdx.load()), len(s.timeIdx.load())
	if no < s.offWritten {
		if err := s.indexFile.Truncate(int64(indexHeaderSize + no*offsetEntrySize)); err != nil {
			return err
		}
		s.offWritten = no
	}
	if nt < s.timeWritten {
		if err := s.timeFile.Truncate(int64(indexHeaderSize + nt*timeEntrySize)); err != nil {
			return err
		}
		s.timeWritten = nt
	}
	return nil
}

var headerBufPool = sync.Pool{New: func() any { return new([4096]byte) }}

// scanHeaders calls fn with the position and header of each batch from pos
// while pos < end, until fn returns false. It reads headers only (no CRC
// check); a header that does not parse inside the committed range is
// corruption.
func (s *segment) scanHeaders(pos, end int64, fn func(pos int64, h batch.Header) bool) error {
	bp := headerBufPool.Get().(*[4096]byte)
	defer headerBufPool.Put(bp)
	buf := bp[:]
	var bufPos, bufLen int64 = 0, 0
	for pos < end {
		if pos < bufPos || pos+batch.HeaderSize > bufPos+bufLen {
			n := min(int64(len(buf)), end-pos)
			if n < batch.HeaderSize {
				return corruptionf("segment %s: %d trailing bytes at %d", s.logPath(), n, pos)
			}
			m, err := s.log.ReadAt(buf[:n], pos)
			if int64(m) < batch.HeaderSize {
				if err == nil || errors.Is(err, io.EOF) {
					err = corruptionf("segment %s: short read at %d", s.logPath(), pos)
				}
				return err
			}
			bufPos, bufLen = pos, int64(m)
		}
		h, err := batch.ParseHeader(buf[pos-bufPos:])
		if err != nil {
			return corruptionf("segment %s: position %d: %v", s.logPath(), pos, err)
		}
		if h.Length < batch.MinLength || pos+int64(h.Size()) > end {
			return corruptionf("segment %s: position %d: batch length %d past %d", s.logPath(), pos, h.Length, end)
		}
		if !fn(pos, h) {
			return nil
		}
		pos += int64(h.Size())
	}
	return nil
}

// findBatch returns the position of the first batch in [0, size) whose last
// offset is >= offset, using the index and then scanning headers. found is
// false if there is none.
func (s *segment) findBatch(offset int64, size int64) (pos int64, h batch.Header, found bool, err error) {
	start := int64(0)
	if offset > s.base {
		rel := offset - s.base
		if rel > maxRelOffset {
			rel = maxRelOffset
		}
		start = int64(lookupOffset(s.offIdx.load(), uint32(rel)))
	}
	if start >= size {
		start = 0
	}
	err = s.scanHeaders(start, size, func(p int64, bh batch.Header) bool {
		if bh.LastOffset() >= offset {
			pos, h, found = p, bh, true
			return false
		}
		return true
	})
	return pos, h, found, err
}
