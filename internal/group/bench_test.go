package group

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkOffsetCommit: commits of 1,000 partitions each by one group's
// member, through the Coordinator (event loop, record encoding, batch
// building with CRC, the writer and an in-memory Log), answered once
// "durable". Parallel runs several committers of the same group, whose
// writes the writer coalesces into fewer Appends.
func BenchmarkOffsetCommit(b *testing.B) {
	for _, committers := range []int{1, 8} {
		b.Run(fmt.Sprintf("partitions=1000/committers=%d", committers), func(b *testing.B) {
			cfg := testConfig()
			cfg.Partitions = 1
			log := newMemLog()
			c := New(cfg, log)
			defer c.Close()
			if err := c.Load(context.Background(), 0); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			offsets := make(map[int32]int64, 1000)
			for p := range int32(1000) {
				offsets[p] = int64(p) * 10
			}
			req := commitReq("bench", "", -1, "topic", offsets)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed error
			per := (b.N + committers - 1) / committers
			for w := range committers {
				n := min(per, b.N-w*per)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						r := c.OffsetCommit(ctx, req)
						if code := r.Topics[0].Partitions[0].ErrorCode; code != 0 {
							mu.Lock()
							failed = kerr.ErrorForCode(code)
							mu.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "commits/s")
			b.ReportMetric(float64(b.N)*1000/el.Seconds(), "offsets/s")
			log.mu.Lock()
			b.ReportMetric(float64(b.N)/float64(max(log.appends, 1)), "commits/append")
			log.mu.Unlock()
		})
	}
}

// BenchmarkRebalance100: a Stable group of 100 members rebalances (every
// member rejoins with new metadata, the leader assigns, everyone syncs),
// all in-process through the Coordinator; one iteration is one complete
// rebalance, from the first JoinGroup to the last member's assignment.
func BenchmarkRebalance100(b *testing.B) {
	const n = 100
	cfg := testConfig()
	cfg.Partitions = 1
	cfg.InitialRebalanceDelay = NoInitialRebalanceDelay
	c := New(cfg, newMemLog())
	defer c.Close()
	if err := c.Load(context.Background(), 0); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		r := c.JoinGroup(ctx, joinReq("big", ""))
		if r.ErrorCode != kerr.MemberIDRequired.Code {
			b.Fatalf("join: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		ids[i] = r.MemberID
	}
	gen := int32(0)
	rebalance := func(round int) {
		joins := make([]*kmsg.JoinGroupResponse, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := joinReq("big", ids[i])
				req.Protocols[0].Metadata = strconv.AppendInt(req.Protocols[0].Metadata, int64(round), 10)
				joins[i] = c.JoinGroup(ctx, req)
			}()
		}
		wg.Wait()
		gen = joins[0].Generation
		leader := joins[0].LeaderID
		assign := make(map[string][]byte, n)
		for i, j := range joins {
			if j.ErrorCode != 0 || j.Generation != gen {
				b.Fatalf("member %d: %+v", i, j)
			}
			assign[ids[i]] = []byte(ids[i])
		}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var a map[string][]byte
				if ids[i] == leader {
					a = assign
				}
				r := c.SyncGroup(ctx, syncReq("big", ids[i], gen, a))
				if r.ErrorCode != 0 || string(r.MemberAssignment) != ids[i] {
					b.Errorf("sync %d: %+v", i, r)
				}
			}()
		}
		wg.Wait()
	}
	rebalance(-1) // form the group
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		rebalance(i)
	}
	el := time.Since(start)
	b.ReportMetric(float64(el.Microseconds())/1000/float64(b.N), "ms/rebalance")
}
