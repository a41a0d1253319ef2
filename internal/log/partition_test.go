package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/sluice-io/sluice/internal/log/batch"
)

func TestAppendRead(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	var want [][]byte
	for i := range 10 {
		b := testBatch(i+1, 10, 1000)
		res := mustAppend(t, p, b)
		if res.NumBatches != 1 || res.NumRecords != int64(i+1) || res.LogAppendTime != -1 {
			t.Fatalf("result %+v", res)
		}
		want = append(want, b) // rewritten in place
	}
	if got := p.LogEndOffset(); got != 55 {
		t.Fatalf("log end %d", got)
	}
	r, err := p.Read(0, 1<<20, p.LogEndOffset(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := readRegions(t, r); !bytes.Equal(got, bytes.Join(want, nil)) {
		t.Fatal("read bytes differ from appended")
	}
	// Offsets were assigned.
	it := batch.NewIter(readRegions(t, r))
	next := int64(0)
	for it.Next() {
		if it.Header().BaseOffset != next {
			t.Fatalf("base %d want %d", it.Header().BaseOffset, next)
		}
		next = it.Header().NextOffset()
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
}

func TestAppendMultiBatchOneCall(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{})
	in := append(append(testBatch(2, 5, 1), testBatch(3, 5, 2)...), testBatch(1, 5, 3)...)
	res := mustAppend(t, p, in)
	if res.FirstOffset != 0 || res.LastOffset != 5 || res.NumBatches != 3 || res.Bytes != len(in) {
		t.Fatalf("%+v", res)
	}
	h, _ := batch.ParseHeader(in[len(testBatch(2, 5, 1)):])
	if h.BaseOffset != 2 {
		t.Fatalf("second batch base %d", h.BaseOffset)
	}
}

func TestAppendRejects(t *testing.T) {
	good := testBatch(3, 10, 1)
	mod := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorruptBatch},
		{"bad crc", mod(func(b []byte) { b[70] ^= 1 }), ErrCorruptBatch},
		{"bad magic", mod(func(b []byte) { b[16] = 1 }), ErrCorruptBatch},
		{"truncated", good[:len(good)-1], ErrCorruptBatch},
		{"short length", mod(func(b []byte) { binary.BigEndian.PutUint32(b[8:], 20) }), ErrCorruptBatch},
		{"count mismatch", mod(func(b []byte) { binary.BigEndian.PutUint32(b[57:], 2); fixCRC(b) }), ErrInvalidRecord},
		{"negative delta", mod(func(b []byte) { binary.BigEndian.PutUint32(b[23:], 0xffffffff); fixCRC(b) }), ErrInvalidRecord},
		{"too large", testBatch(1, 2000, 1), ErrMessageTooLarge},
		{"good then bad", append(bytes.Clone(good), mod(func(b []byte) { b[70] ^= 1 })...), ErrCorruptBatch},
		{"good then garbage", append(bytes.Clone(good), 1, 2, 3), ErrCorruptBatch},
	}
	m := testManager(t, "")
	p := openPart(t, m, Config{MaxMessageBytes: 1000})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Append(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if p.LogEndOffset() != 0 || p.Size() != 0 {
				t.Fatalf("something was written: end %d size %d", p.LogEndOffset(), p.Size())
			}
		})
	}
	mustAppend(t, p, good)
}

