package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// makeBatch builds a v2 batch with n opaque "records" (payload bytes) and a
// correct CRC, using kmsg for the encoding so the layout is checked against
// an independent implementation.
func makeBatch(t testing.TB, baseOffset int64, n int32, payload []byte, attrs int16) []byte {
	t.Helper()
	rb := kmsg.RecordBatch{
		FirstOffset:          baseOffset,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      n - 1,
		FirstTimestamp:       1000,
		MaxTimestamp:         1000 + int64(n),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           n,
		Records:              payload,
	}
	rb.Length = int32(HeaderSize - LogOverhead + len(payload))
	b := rb.AppendTo(nil)
	crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[17:], crc)
	return b
}

func TestParseHeaderMatchesKmsg(t *testing.T) {
	b := makeBatch(t, 42, 3, []byte("records!"), AttrTransactional|3)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	want := Header{
		BaseOffset: rb.FirstOffset, Length: rb.Length, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
		Magic: rb.Magic, CRC: uint32(rb.CRC), Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta,
		BaseTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID,
		ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence, NumRecords: rb.NumRecords,
	}
	if h != want {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	if h.Size() != len(b) || h.LastOffset() != 44 || h.NextOffset() != 45 {
		t.Fatalf("size %d last %d", h.Size(), h.LastOffset())
	}
	if h.Compression() != 3 || !h.IsTransactional() || h.IsControl() || h.LogAppendTime() || h.HasDeleteHorizon() {
		t.Fatalf("attribute accessors wrong: %+v", h)
	}
	// AppendTo round-trips the header.
	if got := h.AppendTo(nil); !bytes.Equal(got, b[:HeaderSize]) {
		t.Fatalf("AppendTo mismatch")
	}
}

func TestValidateErrors(t *testing.T) {
	good := makeBatch(t, 0, 2, []byte("abcdef"), 0)
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"good", good, nil},
		{"empty", nil, ErrShort},
		{"short header", good[:30], ErrShort},
		{"bad magic", mod(func(b []byte) { b[MagicOffset] = 1 }), ErrMagic},
		{"bad magic short", mod(func(b []byte) { b[MagicOffset] = 1 })[:20], ErrMagic},
		{"length too small", mod(func(b []byte) { binary.BigEndian.PutUint32(b[LengthOffset:], 10) }), ErrLength},
		{"negative length", mod(func(b []byte) { binary.BigEndian.PutUint32(b[LengthOffset:], 0xffffffff) }), ErrLength},
		{"length past end", good[:len(good)-1], ErrShort},
		{"huge length", mod(func(b []byte) { binary.BigEndian.PutUint32(b[LengthOffset:], 0x7fffffff) }), ErrShort},
		{"crc", mod(func(b []byte) { b[len(b)-1] ^= 1 }), ErrCRC},
		{"crc attr", mod(func(b []byte) { b[AttributesOffset+1] ^= 8 }), ErrCRC},
		{"neg delta", mod(func(b []byte) { binary.BigEndian.PutUint32(b[LastOffsetDeltaOffset:], 0xffffffff); SetCRC(b) }), ErrHeader},
		{"neg count", mod(func(b []byte) { binary.BigEndian.PutUint32(b[NumRecordsOffset:], 0xffffffff); SetCRC(b) }), ErrHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.b)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != ErrShort && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v does not wrap ErrCorrupt", err)
			}
		})
	}
	// Fields outside the CRC range may change freely.
	b := bytes.Clone(good)
	SetBaseOffset(b, 1<<40)
	SetPartitionLeaderEpoch(b, 7)
	h, err := Validate(b)
	if err != nil || h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 7 {
		t.Fatalf("%v %+v", err, h)
	}
}

func TestSetLogAppendTime(t *testing.T) {
	b := makeBatch(t, 0, 2, []byte("abcdef"), 2)
	SetLogAppendTime(b, 123456)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.LogAppendTime() || h.MaxTimestamp != 123456 || h.Compression() != 2 || h.BaseTimestamp != 1000 {
		t.Fatalf("%+v", h)
	}
	SetMaxTimestamp(b, 99)
	if h, err = Validate(b); err != nil || h.MaxTimestamp != 99 || !h.LogAppendTime() {
		t.Fatalf("%v %+v", err, h)
	}
}

func TestIter(t *testing.T) {
	var buf []byte
	for i := range 5 {
		buf = append(buf, makeBatch(t, int64(i*10), int32(i+1), bytes.Repeat([]byte{byte(i)}, i*7), 0)...)
	}
	it := NewIter(buf)
	n := 0
	for it.Next() {
		if it.Header().BaseOffset != int64(n*10) || it.Pos()+len(it.Batch()) > len(buf) {
			t.Fatalf("batch %d: %+v", n, it.Header())
		}
		n++
	}
	if it.Err() != nil || n != 5 || it.Pos() != len(buf) {
		t.Fatalf("n=%d err=%v pos=%d", n, it.Err(), it.Pos())
	}

	// Corrupt the third batch's payload: validating iteration stops there,
	// header iteration does not.
	third := len(makeBatch(t, 0, 1, nil, 0)) + len(makeBatch(t, 0, 2, make([]byte, 7), 0))
	bad := bytes.Clone(buf)
	bad[third+HeaderSize] ^= 0xff
	it = NewIter(bad)
	n = 0
	for it.Next() {
		n++
	}
	if n != 2 || !errors.Is(it.Err(), ErrCRC) || it.Pos() != third {
		t.Fatalf("n=%d err=%v pos=%d want %d", n, it.Err(), it.Pos(), third)
	}
	it = NewHeaderIter(bad)
	n = 0
	for it.Next() {
		n++
	}
	if n != 5 || it.Err() != nil {
		t.Fatalf("header iter n=%d err=%v", n, it.Err())
	}
	// Torn tail.
	it = NewIter(buf[:len(buf)-3])
	for it.Next() {
	}
	if !errors.Is(it.Err(), ErrShort) {
		t.Fatalf("torn tail: %v", it.Err())
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(makeBatch(f, 0, 1, []byte("x"), 0))
	f.Add(makeBatch(f, 5, 3, []byte("hello world"), 4))
	f.Add(append(makeBatch(f, 0, 1, nil, 0), makeBatch(f, 1, 1, nil, 0)...))
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Invariants: never panics; a valid batch fits in b, its CRC
		// recomputes, and its header re-encodes to the same bytes.
		h, err := Validate(b)
		if err == nil {
			if h.Size() > len(b) || h.Size() < HeaderSize {
				t.Fatalf("size %d of %d", h.Size(), len(b))
			}
			if Checksum(b) != h.CRC {
				t.Fatal("crc")
			}
			if !bytes.Equal(h.AppendTo(nil), b[:HeaderSize]) {
				t.Fatal("re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrShort) {
			t.Fatalf("unclassified error %v", err)
		}
		it := NewIter(b)
		total := 0
		for it.Next() {
			total += len(it.Batch())
		}
		if total != it.Pos() || it.Pos() > len(b) {
			t.Fatalf("iter total %d pos %d", total, it.Pos())
		}
	})
}
