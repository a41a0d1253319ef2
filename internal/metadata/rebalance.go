package metadata

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Automatic preferred-leader rebalancing, as Kafka 4's KRaft controller
// does it (auto.leader.rebalance.enable,
// leader.imbalance.check.interval.seconds): every check interval the
// active controller runs a preferred-leader election for every partition
// led by another broker than its preferred replica (the first in the
// replica list) — or by none — whose preferred replica may lead now:
// registered, live (neither fenced nor in controlled shutdown) and in the
// ISR. Partitions in a reassignment are left alone, as Kafka leaves them.
// leader.imbalance.per.broker.percentage, a rule of the ZooKeeper-era
// controller, is accepted as a setting but not used, as in KRaft. The
// election is the one ElectLeaders runs (elect_leaders, type preferred),
// proposed only while this node leads the quorum: it is never forwarded.

// RebalanceCheck is the result of one leader-imbalance check.
type RebalanceCheck struct {
	// Imbalance is, per broker that is the preferred replica of some
	// partition, the fraction of those partitions it does not lead.
	Imbalance map[int32]float64
	// Elected lists the partitions a preferred election moved back to
	// their preferred replica, Failed those it could not (with the
	// reasons in Errors, aligned).
	Elected []TopicPartition
	Failed  []TopicPartition
	Errors  []error
}

// rebalanceLoop runs the leader-imbalance check every
// LeaderImbalanceCheckInterval while this node is the active controller.
func (s *Store) rebalanceLoop() {
	defer s.wg.Done()
	if s.cfg.AutoLeaderRebalanceDisable {
		return
	}
	t := time.NewTicker(s.cfg.LeaderImbalanceCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if s.raft.State() != raft.Leader {
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, max(s.cfg.LeaderImbalanceCheckInterval, 5*time.Second))
			_, err := s.CheckLeaderImbalance(ctx)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.logger.Warn("leader imbalance check failed", "err", err)
			}
		}
	}
}

// CheckLeaderImbalance runs one leader-imbalance check now (the active
// controller runs it every LeaderImbalanceCheckInterval unless
// AutoLeaderRebalanceDisable is set) and returns what it found and did.
// On a node that is not the active controller it computes the imbalance
// but elects nothing and returns an error wrapping NOT_CONTROLLER only if
// an election was due.
func (s *Store) CheckLeaderImbalance(ctx context.Context) (RebalanceCheck, error) {
	res, targets := s.imbalancedPartitions()
	if len(targets) == 0 {
		return res, nil
	}
	c := &electLeadersCmd{Type: int8(ElectPreferred)}
	for _, tp := range targets {
		c.Partitions = append(c.Partitions, partitionRef{Topic: tp.Topic, Partition: tp.Partition})
	}
	data, err := encodeCommand(c)
	if err != nil {
		return res, err
	}
	ar, _, _, err := s.applyLocal(ctx, data)
	if err == nil {
		err = ar.err
	}
	if err != nil {
		return res, err
	}
	for i, tp := range targets {
		var perr error
		if i < len(ar.perPart) {
			perr = ar.perPart[i]
		}
		if perr == nil {
			res.Elected = append(res.Elected, tp)
		} else {
			res.Failed = append(res.Failed, tp)
			res.Errors = append(res.Errors, perr)
		}
	}
	if len(res.Elected) > 0 {
		s.logger.Info("leader imbalance: preferred replicas elected", "partitions", len(res.Elected),
			"failed", len(res.Failed), "imbalance", res.Imbalance)
	}
	for i, tp := range res.Failed {
		s.logger.Debug("leader imbalance: preferred election failed", "topic", tp.Topic, "partition", tp.Partition, "err", res.Errors[i])
	}
	return res, nil
}

// imbalancedPartitions computes the per-broker imbalance and the
// partitions a check would elect on.
func (s *Store) imbalancedPartitions() (RebalanceCheck, []TopicPartition) {
	type brokerCount struct {
		total int
		moved []TopicPartition // led by another broker, preferred replica eligible
		other int              // led by another broker (or none), eligible or not
	}
	per := map[int32]*brokerCount{}
	s.fsm.mu.RLock()
	st := &s.fsm.mu.st
	for _, t := range s.fsm.topicsLocked() {
		for _, p := range t.Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			pref := p.Replicas[0]
			bc := per[pref]
			if bc == nil {
				bc = &brokerCount{}
				per[pref] = bc
			}
			bc.total++
			if p.Leader == pref {
				continue
			}
			bc.other++
			if len(p.AddingReplicas) == 0 && len(p.RemovingReplicas) == 0 &&
				st.liveLocked(pref) && slices.Contains(p.ISR, pref) {
				bc.moved = append(bc.moved, TopicPartition{Topic: t.Name, Partition: p.ID})
			}
		}
	}
	s.fsm.mu.RUnlock()

	res := RebalanceCheck{Imbalance: map[int32]float64{}}
	var targets []TopicPartition
	for _, id := range slices.Sorted(maps.Keys(per)) {
		bc := per[id]
		res.Imbalance[id] = float64(bc.other) / float64(bc.total)
		targets = append(targets, bc.moved...)
	}
	slices.SortFunc(targets, func(a, b TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return res, targets
}
