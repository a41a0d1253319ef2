package protocol

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// SendStats counts bytes sent, split by path. It is safe for concurrent use;
// one SendStats may be shared by every connection's Sender.
type SendStats struct {
	SendfileBytes atomic.Int64 // region bytes that went through sendfile(2)
	CopiedBytes   atomic.Int64 // region bytes copied through user space
	HeaderBytes   atomic.Int64 // non-region bytes (size prefixes, headers, bodies)
}

// Sender writes Messages to a connection. The zero value sends regions with
// sendfile(2) when the connection is a *net.TCPConn on Linux, with explicit
// file offsets (so it is safe while other goroutines read the same file),
// and copies them through a pooled buffer otherwise (TLS, other systems).
//
// A Sender holds no per-connection state; it may be shared. Send may be
// called concurrently only on different connections.
type Sender struct {
	// ForceCopy makes every region go through a user-space copy (the TLS
	// path; benchmarks compare both).
	ForceCopy bool
	// Stats, if non-nil, is incremented (atomically) per send.
	Stats *SendStats
}

// Send writes m to conn: runs of byte parts with one writev, regions with
// sendfile(2) where possible (see Sender), else copied. It honours conn's
// write deadline.
//
// Before writing anything it checks that every region's file is still long
// enough; a file truncated during the send fails it with ErrRegionTruncated.
// After any error the peer may have seen part of the frame: close the
// connection.
func (s *Sender) Send(conn net.Conn, m *Message) error {
	if m.err != nil {
		return m.err
	}
	if err := m.checkRegions(); err != nil {
		return err
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok || s.ForceCopy || !sendfileSupported {
		return s.sendCopy(conn, m)
	}
	vec := m.vec[:0]
	var headerBytes, fileBytes int64
	defer func() { s.count(headerBytes, fileBytes, 0) }()
	for i := 0; i < len(m.parts); {
		if m.parts[i].r.File == nil {
			vec = vec[:0]
			for ; i < len(m.parts) && m.parts[i].r.File == nil; i++ {
				vec = append(vec, m.bytes(&m.parts[i]))
			}
			m.vec = vec
			bufs := net.Buffers(vec)
			n, err := bufs.WriteTo(tcp)
			headerBytes += n
			if err != nil {
				return err
			}
			continue
		}
		n, err := sendfile(tcp, m.parts[i].r)
		fileBytes += n
		if err != nil {
			return err
		}
		i++
	}
	return nil
}

func (s *Sender) sendCopy(conn net.Conn, m *Message) error {
	cw := copyWriter{w: conn}
	defer func() {
		cw.release()
		s.count(cw.headerBytes, 0, cw.copiedBytes)
	}()
	return m.copyTo(&cw)
}

func (s *Sender) count(header, sendfile, copied int64) {
	if s.Stats == nil {
		return
	}
	if header != 0 {
		s.Stats.HeaderBytes.Add(header)
	}
	if sendfile != 0 {
		s.Stats.SendfileBytes.Add(sendfile)
	}
	if copied != 0 {
		s.Stats.CopiedBytes.Add(copied)
	}
}

// checkRegions fails if a region's file is already shorter than the region.
func (m *Message) checkRegions() error {
	for i := range m.parts {
		r := m.parts[i].r
		if r.File == nil {
			continue
		}
		fi, err := r.File.Stat()
		if err != nil {
			return fmt.Errorf("protocol: region %s: %w", r.File.Name(), err)
		}
		if fi.Size() < r.Pos+r.Len {
			return fmt.Errorf("%w: %s holds %d bytes, region ends at %d", ErrRegionTruncated, r.File.Name(), fi.Size(), r.Pos+r.Len)
		}
	}
	return nil
}

// copyBufSize is the size of the pooled buffers of the copy path: big enough
// to amortize syscalls (and TLS records), small enough to pool.
const copyBufSize = 256 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyWriter is the copy path: byte parts and region contents are gathered
// in one pooled buffer and written in large chunks. It also serves as the
// Message.WriteTo.
type copyWriter struct {
	w           io.Writer
	buf         *[]byte
	fill        int
	n           int64 // bytes written to w
	headerBytes int64
	copiedBytes int64
	err         error
}

func (c *copyWriter) writeBytes(b []byte) {
	for len(b) > 0 && c.err == nil {
		if c.buf == nil {
			c.buf = copyBufPool.Get().(*[]byte)
		}
		n := copy((*c.buf)[c.fill:], b)
		c.fill += n
		b = b[n:]
		c.headerBytes += int64(n)
		if c.fill == len(*c.buf) {
			c.flush()
		}
	}
}

func (c *copyWriter) copyRegion(r Region) {
	off, end := r.Pos, r.Pos+r.Len
	for off < end && c.err == nil {
		if c.buf == nil {
			c.buf = copyBufPool.Get().(*[]byte)
		}
		want := min(int64(len(*c.buf)-c.fill), end-off)
		n, err := r.File.ReadAt((*c.buf)[c.fill:c.fill+int(want)], off)
		c.fill += n
		off += int64(n)
		c.copiedBytes += int64(n)
		if err != nil && int64(n) < want {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %s ends at %d, region ends at %d", ErrRegionTruncated, r.File.Name(), off, end)
			}
			c.err = err
			return
		}
		if c.fill == len(*c.buf) {
			c.flush()
		}
	}
}

func (c *copyWriter) flush() {
	if c.err != nil || c.fill == 0 {
		return
	}
	n, err := c.w.Write((*c.buf)[:c.fill])
	c.n += int64(n)
	if err == nil && n < c.fill {
		err = io.ErrShortWrite
	}
	c.fill = 0
	c.err = err
}

func (c *copyWriter) release() {
	if c.buf != nil {
		copyBufPool.Put(c.buf)
		c.buf = nil
	}
}
