package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// ErrBuild: records or header fields that cannot form a batch.
var ErrBuild = errors.New("batch: cannot build record batch")

// Build encodes records as one magic-v2 batch; see AppendBatch.
func Build(h Header, records []Record, codec int8) ([]byte, error) {
	return AppendBatch(nil, h, records, codec)
}

// AppendBatch encodes records as one magic-v2 batch, compressed with codec,
// appends it to dst and returns the result. From h it takes BaseOffset,
// PartitionLeaderEpoch, ProducerID, ProducerEpoch, BaseSequence and the
// attribute bits other than the codec (timestamp type, transactional,
// control, delete horizon); the rest it computes, with a correct CRC-32C:
//
//   - NumRecords is len(records); each record's offsetDelta is
//     Offset-BaseOffset (offsets must increase strictly, from BaseOffset on,
//     and gaps are allowed, as compaction leaves them).
//   - LastOffsetDelta is the larger of h.LastOffsetDelta and the last
//     record's delta, so a compacted batch keeps its original last offset
//     (and with it the producer's last sequence number), as Kafka does.
//   - BaseTimestamp is h.BaseTimestamp when the delete-horizon bit is set
//     (KIP-534: it then holds the horizon), else the first record's
//     timestamp; timestampDeltas are relative to it.
//   - MaxTimestamp is h.MaxTimestamp for LogAppendTime batches, else the
//     largest record timestamp.
//
// A batch with no records is written as Kafka writes an emptied batch: a
// bare header, uncompressed, with BaseTimestamp and MaxTimestamp set to
// h.MaxTimestamp (BaseTimestamp keeps the horizon if that bit is set).
//
// Records' nil Key, Value and header Value are written as null (-1).
func AppendBatch(dst []byte, h Header, records []Record, codec int8) ([]byte, error) {
	if codec < CodecNone || codec > CodecZstd {
		return dst, fmt.Errorf("%w: %d", ErrCodec, codec)
	}
	if len(records) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: %d records", ErrBuild, len(records))
	}
	if len(records) == 0 {
		codec = CodecNone
	}
	out := Header{
		BaseOffset:           h.BaseOffset,
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		Magic:                MagicV2,
		Attributes:           h.Attributes&^AttrCompressionMask | int16(codec),
		LastOffsetDelta:      h.LastOffsetDelta,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		BaseSequence:         h.BaseSequence,
		NumRecords:           int32(len(records)),
	}
	if out.LastOffsetDelta < 0 {
		return dst, fmt.Errorf("%w: lastOffsetDelta %d", ErrBuild, out.LastOffsetDelta)
	}
	switch {
	case out.HasDeleteHorizon():
		out.BaseTimestamp = h.BaseTimestamp
	case len(records) > 0:
		out.BaseTimestamp = records[0].Timestamp
	default:
		out.BaseTimestamp = h.MaxTimestamp
	}
	out.MaxTimestamp = h.MaxTimestamp
	if !out.LogAppendTime() && len(records) > 0 {
		out.MaxTimestamp = records[0].Timestamp
		for i := range records {
			out.MaxTimestamp = max(out.MaxTimestamp, records[i].Timestamp)
		}
	}
	prev := h.BaseOffset - 1
	for i := range records {
		o := records[i].Offset
		if o <= prev || o-h.BaseOffset > math.MaxInt32 {
			return dst, fmt.Errorf("%w: record %d has offset %d after %d (base %d)", ErrBuild, i, o, prev, h.BaseOffset)
		}
		prev = o
	}
	if len(records) > 0 {
		out.LastOffsetDelta = max(out.LastOffsetDelta, int32(prev-h.BaseOffset))
	}

	start := len(dst)
	dst = out.AppendTo(dst)
	if codec == CodecNone {
		dst = appendRecords(dst, &out, records)
	} else {
		sp := scratchPool.Get().(*[]byte)
		raw := appendRecords((*sp)[:0], &out, records)
		var err error
		dst, err = Compress(dst, raw, codec)
		*sp = raw
		scratchPool.Put(sp)
		if err != nil {
			return dst[:start], fmt.Errorf("%w: compress: %w", ErrBuild, err)
		}
	}
	size := len(dst) - start
	if size-LogOverhead > math.MaxInt32 {
		return dst[:start], fmt.Errorf("%w: %d bytes", ErrBuild, size)
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[LengthOffset:], uint32(size-LogOverhead))
	SetCRC(b)
	return dst, nil
}

var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// appendRecords appends the uncompressed records section.
func appendRecords(dst []byte, h *Header, records []Record) []byte {
	for i := range records {
		r := &records[i]
		tsDelta := r.Timestamp - h.BaseTimestamp
		offDelta := r.Offset - h.BaseOffset
		n := 1 + varintLen(tsDelta) + varintLen(offDelta) +
			bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
		for j := range r.Headers {
			n += varintLen(int64(len(r.Headers[j].Key))) + len(r.Headers[j].Key) + bytesLen(r.Headers[j].Value)
		}
		dst = binary.AppendVarint(dst, int64(n))
		dst = append(dst, byte(r.Attributes))
		dst = binary.AppendVarint(dst, tsDelta)
		dst = binary.AppendVarint(dst, offDelta)
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for j := range r.Headers {
			dst = binary.AppendVarint(dst, int64(len(r.Headers[j].Key)))
			dst = append(dst, r.Headers[j].Key...)
			dst = appendBytes(dst, r.Headers[j].Value)
		}
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// varintLen is the size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
