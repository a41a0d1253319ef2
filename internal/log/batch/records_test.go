package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"

	kafkagosnappy "github.com/segmentio/kafka-go/compress/snappy"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var allCodecs = []int8{CodecNone, CodecGzip, CodecSnappy, CodecLz4, CodecZstd}

// genRecords makes n records from base on, covering null and empty keys
// and values, headers (one with a null value), gaps in offsets and
// timestamps that go backwards.
func genRecords(rng *rand.Rand, base int64, n, valueSize int) []Record {
	recs := make([]Record, 0, n)
	off := base
	ts := int64(1_700_000_000_000)
	for i := range n {
		r := Record{Offset: off, Timestamp: ts}
		switch i % 5 {
		case 0:
			r.Key = fmt.Appendf(nil, "key-%d", rng.IntN(50))
		case 1:
			r.Key = []byte{}
		case 2: // null key
		default:
			r.Key = fmt.Appendf(nil, "k%d", i)
		}
		switch i % 7 {
		case 3: // null value: a tombstone
		case 4:
			r.Value = []byte{}
		default:
			r.Value = make([]byte, rng.IntN(valueSize+1))
			for j := range r.Value {
				r.Value[j] = byte('a' + rng.IntN(4)) // compressible
			}
		}
		if i%3 == 0 {
			r.Headers = []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "", Value: nil}}
		}
		recs = append(recs, r)
		off += 1 + int64(rng.IntN(3)) // gaps, as compaction leaves them
		ts += int64(rng.IntN(2000)) - 500
	}
	return recs
}

func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.Timestamp != w.Timestamp || g.Attributes != w.Attributes ||
			!sameBytes(g.Key, w.Key) || !sameBytes(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d:\ngot  %+v\nwant %+v", i, g, w)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d: got %+v want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

// sameBytes compares with null-ness: nil differs from empty.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func TestBuildDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name      string
		n, valueN int
	}{
		{"one", 1, 10},
		{"small", 20, 100},
		{"many", 500, 50},
		{"large values", 12, 40 << 10}, // crosses 32 KiB snappy and 64 KiB lz4 blocks
	}
	for _, tc := range cases {
		recs := genRecords(rng, 1000, tc.n, tc.valueN)
		for _, codec := range allCodecs {
			t.Run(tc.name+"/"+CodecName(codec), func(t *testing.T) {
				h := Header{
					BaseOffset: 1000, PartitionLeaderEpoch: 7,
					Attributes: AttrTransactional, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 17,
				}
				b, err := Build(h, recs, codec)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Validate(b)
				if err != nil {
					t.Fatal(err)
				}
				if got.Size() != len(b) || got.Compression() != codec || !got.IsTransactional() ||
					got.ProducerID != 42 || got.ProducerEpoch != 3 || got.BaseSequence != 17 ||
					got.PartitionLeaderEpoch != 7 || got.NumRecords != int32(len(recs)) ||
					got.LastOffset() != recs[len(recs)-1].Offset || got.BaseTimestamp != recs[0].Timestamp {
					t.Fatalf("header %+v", got)
				}
				var maxTS int64 = math.MinInt64
				for _, r := range recs {
					maxTS = max(maxTS, r.Timestamp)
				}
				if got.MaxTimestamp != maxTS {
					t.Fatalf("max timestamp %d, want %d", got.MaxTimestamp, maxTS)
				}
				h2, dec, err := DecodeRecords(b)
				if err != nil {
					t.Fatal(err)
				}
				if h2 != got {
					t.Fatalf("header %+v vs %+v", h2, got)
				}
				sameRecords(t, dec, recs)
				// And franz-go reads what we wrote.
				sameRecords(t, kmsgDecode(t, b), recs)
			})
		}
	}
}

