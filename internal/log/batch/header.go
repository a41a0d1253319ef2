// Package batch reads and rewrites the header of Kafka record batches
// (magic v2) without touching the records: parse the 61-byte header, check
// lengths and the CRC-32C, and rewrite the fields a broker assigns
// (baseOffset, partitionLeaderEpoch, maxTimestamp for LogAppendTime). The
// header code does no I/O and never decompresses. Record-level decode and
// encode (records*.go, compression.go) serve the log cleaner and tests; the
// produce and fetch paths never use them.
//
// A v2 record batch is laid out as follows (big endian; the CRC-32C
// (Castagnoli) covers the bytes from attributes to the end of the batch):
//
//	offset  size  field
//	 0      8     baseOffset
//	 8      4     batchLength (bytes after this field)
//	12      4     partitionLeaderEpoch
//	16      1     magic (= 2)
//	17      4     crc (uint32)
//	21      2     attributes
//	23      4     lastOffsetDelta
//	27      8     baseTimestamp
//	35      8     maxTimestamp
//	43      8     producerId
//	51      2     producerEpoch
//	53      4     baseSequence
//	57      4     recordCount
//	61      ...   records
//
// Attributes: bits 0-2 compression codec, bit 3 timestamp type (1 =
// LogAppendTime), bit 4 transactional, bit 5 control, bit 6 delete horizon
// set (baseTimestamp holds the delete horizon of a compacted batch).
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire-format constants. These are part of the Kafka protocol and must not
// change.
const (
	// HeaderSize is the size of a v2 record-batch header.
	HeaderSize = 61
	// LogOverhead is the size of baseOffset plus batchLength: a batch
	// occupies LogOverhead+Length bytes.
	LogOverhead = 12
	// MagicV2 is the only record-batch version the engine stores.
	MagicV2 = 2

	// Field offsets within a batch.
	BaseOffsetOffset           = 0
	LengthOffset               = 8
	PartitionLeaderEpochOffset = 12
	MagicOffset                = 16
	CRCOffset                  = 17
	AttributesOffset           = 21
	LastOffsetDeltaOffset      = 23
	BaseTimestampOffset        = 27
	MaxTimestampOffset         = 35
	ProducerIDOffset           = 43
	ProducerEpochOffset        = 51
	BaseSequenceOffset         = 53
	NumRecordsOffset           = 57

	// MinLength is the smallest valid batchLength (a header with no records).
	MinLength = HeaderSize - LogOverhead

	// Attribute bits.
	AttrCompressionMask = 0x07
	AttrTimestampType   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
	AttrDeleteHorizon   = 0x40
)

// Errors. Every error about malformed bytes wraps ErrCorrupt, except
// ErrShort, which says the buffer ends before the batch does (a torn tail
// when reading a file).
var (
	ErrCorrupt = errors.New("batch: corrupt record batch")
	ErrShort   = errors.New("batch: buffer shorter than record batch")
	ErrMagic   = fmt.Errorf("%w: unsupported magic", ErrCorrupt)
	ErrLength  = fmt.Errorf("%w: invalid batch length", ErrCorrupt)
	ErrCRC     = fmt.Errorf("%w: crc mismatch", ErrCorrupt)
	ErrHeader  = fmt.Errorf("%w: invalid header field", ErrCorrupt)
)

// Header is the decoded 61-byte header of a v2 record batch.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// ParseHeader decodes the header at the start of b. It checks only that b
// holds a whole header and that the magic is 2; it does not check the
// batch length against len(b) nor the CRC (see Validate).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		if len(b) > MagicOffset && b[MagicOffset] != MagicV2 {
			return Header{}, fmt.Errorf("%w: %d", ErrMagic, int8(b[MagicOffset]))
		}
		return Header{}, ErrShort
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[BaseOffsetOffset:])),
		Length:               int32(binary.BigEndian.Uint32(b[LengthOffset:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[PartitionLeaderEpochOffset:])),
		Magic:                int8(b[MagicOffset]),
		CRC:                  binary.BigEndian.Uint32(b[CRCOffset:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[AttributesOffset:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[LastOffsetDeltaOffset:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[BaseTimestampOffset:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[MaxTimestampOffset:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[ProducerIDOffset:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[ProducerEpochOffset:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[BaseSequenceOffset:])),
		NumRecords:           int32(binary.BigEndian.Uint32(b[NumRecordsOffset:])),
	}
	if h.Magic != MagicV2 {
		return h, fmt.Errorf("%w: %d", ErrMagic, h.Magic)
	}
	return h, nil
}

// AppendTo appends the 61-byte encoding of h to dst. The CRC field is
// written as h.CRC; use SetCRC once the records follow.
func (h Header) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.BaseOffset))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Length))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.PartitionLeaderEpoch))
	dst = append(dst, byte(h.Magic))
	dst = binary.BigEndian.AppendUint32(dst, h.CRC)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Attributes))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.LastOffsetDelta))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.BaseTimestamp))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.MaxTimestamp))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.ProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.ProducerEpoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.BaseSequence))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.NumRecords))
	return dst
}

// Size is the number of bytes the whole batch occupies (LogOverhead+Length).
func (h Header) Size() int { return LogOverhead + int(h.Length) }

// Compression returns the codec id (attributes & 7): 0 none, 1 gzip,
// 2 snappy, 3 lz4, 4 zstd.
func (h Header) Compression() int8 { return int8(h.Attributes & AttrCompressionMask) }

// LogAppendTime reports whether the timestamp-type bit says LogAppendTime.
func (h Header) LogAppendTime() bool { return h.Attributes&AttrTimestampType != 0 }

// IsTransactional reports the transactional attribute bit.
func (h Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// IsControl reports the control attribute bit (transaction markers).
func (h Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// HasDeleteHorizon reports the delete-horizon attribute bit (KIP-534).
func (h Header) HasDeleteHorizon() bool { return h.Attributes&AttrDeleteHorizon != 0 }

// LastOffset is BaseOffset + LastOffsetDelta.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset after the batch's last offset.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }
