package batch

import "fmt"

// Validate checks the batch at the start of b: a whole header, magic 2, a
// batch length that is at least a header and fits in b, a non-negative
// lastOffsetDelta and record count, and the CRC-32C. It returns the header.
// b may continue past the batch; h.Size() says where the batch ends.
//
// A batch whose declared length runs past the end of b yields an error
// wrapping ErrShort; every other failure wraps ErrCorrupt. Validate does not
// allocate and reads no length from b without checking it first.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Length < MinLength {
		return h, fmt.Errorf("%w: %d", ErrLength, h.Length)
	}
	if int64(h.Length) > int64(len(b)-LogOverhead) {
		return h, fmt.Errorf("%w: batch length %d, %d bytes left", ErrShort, h.Length, len(b)-LogOverhead)
	}
	if h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d", ErrHeader, h.LastOffsetDelta)
	}
	if h.NumRecords < 0 {
		return h, fmt.Errorf("%w: record count %d", ErrHeader, h.NumRecords)
	}
	if got := Checksum(b); got != h.CRC {
		return h, fmt.Errorf("%w: stored %#08x, computed %#08x", ErrCRC, h.CRC, got)
	}
	return h, nil
}

// Iter walks concatenated batches in a buffer:
//
//	it := batch.NewIter(buf)
//	for it.Next() {
//		h, raw := it.Header(), it.Batch()
//	}
//	if err := it.Err(); err != nil { ... }
//
// With Validate set, each batch is checked with Validate (including the
// CRC); otherwise only the header and length are checked. Iteration stops at
// the first bad batch; Err reports it and Pos says where it starts.
type Iter struct {
	buf      []byte
	pos      int
	cur      []byte
	hdr      Header
	err      error
	validate bool
}

// NewIter returns an iterator over b that validates every batch.
func NewIter(b []byte) *Iter { return &Iter{buf: b, validate: true} }

// NewHeaderIter returns an iterator over b that checks headers and lengths
// but not CRCs.
func NewHeaderIter(b []byte) *Iter { return &Iter{buf: b} }

// Next advances to the next batch; false at the end or on error.
func (it *Iter) Next() bool {
	if it.err != nil {
		return false
	}
	it.pos += len(it.cur)
	it.cur = nil
	rest := it.buf[it.pos:]
	if len(rest) == 0 {
		return false
	}
	var h Header
	var err error
	if it.validate {
		h, err = Validate(rest)
	} else {
		h, err = ParseHeader(rest)
		if err == nil {
			switch {
			case h.Length < MinLength:
				err = fmt.Errorf("%w: %d", ErrLength, h.Length)
			case int64(h.Length) > int64(len(rest)-LogOverhead):
				err = fmt.Errorf("%w: batch length %d, %d bytes left", ErrShort, h.Length, len(rest)-LogOverhead)
			}
		}
	}
	if err != nil {
		it.err = err
		return false
	}
	it.hdr = h
	it.cur = rest[:h.Size()]
	return true
}

// Header is the current batch's header.
func (it *Iter) Header() Header { return it.hdr }

// Batch is the current batch's bytes (aliasing the buffer).
func (it *Iter) Batch() []byte { return it.cur }

// Pos is the position in the buffer of the current batch, or after Next
// returns false, of the end of the last good batch.
func (it *Iter) Pos() int { return it.pos }

// Err is the error that stopped iteration, nil at a clean end.
func (it *Iter) Err() error { return it.err }
