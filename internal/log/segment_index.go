package log

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync/atomic"
)

// offsetEntry maps a batch's base offset (relative to the segment base) to
// the file position of the batch.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry records that the largest batch maxTimestamp seen up to and
// including the batch whose last offset is base+rel is ts (Kafka's
// maxTimestampSoFar / offsetOfMaxTimestampSoFar).
type timeEntry struct {
	ts  int64
	rel uint32
}

// entryList is an append-only list read by many goroutines without locks.
// The writer (who holds the partition's append lock) owns buf; readers see
// the published entryArray: a backing array and a count of the entries
// in it that are complete. add writes the slot past the count and then
// stores the new count, so a reader that loads the count reads only
// complete slots and never one being written; it allocates only when buf
// grows (a new backing array, published as a new entryArray), not per
// entry. Truncation and set also publish a new entryArray (truncation
// copies), so old readers keep a stable view.
type entryList[E any] struct {
	view atomic.Pointer[entryArray[E]]
	buf  []E // writer-owned; len(buf) == published count, same backing array
}

// entryArray is a published backing array: arr[:n] are complete entries.
type entryArray[E any] struct {
	arr []E // the whole backing array (len == cap)
	n   atomic.Int64
}

func (l *entryList[E]) load() []E {
	_, es := l.loadArray()
	return es
}

// loadArray is load that also returns the published array: while
// l.view.Load() still returns the same array, the list has only grown
// (truncation and set publish a new one).
func (l *entryList[E]) loadArray() (*entryArray[E], []E) {
	a := l.view.Load()
	if a == nil {
		return nil, nil
	}
	n := a.n.Load()
	return a, a.arr[:n:n]
}

// publishArray publishes buf's backing array with its count.
func (l *entryList[E]) publishArray() {
	a := &entryArray[E]{arr: l.buf[:cap(l.buf)]}
	a.n.Store(int64(len(l.buf)))
	l.view.Store(a)
}

func (l *entryList[E]) add(e E) {
	grow := len(l.buf) == cap(l.buf)
	l.buf = append(l.buf, e)
	if a := l.view.Load(); grow || a == nil {
		l.publishArray()
	} else {
		a.n.Store(int64(len(l.buf)))
	}
}

// set replaces the list with es, which the list then owns.
func (l *entryList[E]) set(es []E) {
	l.buf = es
	l.publishArray()
}

// truncate keeps the first n entries.
func (l *entryList[E]) truncate(n int) {
	if n >= len(l.buf) {
		return
	}
	nb := make([]E, n, max(n, 16))
	copy(nb, l.buf[:n])
	l.buf = nb
	l.publishArray()
}

// lookupOffset returns the position of the last indexed batch whose base
// offset is <= rel, or 0 if there is none.
func lookupOffset(es []offsetEntry, rel uint32) uint32 {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel > rel })
	if i == 0 {
		return 0
	}
	return es[i-1].pos
}

// exactOffset returns the position of the batch whose base offset is
// exactly rel, if the index has an entry for it.
func exactOffset(es []offsetEntry, rel uint32) (pos uint32, ok bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel >= rel })
	if i < len(es) && es[i].rel == rel {
		return es[i].pos, true
	}
	return 0, false
}

// lookupTime returns the relative offset of the last entry whose timestamp
// is <= ts; ok is false if there is none (scan from the segment start).
func lookupTime(es []timeEntry, ts int64) (rel uint32, ok bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].ts > ts })
	if i == 0 {
		return 0, false
	}
	return es[i-1].rel, true
}

// appendIndexHeader appends the 16-byte header of an index file.
func appendIndexHeader(dst []byte, magic string, base int64) []byte {
	dst = append(dst, magic...)
	dst = append(dst, indexVersion, 0, 0, 0)
	return binary.BigEndian.AppendUint64(dst, uint64(base))
}

func appendOffsetEntries(dst []byte, es []offsetEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
		dst = binary.BigEndian.AppendUint32(dst, e.pos)
	}
	return dst
}

func appendTimeEntries(dst []byte, es []timeEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
	}
	return dst
}

// checkIndexHeader validates the header of an index file's bytes.
func checkIndexHeader(b []byte, magic string, base int64, entrySize int) (n int, err error) {
	if len(b) < indexHeaderSize {
		return 0, corruptionf("index file of %d bytes is shorter than its header", len(b))
	}
	if string(b[:4]) != magic {
		return 0, corruptionf("index magic %q, want %q", b[:4], magic)
	}
	if b[4] != indexVersion {
		return 0, corruptionf("index version %d, want %d", b[4], indexVersion)
	}
	if got := int64(binary.BigEndian.Uint64(b[8:])); got != base {
		return 0, corruptionf("index base offset %d, want %d", got, base)
	}
	body := len(b) - indexHeaderSize
	if body%entrySize != 0 {
		return 0, corruptionf("index body of %d bytes is not a multiple of %d", body, entrySize)
	}
	return body / entrySize, nil
}

// parseOffsetIndex decodes an offset index file. Entries must be strictly
// increasing in both offset and position, and positions must lie below
// logSize. The entry count comes from len(b), which the caller bounds.
func parseOffsetIndex(b []byte, base int64, logSize int64) ([]offsetEntry, error) {
	n, err := checkIndexHeader(b, offsetIndexMagic, base, offsetEntrySize)
	if err != nil {
		return nil, err
	}
	es := make([]offsetEntry, n)
	b = b[indexHeaderSize:]
	for i := range es {
		e := offsetEntry{rel: binary.BigEndian.Uint32(b[i*8:]), pos: binary.BigEndian.Uint32(b[i*8+4:])}
		if e.rel > maxRelOffset || int64(e.pos) >= logSize {
			return nil, corruptionf("offset index entry %d (%d, %d) out of range", i, e.rel, e.pos)
		}
		if i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos) {
			return nil, corruptionf("offset index entry %d (%d, %d) not increasing", i, e.rel, e.pos)
		}
		es[i] = e
	}
	return es, nil
}

// parseTimeIndex decodes a time index file: timestamps strictly increasing,
// offsets non-decreasing and at most maxRel.
func parseTimeIndex(b []byte, base int64, maxRel int64) ([]timeEntry, error) {
	n, err := checkIndexHeader(b, timeIndexMagic, base, timeEntrySize)
	if err != nil {
		return nil, err
	}
	es := make([]timeEntry, n)
	b = b[indexHeaderSize:]
	for i := range es {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b[i*12:])), rel: binary.BigEndian.Uint32(b[i*12+8:])}
		if int64(e.rel) > maxRel {
			return nil, corruptionf("time index entry %d offset %d out of range", i, e.rel)
		}
		if i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel) {
			return nil, corruptionf("time index entry %d (%d, %d) not increasing", i, e.ts, e.rel)
		}
		es[i] = e
	}
	return es, nil
}

// errIndexTooLarge is returned for index files larger than any index the
// engine writes, before they are read.
var errIndexTooLarge = fmt.Errorf("%w: index file too large", ErrCorruption)
