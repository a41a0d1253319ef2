package metadata

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Partition-state changes made by the FSM: broker liveness (fence,
// unfence, controlled shutdown, registration), AlterPartition, leader
// elections and reassignments. Everything here is deterministic and runs
// under fsm.mu (write lock); a change goes through commitPartitionLocked,
// which bumps the epochs and yields the PartitionChanged event.

// liveLocked reports whether broker id is registered, unfenced and not
// shutting down: eligible to lead, to be in an ISR and for new replicas.
func (st *state) liveLocked(id int32) bool {
	b, ok := st.brokers[id]
	return ok && b.Live()
}

// brokerEpochLocked returns broker id if epoch is its current epoch.
func (st *state) brokerEpochLocked(id int32, epoch int64) (Broker, error) {
	b, ok := st.brokers[id]
	if !ok {
		return Broker{}, kerrorf(kerr.BrokerIDNotRegistered, "broker %d is not registered", id)
	}
	if b.Epoch != epoch {
		return Broker{}, kerrorf(kerr.StaleBrokerEpoch, "broker %d has epoch %d, not %d", id, b.Epoch, epoch)
	}
	return b, nil
}

// uncleanLocked is the effective unclean.leader.election.enable of t: the
// topic override, else the dynamic broker config, else false.
func (st *state) uncleanLocked(t *Topic) bool {
	v, ok := t.Configs["unclean.leader.election.enable"]
	if !ok {
		v, ok = st.brokerConfigs["unclean.leader.election.enable"]
	}
	return ok && strings.EqualFold(strings.TrimSpace(v), "true")
}

// electLocked picks p's leader given its ISR: the current leader if it is
// still in the ISR and live; else the first replica (in assignment order)
// that is in the ISR and live; else, if unclean, the first live replica,
// which becomes the whole ISR; else -1 with the ISR kept.
func (st *state) electLocked(p *Partition, unclean bool) {
	if p.Leader >= 0 && slices.Contains(p.ISR, p.Leader) && st.liveLocked(p.Leader) {
		return
	}
	for _, r := range p.Replicas {
		if slices.Contains(p.ISR, r) && st.liveLocked(r) {
			p.Leader = r
			return
		}
	}
	if unclean {
		for _, r := range p.Replicas {
			if st.liveLocked(r) {
				p.Leader = r
				p.ISR = []int32{r}
				return
			}
		}
	}
	p.Leader = -1
}

// samePartition compares the decided fields of two partition states
// (everything but the epochs).
func samePartition(a, b Partition) bool {
	return a.Leader == b.Leader && slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.ISR, b.ISR) &&
		slices.Equal(a.AddingReplicas, b.AddingReplicas) && slices.Equal(a.RemovingReplicas, b.RemovingReplicas)
}

// commitPartitionLocked replaces partition i of t with next, bumping
// LeaderEpoch if the leader changed and PartitionEpoch if anything did.
func (st *state) commitPartitionLocked(t *Topic, i int, next Partition) (Event, bool) {
	cur := &t.Partitions[i]
	if samePartition(*cur, next) {
		return Event{}, false
	}
	next.ID = cur.ID
	next.LeaderEpoch = cur.LeaderEpoch
	if next.Leader != cur.Leader {
		next.LeaderEpoch++
	}
	next.PartitionEpoch = cur.PartitionEpoch + 1
	if len(next.AddingReplicas) == 0 {
		next.AddingReplicas = nil
	}
	if len(next.RemovingReplicas) == 0 {
		next.RemovingReplicas = nil
	}
	*cur = next
	return Event{Kind: PartitionChanged, Topic: t.Name, Partition: cur.ID}, true
}

// eachPartitionLocked calls fn for every partition, topics in name order,
// and collects the events of the changes fn commits.
func (st *state) eachPartitionLocked(fn func(t *Topic, i int) (Event, bool)) []Event {
	var events []Event
	for _, name := range slices.Sorted(maps.Keys(st.topics)) {
		t := st.topics[name]
		for i := range t.Partitions {
			if ev, ok := fn(t, i); ok {
				events = append(events, ev)
			}
		}
	}
	return events
}