func TestLogAppendTime(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{MessageTimestampType: TimestampLogAppend})
	b := testBatch(3, 10, 5)
	res := mustAppend(t, p, b)
	if res.LogAppendTime <= 0 {
		t.Fatalf("%+v", res)
	}
	h, err := batch.Validate(readBatchBytes(t, p, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !h.LogAppendTime() || h.MaxTimestamp != res.LogAppendTime || h.BaseTimestamp != 5 {
		t.Fatalf("%+v", h)
	}
}

func TestReadBounds(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{IndexIntervalBytes: 100})
	var sizes []int64
	for range 20 {
		b := testBatch(2, 30, 1)
		sizes = append(sizes, int64(len(b)))
		mustAppend(t, p, b)
	}
	bs := sizes[0]
	tests := []struct {
		name             string
		off, max, maxOff int64
		minOne           bool
		wantBytes        int64
		wantErr          error
	}{
		{"all", 0, 1 << 20, 40, false, 20 * bs, nil},
		{"mid batch", 5, 1 << 20, 40, false, 18 * bs, nil},
		{"budget", 0, 3*bs + 5, 40, false, 3 * bs, nil},
		{"budget below one batch", 0, bs - 1, 40, false, 0, nil},
		{"minOne", 0, bs - 1, 40, true, bs, nil},
		{"minOne zero budget", 10, 0, 40, true, bs, nil},
		{"hw bound", 0, 1 << 20, 7, false, 3 * bs, nil},
		{"hw mid batch excludes it", 0, 1 << 20, 8, false, 4 * bs, nil},
		{"at hw", 8, 1 << 20, 8, false, 0, nil},
		{"at end", 40, 1 << 20, 40, false, 0, nil},
		{"past end", 41, 1 << 20, 40, false, 0, ErrOffsetOutOfRange},
		{"negative", -1, 1 << 20, 40, false, 0, ErrOffsetOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.Read(tc.off, tc.max, tc.maxOff, tc.minOne)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v want %v", err, tc.wantErr)
			}
			if r.Bytes != tc.wantBytes {
				t.Fatalf("bytes %d want %d", r.Bytes, tc.wantBytes)
			}
			if r.LogEndOffset != 40 {
				t.Fatalf("leo %d", r.LogEndOffset)
			}
			checkWholeBatches(t, readRegions(t, r))
		})
	}
}

func checkWholeBatches(t testing.TB, b []byte) {
	t.Helper()
	it := batch.NewIter(b)
	for it.Next() {
	}
	if it.Err() != nil {
		t.Fatalf("regions are not whole batches: %v", it.Err())
	}
}

func TestRollAndReadAcrossSegments(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{SegmentBytes: 1000, IndexIntervalBytes: 200})
	var all []byte
	for i := range 50 {
		b := testBatch(1+i%3, 50, int64(i))
		mustAppend(t, p, b)
		all = append(all, b...)
	}
	if p.NumSegments() < 5 {
		t.Fatalf("only %d segments", p.NumSegments())
	}
	r, err := p.Read(0, 1<<20, p.LogEndOffset(), false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readRegions(t, r), all) {
		t.Fatal("cross-segment read differs")
	}
	// Every offset reads back the batch holding it.
	for off := range p.LogEndOffset() {
		h, err := batch.Validate(readBatchBytes(t, p, off))
		if err != nil || h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("offset %d: %v %+v", off, err, h)
		}
	}
	// Index-full roll.
	p2, err := m.Open("t", 1, Config{SegmentIndexBytes: 32, IndexIntervalBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		mustAppend(t, p2, testBatch(1, 10, 1))
	}
	if p2.NumSegments() < 3 {
		t.Fatalf("index-full roll: %d segments", p2.NumSegments())
	}
}

func TestConcurrentReadersAndAppender(t *testing.T) {
	m := testManager(t, "")
	p := openPart(t, m, Config{SegmentBytes: 20000, IndexIntervalBytes: 500, WriteCaching: true})
	const n = 400
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(0)
			for ctx.Err() == nil || off < p.LogEndOffset() {
				res, err := p.Read(off, int64(100+r*500), p.LogEndOffset(), true)
				if err != nil {
					t.Error(err)
					return
				}
				b := readRegions(t, res)
				it := batch.NewIter(b)
				for it.Next() {
					if it.Header().LastOffset() < off {
						t.Errorf("batch %d before fetch offset %d", it.Header().BaseOffset, off)
					}
					off = it.Header().NextOffset()
				}
				if it.Err() != nil {
					t.Error(it.Err())
					return
				}
				if off >= n*2 {
					return
				}
			}
		}()
	}
	for range n {
		mustAppend(t, p, testBatch(2, 40, 1))
	}
	cancel()
	wg.Wait()
}
