package protocol

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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

// Send writes m to conn. A message whose total size is at most
// SmallMessageLimit and that has file regions is gathered in one pooled
// buffer (regions read with pread) and written with one write: for a few
// KiB the writev + sendfile (+ writev) sequence costs more syscalls than
// the copy. Larger messages go out as runs of byte parts with one writev
// each and regions with sendfile(2) where possible (see Sender), else
// copied. It honours conn's write deadline.
//
// A region whose file is already shorter than the region fails the send
// with ErrRegionTruncated before anything is written: the gathering path
// reads every region before writing; the others check each file's size
// (one fstat per distinct file) first. A file truncated during a sendfile
// also fails it with ErrRegionTruncated. After any error the peer may have
// seen part of the frame: close the connection.
func (s *Sender) Send(conn net.Conn, m *Message) error {
	if m.err != nil {
		return m.err
	}
	if m.size <= SmallMessageLimit && m.hasRegions() {
		return s.sendGathered(conn, m)
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok || s.ForceCopy || !sendfileSupported {
		return s.sendCopy(conn, m)
	}
	if err := m.checkRegions(); err != nil {
		return err
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

// SmallMessageLimit is the largest message Send gathers into one buffer
// (regions read with pread, one write) instead of sending its regions with
// sendfile(2). Below it the syscalls dominate; above it sendfile's zero
// copy wins. It is at most copyBufSize.
const SmallMessageLimit = 64 << 10

// hasRegions reports whether m has a file region.
func (m *Message) hasRegions() bool {
	for i := range m.parts {
		if m.parts[i].r.File != nil {
			return true
		}
	}
	return false
}

// sendGathered copies m (size at most copyBufSize) into one pooled buffer,
// reading its regions with pread, and writes it with one write. Nothing is
// written if a region's file is short.
func (s *Sender) sendGathered(conn net.Conn, m *Message) error {
	buf := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(buf)
	b := (*buf)[:m.size]
	fill := 0
	var regionBytes int64
	for i := range m.parts {
		p := &m.parts[i]
		if p.r.File == nil {
			fill += copy(b[fill:], m.bytes(p))
			continue
		}
		r := p.r
		n, err := r.File.ReadAt(b[fill:fill+int(r.Len)], r.Pos)
		if int64(n) < r.Len {
			if err == nil || errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: %s ends at %d, region ends at %d", ErrRegionTruncated, r.File.Name(), r.Pos+int64(n), r.Pos+r.Len)
			}
			return fmt.Errorf("protocol: region %s: %w", r.File.Name(), err)
		}
		fill += n
		regionBytes += r.Len
	}
	n, err := conn.Write(b[:fill])
	if n == fill {
		s.count(int64(fill)-regionBytes, 0, regionBytes)
	} else if n > 0 { // a failed write: split what went out, headers first
		header := min(int64(n), int64(fill)-regionBytes)
		s.count(header, 0, int64(n)-header)
	}
	return err
}

func (s *Sender) sendCopy(conn net.Conn, m *Message) error {
	// A message that fits the buffer is read whole before the first write;
	// a larger one may be partly written before a short region is read.
	if m.size > copyBufSize {
		if err := m.checkRegions(); err != nil {
			return err
		}
	}
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
// It stats each distinct file once (a fetch response usually has several
// regions of the same segment).
func (m *Message) checkRegions() error {
	type seen struct {
		f    *os.File
		size int64
	}
	var small [8]seen
	checked := small[:0]
	for i := range m.parts {
		r := m.parts[i].r
		if r.File == nil {
			continue
		}
		size := int64(-1)
		for _, c := range checked {
			if c.f == r.File {
				size = c.size
				break
			}
		}
		if size < 0 {
			fi, err := r.File.Stat()
			if err != nil {
				return fmt.Errorf("protocol: region %s: %w", r.File.Name(), err)
			}
			size = fi.Size()
			checked = append(checked, seen{r.File, size})
		}
		if size < r.Pos+r.Len {
			return fmt.Errorf("%w: %s holds %d bytes, region ends at %d", ErrRegionTruncated, r.File.Name(), size, r.Pos+r.Len)
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
