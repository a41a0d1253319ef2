package group

// Offsets retention (offsets.retention.minutes, Kafka 2.1+ semantics, as
// Kafka 4's OffsetMetadataManager.cleanupExpiredOffsets) and the removal
// of groups left with nothing.

import (
	"time"
)

// sweep expires offsets and removes groups that are Empty with no offsets
// left, writing tombstones for both. It runs every
// offsets.retention.check.interval.ms.
func (s *partitionState) sweep() {
	var records []record
	expired, removed := 0, 0
	for _, g := range s.groups {
		n, all := s.expireOffsets(g, &records)
		expired += n
		if all && g.state == stateEmpty && len(g.pending) == 0 && len(g.pendingCommits) == 0 {
			records = append(records, groupTombstone(g.id))
			s.dropGroup(g)
			removed++
		}
	}
	if len(records) == 0 {
		return
	}
	s.logger.Info("offsets retention", "expired_offsets", expired, "removed_groups", removed)
	s.emit(records, func(err error) {
		if err != nil {
			s.logger.Warn("writing retention tombstones failed", "err", err)
		}
	})
}

// expirationBase returns, for a group whose offsets may expire now, the
// time each offset's retention counts from (Kafka's
// offsetExpirationCondition); ok is false when none may.
//
//   - A group with a protocol type that is Empty: since it became Empty
//     (or, if that time is unknown, since the commit).
//   - A Stable consumer group that knows its subscriptions: offsets of
//     topics no member subscribes to, since the commit.
//   - A group without a protocol type (offsets only): since the commit.
func (g *group) expirationBase() (base func(offset) time.Time, ok bool) {
	byCommit := func(o offset) time.Time { return o.commitTime }
	switch {
	case g.protocolType == "":
		return byCommit, true
	case g.state == stateEmpty:
		if g.stateTime.IsZero() {
			return byCommit, true
		}
		since := g.stateTime
		return func(offset) time.Time { return since }, true
	case g.protocolType == consumerProtocolType && g.subscribed != nil && g.state == stateStable:
		return byCommit, true
	}
	return nil, false
}

// expireOffsets appends tombstones for the group's expired offsets and
// drops them; all reports whether the group has no offsets left.
func (s *partitionState) expireOffsets(g *group, records *[]record) (n int, all bool) {
	if len(g.offsets) == 0 {
		return 0, true
	}
	base, ok := g.expirationBase()
	if !ok {
		return 0, false
	}
	all = true
	retention := s.cfg.OffsetsRetention
	for topic, ps := range g.offsets {
		if g.isSubscribedToTopic(topic) {
			all = false
			continue
		}
		for p, o := range ps {
			t := tp{topic, p}
			var isExpired bool
			if !o.expireTime.IsZero() {
				isExpired = !s.now.Before(o.expireTime) // old per-commit retention
			} else {
				isExpired = s.now.Sub(base(o)) >= retention
			}
			if !isExpired || g.pendingCommits[t] > 0 {
				all = false
				continue
			}
			*records = append(*records, offsetTombstone(g.id, topic, p))
			g.deleteOffset(t)
			n++
		}
	}
	return n, all
}