// brokerGoneLocked removes a broker that is no longer live (fenced or in
// controlled shutdown) from every ISR, except as the last member, and
// moves its leaderships to other ISR members (or unclean, or to none).
func (st *state) brokerGoneLocked(id int32) []Event {
	return st.eachPartitionLocked(func(t *Topic, i int) (Event, bool) {
		p := t.Partitions[i]
		if p.Leader != id && !slices.Contains(p.ISR, id) {
			return Event{}, false
		}
		next := p.Clone()
		if isr := without(next.ISR, id); len(isr) > 0 {
			next.ISR = isr
		}
		st.electLocked(&next, st.uncleanLocked(t))
		return st.commitPartitionLocked(t, i, next)
	})
}

// brokerUncleanLocked removes a broker that registered after an unclean
// shutdown from every ISR where another member remains, electing another
// leader where it led (KIP-966 without ELR: as the last member it stays,
// leading, since its log is then the best copy left). Its leader brings it
// back through AlterPartition once it has caught up.
func (st *state) brokerUncleanLocked(id int32) []Event {
	return st.eachPartitionLocked(func(t *Topic, i int) (Event, bool) {
		p := t.Partitions[i]
		isr := without(p.ISR, id)
		if len(isr) == len(p.ISR) || len(isr) == 0 {
			return Event{}, false
		}
		next := p.Clone()
		next.ISR = isr
		st.electLocked(&next, st.uncleanLocked(t))
		return st.commitPartitionLocked(t, i, next)
	})
}

// brokerLiveLocked elects leaders for the leaderless partitions the broker
// (now live again) is a replica of.
func (st *state) brokerLiveLocked(id int32) []Event {
	if !st.liveLocked(id) {
		return nil
	}
	return st.eachPartitionLocked(func(t *Topic, i int) (Event, bool) {
		p := t.Partitions[i]
		if p.Leader >= 0 || !slices.Contains(p.Replicas, id) {
			return Event{}, false
		}
		next := p.Clone()
		st.electLocked(&next, st.uncleanLocked(t))
		return st.commitPartitionLocked(t, i, next)
	})
}

