package metadata

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// partitionOn waits until every running store shows partition p of topic
// satisfying ok, and returns it as the last store saw it.
func (c *testCluster) partitionOn(topic string, p int32, what string, ok func(Partition) bool) Partition {
	c.t.Helper()
	var last Partition
	waitFor(c.t, 10*time.Second, what, func() bool {
		for _, s := range c.all() {
			tp, found := s.Topic(topic)
			if !found || int(p) >= len(tp.Partitions) || !ok(tp.Partitions[p]) {
				return false
			}
			last = tp.Partitions[p]
		}
		return true
	})
	return last
}

// TestClusterReassignmentMovesLeader: the admin operations through a
// 3-voter quorum, issued on followers (forwarded to the controller): a
// replica moves from broker 1 to broker 2 (RF 1) once the partition's
// leader reports the new replica in sync (what the replication layer will
// do through AlterPartition), the leadership moves with it and nothing is
// listed afterwards; a reorder plus a preferred election moves a
// leadership; KIP-860's replication factor guard refuses a change.
func TestClusterReassignmentMovesLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := ctxT(t)
	f := c.follower()
	if _, err := f.CreateTopic(ctx, TopicSpec{Name: "mv", Assignment: [][]int32{{1}}}, false); err != nil {
		t.Fatal(err)
	}
	p := c.partitionOn("mv", 0, "mv-0 led by 1", func(p Partition) bool { return p.Leader == 1 })

	errs, err := f.AlterPartitionReassignments(ctx, []Reassignment{
		{Topic: "mv", Partition: 0, Replicas: []int32{2, 3}, KeepReplicationFactor: true},
		{Topic: "mv", Partition: 0, Replicas: []int32{2, 9}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantKerr(t, errs[0], kerr.InvalidReplicationFactor)
	wantKerr(t, errs[1], kerr.InvalidReplicaAssignment)

	errs, err = f.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "mv", Partition: 0, Replicas: []int32{2}, KeepReplicationFactor: true}})
	if err != nil || errs[0] != nil {
		t.Fatalf("move: %v %v", err, errs)
	}
	want := ReassignmentStatus{Topic: "mv", Partition: 0, Replicas: []int32{2, 1}, AddingReplicas: []int32{2}, RemovingReplicas: []int32{1}}
	waitFor(t, 10*time.Second, "the move listed on every node", func() bool {
		for _, s := range c.all() {
			got := s.ListPartitionReassignments(nil)
			if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
				return false
			}
		}
		return true
	})
	// The target is the preferred replica now, but not in the ISR.
	_, perr, err := c.store(3).ElectLeaders(ctx, ElectPreferred, []TopicPartition{{"mv", 0}})
	if err != nil {
		t.Fatal(err)
	}
	wantKerr(t, perr[0], kerr.PreferredLeaderNotAvailable)

	// Broker 1, the leader, reports broker 2 in sync: the move completes.
	p = c.partitionOn("mv", 0, "mv-0 in progress", func(p Partition) bool { return len(p.AddingReplicas) == 1 })
	b1, _ := c.store(1).fsm.broker(1)
	np, err := c.store(1).AlterPartition(ctx, AlterPartitionRequest{BrokerID: 1, BrokerEpoch: b1.Epoch, Topic: "mv", Partition: 0,
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: []int32{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if np.Leader != 2 || !slices.Equal(np.Replicas, []int32{2}) || !slices.Equal(np.ISR, []int32{2}) || np.LeaderEpoch != p.LeaderEpoch+1 {
		t.Fatalf("after the move: %+v", np)
	}
	c.partitionOn("mv", 0, "mv-0 led by 2 everywhere", func(p Partition) bool { return p.Leader == 2 && len(p.Replicas) == 1 })
	for _, s := range c.all() {
		if got := s.ListPartitionReassignments(nil); len(got) != 0 {
			t.Fatalf("node %d still lists %+v", s.cfg.NodeID, got)
		}
	}
	_, perr, err = f.ElectLeaders(ctx, ElectPreferred, []TopicPartition{{"mv", 0}})
	if err != nil {
		t.Fatal(err)
	}
	wantKerr(t, perr[0], kerr.ElectionNotNeeded)

	// Reordering the replicas completes at once (nothing to add); the
	// preferred election then hands the leadership to the new first
	// replica.
	if _, err := f.CreateTopic(ctx, TopicSpec{Name: "pe", Assignment: [][]int32{{1, 2}}}, false); err != nil {
		t.Fatal(err)
	}
	c.partitionOn("pe", 0, "pe-0 led by 1", func(p Partition) bool { return p.Leader == 1 })
	if errs, err = f.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "pe", Partition: 0, Replicas: []int32{2, 1}}}); err != nil || errs[0] != nil {
		t.Fatalf("reorder: %v %v", err, errs)
	}
	c.partitionOn("pe", 0, "pe-0 reordered, still led by 1", func(p Partition) bool {
		return p.Leader == 1 && slices.Equal(p.Replicas, []int32{2, 1}) && len(p.AddingReplicas) == 0
	})
	tps, perr, err := f.ElectLeaders(ctx, ElectPreferred, nil)
	if err != nil || len(tps) != 1 || tps[0] != (TopicPartition{"pe", 0}) || perr[0] != nil {
		t.Fatalf("preferred election of all: %v %v %v", tps, perr, err)
	}
	c.partitionOn("pe", 0, "pe-0 led by 2 everywhere", func(p Partition) bool { return p.Leader == 2 })
}

