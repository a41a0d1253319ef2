package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"
)

func prefixed(size int32, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(size)), body...)
}

func TestReadFrameSizeLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int32
		want error
	}{
		{"1GiB", 1 << 30, ErrFrameTooLarge},
		{"maxint32", 0x7FFFFFFF, ErrFrameTooLarge},
		{"limit+1", DefaultMaxFrameSize + 1, ErrFrameTooLarge},
		{"negative", -1, ErrBadFrameSize},
		{"minint32", -0x80000000, ErrBadFrameSize},
		{"zero", 0, ErrBadFrameSize},
		{"too small", MinFrameSize - 1, ErrBadFrameSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := prefixed(tc.size, nil)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := ReadFrame(bytes.NewReader(in), 0, nil)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
				t.Fatalf("allocated %d bytes for a rejected frame", grew)
			}
			if elapsed > time.Second {
				t.Fatalf("took %v", elapsed)
			}
			// Repeated rejections cost a few small objects (the error), not the claimed size.
			buf := make([]byte, 0, 16)
			r := bytes.NewReader(in)
			runtime.ReadMemStats(&before)
			for range 100 {
				r.Reset(in)
				_, _ = ReadFrame(r, 0, buf)
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 512 {
				t.Fatalf("%d bytes allocated per rejected frame", per)
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100)
	in := append(prefixed(100, body), prefixed(8, body[:8])...)
	r := bytes.NewReader(in)
	buf := make([]byte, 0, 128)
	f, err := ReadFrame(r, 1000, buf)
	if err != nil || !bytes.Equal(f, body) {
		t.Fatalf("frame 1: %q, %v", f, err)
	}
	if &f[0] != &buf[:1][0] {
		t.Fatal("buffer with enough capacity not reused")
	}
	if f, err = ReadFrame(r, 1000, buf); err != nil || len(f) != 8 {
		t.Fatalf("frame 2: %q, %v", f, err)
	}
	if _, err = ReadFrame(r, 1000, buf); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
	// Limits are per call.
	if _, err = ReadFrame(bytes.NewReader(prefixed(100, body)), 99, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("limit 99: %v", err)
	}
	// Truncated prefix and truncated body.
	for _, in := range [][]byte{{0, 0}, prefixed(100, body[:50])} {
		if _, err = ReadFrame(bytes.NewReader(in), 0, nil); err != io.ErrUnexpectedEOF {
			t.Fatalf("truncated %x: %v", in, err)
		}
	}
}

// A large frame grows with the bytes that arrive: announcing 90 MiB and
// sending 10 bytes costs about a megabyte, not 90.
func TestReadFrameStalledLargeFrame(t *testing.T) {
	in := prefixed(90<<20, []byte("0123456789"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(in), 0, nil)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2<<20 {
		t.Fatalf("allocated %d bytes", grew)
	}
	// A complete large frame still arrives intact.
	body := make([]byte, 5<<20+3)
	for i := range body {
		body[i] = byte(i)
	}
	f, err := ReadFrame(bytes.NewReader(prefixed(int32(len(body)), body)), 0, nil)
	if err != nil || !bytes.Equal(f, body) {
		t.Fatalf("large frame: %v", err)
	}
}
