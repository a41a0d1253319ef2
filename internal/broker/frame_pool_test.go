package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// frameBytes is a size-prefixed frame of n bytes whose contents depend on
// their position.
func frameBytes(n int) []byte {
	b := make([]byte, 4+n)
	binary.BigEndian.PutUint32(b, uint32(n))
	for i := range n {
		b[4+i] = byte(i*7 + i>>11)
	}
	return b
}

// TestReadPooledFrame: frames below, at and above growFrom, and across
// several doublings, come back whole; the buffer is one of the pool's
// classes; a stream that ends inside a frame is io.ErrUnexpectedEOF.
func TestReadPooledFrame(t *testing.T) {
	for _, n := range []int{8, 4 << 10, growFrom - 1, growFrom, growFrom + 1, 5<<20 + 3, 16 << 20} {
		in := frameBytes(n)
		br := bufio.NewReaderSize(bytes.NewReader(in), readAheadSize)
		frame, body, err := readPooledFrame(br, 0, &frameBufs{})
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(frame, in[4:]) {
			t.Fatalf("%d bytes: frame differs", n)
		}
		class := -1
		for _, c := range frameClasses {
			if cap(*body) == c {
				class = c
			}
		}
		if class < n {
			t.Fatalf("%d bytes: buffer cap %d is not a class that holds it", n, cap(*body))
		}
		putFrameBuf(body)
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("%d bytes: read past the frame (%v)", n, err)
		}
	}
	for _, cut := range []int{0, 100, growFrom + 10, 3 << 20} {
		in := frameBytes(4 << 20)[:4+cut]
		br := bufio.NewReaderSize(bytes.NewReader(in), readAheadSize)
		if _, _, err := readPooledFrame(br, 0, &frameBufs{}); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("frame cut after %d bytes: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

// TestReadPooledFrameAllocs: reading a 12 MiB Produce-sized frame again
// and again reuses the pooled buffers instead of allocating each time.
func TestReadPooledFrameAllocs(t *testing.T) {
	const n = 12 << 20
	in := frameBytes(n)
	r := bytes.NewReader(in)
	br := bufio.NewReaderSize(r, readAheadSize)
	var bufs frameBufs
	read := func() {
		r.Reset(in)
		br.Reset(r)
		_, body, err := readPooledFrame(br, 0, &bufs)
		if err != nil {
			t.Fatal(err)
		}
		putFrameBuf(body)
	}
	read() // fill the pools
	if a := testing.AllocsPerRun(20, read); a > 1+allocSlack() {
		t.Fatalf("%.1f allocations per 12 MiB frame, want at most 1", a)
	}
}