// partitionLocked finds a partition by topic name (and id, if non-zero).
func (st *state) partitionLocked(topic string, id [16]byte, partition int32) (*Topic, int, error) {
	t, ok := st.topics[topic]
	if !ok {
		return nil, 0, kerrorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	if id != [16]byte{} && t.ID != id {
		return nil, 0, kerrorf(kerr.UnknownTopicID, "topic %q does not have id %s", topic, FormatTopicID(id))
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, 0, kerrorf(kerr.UnknownTopicOrPartition, "topic %q has no partition %d", topic, partition)
	}
	return t, int(partition), nil
}

// alterPartitionLocked checks and applies an ISR change from a partition
// leader, in Kafka's order: unknown partition; stale broker epoch; an epoch
// newer than the controller's (NOT_CONTROLLER: the sender knows a newer
// state, so this controller is likely deposed); stale leader epoch
// (FENCED_LEADER_EPOCH); sender not the leader (INVALID_REQUEST); stale
// partition epoch (INVALID_UPDATE_VERSION); an ISR that is empty, has
// duplicates, names a non-replica or lacks the leader (INVALID_REQUEST); an
// ISR member that is not live (INELIGIBLE_REPLICA). An unchanged ISR is a
// no-op. A reassignment completes once every adding replica is in the ISR.
func (st *state) alterPartitionLocked(c *alterPartitionCmd) (Partition, []Event, error) {
	t, i, err := st.partitionLocked(c.Topic, c.TopicID, c.Partition)
	if err != nil {
		return Partition{}, nil, err
	}
	if c.BrokerEpoch != -1 {
		if _, err := st.brokerEpochLocked(c.BrokerID, c.BrokerEpoch); err != nil {
			return Partition{}, nil, kerrorf(kerr.StaleBrokerEpoch, "%s", KafkaMessage(err))
		}
	}
	p := t.Partitions[i]
	where := func() string { return fmt.Sprintf("%s-%d", t.Name, p.ID) }
	switch {
	case c.LeaderEpoch > p.LeaderEpoch:
		return Partition{}, nil, kerrorf(kerr.NotController, "%s: leader epoch %d is newer than the controller's %d", where(), c.LeaderEpoch, p.LeaderEpoch)
	case c.PartitionEpoch > p.PartitionEpoch:
		return Partition{}, nil, kerrorf(kerr.NotController, "%s: partition epoch %d is newer than the controller's %d", where(), c.PartitionEpoch, p.PartitionEpoch)
	case c.LeaderEpoch < p.LeaderEpoch:
		return Partition{}, nil, kerrorf(kerr.FencedLeaderEpoch, "%s: leader epoch %d is older than %d", where(), c.LeaderEpoch, p.LeaderEpoch)
	case c.BrokerID != p.Leader:
		return Partition{}, nil, kerrorf(kerr.InvalidRequest, "%s: broker %d is not the leader (%d)", where(), c.BrokerID, p.Leader)
	case c.PartitionEpoch < p.PartitionEpoch:
		return Partition{}, nil, kerrorf(kerr.InvalidUpdateVersion, "%s: partition epoch %d is older than %d", where(), c.PartitionEpoch, p.PartitionEpoch)
	case len(c.ISR) == 0:
		return Partition{}, nil, kerrorf(kerr.InvalidRequest, "%s: empty ISR", where())
	case !slices.Contains(c.ISR, p.Leader):
		return Partition{}, nil, kerrorf(kerr.InvalidRequest, "%s: ISR %v does not contain the leader %d", where(), c.ISR, p.Leader)
	}
	for j, r := range c.ISR {
		if slices.Contains(c.ISR[:j], r) {
			return Partition{}, nil, kerrorf(kerr.InvalidRequest, "%s: ISR %v lists %d twice", where(), c.ISR, r)
		}
		if !slices.Contains(p.Replicas, r) {
			return Partition{}, nil, kerrorf(kerr.InvalidRequest, "%s: ISR member %d is not a replica %v", where(), r, p.Replicas)
		}
	}
	for _, r := range c.ISR {
		if !st.liveLocked(r) {
			return Partition{}, nil, kerrorf(kerr.IneligibleReplica, "%s: replica %d is fenced, shutting down or not registered", where(), r)
		}
	}
	next := p.Clone()
	next.ISR = slices.Clone(c.ISR)
	maybeCompleteReassignment(&next)
	st.electLocked(&next, false)
	var events []Event
	if ev, ok := st.commitPartitionLocked(t, i, next); ok {
		events = append(events, ev)
	}
	return t.Partitions[i].Clone(), events, nil
}

// maybeCompleteReassignment finishes a reassignment once every adding
// replica is in the ISR and some ISR member remains after the removals.
func maybeCompleteReassignment(p *Partition) {
	if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
		return
	}
	for _, a := range p.AddingReplicas {
		if !slices.Contains(p.ISR, a) {
			return
		}
	}
	isr := without(p.ISR, p.RemovingReplicas...)
	if len(isr) == 0 {
		return
	}
	p.Replicas = without(p.Replicas, p.RemovingReplicas...)
	p.ISR = isr
	p.AddingReplicas, p.RemovingReplicas = nil, nil
}

// electLeadersLocked is ElectLeaders. Preferred: the first replica leads
// if it is in the ISR and live (ELECTION_NOT_NEEDED if it already leads,
// PREFERRED_LEADER_NOT_AVAILABLE otherwise). Unclean: a partition whose
// leader is not live gets a clean leader if the ISR has a live member,
// else the first live replica (ELIGIBLE_LEADERS_NOT_AVAILABLE if none,
// ELECTION_NOT_NEEDED if the leader is live).
func (st *state) electLeadersLocked(c *electLeadersCmd) ([]error, []Event) {
	per := make([]error, len(c.Partitions))
	var events []Event
	for k, ref := range c.Partitions {
		t, i, err := st.partitionLocked(ref.Topic, [16]byte{}, ref.Partition)
		if err != nil {
			per[k] = err
			continue
		}
		p := t.Partitions[i]
		next := p.Clone()
		switch ElectionType(c.Type) {
		case ElectPreferred:
			pref := p.Replicas[0]
			switch {
			case p.Leader == pref:
				per[k] = kerrorf(kerr.ElectionNotNeeded, "%s-%d: preferred replica %d already leads", t.Name, p.ID, pref)
				continue
			case !slices.Contains(p.ISR, pref) || !st.liveLocked(pref):
				per[k] = kerrorf(kerr.PreferredLeaderNotAvailable, "%s-%d: preferred replica %d is not in the ISR or not live", t.Name, p.ID, pref)
				continue
			}
			next.Leader = pref
		case ElectUnclean:
			if p.Leader >= 0 && st.liveLocked(p.Leader) {
				per[k] = kerrorf(kerr.ElectionNotNeeded, "%s-%d: leader %d is live", t.Name, p.ID, p.Leader)
				continue
			}
			next.Leader = -1
			st.electLocked(&next, true)
			if next.Leader < 0 {
				per[k] = kerrorf(kerr.EligibleLeadersNotAvailable, "%s-%d: no live replica", t.Name, p.ID)
				continue
			}
		default:
			per[k] = kerrorf(kerr.InvalidRequest, "unknown election type %d", c.Type)
			continue
		}
		if ev, ok := st.commitPartitionLocked(t, i, next); ok {
			events = append(events, ev)
		}
	}
	return per, events
}

