package batch

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum computes the CRC-32C (Castagnoli) of the batch at the start of b:
// the bytes from attributes to the end of the batch as given by batchLength.
// b must hold the whole batch.
func Checksum(b []byte) uint32 {
	n := LogOverhead + int(int32(binary.BigEndian.Uint32(b[LengthOffset:])))
	return crc32.Checksum(b[AttributesOffset:n], castagnoli)
}

// ChecksumBytes computes CRC-32C over arbitrary bytes (for record encoders
// that compute the CRC over the region after the crc field themselves).
func ChecksumBytes(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// SetCRC recomputes the CRC of the batch at the start of b and stores it.
func SetCRC(b []byte) {
	binary.BigEndian.PutUint32(b[CRCOffset:], Checksum(b))
}