func TestBuildHeaderRules(t *testing.T) {
	recs := []Record{{Offset: 105, Timestamp: 50, Value: []byte("x")}, {Offset: 107, Timestamp: 40, Value: []byte("y")}}
	tests := []struct {
		name                      string
		h                         Header
		recs                      []Record
		codec                     int8
		wantLastDelta             int32
		wantBaseTS, wantMaxTS     int64
		wantAttrs                 int16
		wantErr                   error
		wantNumRecords            int32
		wantCompressionAttributes int8
	}{
		{name: "keeps a larger last offset delta", h: Header{BaseOffset: 100, LastOffsetDelta: 9}, recs: recs,
			wantLastDelta: 9, wantBaseTS: 50, wantMaxTS: 50, wantNumRecords: 2},
		{name: "computes last offset delta", h: Header{BaseOffset: 100}, recs: recs,
			wantLastDelta: 7, wantBaseTS: 50, wantMaxTS: 50, wantNumRecords: 2},
		{name: "log append time keeps max timestamp", h: Header{BaseOffset: 100, Attributes: AttrTimestampType, MaxTimestamp: 999}, recs: recs,
			wantLastDelta: 7, wantBaseTS: 50, wantMaxTS: 999, wantAttrs: AttrTimestampType, wantNumRecords: 2},
		{name: "delete horizon is the base timestamp", h: Header{BaseOffset: 100, Attributes: AttrDeleteHorizon, BaseTimestamp: 5000}, recs: recs, codec: CodecZstd,
			wantLastDelta: 7, wantBaseTS: 5000, wantMaxTS: 50, wantAttrs: AttrDeleteHorizon | int16(CodecZstd), wantNumRecords: 2},
		{name: "empty batch is a bare uncompressed header", h: Header{BaseOffset: 100, LastOffsetDelta: 4, MaxTimestamp: 77, Attributes: AttrTransactional | int16(CodecGzip)}, codec: CodecGzip,
			wantLastDelta: 4, wantBaseTS: 77, wantMaxTS: 77, wantAttrs: AttrTransactional},
		{name: "codec bits replaced", h: Header{BaseOffset: 100, Attributes: int16(CodecLz4) | AttrControl}, recs: recs, codec: CodecSnappy,
			wantLastDelta: 7, wantBaseTS: 50, wantMaxTS: 50, wantAttrs: AttrControl | int16(CodecSnappy), wantNumRecords: 2},
		{name: "offset below base", h: Header{BaseOffset: 106}, recs: recs, wantErr: ErrBuild},
		{name: "offsets not increasing", h: Header{BaseOffset: 100}, recs: []Record{{Offset: 101}, {Offset: 101}}, wantErr: ErrBuild},
		{name: "offset delta beyond int32", h: Header{BaseOffset: 0}, recs: []Record{{Offset: math.MaxInt32 + 1}}, wantErr: ErrBuild},
		{name: "unknown codec", h: Header{}, recs: recs, codec: 5, wantErr: ErrCodec},
		{name: "negative last offset delta", h: Header{LastOffsetDelta: -1}, wantErr: ErrBuild},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Build(tc.h, tc.recs, tc.codec)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, dec, err := DecodeRecords(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.LastOffsetDelta != tc.wantLastDelta || h.BaseTimestamp != tc.wantBaseTS || h.MaxTimestamp != tc.wantMaxTS ||
				h.Attributes != tc.wantAttrs || h.NumRecords != tc.wantNumRecords {
				t.Fatalf("header %+v", h)
			}
			sameRecords(t, dec, tc.recs)
		})
	}
}

// kgoBatch builds a batch the way franz-go's producer does: kmsg records,
// compressed with kgo's DefaultCompressor.
func kgoBatch(t testing.TB, recs []Record, codec kgo.CompressionCodec) []byte {
	t.Helper()
	var raw []byte
	for _, r := range recs {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - recs[0].Timestamp,
			OffsetDelta:      int32(r.Offset - recs[0].Offset),
			Key:              r.Key, Value: r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1) // with Length 0, the length field is one byte
		raw = kr.AppendTo(raw)
	}
	var attrs int16
	body := raw
	comp, err := kgo.DefaultCompressor(codec)
	if err != nil {
		t.Fatal(err)
	}
	if comp != nil {
		var ct kgo.CompressionCodecType
		body, ct = comp.Compress(new(bytes.Buffer), raw)
		attrs = int16(ct)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: 0, Magic: 2, Attributes: attrs,
		LastOffsetDelta: int32(recs[len(recs)-1].Offset - recs[0].Offset),
		FirstTimestamp:  recs[0].Timestamp, MaxTimestamp: recs[0].Timestamp,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(recs)), Records: body,
	}
	rb.Length = int32(HeaderSize - LogOverhead + len(body))
	b := rb.AppendTo(nil)
	SetCRC(b)
	return b
}

// kmsgDecode parses b with franz-go: kmsg for the batch and records, kgo's
// DefaultDecompressor for the records section.
func kmsgDecode(t *testing.T, b []byte) []Record {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	raw, err := kgo.DefaultDecompressor().Decompress(rb.Records, kgo.CompressionCodecType(rb.Attributes&7))
	if err != nil {
		t.Fatalf("kgo decompress: %v", err)
	}
	var out []Record
	for range rb.NumRecords {
		var kr kmsg.Record
		if err := kr.ReadFrom(raw); err != nil {
			t.Fatal(err)
		}
		raw = raw[varintLen(int64(kr.Length))+int(kr.Length):]
		r := Record{
			Offset: rb.FirstOffset + int64(kr.OffsetDelta), Timestamp: rb.FirstTimestamp + kr.TimestampDelta64,
			Attributes: kr.Attributes, Key: kr.Key, Value: kr.Value,
		}
		for _, h := range kr.Headers {
			r.Headers = append(r.Headers, RecordHeader{Key: h.Key, Value: h.Value})
		}
		out = append(out, r)
	}
	if len(raw) != 0 {
		t.Fatalf("%d bytes left after franz-go decode", len(raw))
	}
	return out
}

func TestDecodeFranzGoBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := genRecords(rng, 0, 300, 300)
	for _, c := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		b := kgoBatch(t, recs, c)
		h, _ := ParseHeader(b)
		t.Run(CodecName(h.Compression()), func(t *testing.T) {
			_, got, err := DecodeRecords(b)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, recs)
		})
	}
}

// TestDecompressXerialSnappy decodes snappy framed as the Java client
// frames it (kafka-go's Framed writer), alongside raw snappy.
func TestDecompressXerialSnappy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{1, 100, 32 << 10, 100 << 10} {
		src := make([]byte, size)
		for i := range src {
			src[i] = byte('a' + rng.IntN(3))
		}
		for _, framing := range []kafkagosnappy.Framing{kafkagosnappy.Framed, kafkagosnappy.Unframed} {
			t.Run(fmt.Sprintf("%d/framing=%d", size, framing), func(t *testing.T) {
				var buf bytes.Buffer
				w := (&kafkagosnappy.Codec{Framing: framing}).NewWriter(&buf)
				if _, err := w.Write(src); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if framing == kafkagosnappy.Framed && size > 0 && !bytes.HasPrefix(buf.Bytes(), xerialMagic) {
					t.Fatal("kafka-go did not frame")
				}
				got, err := Decompress(nil, buf.Bytes(), CodecSnappy, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, src) {
					t.Fatal("mismatch")
				}
			})
		}
	}
}

func TestCompressRoundTripAndLimit(t *testing.T) {
	src := bytes.Repeat([]byte("sluice "), 20000) // 140 KB, very compressible
	for _, codec := range allCodecs {
		t.Run(CodecName(codec), func(t *testing.T) {
			comp, err := Compress([]byte("prefix"), src, codec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(comp, []byte("prefix")) {
				t.Fatal("Compress clobbered dst")
			}
			comp = comp[len("prefix"):]
			got, err := Decompress([]byte("pre"), comp, codec, len(src))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("pre"), src...)) {
				t.Fatal("round trip mismatch")
			}
			// franz-go decompresses what we compress.
			if codec != CodecNone {
				kg, err := kgo.DefaultDecompressor().Decompress(comp, kgo.CompressionCodecType(codec))
				if err != nil || !bytes.Equal(kg, src) {
					t.Fatalf("kgo: %v", err)
				}
			}
			if _, err := Decompress(nil, comp, codec, len(src)-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit: err %v, want ErrTooLarge", err)
			}
			if codec != CodecNone {
				bad := bytes.Clone(comp)
				bad = bad[:len(bad)/2]
				if _, err := Decompress(nil, bad, codec, 0); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated: err %v, want ErrCorrupt", err)
				}
			}
		})
	}
	if _, err := Decompress(nil, nil, 6, 0); !errors.Is(err, ErrCodec) {
		t.Fatalf("unknown codec: %v", err)
	}
}

// rawBatch wraps an uncompressed records section in a valid header.
func rawBatch(numRecords int32, section []byte) []byte {
	h := Header{Magic: MagicV2, NumRecords: numRecords, Length: int32(HeaderSize - LogOverhead + len(section))}
	b := append(h.AppendTo(nil), section...)
	SetCRC(b)
	return b
}