// reassignLocked is AlterPartitionReassignments, as Kafka does it: the
// replicas become the target followed by the replicas being removed;
// adding replicas join (the leader adds them to the ISR through
// AlterPartition once caught up) and the reassignment completes, dropping
// the removed replicas, when every adding replica is in the ISR. A
// reassignment with nothing to add completes at once. Cancel restores the
// original replicas. A new target replaces one in progress (computed from
// the original replicas).
func (st *state) reassignLocked(c *reassignCmd) ([]error, []Event) {
	per := make([]error, len(c.Items))
	var events []Event
	for k, it := range c.Items {
		t, i, err := st.partitionLocked(it.Topic, [16]byte{}, it.Partition)
		if err != nil {
			per[k] = err
			continue
		}
		p := t.Partitions[i]
		orig := without(p.Replicas, p.AddingReplicas...)
		next := p.Clone()
		if it.Cancel {
			if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
				per[k] = kerrorf(kerr.NoReassignmentInProgress, "%s-%d: no reassignment in progress", t.Name, p.ID)
				continue
			}
			next.Replicas = orig
			next.ISR = without(p.ISR, p.AddingReplicas...)
			next.AddingReplicas, next.RemovingReplicas = nil, nil
		} else {
			if err := st.checkTargetLocked(t.Name, p.ID, it.Replicas); err != nil {
				per[k] = err
				continue
			}
			// Kafka compares with the replica set the partition is headed
			// for: the target of a reassignment in progress.
			if heading := without(p.Replicas, p.RemovingReplicas...); it.KeepRF && len(heading) != len(it.Replicas) {
				per[k] = kerrorf(kerr.InvalidReplicationFactor, "The replication factor is changed from %d to %d", len(heading), len(it.Replicas))
				continue
			}
			removing := without(orig, it.Replicas...)
			next.Replicas = append(slices.Clone(it.Replicas), removing...)
			next.ISR = intersect(p.ISR, next.Replicas)
			next.AddingReplicas = without(it.Replicas, orig...)
			next.RemovingReplicas = removing
			maybeCompleteReassignment(&next)
		}
		if len(next.ISR) == 0 {
			per[k] = kerrorf(kerr.InvalidReplicaAssignment, "%s-%d: no in-sync replica would remain", t.Name, p.ID)
			continue
		}
		st.electLocked(&next, false)
		if ev, ok := st.commitPartitionLocked(t, i, next); ok {
			events = append(events, ev)
		}
	}
	return per, events
}

// checkTargetLocked checks a reassignment target as Kafka's
// validateManualPartitionAssignment does: non-empty, then over the sorted
// ids, each registered and none twice.
func (st *state) checkTargetLocked(topic string, partition int32, target []int32) error {
	if len(target) == 0 {
		return kerrorf(kerr.InvalidReplicaAssignment, "%s-%d: the manual partition assignment includes an empty replica list", topic, partition)
	}
	sorted := slices.Sorted(slices.Values(target))
	for i, b := range sorted {
		if _, ok := st.brokers[b]; !ok {
			return kerrorf(kerr.InvalidReplicaAssignment, "%s-%d: the manual partition assignment includes broker %d, but no such broker is registered", topic, partition, b)
		}
		if i > 0 && sorted[i-1] == b {
			return kerrorf(kerr.InvalidReplicaAssignment, "%s-%d: the manual partition assignment includes the broker %d more than once", topic, partition, b)
		}
	}
	return nil
}

// without returns s minus the given ids, order kept (a new slice).
func without(s []int32, ids ...int32) []int32 {
	out := make([]int32, 0, len(s))
	for _, v := range s {
		if !slices.Contains(ids, v) {
			out = append(out, v)
		}
	}
	return out
}

// intersect returns the members of a that are in b, in a's order.
func intersect(a, b []int32) []int32 {
	out := make([]int32, 0, len(a))
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}
