package metadata

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// rebalanceAssignment makes every broker of 1..3 the preferred replica of
// two partitions.
var rebalanceAssignment = [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}, {1, 3, 2}, {2, 1, 3}, {3, 2, 1}}

// moveLeadershipAway takes broker id out of every leadership and ISR of
// topic (controlled shutdown), registers it again (live, in no ISR) and,
// if rejoin, has each partition's leader add it back to the ISR through
// AlterPartition, as the replication layer does once it caught up. It
// returns the partitions id is the preferred replica of.
func moveLeadershipAway(t *testing.T, c *testCluster, topic string, id int32, rejoin bool) []int32 {
	t.Helper()
	ctx := ctxT(t)
	s := c.store(id)
	if err := s.ControlledShutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "broker live again", func() bool {
		b, ok := s.fsm.broker(id)
		return ok && b.Live()
	})
	tp, _ := s.Topic(topic)
	var preferred []int32
	for _, p := range tp.Partitions {
		if p.Replicas[0] == id {
			preferred = append(preferred, p.ID)
		}
		if p.Leader == id || slices.Contains(p.ISR, id) {
			t.Fatalf("after controlled shutdown of %d: %+v", id, p)
		}
	}
	if rejoin {
		rejoinISR(t, s, topic, id)
	}
	return preferred
}

// rejoinISR has each partition leader of topic add broker id to the ISR.
func rejoinISR(t *testing.T, s *Store, topic string, id int32) {
	t.Helper()
	for _, p := range mustTopic(t, s, topic).Partitions {
		if slices.Contains(p.ISR, id) {
			continue
		}
		lb, _ := s.fsm.broker(p.Leader)
		if _, err := s.AlterPartition(ctxT(t), AlterPartitionRequest{BrokerID: p.Leader, BrokerEpoch: lb.Epoch,
			Topic: topic, Partition: p.ID, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
			ISR: append(slices.Clone(p.ISR), id)}); err != nil {
			t.Fatalf("AlterPartition %s-%d: %v", topic, p.ID, err)
		}
	}
}

// TestLeaderImbalanceCheck drives single checks on the controller (the
// periodic loop is off): nothing is elected while the preferred replica
// is out of the ISR; once it is back, every partition it does not lead is
// moved back, however small the broker's imbalance (KRaft's rule: no
// per-broker percentage).
func TestLeaderImbalanceCheck(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.AutoLeaderRebalanceDisable = true
	})
	ctx := ctxT(t)
	l := c.leader()
	if _, err := l.CreateTopic(ctx, TopicSpec{Name: "rb", Assignment: rebalanceAssignment}, false); err != nil {
		t.Fatal(err)
	}
	res, err := l.CheckLeaderImbalance(ctx)
	if err != nil || len(res.Elected)+len(res.Failed) != 0 {
		t.Fatalf("balanced cluster: %+v, %v", res, err)
	}
	for id, r := range res.Imbalance {
		if r != 0 {
			t.Fatalf("balanced cluster: imbalance %v of broker %d", r, id)
		}
	}
	id := c.follower().cfg.NodeID

	// Out of the ISR: imbalanced, but no preferred replica may lead.
	preferred := moveLeadershipAway(t, c, "rb", id, false)
	res, err = l.CheckLeaderImbalance(ctx)
	if err != nil || res.Imbalance[id] != 1 || len(res.Elected)+len(res.Failed) != 0 {
		t.Fatalf("preferred replica out of the ISR: %+v, %v", res, err)
	}

	// Back in the ISR, one partition moved back by hand: the check
	// elects the other one although the broker is only half imbalanced.
	rejoinISR(t, l, "rb", id)
	_, perr, err := l.ElectLeaders(ctx, ElectPreferred, []TopicPartition{{"rb", preferred[0]}})
	if err != nil || perr[0] != nil {
		t.Fatalf("ElectLeaders: %v %v", perr, err)
	}
	res, err = l.CheckLeaderImbalance(ctx)
	if err != nil || res.Imbalance[id] != 0.5 || !slices.Equal(res.Elected, []TopicPartition{{"rb", preferred[1]}}) || len(res.Failed) != 0 {
		t.Fatalf("check with half moved back: %+v, %v", res, err)
	}
	for _, p := range mustTopic(t, l, "rb").Partitions {
		if p.Leader != p.Replicas[0] {
			t.Fatalf("after the check: %+v", p)
		}
	}
	// Only the active controller elects.
	f := c.follower()
	moveLeadershipAway(t, c, "rb", f.cfg.NodeID, true)
	if _, err := f.CheckLeaderImbalance(ctx); !errors.Is(err, kerr.NotController) {
		t.Fatalf("check on a follower: %v", err)
	}
}

func mustTopic(t *testing.T, s *Store, name string) Topic {
	t.Helper()
	tp, ok := s.Topic(name)
	if !ok {
		t.Fatalf("topic %s not found", name)
	}
	return tp
}

// TestAutoLeaderRebalance: with a short check interval the active
// controller moves every leadership back to its preferred replica by
// itself once that replica is back in the ISR.
func TestAutoLeaderRebalance(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.LeaderImbalanceCheckInterval = 100 * time.Millisecond })
	ctx := ctxT(t)
	l := c.leader()
	if _, err := l.CreateTopic(ctx, TopicSpec{Name: "auto", Assignment: rebalanceAssignment}, false); err != nil {
		t.Fatal(err)
	}
	id := c.follower().cfg.NodeID
	moveLeadershipAway(t, c, "auto", id, true)
	waitFor(t, 15*time.Second, "every partition led by its preferred replica", func() bool {
		for _, s := range c.all() {
			for _, p := range mustTopic(t, s, "auto").Partitions {
				if p.Leader != p.Replicas[0] {
					return false
				}
			}
		}
		return true
	})
}
