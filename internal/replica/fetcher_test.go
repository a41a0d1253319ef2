package replica

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/log/batch"
)

// scriptedClient answers a fetcher from test-provided functions and
// records the requests.
type scriptedClient struct {
	mu      sync.Mutex
	fetch   func(*FetchRequest) *FetchResponse
	epoch   func(*EpochRequest) *EpochResponse
	fetches []FetchPartition
}

func (s *scriptedClient) Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	s.mu.Lock()
	s.fetches = append(s.fetches, req.Partitions...)
	fn := s.fetch
	s.mu.Unlock()
	if r := fn(req); r != nil {
		return r, nil
	}
	<-ctx.Done() // nothing to say: park like an idle long poll
	return nil, ctx.Err()
}

func (s *scriptedClient) OffsetForLeaderEpoch(_ context.Context, req *EpochRequest) (*EpochResponse, error) {
	s.mu.Lock()
	fn := s.epoch
	s.mu.Unlock()
	return fn(req), nil
}

func (s *scriptedClient) lastFetch() (FetchPartition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fetches) == 0 {
		return FetchPartition{}, false
	}
	return s.fetches[len(s.fetches)-1], true
}

// epochBatch builds a batch of n records at base with a leader epoch.
func epochBatch(t *testing.T, base int64, n int, epoch int32) []byte {
	t.Helper()
	var recs []batch.Record
	for i := range n {
		recs = append(recs, batch.Record{Offset: base + int64(i), Timestamp: 1000, Value: []byte("v")})
	}
	b, err := batch.Build(batch.Header{BaseOffset: base, PartitionLeaderEpoch: epoch, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, batch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// followerLog opens a log holding offsets [0,10) of epoch 1.
func followerLog(t *testing.T) *log.Partition {
	t.Helper()
	lm, err := log.OpenManager(log.ManagerConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	p, err := lm.Open("f", 0, log.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendAsFollower(epochBatch(t, 0, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendAsFollower(epochBatch(t, 5, 5, 1)); err != nil {
		t.Fatal(err)
	}
	return p
}

func noTruncation(req *EpochRequest) *EpochResponse {
	var r EpochResponse
	for _, p := range req.Partitions {
		r.Partitions = append(r.Partitions, EpochAnswer{Topic: p.Topic, Partition: p.Partition, EpochEndOffset: EpochEndOffset{p.LeaderEpoch, 1 << 40}})
	}
	return &r
}

func one(fp FetchedPartition) *FetchResponse {
	fp.Topic = "f"
	return &FetchResponse{Partitions: []FetchedPartition{fp}}
}

func TestFetcherDivergingEpochFromFetch(t *testing.T) {
	p := followerLog(t)
	sc := &scriptedClient{epoch: noTruncation}
	step := 0
	sc.fetch = func(req *FetchRequest) *FetchResponse {
		fp := req.Partitions[0]
		step++
		switch {
		case step == 1:
			if fp.FetchOffset != 10 || fp.LastFetchedEpoch != 1 || fp.CurrentLeaderEpoch != 2 {
				t.Errorf("first fetch %+v", fp)
			}
			// The leader's epoch 1 ended at 6: truncate.
			return one(FetchedPartition{Diverging: &EpochEndOffset{1, 6}, HighWatermark: 6, LogStartOffset: 0})
		case step == 2:
			if fp.FetchOffset != 5 || fp.LastFetchedEpoch != 1 {
				// 6 falls inside the batch [5,10): the whole batch goes.
				t.Errorf("after truncation: fetch %+v, want offset 5 epoch 1", fp)
			}
			return one(FetchedPartition{Records: epochBatch(t, 5, 4, 2), HighWatermark: 9, LogStartOffset: 0})
		}
		return nil
	}
	f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
	defer f.Close()
	f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p})
	waitFor(t, "epoch 2 data appended", func() bool { return p.LogEndOffset() == 9 && p.HighWatermark() == 9 })
	if ep, end := p.EndOffsetForEpoch(1); ep != 1 || end != 5 {
		t.Fatalf("epoch 1 ends at %d/%d, want 5", ep, end)
	}
	waitFor(t, "next fetch from 9 at epoch 2", func() bool {
		fp, ok := sc.lastFetch()
		return ok && fp.FetchOffset == 9 && fp.LastFetchedEpoch == 2
	})
}

func TestFetcherErrors(t *testing.T) {
	t.Run("offset below leader log start", func(t *testing.T) {
		p := followerLog(t)
		sc := &scriptedClient{epoch: noTruncation}
		var once sync.Once
		sc.fetch = func(req *FetchRequest) *FetchResponse {
			var r *FetchResponse
			once.Do(func() { r = one(FetchedPartition{Err: kerr.OffsetOutOfRange, HighWatermark: -1, LogStartOffset: 50}) })
			return r
		}
		f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
		defer f.Close()
		f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p})
		waitFor(t, "restart at the leader's log start", func() bool {
			fp, ok := sc.lastFetch()
			return ok && fp.FetchOffset == 50
		})
		if p.LogStartOffset() != 50 || p.LogEndOffset() != 50 {
			t.Fatalf("log [%d,%d), want [50,50)", p.LogStartOffset(), p.LogEndOffset())
		}
	})
	t.Run("fenced waits for metadata", func(t *testing.T) {
		p := followerLog(t)
		sc := &scriptedClient{epoch: noTruncation}
		sc.fetch = func(req *FetchRequest) *FetchResponse {
			if req.Partitions[0].CurrentLeaderEpoch == 2 {
				return one(FetchedPartition{Err: kerr.FencedLeaderEpoch, HighWatermark: -1, LogStartOffset: -1})
			}
			return nil
		}
		f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
		defer f.Close()
		f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p})
		waitFor(t, "fenced", func() bool { s, _ := f.State("f", 0); return s == "fenced" })
		f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 3, Log: p})
		waitFor(t, "fetch at epoch 3", func() bool { fp, ok := sc.lastFetch(); return ok && fp.CurrentLeaderEpoch == 3 })
	})
	t.Run("unknown leader epoch backs off and retries; log start follows", func(t *testing.T) {
		p := followerLog(t)
		sc := &scriptedClient{epoch: noTruncation}
		var mu sync.Mutex
		n := 0
		sc.fetch = func(req *FetchRequest) *FetchResponse {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n <= 3 {
				return one(FetchedPartition{Err: kerr.UnknownLeaderEpoch, HighWatermark: -1, LogStartOffset: -1})
			}
			// The leader also deleted records below 7 (DeleteRecords).
			return one(FetchedPartition{Records: epochBatch(t, 10, 2, 2), HighWatermark: 12, LogStartOffset: 7})
		}
		f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
		defer f.Close()
		f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p})
		waitFor(t, "appended after retries", func() bool { return p.LogEndOffset() >= 12 })
		waitFor(t, "log start to follow the leader's", func() bool { return p.LogStartOffset() == 7 })
	})
	t.Run("OffsetForLeaderEpoch truncation and removal", func(t *testing.T) {
		p := followerLog(t)
		sc := &scriptedClient{epoch: func(req *EpochRequest) *EpochResponse {
			pp := req.Partitions[0]
			return &EpochResponse{Partitions: []EpochAnswer{{Topic: pp.Topic, Partition: pp.Partition, EpochEndOffset: EpochEndOffset{1, 5}}}}
		}, fetch: func(*FetchRequest) *FetchResponse { return nil }}
		f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
		defer f.Close()
		f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p})
		waitFor(t, "fetching from 5", func() bool { fp, ok := sc.lastFetch(); return ok && fp.FetchOffset == 5 })
		if !f.Remove("f", 0) || f.Len() != 0 {
			t.Fatal("Remove")
		}
	})
}

