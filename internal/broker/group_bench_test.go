package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// BenchmarkOffsetCommit commits offsets for 1,000 partitions of one group
// per op through kadm against an in-process broker: each commit is
// appended to __consumer_offsets and answered once durable (group-commit
// fsync).
//
//	go test -run '^$' -bench BenchmarkOffsetCommit -benchtime 200x ./internal/broker
func BenchmarkOffsetCommit(b *testing.B) {
	br := sluicetest.New(b, sluicetest.Topic("wide", 1000))
	adm := kadm.NewClient(newClient(b, br.Addr()))
	ctx := testCtx(b, 10*time.Minute)
	offs := kadm.Offsets{}
	for p := int32(0); p < 1000; p++ {
		offs.Add(kadm.Offset{Topic: "wide", Partition: p, At: 1, LeaderEpoch: -1})
	}
	// The first commit creates and loads __consumer_offsets.
	waitFor(b, time.Minute, func() bool {
		res, err := adm.CommitOffsets(ctx, "bench-group", offs)
		return err == nil && res.Error() == nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := adm.CommitOffsets(ctx, "bench-group", offs)
		if err != nil || res.Error() != nil {
			b.Fatal(err, res.Error())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "offsets/s")
}
