package log

import (
	"bytes"
	"testing"
)

// BenchmarkAppendAsFollower measures the follower's append of fetched
// 1 MiB chunks of ~16 KiB batches (write caching, no fsync): compare with
// BenchmarkAppend/buffered, the leader's append of the same batches.
func BenchmarkAppendAsFollower(b *testing.B) {
	for _, rs := range benchRecSizes {
		b.Run("buffered/"+rs.name, func(b *testing.B) {
			one := withEpoch(batch16K(rs.size), 3)
			h := headersOf(b, one)[0]
			per := int64(h.LastOffsetDelta) + 1
			n := (1 << 20) / len(one)
			p := openPart(b, testManager(b, ""), Config{WriteCaching: true})
			chunk := bytes.Repeat(one, n)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				next := p.LogEndOffset()
				for i := range n {
					setBase(chunk[i*len(one):], next)
					next += per
				}
				if _, err := p.AppendAsFollower(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func setBase(b []byte, base int64) {
	for i := range 8 {
		b[i] = byte(base >> (56 - 8*i))
	}
}
