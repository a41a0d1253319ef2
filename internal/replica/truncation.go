package replica

// truncationTarget decides where a follower truncates after the leader
// answered OffsetForLeaderEpoch (or sent a DivergingEpoch) with leader
// (Kafka's AbstractFetcherThread.getOffsetTruncationState). leo is the
// follower's log end, local its own EndOffsetForEpoch. done is false when
// the follower does not know the leader's epoch: it truncates to the end
// of its own largest smaller epoch and asks again with that epoch.
//
//   - leader end offset unknown (-1): keep fetchOffset (Kafka truncates to
//     the initial fetch offset, here the log end: nothing).
//   - leader epoch unknown (-1, old protocol): min(leader end, leo).
//   - the follower's largest epoch <= leader.Epoch differs from it:
//     min(its end, leo), not done.
//   - same epoch: min(its end, leader end, leo).
//   - the follower knows no such epoch: min(leader end, leo).
func truncationTarget(leo int64, local func(int32) (int32, int64), leader EpochEndOffset) (offset int64, done bool) {
	switch {
	case leader.EndOffset < 0:
		return leo, true
	case leader.Epoch < 0:
		return min(leader.EndOffset, leo), true
	}
	ep, end := local(leader.Epoch)
	switch {
	case ep < 0 || end < 0:
		return min(leader.EndOffset, leo), true
	case ep != leader.Epoch:
		return min(end, leo), false
	default:
		return min(end, leader.EndOffset, leo), true
	}
}
