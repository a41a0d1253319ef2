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

// entryList is an append-only list read by many goroutines without locks:
// the writer (who holds the partition's append lock) appends to buf and
// publishes a new slice header; readers load the published header and read
// only below its length, so they never see a slot being written. Truncation
// copies to a new backing array so old readers keep a stable view.
type entryList[E any] struct {
	view atomic.Pointer[[]E]
	buf  []E // writer-owned; len(buf) == len(*view)
}

func (l *entryList[E]) load() []E {
	if p := l.view.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *entryList[E]) publish() {
	v := l.buf
	l.view.Store(&v)
}

func (l *entryList[E]) add(e E) {
	l.buf = append(l.buf, e)
	l.publish()
}

func (l *entryList[E]) set(es []E) {
	l.buf = es
	l.publish()
}

// truncate keeps the first n entries.
func (l *entryList[E]) truncate(n int) {
	if n >= len(l.buf) {
		return
	}
	nb := make([]E, n, max(n, 16))
	copy(nb, l.buf[:n])
	l.buf = nb
	l.publish()
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
