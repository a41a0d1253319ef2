package replica

import (
	"testing"
	"time"
)

func TestManagerRoles(t *testing.T) {
	p := followerLog(t)
	sc := &scriptedClient{epoch: noTruncation, fetch: func(*FetchRequest) *FetchResponse { return nil }}
	dials := 0
	m, err := NewManager(Config{NodeID: 2, FetchBackoff: time.Millisecond}, func(int32) LeaderClient { dials++; return sc })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fp := FollowerPartition{Topic: "f", Partition: 0, LeaderEpoch: 2, Log: p}
	m.BecomeFollower(fp, 1)
	waitFor(t, "fetching", func() bool { _, ok := sc.lastFetch(); return ok })
	f := m.mu.fetchers[1]
	if s, _ := f.State("f", 0); s != "fetching" {
		t.Fatalf("state %q", s)
	}
	// The same leadership again (an ISR-only change) keeps the state.
	m.BecomeFollower(fp, 1)
	if s, _ := f.State("f", 0); s != "fetching" || dials != 1 {
		t.Fatalf("state %q after a repeated BecomeFollower, %d dials", s, dials)
	}
	// Becoming leader stops following and closes the idle fetcher.
	l, err := m.BecomeLeader(LeaderConfig{State: PartitionState{Topic: "f", Partition: 0, Leader: 2, LeaderEpoch: 3, PartitionEpoch: 1,
		Replicas: []int32{1, 2}, ISR: []int32{1, 2}}, Log: p, WriteCaching: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Following("f", 0); ok || len(m.mu.fetchers) != 0 {
		t.Fatal("still following after BecomeLeader")
	}
	if ep, end := p.EndOffsetForEpoch(3); ep != 3 || end != 10 {
		t.Fatalf("leader epoch 3 at %d/%d", ep, end)
	}
	// A stale state does not replace the leader.
	if l2, _ := m.BecomeLeader(LeaderConfig{State: PartitionState{Topic: "f", Partition: 0, Leader: 2, LeaderEpoch: 2}, Log: p}); l2 != l || !l.IsLeader() {
		t.Fatal("stale BecomeLeader replaced the leader")
	}
	m.Stop("f", 0)
	if _, ok := m.Leader("f", 0); ok || l.IsLeader() {
		t.Fatal("still leading after Stop")
	}
}
