package batch

// Record-level decoding. The produce and fetch paths never come here; the
// log cleaner (compaction), OffsetForTimestamp and tests do.
//
// The records section that follows the header (compressed as a whole when
// the codec is not none) is a sequence of records, each:
//
//	length          varint  bytes after this field
//	attributes      int8    unused in v2
//	timestampDelta  varlong from baseTimestamp
//	offsetDelta     varint  from baseOffset
//	keyLength       varint  -1 = null
//	key             bytes
//	valueLength     varint  -1 = null (a tombstone)
//	value           bytes
//	headerCount     varint
//	headers         headerCount × (keyLength varint, key, valueLength varint (-1 = null), value)
//
// Varints are zigzag encoded (encoding/binary's Varint); a varint is 32 bits,
// a varlong 64.

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Record is one record of a v2 batch, with its offset and timestamp made
// absolute (BaseOffset+offsetDelta, BaseTimestamp+timestampDelta). A nil Key
// or Value is null; an empty non-nil one has length 0. For a LogAppendTime
// batch, Kafka clients report the batch's MaxTimestamp for every record;
// Timestamp still holds the stored value.
type Record struct {
	Offset     int64
	Timestamp  int64
	Attributes int8
	Key        []byte
	Value      []byte
	Headers    []RecordHeader
}

// RecordHeader is one record header. A nil Value is null.
type RecordHeader struct {
	Key   string
	Value []byte
}

// ErrRecords marks a records section that does not parse.
var ErrRecords = fmt.Errorf("%w: malformed records", ErrCorrupt)

// Smallest encodings, used to bound allocations by the bytes remaining:
// a record is at least 7 bytes (length, attributes, timestampDelta,
// offsetDelta, keyLength, valueLength, headerCount: one byte each) and a
// header at least 2.
const (
	minRecordSize = 7
	minHeaderSize = 2
)

// Decoder decodes whole batches into records, reusing its buffers from
// call to call. The zero value is ready to use. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	// MaxSize bounds the decompressed size of a records section;
	// 0 means DefaultMaxDecompressedSize.
	MaxSize int

	buf  []byte
	recs []Record
}

// Decode validates the batch at the start of b (see Validate: header,
// length, CRC-32C), decompresses its records section and parses every
// record. The returned records alias b (uncompressed batches) or the
// Decoder's buffer (compressed ones), and the slice itself is reused: both
// stay valid only until the next call to Decode.
//
// Every length read from the bytes is checked against the bytes remaining
// before anything is allocated; the record count must match the header's,
// each record must use exactly its declared length, and no bytes may
// follow the last record. Errors wrap ErrCorrupt, except ErrShort (b ends
// before the batch) and ErrTooLarge.
func (d *Decoder) Decode(b []byte) (Header, []Record, error) {
	h, err := Validate(b)
	if err != nil {
		return h, nil, err
	}
	section := b[HeaderSize:h.Size()]
	c := h.Compression()
	if c > CodecZstd {
		return h, nil, fmt.Errorf("batch at offset %d: %w: %d", h.BaseOffset, ErrCodec, c)
	}
	if c != CodecNone && (len(section) > 0 || h.NumRecords > 0) {
		d.buf, err = Decompress(d.buf[:0], section, c, d.MaxSize)
		if err != nil {
			return h, nil, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
		}
		section = d.buf
	}
	// Clear the previous records so the reused slice holds no stale
	// references to old buffers.
	clear(d.recs)
	d.recs, err = parseRecords(d.recs[:0], h, section)
	if err != nil {
		return h, nil, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	return h, d.recs, nil
}

// DecodeRecords decodes the batch at the start of b with a fresh Decoder;
// see Decoder.Decode. The records alias b or a new buffer and stay valid.
func DecodeRecords(b []byte) (Header, []Record, error) {
	var d Decoder
	return d.Decode(b)
}

// ParseRecords parses an uncompressed records section (what follows the
// header, after decompression) holding the records of the batch h, and
// appends them to dst. The records alias section.
func ParseRecords(dst []Record, h Header, section []byte) ([]Record, error) {
	return parseRecords(dst, h, section)
}

// parseRecords appends the records of section to recs.
func parseRecords(recs []Record, h Header, section []byte) ([]Record, error) {
	if h.NumRecords < 0 {
		return recs, fmt.Errorf("%w: record count %d", ErrRecords, h.NumRecords)
	}
	n := int(h.NumRecords)
	if n > len(section)/minRecordSize {
		return recs, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrRecords, n, len(section))
	}
	if cap(recs)-len(recs) < n {
		nr := make([]Record, len(recs), len(recs)+n)
		copy(nr, recs)
		recs = nr
	}
	r := reader{b: section}
	for i := range n {
		length := r.varint()
		if r.err != nil {
			return recs, fmt.Errorf("%w: record %d: length: %v", ErrRecords, i, r.err) //nolint:errorlint // detail
		}
		if length < 0 || int(length) > len(r.b)-r.off {
			return recs, fmt.Errorf("%w: record %d: length %d with %d bytes left", ErrRecords, i, length, len(r.b)-r.off)
		}
		end := r.off + int(length)
		rr := reader{b: r.b[:end], off: r.off}
		var rec Record
		rec.Attributes = int8(rr.byte1())
		tsDelta := rr.varlong()
		offDelta := rr.varint()
		rec.Key = rr.bytes()
		rec.Value = rr.bytes()
		nh := rr.varint()
		if rr.err == nil && (nh < 0 || int(nh) > (len(rr.b)-rr.off)/minHeaderSize) {
			rr.err = fmt.Errorf("header count %d with %d bytes left", nh, len(rr.b)-rr.off)
		}
		if rr.err == nil && nh > 0 {
			hdrs := make([]RecordHeader, 0, int(nh))
			for range nh {
				k := rr.bytes()
				v := rr.bytes()
				if rr.err != nil {
					break
				}
				if k == nil {
					rr.err = fmt.Errorf("null header key")
					break
				}
				hdrs = append(hdrs, RecordHeader{Key: string(k), Value: v})
			}
			rec.Headers = hdrs
		}
		if rr.err != nil {
			return recs, fmt.Errorf("%w: record %d: %v", ErrRecords, i, rr.err) //nolint:errorlint // detail
		}
		if rr.off != end {
			return recs, fmt.Errorf("%w: record %d: declared %d bytes, used %d", ErrRecords, i, length, int(length)-(end-rr.off))
		}
		r.off = end
		if offDelta < 0 {
			return recs, fmt.Errorf("%w: record %d: negative offset delta %d", ErrRecords, i, offDelta)
		}
		rec.Offset = h.BaseOffset + int64(offDelta)
		rec.Timestamp = h.BaseTimestamp + tsDelta
		recs = append(recs, rec)
	}
	if r.off != len(r.b) {
		return recs, fmt.Errorf("%w: %d bytes after the last of %d records", ErrRecords, len(r.b)-r.off, n)
	}
	return recs, nil
}

// reader reads varints and length-prefixed bytes; after the first error
// every read returns a zero value and err stays set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("short record at byte %d", r.off)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) varlong() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint at byte %d", r.off)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int32 {
	v := r.varlong()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail("varint %d out of int32 range", v)
		return 0
	}
	return int32(v)
}

// bytes reads a varint length and that many bytes (aliased); -1 is null.
func (r *reader) bytes() []byte {
	n := r.varint()
	if r.err != nil {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < 0 || int(n) > len(r.b)-r.off {
		r.fail("length %d with %d bytes left", n, len(r.b)-r.off)
		return nil
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}
