package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// txnBenchRecords is the number of records per transaction in the
// transaction benchmarks.
const txnBenchRecords = 1000

// BenchmarkTxnProduce measures acks=all produce of 1 KiB records through
// franz-go against an in-process broker (durable mode): a plain
// idempotent producer against a transactional one committing a
// transaction every 1,000 records (AddPartitionsToTxn, flush, EndTxn with
// its durable prepare record, marker and complete record). Client and
// broker share the machine.
//
//	go test -run '^$' -bench BenchmarkTxnProduce -benchtime 20000x -count 5 ./internal/broker | benchstat -col /mode -
func BenchmarkTxnProduce(b *testing.B) {
	for _, mode := range []string{"idempotent", "transactional"} {
		b.Run("mode="+mode, func(b *testing.B) {
			br := sluicetest.New(b, sluicetest.Topic("p", 1),
				sluicetest.Setting("transaction.state.log.num.partitions", "1"),
				sluicetest.Setting("offsets.topic.num.partitions", "1"))
			opts := []kgo.Opt{kgo.SeedBrokers(br.Addr()), kgo.DefaultProduceTopic("p"),
				kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond),
				kgo.ProducerBatchCompression(kgo.NoCompression())}
			txnl := mode == "transactional"
			if txnl {
				opts = append(opts, kgo.TransactionalID("bench-txn"))
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := testCtx(b, 10*time.Minute)
			val := make([]byte, 1024)
			produce := func() {
				cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
				})
			}
			b.SetBytes(int64(len(val)))
			b.ReportAllocs()
			b.ResetTimer()
			if !txnl {
				for i := 0; i < b.N; i++ {
					produce()
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				return
			}
			for i := 0; i < b.N; i += txnBenchRecords {
				if err := cl.BeginTransaction(); err != nil {
					b.Fatal(err)
				}
				for j := i; j < min(i+txnBenchRecords, b.N); j++ {
					produce()
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/float64(txnBenchRecords)/b.Elapsed().Seconds(), "txn/s")
		})
	}
}

// BenchmarkFetchIsolation measures a franz-go consumer reading a
// pre-filled partition from the start to its end with read_committed and
// with read_uncommitted. The partition holds 16 transactions of 1,000
// 1 KiB records (16 MiB) with every fourth transaction aborted, so
// read_committed stops at the last stable offset and filters the aborted
// records with the fetch responses' aborted-transaction lists. One
// operation is one whole read by a new client; bytes are the partition's
// record bytes.
//
//	go test -run '^$' -bench BenchmarkFetchIsolation -benchtime 10x -count 5 ./internal/broker | benchstat -col /isolation -
func BenchmarkFetchIsolation(b *testing.B) {
	const txns = 16
	br := sluicetest.New(b, sluicetest.Topic("iso", 1),
		sluicetest.Setting("transaction.state.log.num.partitions", "1"),
		sluicetest.Setting("offsets.topic.num.partitions", "1"))
	committed := fillTxnTopic(b, br.Addr(), "iso", txns, 1024)
	for _, iso := range []struct {
		name  string
		level kgo.IsolationLevel
		want  int
	}{
		{"read_uncommitted", kgo.ReadUncommitted(), txns * txnBenchRecords},
		{"read_committed", kgo.ReadCommitted(), committed},
	} {
		b.Run("isolation="+iso.name, func(b *testing.B) {
			ctx := testCtx(b, 10*time.Minute)
			b.SetBytes(txns * txnBenchRecords * 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if got := consumeToEnd(ctx, b, br.Addr(), "iso", iso.level, iso.want); got != iso.want {
					b.Fatalf("consumed %d records, want %d", got, iso.want)
				}
			}
		})
	}
}

// fillTxnTopic writes txns transactions of txnBenchRecords size-byte
// records to partition 0, aborting every fourth, and returns the number
// of committed records.
func fillTxnTopic(b testing.TB, addr, topic string, txns, size int) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.TransactionalID("fill-"+topic),
		kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(b, 5*time.Minute)
	val := make([]byte, size)
	committed := 0
	for t := 0; t < txns; t++ {
		if err := cl.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < txnBenchRecords; i++ {
			cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		commit := t%4 != 3
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			b.Fatal(err)
		}
		if commit {
			committed += txnBenchRecords
		}
	}
	return committed
}

// consumeToEnd reads partition 0 of topic from the start with a new client
// until it has want records, and returns how many it got.
func consumeToEnd(ctx context.Context, b testing.TB, addr, topic string, level kgo.IsolationLevel, want int) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.FetchIsolationLevel(level),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(fmt.Errorf("poll: %w", err))
		}
		got += fs.NumRecords()
	}
	return got
}
