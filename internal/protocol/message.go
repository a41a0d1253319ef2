package protocol

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
)

var (
	// ErrRegionTruncated reports a file region whose file ended before the
	// region did (the segment was truncated or deleted under the response).
	// Bytes of the frame may already have been written: close the connection.
	ErrRegionTruncated = errors.New("protocol: file region truncated")
	// ErrResponseTooLarge reports a response whose size does not fit the
	// int32 size prefix.
	ErrResponseTooLarge = errors.New("protocol: response larger than 2 GiB")
	// ErrBadRegion reports a Region with a nil file or a negative position
	// or length.
	ErrBadRegion = errors.New("protocol: invalid file region")
)

// Region is a file range holding whole record batches. The broker converts
// the storage engine's regions to this type. The file must stay open until
// the Message holding the region has been sent (or dropped).
type Region struct {
	File *os.File
	Pos  int64
	Len  int64
}

// Message is one serialized response ready for the socket: a size prefix
// and bytes interleaved with file regions (for Fetch). Build it with
// AppendResponse or EncodeFetchResponse; send it with a Sender (or WriteTo).
//
// A Message may be handed back with Release once sent, which recycles its
// buffer for the next response; releasing is optional (the garbage collector
// reclaims unreleased ones). A Message is not safe for concurrent use.
type Message struct {
	buf   []byte   // every byte part, prefix first
	parts []part   // in wire order
	size  int64    // total length including the size prefix
	err   error    // a build error, returned by Send and WriteTo
	vec   [][]byte // scratch for writev
}

// part is either bytes buf[off:end] or, when r.File != nil, a file region.
type part struct {
	off, end int
	r        Region
}

// Message pool. Buffers that grew past maxPooledBuf are dropped rather than
// pinned in the pool.
const maxPooledBuf = 1 << 20

var messagePool = sync.Pool{New: func() any { return new(Message) }}

// newMessage returns an empty Message whose buffer starts with a reserved
// 4-byte size prefix.
func newMessage() *Message {
	m := messagePool.Get().(*Message)
	m.buf = append(m.buf[:0], 0, 0, 0, 0)
	return m
}

// Release returns m's buffers to a pool for reuse. m must not be used
// afterwards, and byte slices obtained from it become invalid. The files of
// its regions are not closed.
func (m *Message) Release() {
	if m == nil {
		return
	}
	clear(m.parts) // drop *os.File references
	clear(m.vec)
	*m = Message{buf: m.buf[:0], parts: m.parts[:0], vec: m.vec[:0]}
	if cap(m.buf) > maxPooledBuf {
		m.buf = nil
	}
	messagePool.Put(m)
}

// Len is the total size including the 4-byte size prefix.
func (m *Message) Len() int64 { return m.size }

// Err reports a problem found while building m (for example an invalid
// region); Send and WriteTo return it without writing anything.
func (m *Message) Err() error { return m.err }

// cut ends the byte part that started at from (if non-empty) and returns
// the start of the next one.
func (m *Message) cut(from int) int {
	if end := len(m.buf); end > from {
		m.parts = append(m.parts, part{off: from, end: end})
	}
	return len(m.buf)
}

// addRegion appends a region part (empty regions are skipped).
func (m *Message) addRegion(r Region) {
	switch {
	case r.File == nil || r.Pos < 0 || r.Len < 0:
		if m.err == nil {
			m.err = fmt.Errorf("%w: %+v", ErrBadRegion, r)
		}
	case r.Len > 0:
		m.parts = append(m.parts, part{r: r})
		m.size += r.Len
	}
}

// finish closes the last byte part at from and writes the size prefix.
func (m *Message) finish(from int) {
	m.cut(from)
	m.size += int64(len(m.buf))
	if m.size-4 > math.MaxInt32 && m.err == nil {
		m.err = fmt.Errorf("%w: %d bytes", ErrResponseTooLarge, m.size)
	}
	kbin.AppendInt32(m.buf[:0], int32(m.size-4))
}

// bytes returns the bytes of a byte part.
func (m *Message) bytes(p *part) []byte { return m.buf[p.off:p.end] }

// WriteTo writes m to w, reading regions through a pooled buffer with
// explicit offsets (pread); it implements io.WriterTo. It is the portable
// path; Sender.Send uses sendfile(2) where it can.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	if m.err != nil {
		return 0, m.err
	}
	cw := copyWriter{w: w}
	defer cw.release()
	err := m.copyTo(&cw)
	return cw.n, err
}

// copyTo writes every part through cw.
func (m *Message) copyTo(cw *copyWriter) error {
	for i := range m.parts {
		p := &m.parts[i]
		if p.r.File == nil {
			cw.writeBytes(m.bytes(p))
		} else {
			cw.copyRegion(p.r)
		}
		if cw.err != nil {
			return cw.err
		}
	}
	cw.flush()
	return cw.err
}
