package log

import (
	"fmt"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Follower side of replication (Kafka's UnifiedLog.appendAsFollower): the
// replica fetcher appends the batches it fetched from the leader with the
// leader's offsets. See DESIGN.md, "Replication".

// AppendAsFollower appends record batches fetched from the partition's
// leader, keeping their offsets, leader epochs and timestamps. The batches
// are validated as Append validates them (structure, CRC-32C, producer
// fields), except that compacted batches (fewer records than offsets) and
// offset gaps between batches are accepted when the log is compacted, and
// max.message.bytes is not applied. The first batch must start at the log
// end offset (or, in a compacted log, after it); anything else is
// ErrUnexpectedAppendOffset and writes nothing. One exception, as Kafka's
// follower makes: an empty log (log end == log start) whose first fetched
// batch starts below the log end but contains it (the leader's log start
// fell inside that batch after DeleteRecords) restarts at the batch's base
// (TruncateFullyAndStartAt) and appends.
//
// Producer state, ongoing transactions, aborted transactions and the last
// stable offset are updated by the same code as Append, without the
// sequence and epoch checks (the leader made them). Each batch's
// partitionLeaderEpoch that the epoch cache does not hold yet is assigned
// at the batch's base offset (Kafka's LeaderEpochFileCache.assign).
func (p *Partition) AppendAsFollower(batches []byte) (AppendResult, error) {
	return p.append(batches, true)
}

// checkFollowerOffsetLocked checks where a follower's append starts
// against the log end. Caller holds appendMu.
func (p *Partition) checkFollowerOffsetLocked(in appendInfo, cfg *Config) error {
	leo := p.logEnd.Load()
	switch {
	case in.firstBase == leo:
		return nil
	case in.firstBase > leo && cfg.Compact():
		return nil // offsets the leader's cleaner removed
	case in.firstBase < leo && leo == p.logStart.Load() && in.firstLast >= leo:
		p.logger.Info("follower append starts below the log start; restarting the log at the batch", "log_start", leo, "batch_base", in.firstBase)
		return p.truncateFullyLocked(in.firstBase)
	case in.firstBase > leo:
		return fmt.Errorf("%w: %s: first batch at offset %d, log end %d: a gap in a log that is not compacted", ErrUnexpectedAppendOffset, p.tp, in.firstBase, leo)
	default:
		return fmt.Errorf("%w: %s: first batch at offset %d (last %d) is below the log end %d", ErrUnexpectedAppendOffset, p.tp, in.firstBase, in.firstLast, leo)
	}
}

// stage records h in the staged producer state without checking it: the
// replication origin (Kafka skips sequence checks for it and only warns
// about an older epoch). It applies the same ProducerState.apply as
// check and replay do.
func (c *producerCheck) stage(h batch.Header) {
	if c.staged == nil {
		c.staged = producerStates{}
	}
	s, ok := c.staged[h.ProducerID]
	if !ok {
		if cur := c.committed[h.ProducerID]; cur != nil {
			s = cur.clone()
		} else {
			s = &ProducerState{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, CoordinatorEpoch: -1, TxnFirstOffset: -1}
		}
		c.staged[h.ProducerID] = s
	}
	s.apply(h)
}
