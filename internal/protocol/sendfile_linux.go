//go:build linux

package protocol

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// sendfileSupported reports whether sendfile is implemented on this system.
const sendfileSupported = true

// maxSendfileChunk bounds one sendfile(2) call (Linux transfers at most
// 0x7ffff000 bytes per call anyway).
const maxSendfileChunk = 1 << 30

// sendfile sends r to conn with sendfile(2), always passing an explicit
// offset so the file's shared position is neither used nor moved (unlike
// (*net.TCPConn).ReadFrom with an *os.File, which concurrent readers of a
// segment would race on). It waits for writability through the runtime
// poller on EAGAIN and honours conn's write deadline. It returns the bytes
// sent.
func sendfile(conn *net.TCPConn, r Region) (int64, error) {
	dst, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	src, err := r.File.SyscallConn()
	if err != nil {
		return 0, err
	}
	var sent int64
	var serr error
	cerr := src.Control(func(infd uintptr) { // holds the file open meanwhile
		werr := dst.Write(func(outfd uintptr) bool {
			for sent < r.Len {
				off := r.Pos + sent
				n, err := syscall.Sendfile(int(outfd), int(infd), &off, int(min(r.Len-sent, maxSendfileChunk)))
				if n > 0 {
					sent += int64(n)
				}
				switch {
				case errors.Is(err, syscall.EINTR):
					continue
				case errors.Is(err, syscall.EAGAIN):
					return false // wait until writable, then call again
				case err != nil:
					serr = fmt.Errorf("protocol: sendfile: %w", err)
					return true
				case n == 0:
					serr = fmt.Errorf("%w: %s ends at %d, region ends at %d", ErrRegionTruncated, r.File.Name(), r.Pos+sent, r.Pos+r.Len)
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if serr != nil {
		return sent, serr
	}
	return sent, cerr
}
