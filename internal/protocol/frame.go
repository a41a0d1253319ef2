package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrameSize is socket.request.max.bytes' default (100 MiB).
const DefaultMaxFrameSize = 100 << 20

// MinFrameSize is the smallest valid request frame: api key, api version and
// correlation id (the request header v0 of ControlledShutdown v0).
const MinFrameSize = 8

// frameGrowStep is how much of a frame ReadFrame allocates before the bytes
// have arrived: a peer that announces a large frame and then stalls pins at
// most this much (plus what it actually sent), not the announced size.
const frameGrowStep = 1 << 20

var (
	// ErrFrameTooLarge reports a size prefix above the limit. It is detected
	// from the 4-byte prefix alone, before anything is allocated.
	ErrFrameTooLarge = errors.New("protocol: frame larger than socket.request.max.bytes")
	// ErrBadFrameSize reports a negative, zero or too-small size prefix.
	ErrBadFrameSize = errors.New("protocol: invalid frame size")
	// ErrMalformed reports a request header or body that does not decode.
	ErrMalformed = errors.New("protocol: malformed request")
	// ErrUnknownKey reports an API key kmsg does not know.
	ErrUnknownKey = errors.New("protocol: unknown api key")
	// ErrUnsupportedVersion reports an API version outside 0..kmsg's maximum
	// for the key; DecodeBody cannot decode it.
	ErrUnsupportedVersion = errors.New("protocol: unsupported api version")
)

// ReadFrame reads one size-prefixed frame from r and returns it without the
// 4-byte size prefix.
//
// The size is checked against limit (DefaultMaxFrameSize if limit <= 0) and
// against MinFrameSize before anything is allocated. buf is reused when its
// capacity suffices; otherwise the frame is read into a new slice that grows
// as bytes arrive (in steps of at most 1 MiB, doubling), so memory follows
// what the peer sent rather than what it announced.
//
// A clean end of stream before the first byte of the prefix returns io.EOF;
// a stream that ends inside a frame returns io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, limit int32, buf []byte) ([]byte, error) {
	return readFrame(r, limit, buf, nil)
}

// Buffers supplies the buffers ReadFrameInto reads a frame into.
type Buffers interface {
	// Grow returns a buffer holding have (its length is len(have), its
	// first bytes have's) with a capacity above len(have), for a frame
	// of size bytes; have is nil on the first call. ReadFrameInto calls
	// it only once have is full, so memory follows the bytes received as
	// far as Grow's steps do.
	Grow(have []byte, size int) []byte
}

// ReadFrameInto is ReadFrame with the frame's buffers from bufs (pooled
// ones, say). The size checks and errors are ReadFrame's.
func ReadFrameInto(r io.Reader, limit int32, bufs Buffers) ([]byte, error) {
	return readFrame(r, limit, nil, bufs)
}

func readFrame(r io.Reader, limit int32, buf []byte, bufs Buffers) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxFrameSize
	}
	var prefix [4]byte
	p := prefix[:]
	if cap(buf) >= 4 {
		p = buf[:4] // keep the prefix off the heap when we have a buffer
	}
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(p))
	switch {
	case size > limit:
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, limit)
	case size < MinFrameSize:
		return nil, fmt.Errorf("%w: %d", ErrBadFrameSize, size)
	}
	n := int(size)
	var cur []byte // what has been read so far
	for len(cur) < n {
		if len(cur) == cap(cur) {
			switch {
			case bufs != nil:
				cur = bufs.Grow(cur, n)
				if cap(cur) == len(cur) {
					return nil, errors.New("protocol: Buffers.Grow did not grow the buffer")
				}
			case cur == nil && cap(buf) >= n:
				cur = buf[:0]
			default:
				grown := make([]byte, len(cur), min(n, max(frameGrowStep, 2*len(cur))))
				copy(grown, cur)
				cur = grown
			}
		}
		m, err := io.ReadFull(r, cur[len(cur):min(n, cap(cur))])
		cur = cur[:len(cur)+m]
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return cur, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
