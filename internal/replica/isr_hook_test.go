package replica

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/metadata"
)

// TestLeaderOnISRChange: Config.OnISRChange reports each ISR change the
// controller accepted from this leader, once, with the ISR before and
// after, also when the metadata update reached the leader before the
// AlterPartition answer did or the answer was lost; a refused proposal
// reports nothing.
func TestLeaderOnISRChange(t *testing.T) {
	type change struct{ old, new []int32 }
	changes := make(chan change, 8)
	clock, lg, prop := newFakeClock(), newFakeLog(10), newFakeProposer()
	lg.hw = 0
	state := PartitionState{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 7,
		Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}
	prop.current = metadata.Partition{ID: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 7, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}
	l, err := NewLeader(Config{NodeID: 1, Clock: clock, ReplicaLagTimeMax: 30 * time.Second, AlterPartitionBackoff: time.Millisecond,
		OnISRChange: func(topic string, part int32, old, new []int32) {
			if topic != "t" || part != 0 {
				t.Errorf("OnISRChange for %s-%d", topic, part)
			}
			changes <- change{old, new}
		}}, LeaderConfig{State: state, Log: lg, Proposer: prop, WriteCaching: true, MinInsyncReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	e := &leaderEnv{t: t, clock: clock, log: lg, prop: prop, l: l}
	want := func(old, new []int32) {
		t.Helper()
		select {
		case c := <-changes:
			if !slices.Equal(c.old, old) || !slices.Equal(c.new, new) {
				t.Fatalf("OnISRChange(%v, %v), want (%v, %v)", c.old, c.new, old, new)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no OnISRChange(%v, %v)", old, new)
		}
	}

	// Shrink: 3 stops fetching. The metadata update is applied first.
	e.mustFetch(2, 10)
	e.mustFetch(3, 10)
	lg.append(5) // LEO 15
	clock.Advance(31 * time.Second)
	e.mustFetch(2, 15)
	l.MaybeShrinkISR()
	pr := prop.next(t)
	l.Update(PartitionState{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 5, PartitionEpoch: 8,
		Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}})
	e.accept(pr)
	want([]int32{1, 2, 3}, []int32{1, 2})

	// Expand: 3 catches up.
	e.mustFetch(3, 15)
	pr = prop.next(t)
	e.accept(pr)
	want([]int32{1, 2}, []int32{1, 2, 3})
	waitFor(t, "expansion applied", func() bool { return slices.Equal(e.isr(), []int32{1, 2, 3}) })

	// Shrink whose answer is lost: the retry finds it committed (the
	// controller says the partition epoch moved on to exactly this ISR).
	lg.append(5) // LEO 20
	clock.Advance(31 * time.Second)
	e.mustFetch(2, 20)
	l.MaybeShrinkISR()
	pr = prop.next(t)
	prop.mu.Lock()
	prop.current.ISR = []int32{1, 2}
	prop.current.PartitionEpoch++
	prop.mu.Unlock()
	pr.answer <- proposalAnswer{err: kerr.RequestTimedOut}
	pr = prop.next(t) // the retry
	pr.answer <- proposalAnswer{err: kerr.InvalidUpdateVersion}
	want([]int32{1, 2, 3}, []int32{1, 2})
	waitFor(t, "lost answer's shrink applied", func() bool { return slices.Equal(e.isr(), []int32{1, 2}) })
	e.mustFetch(3, 20)
	pr = prop.next(t)
	e.accept(pr)
	want([]int32{1, 2}, []int32{1, 2, 3})
	waitFor(t, "second expansion applied", func() bool { return slices.Equal(e.isr(), []int32{1, 2, 3}) })

	// Refused: nothing reported.
	lg.append(5) // LEO 25
	clock.Advance(31 * time.Second)
	e.mustFetch(2, 25)
	l.MaybeShrinkISR()
	pr = prop.next(t)
	pr.answer <- proposalAnswer{err: kerr.FencedLeaderEpoch}
	waitFor(t, "leadership given up", func() bool { return !l.Snapshot().Leading })
	select {
	case c := <-changes:
		t.Fatalf("OnISRChange(%v, %v) for a refused proposal", c.old, c.new)
	default:
	}
}
