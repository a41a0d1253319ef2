package replica

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The leader's answers to followers: Fetch with a replica id (Kafka's
// Partition.fetchRecords for a follower and updateFollowerFetchState) and
// OffsetForLeaderEpoch (Partition.lastOffsetForLeaderEpoch).

// FollowerFetch is one partition of a follower's Fetch request.
type FollowerFetch struct {
	ReplicaID int32
	// BrokerEpoch is the follower's broker epoch (Fetch v15+
	// ReplicaState.ReplicaEpoch); -1 when not sent.
	BrokerEpoch int64
	// CurrentLeaderEpoch is the leader epoch the follower believes is
	// current; -1 skips the check.
	CurrentLeaderEpoch int32
	FetchOffset        int64
	// LastFetchedEpoch is the epoch of the last batch the follower holds
	// (Fetch v12+); -1 when it has none or did not send it.
	LastFetchedEpoch int32
	LogStartOffset   int64
}

// EpochEndOffset is a leader epoch and its end offset (OffsetForLeaderEpoch
// answer, Fetch DivergingEpoch). -1/-1 is "unknown".
type EpochEndOffset struct {
	Epoch     int32
	EndOffset int64
}

// FollowerFetchResult is the leader's answer for one follower partition.
type FollowerFetchResult struct {
	// Err is nil or a kerr error: NOT_LEADER_OR_FOLLOWER,
	// FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, OFFSET_OUT_OF_RANGE.
	Err error
	// Diverging is set (KIP-320) when the follower's log diverges from the
	// leader's: the follower truncates to it and must get no records.
	Diverging *EpochEndOffset
	// ReadUpTo is the offset to read to (exclusive): a follower reads up
	// to the log end, not the high watermark.
	ReadUpTo       int64
	HighWatermark  int64
	LogStartOffset int64
	LogEndOffset   int64
}

// checkEpochLocked is Kafka's leader-epoch check of a request's current
// leader epoch (-1 skips it).
func (l *Leader) checkEpochLocked(current int32) error {
	if !l.mu.leading {
		return kerr.NotLeaderForPartition
	}
	switch {
	case current < 0:
		return nil
	case current < l.mu.leaderEpoch:
		return kerr.FencedLeaderEpoch
	case current > l.mu.leaderEpoch:
		return kerr.UnknownLeaderEpoch
	}
	return nil
}

// OnFollowerFetch handles one partition of a follower's fetch: it checks
// the leader epoch and replica, answers a diverging log (KIP-320) and
// otherwise records the follower's position (its fetch offset: with
// durable logs a durable offset on the follower), which may expand the
// ISR and advance the high watermark. The caller then reads
// [FetchOffset, ReadUpTo) from the log unless Err or Diverging is set.
func (l *Leader) OnFollowerFetch(f FollowerFetch) FollowerFetchResult {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	var res FollowerFetchResult
	var fire int64 = -1
	defer func() {
		l.mu.Unlock()
		l.fireHW(fire)
	}()
	leo, ls := l.lc.Log.LogEndOffset(), l.lc.Log.LogStartOffset()
	res.ReadUpTo, res.LogEndOffset, res.LogStartOffset, res.HighWatermark = leo, leo, ls, l.mu.hw
	if res.Err = l.checkEpochLocked(f.CurrentLeaderEpoch); res.Err != nil {
		return res
	}
	fs := l.mu.followers[f.ReplicaID]
	if fs == nil {
		res.Err = fmt.Errorf("%w: replica %d is not a replica of %s-%d", kerr.NotLeaderForPartition, f.ReplicaID, l.lc.State.Topic, l.lc.State.Partition)
		return res
	}
	if f.LastFetchedEpoch >= 0 {
		ep, end := l.lc.Log.EndOffsetForEpoch(f.LastFetchedEpoch)
		if ep < 0 || end < 0 {
			res.Err = fmt.Errorf("%w: last fetched epoch %d unknown, log starts at %d", kerr.OffsetOutOfRange, f.LastFetchedEpoch, ls)
			return res
		}
		if ep < f.LastFetchedEpoch || end < f.FetchOffset {
			res.Diverging = &EpochEndOffset{Epoch: ep, EndOffset: end}
			return res
		}
	}
	if f.FetchOffset < ls || f.FetchOffset > leo {
		res.Err = fmt.Errorf("%w: fetch offset %d, log is [%d, %d]", kerr.OffsetOutOfRange, f.FetchOffset, ls, leo)
		return res
	}
	if f.BrokerEpoch >= 0 && fs.brokerEpoch >= 0 && f.BrokerEpoch != fs.brokerEpoch {
		// A new incarnation of the follower: what the old one reported
		// about the leader's log end no longer vouches for it. Its last
		// caught-up time stands (the lag rule decides, as in Kafka).
		l.logger.Info("follower restarted", "replica", f.ReplicaID, "broker_epoch", f.BrokerEpoch)
		fs.lastFetchLeaderLEO, fs.lastFetchTime = -1, time.Time{}
	}
	caughtUp := l.updateFollowerLocked(fs, f, leo, now)
	l.maybeExpandLocked(f.ReplicaID, fs, caughtUp)
	fire = l.maybeIncrementHWLocked(now)
	res.HighWatermark = l.mu.hw
	return res
}

