package broker_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// BenchmarkFetch measures fetch throughput of whole-partition reads from
// the page cache through sendfile and through the user-space copy path, on
// one loopback connection that discards what it reads. cpu-s/GB is the
// process's CPU time (getrusage: broker and the discarding reader share
// the process) per GB fetched; the difference between the paths is the
// broker's copy. Compare with
//
//	go test -run=^$ -bench=BenchmarkFetch -count=6 ./internal/broker | benchstat -col /path -
func BenchmarkFetch(b *testing.B) {
	for _, path := range []struct {
		name string
		opts []sluicetest.Option
	}{{"path=sendfile", nil}, {"path=copy", []sluicetest.Option{sluicetest.ForceCopy()}}} {
		b.Run(path.name, func(b *testing.B) {
			br := sluicetest.New(b, append(path.opts, sluicetest.Topic("bench", 1))...)
			const total = 32 << 20
			fillTopic(b, br.Addr(), "bench", total, 1024)

			c, err := net.Dial("tcp", br.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rd := bufio.NewReaderSize(c, 1<<20)
			req := kmsg.NewPtrFetchRequest()
			req.Version = 11
			req.ReplicaID = -1
			req.MaxBytes = 64 << 20
			req.SessionEpoch = -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = 64 << 20
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			frame := reqFormatter.AppendRequest(nil, req, 1)

			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			var got int64
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(frame); err != nil {
					b.Fatal(err)
				}
				var size [4]byte
				if _, err := io.ReadFull(rd, size[:]); err != nil {
					b.Fatal(err)
				}
				n := int64(binary.BigEndian.Uint32(size[:]))
				if _, err := io.CopyN(io.Discard, rd, n); err != nil {
					b.Fatal(err)
				}
				got += n
			}
			b.StopTimer()
			if got > 0 {
				b.ReportMetric((cpuTime(b)-cpu0).Seconds()/(float64(got)/1e9), "cpu-s/GB")
			}
			b.SetBytes(got / int64(b.N))
			st := br.SendStats()
			b.ReportMetric(float64(st.CopiedBytes.Load())/float64(b.N), "copied-B/op")
		})
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillTopic produces about total bytes of size-byte records to partition 0.
func fillTopic(b testing.TB, addr, topic string, total, size int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(b, 5*time.Minute)
	val := make([]byte, size)
	for i := range val {
		val[i] = byte(i*7 + i/256)
	}
	for i := 0; i < total/size; i++ {
		cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
