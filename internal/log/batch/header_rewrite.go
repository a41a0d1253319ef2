package batch

import "encoding/binary"

// The rewrite functions change one header field of the batch at the start
// of b in place. b must hold at least a whole header; they panic otherwise,
// as callers validate first.

// SetBaseOffset rewrites baseOffset. The CRC does not cover it.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[BaseOffsetOffset:], uint64(offset))
}

// SetPartitionLeaderEpoch rewrites partitionLeaderEpoch. The CRC does not
// cover it.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[PartitionLeaderEpochOffset:], uint32(epoch))
}

// SetLogAppendTime sets maxTimestamp to ts and the timestamp-type bit to
// LogAppendTime, then recomputes the CRC. b must be exactly one whole batch
// (or start with one; the CRC range comes from batchLength).
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[AttributesOffset:])
	binary.BigEndian.PutUint16(b[AttributesOffset:], attrs|AttrTimestampType)
	binary.BigEndian.PutUint64(b[MaxTimestampOffset:], uint64(ts))
	SetCRC(b)
}

// SetMaxTimestamp rewrites maxTimestamp (leaving the timestamp type alone)
// and recomputes the CRC.
func SetMaxTimestamp(b []byte, ts int64) {
	binary.BigEndian.PutUint64(b[MaxTimestampOffset:], uint64(ts))
	SetCRC(b)
}
