package metadata

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Partition-state writes for the replication layer and the admin APIs.
// The checks run in the FSM (partition_state.go), against the committed
// state, so they hold however requests race.

// AlterPartition is a partition leader's ISR change (Kafka's
// AlterPartition): it returns the partition's new state, or an error
// wrapping FENCED_LEADER_EPOCH (the sender's leader epoch is stale: it is no
// longer the leader), INVALID_UPDATE_VERSION (stale partition epoch: refresh
// and retry), INELIGIBLE_REPLICA (a new ISR member is fenced or shutting
// down), INVALID_REQUEST (sender not the leader, or a malformed ISR),
// STALE_BROKER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID, or
// NOT_CONTROLLER (the sender saw newer epochs than this controller, or no
// controller is reachable; retry). An unchanged ISR returns the current
// state without a change. A reassignment completes when the ISR holds every
// adding replica, which may change Replicas and, if the leader was removed,
// the leader.
func (s *Store) AlterPartition(ctx context.Context, req AlterPartitionRequest) (Partition, error) {
	res, err := s.proposeResult(ctx, &alterPartitionCmd{
		BrokerID: req.BrokerID, BrokerEpoch: req.BrokerEpoch,
		Topic: req.Topic, TopicID: req.TopicID, Partition: req.Partition,
		LeaderEpoch: req.LeaderEpoch, PartitionEpoch: req.PartitionEpoch, ISR: slices.Clone(req.ISR),
	})
	if err != nil {
		return Partition{}, err
	}
	if res.part == nil {
		return Partition{}, kerrorf(kerr.UnknownServerError, "alter partition: no result")
	}
	return res.part.Clone(), nil
}

// ElectLeaders runs leader elections (Kafka's ElectLeaders) and returns one
// error per partition, nil for an elected leader: ELECTION_NOT_NEEDED,
// PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
// UNKNOWN_TOPIC_OR_PARTITION. partitions nil means every partition that
// could use one (Kafka's null topic list): for ElectPreferred those not
// led by their first replica, for ElectUnclean those without a live
// leader. The partitions elected on are returned with the errors, aligned.
func (s *Store) ElectLeaders(ctx context.Context, typ ElectionType, partitions []TopicPartition) ([]TopicPartition, []error, error) {
	if typ != ElectPreferred && typ != ElectUnclean {
		return nil, nil, kerrorf(kerr.InvalidRequest, "unknown election type %d", typ)
	}
	if partitions == nil {
		partitions = s.electTargets(typ)
	}
	if len(partitions) == 0 {
		return nil, nil, nil
	}
	c := &electLeadersCmd{Type: int8(typ)}
	for _, tp := range partitions {
		c.Partitions = append(c.Partitions, partitionRef{Topic: tp.Topic, Partition: tp.Partition})
	}
	res, err := s.proposeResult(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return partitions, res.perPart, nil
}

// electTargets lists the partitions an election of typ applies to.
func (s *Store) electTargets(typ ElectionType) []TopicPartition {
	var out []TopicPartition
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	st := &s.fsm.mu.st
	for _, t := range s.fsm.topicsLocked() {
		for _, p := range t.Partitions {
			if (typ == ElectPreferred && p.Leader != p.Replicas[0]) ||
				(typ == ElectUnclean && (p.Leader < 0 || !st.liveLocked(p.Leader))) {
				out = append(out, TopicPartition{Topic: t.Name, Partition: p.ID})
			}
		}
	}
	return out
}

// AlterPartitionReassignments starts (or, with Replicas nil, cancels)
// partition reassignments and returns one error per item, nil for
// success: INVALID_REPLICA_ASSIGNMENT (empty, duplicate or unregistered
// target, or no in-sync replica would remain), INVALID_REPLICATION_FACTOR
// (KeepReplicationFactor and a target of another length), NO_REASSIGNMENT_IN_PROGRESS
// (cancel), UNKNOWN_TOPIC_OR_PARTITION. Adding replicas join the replica
// set at once; the partition leader brings them into the ISR through
// AlterPartition when they have caught up, and the reassignment completes
// then, dropping the removed replicas (the leader moves if it was one).
func (s *Store) AlterPartitionReassignments(ctx context.Context, items []Reassignment) ([]error, error) {
	c := &reassignCmd{}
	for _, it := range items {
		c.Items = append(c.Items, reassignItem{Topic: it.Topic, Partition: it.Partition, Replicas: slices.Clone(it.Replicas), Cancel: it.Replicas == nil, KeepRF: it.KeepReplicationFactor})
	}
	if len(c.Items) == 0 {
		return nil, nil
	}
	res, err := s.proposeResult(ctx, c)
	if err != nil {
		return nil, err
	}
	return res.perPart, nil
}

// ReassignmentStatus is one reassignment in progress.
type ReassignmentStatus struct {
	Topic            string
	Partition        int32
	Replicas         []int32
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// ListPartitionReassignments lists the reassignments in progress, of the
// given partitions or (nil) of all, ordered by topic and partition.
func (s *Store) ListPartitionReassignments(partitions []TopicPartition) []ReassignmentStatus {
	var out []ReassignmentStatus
	for _, t := range s.fsm.topics() {
		for _, p := range t.Partitions {
			if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 {
				continue
			}
			if partitions != nil && !slices.Contains(partitions, TopicPartition{Topic: t.Name, Partition: p.ID}) {
				continue
			}
			out = append(out, ReassignmentStatus{Topic: t.Name, Partition: p.ID, Replicas: p.Replicas,
				AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas})
		}
	}
	return out
}