// updateFollowerLocked is Kafka's Replica.updateFetchStateOrThrow: the
// follower is caught up at this fetch if it reached the leader's current
// log end, and caught up as of its previous fetch if it reached the log
// end the leader had then.
// It reports whether this fetch showed the follower caught up (either way).
func (l *Leader) updateFollowerLocked(fs *followerState, f FollowerFetch, leaderLEO int64, now time.Time) (caughtUp bool) {
	switch {
	case f.FetchOffset >= leaderLEO:
		fs.lastCaughtUpTime = maxTime(fs.lastCaughtUpTime, now)
		caughtUp = true
	case fs.lastFetchLeaderLEO >= 0 && f.FetchOffset >= fs.lastFetchLeaderLEO:
		fs.lastCaughtUpTime = maxTime(fs.lastCaughtUpTime, fs.lastFetchTime)
		caughtUp = true
	}
	fs.leo = f.FetchOffset
	fs.logStart = f.LogStartOffset
	fs.lastFetchLeaderLEO = max(leaderLEO, fs.lastFetchLeaderLEO)
	fs.lastFetchTime = now
	if f.BrokerEpoch >= 0 {
		fs.brokerEpoch = f.BrokerEpoch
	}
	return caughtUp
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// EpochLog is what answering OffsetForLeaderEpoch needs of a log.
type EpochLog interface {
	EndOffsetForEpoch(epoch int32) (int32, int64)
}

// OffsetForLeaderEpoch answers one partition of OffsetForLeaderEpoch from a
// follower (Kafka's lastOffsetForLeaderEpoch with fetchOnlyFromLeader):
// the current-epoch check, then the largest epoch <= leaderEpoch this log
// knows and its end offset (-1/-1 if unknown).
func (l *Leader) OffsetForLeaderEpoch(currentLeaderEpoch, leaderEpoch int32) (EpochEndOffset, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkEpochLocked(currentLeaderEpoch); err != nil {
		return EpochEndOffset{Epoch: -1, EndOffset: -1}, err
	}
	return AnswerOffsetForLeaderEpoch(l.lc.Log, leaderEpoch), nil
}

// AnswerOffsetForLeaderEpoch is the log lookup of OffsetForLeaderEpoch,
// for callers that checked the epochs themselves (e.g. a consumer's
// request with replica id -1 answered by any replica, KIP-320).
func AnswerOffsetForLeaderEpoch(lg EpochLog, leaderEpoch int32) EpochEndOffset {
	ep, end := lg.EndOffsetForEpoch(leaderEpoch)
	return EpochEndOffset{Epoch: ep, EndOffset: end}
}
