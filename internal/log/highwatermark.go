package log

import "fmt"

// High watermark (Kafka's UnifiedLog.highWatermark): the offset below which
// records are replicated to every in-sync replica and may be shown to
// consumers. It is distinct from the log end offset only when replication
// sets it: until SetHighWatermark is first called (and after a restart, if
// it never was), the high watermark is the log end offset, so a single
// replica behaves as before. Once set, it is checkpointed with the other
// per-directory checkpoints (replication-offset-checkpoint, written every
// CheckpointInterval, at close and after a truncation) and restored on
// open, clamped to the recovered log end; a partition in that file stays
// replicated.
//
// Invariants: logStart <= HighWatermark() <= LogEndOffset(); it only grows,
// except that truncation lowers it to the new log end; the compaction
// cleaner never cleans at or above it; read_committed reads stop at
// min(LSO, HW) (FetchBounds).

// HighWatermark is the offset below which records are committed (visible
// to consumers): the log end offset unless replication set one.
func (p *Partition) HighWatermark() int64 {
	leo := p.logEnd.Load()
	hw := p.hw.Load()
	if hw < 0 {
		return leo
	}
	return max(min(hw, leo), min(p.logStart.Load(), leo))
}

// SetHighWatermark moves the high watermark to hw, clamped to the log end
// offset, and returns the resulting high watermark. It never moves it
// back (a lower hw is ignored); truncation is what lowers it. The first
// call switches the partition from "high watermark = log end" to a
// replicated high watermark, which is checkpointed from then on. The
// leader calls it with the minimum of the in-sync replicas' (durable) log
// end offsets, a follower with the leader's high watermark from a fetch
// response.
func (p *Partition) SetHighWatermark(hw int64) int64 {
	p.hwMu.Lock()
	defer p.hwMu.Unlock()
	n := min(max(hw, 0), p.logEnd.Load())
	if cur := p.hw.Load(); cur < 0 || n > cur {
		p.hw.Store(n)
	}
	return p.HighWatermark()
}

// replicatedHighWatermark returns the high watermark to checkpoint; ok is
// false while replication never set one.
func (p *Partition) replicatedHighWatermark() (int64, bool) {
	if p.hw.Load() < 0 {
		return 0, false
	}
	return p.HighWatermark(), true
}

// restoreHighWatermark installs a checkpointed high watermark (-1: none)
// after load, clamped to the log end. Called by Open before the partition
// is published.
func (p *Partition) restoreHighWatermark(hw int64) {
	if hw < 0 {
		return
	}
	p.hw.Store(min(hw, p.logEnd.Load()))
}

// FetchBounds returns the high watermark and the read_committed bound
// (the last stable offset, at most the high watermark) read together: the
// upper offsets of a consumer's read_uncommitted and read_committed fetch.
// Followers fetch up to the log end offset instead.
func (p *Partition) FetchBounds() (highWatermark, lastStable int64) {
	hw := p.HighWatermark()
	return hw, min(p.LastStableOffset(), hw)
}

// RecoveredUnclean reports whether the log was opened after an unclean
// shutdown (no clean-shutdown marker covered it) or recovery cut a torn
// tail or rebuilt a segment that failed validation. Such a replica may
// miss records it acknowledged, so the broker keeps it out of the ISR (and
// leadership) until it has caught up.
func (p *Partition) RecoveredUnclean() bool { return p.recoveredUnclean.Load() }

// checkBelowHighWatermark is DeleteRecords' bound (Kafka refuses to move
// the log start past the high watermark).
func (p *Partition) checkBelowHighWatermark(offset int64) error {
	if hw := p.HighWatermark(); offset > hw {
		return fmt.Errorf("%w: %s: delete records before %d, high watermark %d", ErrOffsetOutOfRange, p.tp, offset, hw)
	}
	return nil
}
