package protocol

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkEncodeFetchResponse measures fetch response assembly: the
// hand-written encoder writing headers and splicing one file region per
// partition (the region bytes are not touched), for 1, 16 and 256
// partitions of one topic, at v11 (non-flexible) and v16 (flexible).
//
//	go test -run '^$' -bench BenchmarkEncodeFetchResponse -count 6 ./internal/protocol
func BenchmarkEncodeFetchResponse(b *testing.B) {
	f := tempFile(b, make([]byte, 1<<20))
	for _, version := range []int16{11, 16} {
		for _, parts := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("v=%d/partitions=%d", version, parts), func(b *testing.B) {
				resp := kmsg.NewPtrFetchResponse()
				resp.Version = version
				rt := kmsg.NewFetchResponseTopic()
				rt.Topic = "bench-topic"
				rt.TopicID[0] = 1
				regions := make([]Region, parts)
				for p := range parts {
					rp := kmsg.NewFetchResponseTopicPartition()
					rp.Partition = int32(p)
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = 1000, 1000, 0
					rp.PreferredReadReplica = -1
					rt.Partitions = append(rt.Partitions, rp)
					regions[p] = Region{File: f, Pos: int64(p) * 4096, Len: 4096}
				}
				resp.Topics = append(resp.Topics, rt)
				h := Header{Key: 1, Version: version, CorrelationID: 7}
				regionsOf := func(_, p int) []Region { return regions[p : p+1] }
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					m := EncodeFetchResponse(h, resp, regionsOf)
					if m.Err() != nil {
						b.Fatal(m.Err())
					}
					m.Release()
				}
			})
		}
	}
}
