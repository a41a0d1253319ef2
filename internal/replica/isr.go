package replica

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/metadata"
)

// ISR changes (Kafka's maybeShrinkIsr, maybeExpandIsr and the
// AlterPartitionManager's one-in-flight rule). A change is proposed to the
// controller; until it answers, the proposal is pending: no other change
// is proposed and the high watermark uses the maximal ISR.

// MaybeShrinkISR removes from the ISR every follower that has not caught
// up to the leader's log end within replica.lag.time.max.ms (or is marked
// unclean). The broker calls it every ReplicaLagTimeMax/2 (Manager does).
func (l *Leader) MaybeShrinkISR() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeShrinkLocked(l.cfg.Clock.Now())
}

func (l *Leader) maybeShrinkLocked(now time.Time) {
	if !l.mu.leading || l.mu.pending != nil {
		return
	}
	leaderLEO := l.lc.Log.LogEndOffset()
	var out []int32
	for _, id := range l.mu.isr {
		if id == l.cfg.NodeID {
			continue
		}
		f := l.mu.followers[id]
		if f == nil || f.unclean || !l.caughtUp(f, leaderLEO, now) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return
	}
	newISR := slices.DeleteFunc(slices.Clone(l.mu.isr), func(id int32) bool { return slices.Contains(out, id) })
	l.logger.Info("shrinking ISR", "isr", l.mu.isr, "new_isr", newISR, "out_of_sync", out,
		"leader_log_end", leaderLEO, "high_watermark", l.mu.hw)
	l.proposeLocked(newISR)
}

// maybeExpandLocked adds follower id to the ISR when it has caught up:
// its fetch offset is at least the high watermark and the start of the
// current leader epoch (Kafka's isFollowerInSync), it is eligible
// (live in metadata), and, if it restarted unclean, this fetch showed it
// caught up by Kafka's lag rule (it reached the leader's log end as of
// this fetch or of its previous one).
func (l *Leader) maybeExpandLocked(id int32, f *followerState, caughtUp bool) {
	if !l.mu.leading || l.mu.pending != nil || slices.Contains(l.mu.isr, id) || !slices.Contains(l.mu.replicas, id) {
		return
	}
	if f.leo < l.mu.hw || f.leo < l.mu.epochStartOffset || !l.lc.Eligible(id) {
		return
	}
	if f.unclean {
		if !caughtUp {
			return
		}
		f.unclean = false
	}
	newISR := append(slices.Clone(l.mu.isr), id)
	l.logger.Info("expanding ISR", "isr", l.mu.isr, "new_isr", newISR, "replica", id, "replica_log_end", f.leo)
	l.proposeLocked(newISR)
}

// brokerEpoch is this broker's epoch for AlterPartition: the configured
// one, else the current registration's.
func (l *Leader) brokerEpoch() int64 {
	if l.lc.BrokerEpoch != 0 {
		return l.lc.BrokerEpoch
	}
	return l.cfg.BrokerEpoch()
}

// proposeLocked marks newISR pending and sends it in the background.
func (l *Leader) proposeLocked(newISR []int32) {
	if l.lc.Proposer == nil {
		return
	}
	l.mu.pending = newISR
	req := metadata.AlterPartitionRequest{BrokerID: l.cfg.NodeID, BrokerEpoch: l.brokerEpoch(),
		Topic: l.lc.State.Topic, TopicID: l.lc.State.TopicID, Partition: l.lc.State.Partition,
		LeaderEpoch: l.mu.leaderEpoch, PartitionEpoch: l.mu.partitionEpoch, ISR: slices.Clone(newISR)}
	l.goFunc(func() { l.sendAlterPartition(req) })
}

// sendAlterPartition sends one proposal, retrying retriable errors with
// backoff, and applies the answer.
func (l *Leader) sendAlterPartition(req metadata.AlterPartitionRequest) {
	backoff := l.cfg.AlterPartitionBackoff
	for {
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.AlterPartitionTimeout)
		p, err := l.lc.Proposer.AlterPartition(ctx, req)
		cancel()
		if l.ctx.Err() != nil {
			return
		}
		retry := l.handleAlterPartition(req, p, err)
		if !retry {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 10*l.cfg.AlterPartitionBackoff)
		l.mu.Lock()
		if !l.mu.leading || !slices.Equal(l.mu.pending, req.ISR) {
			l.mu.Unlock()
			return
		}
		req.PartitionEpoch = l.mu.partitionEpoch
		req.BrokerEpoch = l.brokerEpoch() // STALE_BROKER_EPOCH after a re-registration
		l.mu.Unlock()
	}
}