// TestFetcherManyPartitions: one fetcher carries several partitions in one
// request; an error on one does not hold back the other.
func TestFetcherManyPartitions(t *testing.T) {
	pa, pb := followerLog(t), followerLog(t)
	sc := &scriptedClient{epoch: noTruncation}
	sc.fetch = func(req *FetchRequest) *FetchResponse {
		var r FetchResponse
		for _, fp := range req.Partitions {
			switch fp.Partition {
			case 0:
				if fp.FetchOffset >= 20 {
					continue // nothing new: omitted, as in an incremental answer
				}
				r.Partitions = append(r.Partitions, FetchedPartition{Topic: "f", Partition: 0,
					Records: epochBatch(t, fp.FetchOffset, 2, 2), HighWatermark: fp.FetchOffset, LogStartOffset: 0})
			case 1:
				r.Partitions = append(r.Partitions, FetchedPartition{Topic: "f", Partition: 1, Err: kerr.FencedLeaderEpoch, HighWatermark: -1, LogStartOffset: -1})
			}
		}
		if len(r.Partitions) == 0 {
			return nil
		}
		return &r
	}
	f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
	defer f.Close()
	f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: pa})
	f.Add(FollowerPartition{Topic: "f", Partition: 1, LeaderEpoch: 2, Log: pb})
	waitFor(t, "partition 0 to reach 20", func() bool { return pa.LogEndOffset() == 20 })
	if s, _ := f.State("f", 1); s != "fenced" {
		t.Fatalf("partition 1 state %q, want fenced", s)
	}
	if pb.LogEndOffset() != 10 {
		t.Fatalf("fenced partition changed: log end %d", pb.LogEndOffset())
	}
	if hw := pa.HighWatermark(); hw != 18 {
		t.Fatalf("partition 0 HW %d, want the leader's 18", hw)
	}
}

// TestFetcherBackToTruncating: answers that leave the follower unsure of
// where its log stands send it back to OffsetForLeaderEpoch.
func TestFetcherBackToTruncating(t *testing.T) {
	cases := []struct {
		name   string
		answer FetchedPartition
	}{
		{"offset above the leader's log end", FetchedPartition{Err: kerr.OffsetOutOfRange, HighWatermark: -1, LogStartOffset: 0}},
		{"records that do not start at the log end", FetchedPartition{Records: epochBatch(t, 12, 2, 2), HighWatermark: 14, LogStartOffset: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := followerLog(t)
			var mu sync.Mutex
			epochRequests := 0
			sc := &scriptedClient{epoch: func(req *EpochRequest) *EpochResponse {
				mu.Lock()
				epochRequests++
				mu.Unlock()
				return noTruncation(req)
			}}
			var once sync.Once
			sc.fetch = func(*FetchRequest) *FetchResponse {
				var r *FetchResponse
				once.Do(func() { r = one(c.answer) })
				return r
			}
			f := NewFetcher(Config{NodeID: 2, FetchBackoff: time.Millisecond}, 1, sc)
			defer f.Close()
			f.Add(FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p})
			waitFor(t, "a second OffsetForLeaderEpoch", func() bool { mu.Lock(); defer mu.Unlock(); return epochRequests == 2 })
			if p.LogEndOffset() != 10 {
				t.Fatalf("log end %d, want 10 (nothing appended)", p.LogEndOffset())
			}
		})
	}
}
