package clustertest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rebalanceSetup starts three nodes with a 1 s leader-imbalance check
// (plus extra settings), creates a 6-partition RF 3 topic whose
// partitions are all led by their preferred replica, produces records,
// kills a broker other than the controller, waits until it leads nothing
// and restarts it. It returns the cluster, an admin client, the topic,
// the restarted broker and the records produced (some while it was down).
func rebalanceSetup(t *testing.T, ctx context.Context, extra map[string]string) (*Cluster, *kgo.Client, *kadm.Client, string, int32, int) {
	t.Helper()
	set := map[string]string{"leader.imbalance.check.interval.seconds": "1"}
	for k, v := range extra {
		set[k] = v
	}
	c := Start(t, Options{Nodes: 3, Settings: set})
	cl, adm := newClient(t, c)
	const topic = "rebal"
	if _, err := adm.CreateTopic(ctx, 6, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, "every partition led by its preferred replica, full ISR", func() error {
		return preferredLeaders(ctx, adm, topic, true)
	})
	parts, err := adminMetadata(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	preferred := map[int32]int{}
	for _, p := range parts {
		preferred[p.Replicas[0]]++
	}
	ctrl, err := controllerOf(ctx, c.Node(1))
	if err != nil {
		t.Fatal(err)
	}
	var victim int32 = -1
	for id := int32(1); id <= 3; id++ {
		if id != ctrl && preferred[id] > 0 {
			victim = id
		}
	}
	if victim < 0 {
		t.Fatalf("no broker besides controller %d is a preferred replica: %v", ctrl, parts)
	}
	produceN(t, ctx, cl, topic, "before", 300)

	c.Node(victim).Kill()
	t.Logf("killed broker %d (preferred replica of %d partitions; controller %d)", victim, preferred[victim], ctrl)
	Eventually(t, 30*time.Second, fmt.Sprintf("broker %d leads nothing", victim), func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		for id, p := range parts {
			if p.Leader == victim || p.Leader < 0 {
				return fmt.Errorf("partition %d led by %d", id, p.Leader)
			}
		}
		return nil
	})
	produceN(t, ctx, cl, topic, "during", 300)
	c.Node(victim).Restart()
	return c, cl, adm, topic, victim, 600
}

// preferredLeaders returns nil if every partition of topic is led by its
// preferred replica (and, if fullISR, has every replica in the ISR).
func preferredLeaders(ctx context.Context, adm *kadm.Client, topic string, fullISR bool) error {
	parts, err := adminMetadata(ctx, adm, topic)
	if err != nil {
		return err
	}
	for id, p := range parts {
		if len(p.Replicas) == 0 || p.Leader != p.Replicas[0] {
			return fmt.Errorf("partition %d: leader %d, replicas %v", id, p.Leader, p.Replicas)
		}
		if fullISR && len(p.ISR) != len(p.Replicas) {
			return fmt.Errorf("partition %d: ISR %v, replicas %v", id, p.ISR, p.Replicas)
		}
	}
	return nil
}

// TestAutoLeaderRebalance: with auto.leader.rebalance.enable (the
// default) and a 1 s check interval, a broker that was killed and
// restarted gets the leadership of its preferred partitions back from
// the active controller once it is in their ISR again, without any
// ElectLeaders call; every record survives.
func TestAutoLeaderRebalance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, _, adm, topic, victim, n := rebalanceSetup(t, ctx, nil)
	took := Eventually(t, 60*time.Second, "every partition led by its preferred replica again", func() error {
		return preferredLeaders(ctx, adm, topic, true)
	})
	t.Logf("broker %d leads its preferred partitions again %v after its restart", victim, took.Round(time.Millisecond))
	seen := consumeAll(t, ctx, c, topic, n)
	checkAll(t, seen, "before", 300)
	checkAll(t, seen, "during", 300)
}

// TestAutoLeaderRebalanceDisabled: with auto.leader.rebalance.enable=false
// the restarted broker rejoins every ISR but leads none of its preferred
// partitions over several check intervals.
func TestAutoLeaderRebalanceDisabled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, _, adm, topic, victim, _ := rebalanceSetup(t, ctx, map[string]string{"auto.leader.rebalance.enable": "false"})
	Eventually(t, 60*time.Second, fmt.Sprintf("broker %d back in every ISR", victim), func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		for id, p := range parts {
			if !slices.Contains(p.ISR, victim) {
				return fmt.Errorf("partition %d: ISR %v", id, p.ISR)
			}
		}
		return nil
	})
	// A bounded negative check: five check intervals.
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			t.Fatal(err)
		}
		for id, p := range parts {
			if p.Leader == victim {
				t.Fatalf("partition %d moved back to broker %d with auto.leader.rebalance.enable=false: %+v", id, victim, p)
			}
		}
		time.Sleep(100 * time.Millisecond) // sampling the leadership over the window
	}
}
