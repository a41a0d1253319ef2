package log

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzOffsetIndex: parseOffsetIndex never panics, allocates only what the
// input holds, and what it accepts is strictly increasing, inside the log
// and re-encodes to the same bytes.
func FuzzOffsetIndex(f *testing.F) {
	f.Add(appendOffsetEntries(appendIndexHeader(nil, offsetIndexMagic, 7), []offsetEntry{{1, 100}, {5, 900}}), int64(7), int64(1000))
	f.Add(appendIndexHeader(nil, offsetIndexMagic, 0), int64(0), int64(0))
	f.Add([]byte("SLOX"), int64(0), int64(10))
	f.Fuzz(func(t *testing.T, b []byte, base, logSize int64) {
		es, err := parseOffsetIndex(b, base, logSize)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("unmarked error %v", err)
			}
			return
		}
		for i, e := range es {
			if int64(e.pos) >= logSize || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
				t.Fatalf("accepted bad entry %d %+v", i, e)
			}
		}
		if b[5]|b[6]|b[7] == 0 && !bytes.Equal(appendOffsetEntries(appendIndexHeader(nil, offsetIndexMagic, base), es), b) {
			t.Fatal("re-encode differs")
		}
	})
}

// FuzzTimeIndex: likewise for the time index.
func FuzzTimeIndex(f *testing.F) {
	f.Add(appendTimeEntries(appendIndexHeader(nil, timeIndexMagic, 3), []timeEntry{{10, 0}, {20, 4}}), int64(3), int64(10))
	f.Add([]byte{}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, base, maxRel int64) {
		es, err := parseTimeIndex(b, base, maxRel)
		if err != nil {
			if !errors.Is(err, ErrCorruption) {
				t.Fatalf("unmarked error %v", err)
			}
			return
		}
		for i, e := range es {
			if int64(e.rel) > maxRel || (i > 0 && (e.ts <= es[i-1].ts || e.rel < es[i-1].rel)) {
				t.Fatalf("accepted bad entry %d %+v", i, e)
			}
		}
	})
}

// FuzzCheckpoints: the offset and epoch checkpoint readers never panic, the
// count is checked before allocation, and what they accept round-trips.
func FuzzCheckpoints(f *testing.F) {
	f.Add([]byte("0\n2\nt 0 5\nu 3 9\n"))
	f.Add([]byte("0\n1\n3 100\n"))
	f.Add([]byte("0\n99999999999\n"))
	f.Add([]byte("0\n-1\n"))
	f.Add([]byte("0\n0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := parseOffsetCheckpoint(b); err == nil {
			c2, err := parseOffsetCheckpoint(c.encode())
			if err != nil || len(c2) != len(c) {
				t.Fatalf("offset checkpoint round trip: %v", err)
			}
			for k, v := range c {
				if c2[k] != v {
					t.Fatalf("entry %v: %d vs %d", k, v, c2[k])
				}
			}
		} else if !errors.Is(err, ErrCorruption) {
			t.Fatalf("unmarked error %v", err)
		}
		if es, err := parseEpochCheckpoint(b); err == nil {
			es2, err := parseEpochCheckpoint(encodeEpochCheckpoint(es))
			if err != nil || len(es2) != len(es) {
				t.Fatalf("epoch checkpoint round trip: %v", err)
			}
		} else if !errors.Is(err, ErrCorruption) {
			t.Fatalf("unmarked error %v", err)
		}
	})
}