// TestClusterUncleanRestart: a broker that restarts without a clean
// shutdown (Config.UncleanRestart), before the controller fenced it,
// leaves the ISRs where another member remains (its leadership moves) and
// is flagged UncleanRestart; a clean restart changes nothing.
func TestClusterUncleanRestart(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.BrokerSessionTimeout = time.Minute })
	ctx := ctxT(t)
	for name, as := range map[string][][]int32{"uc": {{3, 1}}, "solo": {{3}}} {
		if _, err := c.store(1).CreateTopic(ctx, TopicSpec{Name: name, Assignment: as}, false); err != nil {
			t.Fatal(err)
		}
	}
	c.partitionOn("uc", 0, "uc-0 led by 3", func(p Partition) bool { return p.Leader == 3 && slices.Equal(p.ISR, []int32{3, 1}) })

	// A clean restart: same registration, same epoch, same ISR.
	b3, _ := c.store(1).fsm.broker(3)
	c.kill(3)
	c.restart(3, nil)
	if nb, _ := c.store(3).fsm.broker(3); nb.Epoch != b3.Epoch || nb.UncleanRestart {
		t.Fatalf("after a clean restart: %+v, was %+v", nb, b3)
	}
	c.partitionOn("uc", 0, "uc-0 unchanged", func(p Partition) bool { return p.Leader == 3 && slices.Equal(p.ISR, []int32{3, 1}) })

	// An unclean restart: a new registration that takes 3 out of uc-0's
	// ISR (1 leads), and keeps it where it is the last member (solo-0).
	c.kill(3)
	c.restart(3, func(cfg *Config) { cfg.UncleanRestart = true })
	waitFor(t, 10*time.Second, "broker 3 flagged unclean everywhere", func() bool {
		for _, s := range c.all() {
			if b, _ := s.fsm.broker(3); !b.UncleanRestart || b.Epoch == b3.Epoch {
				return false
			}
		}
		return true
	})
	c.partitionOn("uc", 0, "uc-0 led by 1 without 3", func(p Partition) bool { return p.Leader == 1 && slices.Equal(p.ISR, []int32{1}) })
	c.partitionOn("solo", 0, "solo-0 kept", func(p Partition) bool { return p.Leader == 3 && slices.Equal(p.ISR, []int32{3}) })

	// A later re-registration of the same process is clean.
	if err := c.store(3).Register(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := c.store(3).fsm.broker(3); b.UncleanRestart {
		t.Fatalf("re-registration kept the flag: %+v", b)
	}
}