// handleAlterPartition applies the controller's answer; it reports
// whether to send the same proposal again.
func (l *Leader) handleAlterPartition(req metadata.AlterPartitionRequest, p metadata.Partition, err error) (retry bool) {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	var fire int64 = -1
	var changed func()
	defer func() {
		l.mu.Unlock()
		l.fireHW(fire)
		if changed != nil {
			changed()
		}
	}()
	if !l.mu.leading || !slices.Equal(l.mu.pending, req.ISR) {
		return false // superseded by a metadata update
	}
	switch {
	case err == nil:
		if p.LeaderEpoch != l.mu.leaderEpoch || p.Leader != l.cfg.NodeID {
			// e.g. a completed reassignment moved the leadership.
			l.mu.pending = nil
			l.stopLeadingLocked("AlterPartition answered with another leader or epoch")
			return false
		}
		if p.PartitionEpoch >= l.mu.partitionEpoch {
			changed = l.ownChangeLocked(p.ISR)
			l.mu.isr = slices.Clone(p.ISR)
			l.mu.partitionEpoch = p.PartitionEpoch
			l.mu.replicas = slices.Clone(p.Replicas)
		}
		l.mu.pending = nil
		l.logger.Info("ISR updated", "isr", l.mu.isr, "partition_epoch", l.mu.partitionEpoch)
		fire = l.maybeIncrementHWLocked(now)
		l.maybeShrinkLocked(now)
		return false
	case errors.Is(err, kerr.FencedLeaderEpoch):
		l.mu.pending = nil
		l.stopLeadingLocked("AlterPartition: fenced leader epoch")
		return false
	case errors.Is(err, kerr.InvalidUpdateVersion):
		cur, ok := l.lc.Proposer.Partition(l.lc.State.Topic, l.lc.State.Partition)
		l.mu.pending = nil
		if !ok || cur.Leader != l.cfg.NodeID || cur.LeaderEpoch != l.mu.leaderEpoch {
			l.stopLeadingLocked("AlterPartition: partition changed under us")
			return false
		}
		if cur.PartitionEpoch > l.mu.partitionEpoch {
			if slices.Equal(cur.ISR, req.ISR) {
				// Committed by an earlier attempt whose answer was lost.
				changed = l.ownChangeLocked(cur.ISR)
			}
			l.mu.isr = slices.Clone(cur.ISR)
			l.mu.partitionEpoch = cur.PartitionEpoch
			l.mu.replicas = slices.Clone(cur.Replicas)
		}
		l.logger.Info("AlterPartition: stale partition epoch, refreshed", "isr", l.mu.isr, "partition_epoch", l.mu.partitionEpoch)
		// Propose again from the refreshed state (the change may no
		// longer be needed).
		l.maybeShrinkLocked(now)
		if l.mu.pending == nil {
			for _, id := range req.ISR {
				if f := l.mu.followers[id]; f != nil {
					l.maybeExpandLocked(id, f, !f.unclean)
				}
			}
		}
		return false
	case errors.Is(err, kerr.InvalidRequest), errors.Is(err, kerr.IneligibleReplica),
		errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		// Not retriable as is: drop the proposal; the next check or
		// metadata update decides again.
		l.logger.Warn("AlterPartition refused", "isr", req.ISR, "err", err)
		l.mu.pending = nil
		return false
	default:
		l.logger.Warn("AlterPartition failed; retrying", "isr", req.ISR, "err", err)
		return true
	}
}

// ownChangeLocked is called when newISR, the pending proposal of this
// leader, becomes the committed ISR (from the controller's answer or from
// the metadata, whichever comes first: the other then finds nothing
// pending). It returns the OnISRChange call to make once the lock is
// released, or nil.
func (l *Leader) ownChangeLocked(newISR []int32) func() {
	if l.cfg.OnISRChange == nil || slices.Equal(l.mu.isr, newISR) {
		return nil
	}
	topic, part := l.lc.State.Topic, l.lc.State.Partition
	old, isr := slices.Clone(l.mu.isr), slices.Clone(newISR)
	return func() { l.cfg.OnISRChange(topic, part, old, isr) }
}
