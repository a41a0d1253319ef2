package batch

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// FuzzDecodeRecords feeds arbitrary batches to the record decoder. The
// batch length and CRC are fixed up first, so the fuzzer spends its time
// in the records section rather than on CRC failures.
//
// Invariants:
//   - Decode never panics.
//   - For an uncompressed batch, Decode allocates no more than a constant
//     factor of the input (no length read from the bytes is trusted).
//   - A batch that decodes re-encodes (uncompressed and with its own codec)
//     to a batch that decodes to the same records and header fields.
func FuzzDecodeRecords(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, codec := range allCodecs {
		b, err := Build(Header{BaseOffset: 10, ProducerID: 1, BaseSequence: 4}, genRecords(rng, 10, 4, 30), codec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c, _ := ControlBatch(3, 1, 0, ControlRecord{Type: ControlCommit}, 5)
	f.Add(c)
	f.Add(rawBatch(1, varints(6, 0, 0, 0, -1, -1, 0)))
	f.Add(rawBatch(1000, varints(6, 0, 0, 0, 1000)))

	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= HeaderSize {
			binary.BigEndian.PutUint32(b[LengthOffset:], uint32(len(b)-LogOverhead))
			b[MagicOffset] = MagicV2
			SetCRC(b)
		}
		var (
			h    Header
			recs []Record
			err  error
		)
		d := Decoder{MaxSize: 1 << 20}
		n := allocBytes(func() { h, recs, err = d.Decode(b) })
		if h.Compression() == CodecNone && n > allocBound(len(b)) {
			t.Fatalf("decoding %d bytes allocated %d", len(b), n)
		}
		if err != nil {
			return
		}
		for _, codec := range []int8{CodecNone, h.Compression()} {
			re, err := Build(h, recs, codec)
			if err != nil {
				if codec == CodecNone {
					// Decode accepts a batch whose record offsets
					// are not increasing; Build does not.
					return
				}
				t.Fatalf("rebuild with %s: %v", CodecName(codec), err)
			}
			h2, recs2, err := DecodeRecords(re)
			if err != nil {
				t.Fatalf("decode rebuilt: %v", err)
			}
			sameRecords(t, recs2, recs)
			if h2.BaseOffset != h.BaseOffset || h2.ProducerID != h.ProducerID || h2.BaseSequence != h.BaseSequence ||
				h2.ProducerEpoch != h.ProducerEpoch || h2.NumRecords != h.NumRecords ||
				h2.Attributes&^AttrCompressionMask != h.Attributes&^AttrCompressionMask {
				t.Fatalf("header %+v, rebuilt %+v", h, h2)
			}
		}
	})
}