func varints(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func TestDecodeMalformed(t *testing.T) {
	good := varints(7, 0, 0, 0, -1, 1) // len 7: attrs 0, ts 0, off 0, key null, value len 1
	good = append(good, 'x')
	good = append(good, varints(0)...)
	ok := rawBatch(1, good)
	if _, recs, err := DecodeRecords(ok); err != nil || len(recs) != 1 || string(recs[0].Value) != "x" {
		t.Fatalf("control case: %v %v", recs, err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"huge record count", rawBatch(math.MaxInt32, good)},
		{"more records than bytes", rawBatch(2, good)},
		{"fewer records than bytes", rawBatch(0, good)},
		{"negative record length", rawBatch(1, varints(-5))},
		{"record length past end", rawBatch(1, varints(100, 0, 0, 0, -1, -1, 0))},
		{"record shorter than declared", rawBatch(1, append(varints(8, 0, 0, 0, -1, -1, 0), 0, 0))},
		{"record longer than declared", rawBatch(1, append(varints(5), good[1:]...))},
		{"key length past end", rawBatch(1, varints(6, 0, 0, 0, 1000, 0))},
		{"value length -2", rawBatch(1, varints(6, 0, 0, 0, -1, -2))},
		{"huge header count", rawBatch(1, varints(6, 0, 0, 0, -1, -1, math.MaxInt32))},
		{"negative header count", rawBatch(1, varints(6, 0, 0, 0, -1, -1, -3))},
		{"null header key", rawBatch(1, varints(9, 0, 0, 0, -1, -1, 1, -1, -1))},
		{"offset delta beyond int32", rawBatch(1, varints(10, 0, 0, 1<<40, -1, -1, 0))},
		{"negative offset delta", rawBatch(1, varints(6, 0, 0, -1, -1, -1, 0))},
		{"truncated varint", rawBatch(1, []byte{0x80})},
		{"bad gzip", func() []byte {
			b := rawBatch(1, good)
			b[AttributesOffset+1] |= byte(CodecGzip)
			SetCRC(b)
			return b
		}()},
		{"unknown codec", func() []byte {
			b := rawBatch(1, good)
			b[AttributesOffset+1] |= 6
			SetCRC(b)
			return b
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeRecords(tc.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
		})
	}
	bad := bytes.Clone(ok)
	bad[len(bad)-1] ^= 1
	if _, _, err := DecodeRecords(bad); !errors.Is(err, ErrCRC) {
		t.Fatalf("crc: %v", err)
	}
	if _, _, err := DecodeRecords(ok[:len(ok)-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
}

// TestDecodeAllocationBounded checks that lying lengths do not make the
// decoder allocate: allocation stays proportional to the input.
func TestDecodeAllocationBounded(t *testing.T) {
	inputs := [][]byte{
		rawBatch(math.MaxInt32, bytes.Repeat([]byte{0}, 64)),
		rawBatch(1, varints(math.MaxInt32, 0, 0, 0, math.MaxInt32)),
		rawBatch(1, varints(20, 0, 0, 0, -1, -1, math.MaxInt32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
		rawBatch(1, varints(20, 0, 0, 0, math.MaxInt32-1)),
	}
	for i, in := range inputs {
		if n := allocBytes(func() { _, _, _ = DecodeRecords(in) }); n > allocBound(len(in)) {
			t.Errorf("input %d (%d bytes): allocated %d bytes", i, len(in), n)
		}
	}
}

func allocBound(n int) uint64 { return uint64(64*n + 4096) }

func allocBytes(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

func TestDecoderReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var d Decoder
	for i, codec := range allCodecs {
		recs := genRecords(rng, int64(i*1000), 50, 200)
		b, err := Build(Header{BaseOffset: int64(i * 1000)}, recs, codec)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := d.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, got, recs)
	}
	d.MaxSize = 10
	b, _ := Build(Header{}, genRecords(rng, 0, 50, 200), CodecZstd)
	if _, _, err := d.Decode(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxSize: %v", err)
	}
}

func TestControlRecords(t *testing.T) {
	for _, typ := range []ControlType{ControlAbort, ControlCommit} {
		c := ControlRecord{Type: typ, CoordinatorEpoch: 12}
		b, err := ControlBatch(55, 9, 2, c, 1234)
		if err != nil {
			t.Fatal(err)
		}
		h, recs, err := DecodeRecords(b)
		if err != nil {
			t.Fatal(err)
		}
		if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 9 || h.ProducerEpoch != 2 || h.BaseOffset != 55 || len(recs) != 1 {
			t.Fatalf("header %+v, %d records", h, len(recs))
		}
		got, err := ParseControl(&recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) || !got.IsTxnMarker() {
			t.Fatalf("got %+v want %+v", got, c)
		}
	}
	tests := []struct {
		name    string
		key     []byte
		value   []byte
		want    ControlRecord
		wantErr bool
	}{
		{"short key", []byte{0, 0, 0}, nil, ControlRecord{}, true},
		{"negative version", []byte{0xff, 0xff, 0, 1}, nil, ControlRecord{}, true},
		{"marker without value", []byte{0, 0, 0, 1}, nil, ControlRecord{}, true},
		{"marker short value", []byte{0, 0, 0, 0}, []byte{0, 0, 0}, ControlRecord{}, true},
		{"newer key version, extra bytes", []byte{0, 1, 0, 1, 9, 9}, []byte{0, 1, 0, 0, 0, 3, 7}, ControlRecord{Version: 1, Type: ControlCommit, CoordinatorEpoch: 3}, false},
		{"kraft leader change", []byte{0, 0, 0, 2}, nil, ControlRecord{Type: 2, CoordinatorEpoch: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseControl(&Record{Key: tc.key, Value: tc.value})
			if tc.wantErr {
				if !errors.Is(err, ErrControl) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReadBoundedShortReads(t *testing.T) {
	src := bytes.Repeat([]byte("abc"), 10000)
	got, err := readBounded([]byte("x"), io.LimitReader(iotestOneByte{bytes.NewReader(src)}, 1<<20), len(src))
	if err != nil || !bytes.Equal(got[1:], src) {
		t.Fatalf("%v", err)
	}
}

type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
