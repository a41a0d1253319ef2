package log

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// batch16K builds a batch of about 16 KiB of records of recSize bytes.
func batch16K(recSize int) []byte {
	n := (16 << 10) / (recSize + 8)
	return testBatch(n, recSize, time.Now().UnixMilli())
}

var benchRecSizes = []struct {
	name string
	size int
}{{"rec=100B", 100}, {"rec=1KiB", 1024}}

// BenchmarkAppend measures append throughput for ~16 KiB batches:
// buffered (write caching, no fsync), and group commit (every appender
// waits until its batch is fsynced) with 1, 8 and 64 concurrent appenders.
// BenchmarkFileWrite is the baseline for "buffered".
func BenchmarkAppend(b *testing.B) {
	for _, rs := range benchRecSizes {
		b.Run("buffered/"+rs.name, func(b *testing.B) {
			m := testManager(b, "")
			p := openPart(b, m, Config{WriteCaching: true})
			buf := batch16K(rs.size)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.Append(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, appenders := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("groupcommit/appenders=%d/%s", appenders, rs.name), func(b *testing.B) {
				m := testManager(b, "")
				p := openPart(b, m, Config{})
				bufs := make([][]byte, appenders)
				for i := range bufs {
					bufs[i] = batch16K(rs.size)
				}
				b.SetBytes(int64(len(bufs[0])))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for g := range appenders {
					n := b.N / appenders
					if g < b.N%appenders {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range n {
							res, err := p.Append(bufs[g])
							if err == nil {
								err = p.WaitDurable(context.Background(), res.LastOffset)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			})
		}
	}
}

// BenchmarkFileWrite is a plain sequential os.File write of the same
// batches: the ceiling for buffered appends.
func BenchmarkFileWrite(b *testing.B) {
	for _, rs := range benchRecSizes {
		b.Run(rs.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := batch16K(rs.size)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchLog builds a partition of about size bytes of 16 KiB batches.
func benchLog(b *testing.B, dir string, size int) (*Manager, *Partition) {
	m := testManager(b, dir)
	p := openPart(b, m, Config{WriteCaching: true, SegmentBytes: 64 << 20})
	buf := batch16K(100)
	for p.Size() < int64(size) {
		if _, err := p.Append(buf); err != nil {
			b.Fatal(err)
		}
	}
	return m, p
}

// BenchmarkRead measures Read (index lookup and batch-boundary scan) of up
// to 1 MiB at random offsets; "pread" also copies the regions out.
func BenchmarkRead(b *testing.B) {
	_, p := benchLog(b, "", 128<<20)
	leo := p.LogEndOffset()
	for _, copyOut := range []bool{false, true} {
		b.Run(map[bool]string{false: "regions", true: "regions+pread"}[copyOut], func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 2<<20)
			b.ReportAllocs()
			var total int64
			for range b.N {
				r, err := p.Read(rng.Int64N(leo), 1<<20, leo, true)
				if err != nil {
					b.Fatal(err)
				}
				total += r.Bytes
				if copyOut {
					for _, reg := range r.Regions {
						if _, err := reg.File.ReadAt(buf[:reg.Len], reg.Pos); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.SetBytes(total / int64(b.N))
		})
	}
}

// BenchmarkRecovery measures a full recovery scan (unclean shutdown, no
// recovery-point checkpoint: every batch CRC-checked, indexes rebuilt) and
// reports seconds per GiB. The files are in the page cache.
func BenchmarkRecovery(b *testing.B) {
	const size = 256 << 20
	dir := b.TempDir()
	m, _ := benchLog(b, dir, size)
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.Remove(filepath.Join(dir, cleanShutdownFile))
		os.Remove(filepath.Join(dir, recoveryPointFile))
		b.StartTimer()
		m, err := OpenManager(ManagerConfig{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Open("t", 0, Config{WriteCaching: true, SegmentBytes: 64 << 20}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/(float64(size)/(1<<30)), "s/GiB")
}
