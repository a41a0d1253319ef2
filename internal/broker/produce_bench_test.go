package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// BenchmarkProduce measures acks=all produce of 1 KiB records through
// franz-go against an in-process broker, in the default durable mode
// (answered after the group-commit fdatasync) and in Kafka's page-cache
// model (write.caching=true). Client and broker share the machine.
//
//	go test -run '^$' -bench BenchmarkProduce -benchtime 50000x -count 5 ./internal/broker | benchstat -col /mode -
func BenchmarkProduce(b *testing.B) {
	for _, mode := range []struct{ name, caching string }{{"durable", "false"}, {"pagecache", "true"}} {
		b.Run("mode="+mode.name, func(b *testing.B) {
			br := sluicetest.New(b, sluicetest.Topic("p", 1, "write.caching", mode.caching))
			cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("p"),
				kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond),
				kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := testCtx(b, 10*time.Minute)
			val := make([]byte, 1024)
			b.SetBytes(int64(len(val)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
