package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression codec ids: attributes bits 0-2, as Header.Compression returns
// them. Part of the wire format.
const (
	CodecNone   int8 = 0
	CodecGzip   int8 = 1
	CodecSnappy int8 = 2
	CodecLz4    int8 = 3
	CodecZstd   int8 = 4
)

// DefaultMaxDecompressedSize bounds how large a batch's records section may
// inflate to when a Decoder's MaxSize is zero. A batch that would inflate
// beyond it is refused with ErrTooLarge rather than allocated.
const DefaultMaxDecompressedSize = 256 << 20

var (
	// ErrCodec: a compression codec id outside 0-4.
	ErrCodec = fmt.Errorf("%w: unknown compression codec", ErrCorrupt)
	// ErrTooLarge: the records section inflates beyond the allowed size.
	// It does not wrap ErrCorrupt: the batch may well be valid.
	ErrTooLarge = errors.New("batch: decompressed records exceed the size limit")
	// ErrDecompress: the records section does not decompress.
	ErrDecompress = fmt.Errorf("%w: records do not decompress", ErrCorrupt)
)

// CodecName returns Kafka's name for a codec id ("none", "gzip", "snappy",
// "lz4", "zstd"), or "unknown".
func CodecName(codec int8) string {
	switch codec {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLz4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return "unknown"
}

// Decompress appends the decompression of src (a batch's records section,
// compressed with codec) to dst and returns the result. No more than max
// bytes are produced (max <= 0 means DefaultMaxDecompressedSize); beyond
// that it returns ErrTooLarge. Snappy input may be raw snappy (as franz-go,
// librdkafka and Sarama write it) or xerial-framed (as the Java client
// writes it). CodecNone appends src unchanged. Failures wrap ErrDecompress.
func Decompress(dst, src []byte, codec int8, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxDecompressedSize
	}
	var (
		out []byte
		err error
	)
	switch codec {
	case CodecNone:
		if len(src) > max {
			return dst, ErrTooLarge
		}
		return append(dst, src...), nil
	case CodecGzip:
		out, err = decompressGzip(dst, src, max)
	case CodecSnappy:
		out, err = decompressSnappy(dst, src, max)
	case CodecLz4:
		out, err = decompressLz4(dst, src, max)
	case CodecZstd:
		out, err = decompressZstd(dst, src, max)
	default:
		return dst, fmt.Errorf("%w: %d", ErrCodec, codec)
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return dst, err
		}
		return dst, fmt.Errorf("%w (%s): %v", ErrDecompress, CodecName(codec), err) //nolint:errorlint // the codec's error is detail, not a class
	}
	return out, nil
}

// Compress appends the compression of src with codec to dst. Snappy is
// written raw (unframed), as franz-go and librdkafka write it; lz4 as an lz4
// frame; gzip and zstd as one stream/frame. CodecNone appends src unchanged.
func Compress(dst, src []byte, codec int8) ([]byte, error) {
	switch codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		return compressGzip(dst, src)
	case CodecSnappy:
		n := len(dst)
		dst = growLen(dst, s2.MaxEncodedLen(len(src)))
		enc := s2.EncodeSnappy(dst[n:], src)
		return dst[:n+len(enc)], nil
	case CodecLz4:
		return compressLz4(dst, src)
	case CodecZstd:
		enc := zstdEncoders.Get().(*zstdEncoder)
		defer zstdEncoders.Put(enc)
		return enc.w.EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("%w: %d", ErrCodec, codec)
}

// growLen returns dst with n more bytes of length (contents unspecified).
func growLen(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		nd := make([]byte, len(dst), len(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	return dst[:len(dst)+n]
}

// readBounded appends everything r yields to dst, failing with ErrTooLarge
// beyond max bytes. It grows dst as data arrives, never by a claimed size.
func readBounded(dst []byte, r io.Reader, max int) ([]byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			used := len(dst) - start
			dst = slices.Grow(dst, min(used+4096, max+1-used))
		}
		room := cap(dst) - len(dst)
		if over := len(dst) - start + room - (max + 1); over > 0 {
			room -= over // read at most one byte past max
		}
		n, err := r.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		if len(dst)-start > max {
			return dst[:start], ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:start], err
		}
	}
}

type gzipDecoder struct {
	r   gzip.Reader
	src bytes.Reader
}

var (
	gzipDecoders = sync.Pool{New: func() any { return new(gzipDecoder) }}
	gzipEncoders = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
)

func decompressGzip(dst, src []byte, max int) ([]byte, error) {
	d := gzipDecoders.Get().(*gzipDecoder)
	defer gzipDecoders.Put(d)
	d.src.Reset(src)
	if err := d.r.Reset(&d.src); err != nil {
		return dst, err
	}
	return readBounded(dst, &d.r, max)
}

// appendWriter is an io.Writer appending to a slice, so the stream
// compressors write straight into the caller's buffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func compressGzip(dst, src []byte) ([]byte, error) {
	w := gzipEncoders.Get().(*gzip.Writer)
	defer gzipEncoders.Put(w)
	aw := appendWriter{b: dst}
	w.Reset(&aw)
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	return aw.b, nil
}

type lz4Decoder struct {
	r   *lz4.Reader
	src bytes.Reader
}

var (
	lz4Decoders = sync.Pool{New: func() any { return &lz4Decoder{r: lz4.NewReader(nil)} }}
	lz4Encoders = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// 64 KiB blocks, as the Java client writes them; the 4 MiB
		// default would cost 4 MiB of buffer per pooled writer.
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			panic(fmt.Sprintf("batch: lz4 writer options: %v", err)) // constant options; cannot fail
		}
		return w
	}}
)

func decompressLz4(dst, src []byte, max int) ([]byte, error) {
	d := lz4Decoders.Get().(*lz4Decoder)
	defer lz4Decoders.Put(d)
	d.src.Reset(src)
	d.r.Reset(&d.src)
	return readBounded(dst, d.r, max)
}

func compressLz4(dst, src []byte) ([]byte, error) {
	w := lz4Encoders.Get().(*lz4.Writer)
	defer lz4Encoders.Put(w)
	aw := appendWriter{b: dst}
	w.Reset(&aw)
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	return aw.b, nil
}

// zstdDecoderMaxMemory caps what one pooled zstd decoder may allocate
// (window and history); output is bounded by the per-call max as well.
const zstdDecoderMaxMemory = DefaultMaxDecompressedSize

type zstdDecoder struct {
	r   *zstd.Decoder
	src bytes.Reader
}

type zstdEncoder struct{ w *zstd.Encoder }

var (
	zstdDecoders = sync.Pool{New: func() any {
		r, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(zstdDecoderMaxMemory),
		)
		if err != nil {
			panic(fmt.Sprintf("batch: zstd decoder options: %v", err)) // constant options; cannot fail
		}
		d := &zstdDecoder{r: r}
		runtime.SetFinalizer(d, func(d *zstdDecoder) { d.r.Close() })
		return d
	}}
	zstdEncoders = sync.Pool{New: func() any {
		w, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(64<<10),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			panic(fmt.Sprintf("batch: zstd encoder options: %v", err)) // constant options; cannot fail
		}
		e := &zstdEncoder{w}
		runtime.SetFinalizer(e, func(e *zstdEncoder) { _ = e.w.Close() })
		return e
	}}
)

func decompressZstd(dst, src []byte, max int) ([]byte, error) {
	d := zstdDecoders.Get().(*zstdDecoder)
	defer zstdDecoders.Put(d)
	d.src.Reset(src)
	defer d.src.Reset(nil)
	if err := d.r.Reset(&d.src); err != nil {
		return dst, err
	}
	// Streamed (synchronously, with concurrency 1) through readBounded
	// rather than DecodeAll, so output stops at max, not at the decoder's
	// memory ceiling.
	out, err := readBounded(dst, d.r, max)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return dst, ErrTooLarge
	}
	return out, err
}

// xerialMagic opens a snappy stream framed the way the Java client (xerial
// snappy-java's SnappyOutputStream) writes it: magic, version and
// compatible version (int32 each), then blocks of a big-endian int32 length
// and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

func decompressSnappy(dst, src []byte, max int) ([]byte, error) {
	if len(src) >= xerialHeaderLen && bytes.HasPrefix(src, xerialMagic) {
		return decompressXerial(dst, src[xerialHeaderLen:], max)
	}
	return decodeSnappyBlock(dst, src, max)
}

// decodeSnappyBlock appends one raw snappy block to dst, checking the
// length the block claims against max before allocating.
func decodeSnappyBlock(dst, src []byte, max int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, err
	}
	if n > max {
		return dst, ErrTooLarge
	}
	start := len(dst)
	dst = growLen(dst, n)
	if _, err := s2.Decode(dst[start:], src); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

var errXerial = errors.New("malformed xerial snappy framing")

func decompressXerial(dst, src []byte, max int) ([]byte, error) {
	start := len(dst)
	for len(src) > 0 {
		if len(src) < 4 {
			return dst[:start], errXerial
		}
		size := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(size) > uint64(len(src)) {
			return dst[:start], errXerial
		}
		var err error
		dst, err = decodeSnappyBlock(dst, src[:size], max-(len(dst)-start))
		if err != nil {
			return dst[:start], err
		}
		src = src[size:]
	}
	return dst, nil
}
