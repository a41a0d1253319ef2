package log

import (
	"fmt"
	"math"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Truncation (Kafka's UnifiedLog.truncateTo and truncateFullyAndStartAt):
// a follower removes the suffix of its log that diverges from the leader's
// (found with OffsetForLeaderEpoch), or, when its log end is below the
// leader's log start, drops the whole log and starts over.
//
// Everything derived from the log follows it under the append lock: the
// segment list, the indexes, the leader-epoch cache, the producer state
// (rebuilt from the latest snapshot at or below the new end plus a replay,
// as Kafka does), the aborted-transaction list and so the last stable
// offset, the high watermark, the recovery point and the cleaner's first
// dirty offset.
//
// Crash safety: the truncated segment is fdatasynced, the removed
// segments' renames are made durable (directory fsync) and the
// recovery-point, log-start and high-watermark checkpoints are written
// before the call returns, so a crash afterwards never brings removed
// records back. A crash during the call leaves a state that open repairs:
// producer snapshots and leader epochs beyond the recovered log end are
// dropped on open, .txnindex entries above the snapshot are ignored.

// TruncateTo removes every record at or above offset (follower truncation).
// The batch holding offset is removed whole: the log end becomes offset,
// or that batch's base offset if it starts below offset.
// An offset below the log start (or the first segment) truncates fully
// and restarts the log at offset (TruncateFullyAndStartAt). The change is
// durable when it returns.
func (p *Partition) TruncateTo(offset int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if err := p.truncateCheckLocked(offset); err != nil {
		return err
	}
	if offset >= p.logEnd.Load() {
		// Nothing to cut, but an epoch entry starting at or after offset
		// can only belong to a leadership that appended nothing here (say,
		// an epoch this replica led without a write, which the new leader
		// never saw): drop it, as Kafka's UnifiedLog.truncateTo does, or
		// the follower keeps finding the same divergence.
		if err := p.epochs.truncateFromEnd(offset); err != nil {
			return p.fail("leader-epoch checkpoint", err)
		}
		return nil
	}
	segs := p.segments()
	if offset < segs[0].base || offset < p.logStart.Load() {
		return p.truncateFullyLocked(offset)
	}
	if err := p.truncateSuffixLocked(segs, offset); err != nil {
		return err
	}
	return p.m.checkpointPartition(p)
}

// TruncateFullyAndStartAt removes the whole log and restarts it, empty, at
// offset, which becomes the log start and log end (a follower whose fetch
// offset is below the leader's log start). The leader-epoch cache, producer
// state and aborted transactions are cleared. Durable when it returns.
func (p *Partition) TruncateFullyAndStartAt(offset int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if err := p.truncateCheckLocked(offset); err != nil {
		return err
	}
	return p.truncateFullyLocked(offset)
}

func (p *Partition) truncateCheckLocked(offset int64) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.failedErr(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: %s: truncate to %d", ErrOffsetOutOfRange, p.tp, offset)
	}
	return nil
}

// truncateSuffixLocked cuts the log at offset, which lies in segs. Caller
// holds appendMu.
func (p *Partition) truncateSuffixLocked(segs []*segment, offset int64) error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	i := segmentFor(segs, offset)
	s := segs[i]
	// Later segments go first, durably: a crash before s is cut then
	// leaves a prefix of the old log, never a hole followed by old data.
	for _, d := range segs[i+1:] {
		p.retire(d)
	}
	if i+1 < len(segs) {
		if err := syncDir(p.dir); err != nil {
			return p.fail("truncate: fsync directory", err)
		}
	}
	end, err := p.truncateSegmentLocked(s, offset)
	if err != nil {
		return p.fail("truncate", err)
	}
	offset = end
	remaining := append([]*segment(nil), segs[:i+1]...)
	p.segs.Store(&remaining)
	p.setLogEndLowerLocked(offset)
	// Data appended again below the old cleaner checkpoint is dirty.
	if err := p.truncateCleanerCheckpoint(offset); err != nil {
		p.logger.Warn("moving cleaner checkpoint back", "err", err)
	}
	if p.durable.Load() > offset {
		p.durable.Store(offset)
	}
	if rp := remaining[len(remaining)-1].base; p.recoveryPoint.Load() > rp {
		p.recoveryPoint.Store(rp)
	}
	p.dropSnapshotsAboveLocked(offset)
	if err := p.rebuildProducerState(offset, p.logStart.Load()); err != nil {
		return p.fail("rebuild producer state", err)
	}
	if err := p.epochs.truncateFromEnd(offset); err != nil {
		return p.fail("leader-epoch checkpoint", err)
	}
	p.kickFlusher() // rewrites the .txnindex files marked dirty
	p.logger.Info("truncated log", "offset", offset)
	return nil
}

// truncateFullyLocked removes every segment and starts an empty one at
// offset. Order, for crash safety: producer snapshots go first (a crash
// then replays the old log, still whole), then the segments are renamed
// away and the directory fsynced, then the new segment is created and the
// directory fsynced, then the checkpoints are written. A crash after the
// renames and before the new segment exists reopens an empty log at the
// checkpointed log start, which a follower handles like any log end below
// the leader's log start. Caller holds appendMu.
func (p *Partition) truncateFullyLocked(offset int64) error {
	p.flushMu.Lock()
	locked := true
	defer func() {
		if locked {
			p.flushMu.Unlock()
		}
	}()
	p.dropSnapshotsAboveLocked(-1)
	for _, s := range p.segments() {
		p.retire(s)
	}
	if err := syncDir(p.dir); err != nil {
		return p.fail("truncate: fsync directory", err)
	}
	ns, err := createSegment(p.dir, offset, p.now().UnixMilli())
	if err != nil {
		return p.fail("truncate", err)
	}
	if err := syncDir(p.dir); err != nil {
		ns.close()
		return p.fail("truncate: fsync directory", err)
	}
	ns.dirSynced = true
	segs := []*segment{ns}
	p.segs.Store(&segs)
	p.logStart.Store(offset)
	p.setLogEndLowerLocked(offset)
	p.hwMu.Lock()
	if p.hw.Load() >= 0 {
		p.hw.Store(offset) // Kafka: the high watermark moves to the new log end
	}
	p.hwMu.Unlock()
	p.durable.Store(offset)
	p.recoveryPoint.Store(offset)
	p.notifyDurable()
	p.producers = producerStates{}
	p.setAbortedLocked(nil)
	p.firstUnstable.Store(math.MaxInt64)
	if err := p.truncateCleanerCheckpoint(offset); err != nil {
		p.logger.Warn("moving cleaner checkpoint back", "err", err)
	}
	p.flushMu.Unlock()
	locked = false
	if err := p.epochs.clear(); err != nil {
		return p.fail("leader-epoch checkpoint", err)
	}
	p.logger.Info("truncated log fully", "offset", offset)
	return p.m.checkpointPartition(p)
}

// setLogEndLowerLocked moves the log end down to offset, lowering the high
// watermark with it (under hwMu, so that a concurrent SetHighWatermark
// clamps to the new end). Caller holds appendMu.
func (p *Partition) setLogEndLowerLocked(offset int64) {
	p.hwMu.Lock()
	defer p.hwMu.Unlock()
	p.logEnd.Store(offset)
	if hw := p.hw.Load(); hw > offset {
		p.hw.Store(offset)
	}
}

// truncateSegmentLocked cuts s before the first batch whose last offset is
// >= offset, makes it the active segment and returns the new log end: the
// removed batch's base if it starts below offset (a cut inside a batch
// removes it whole, and the log end says so, as it will after a restart).
// Caller holds both locks.
func (p *Partition) truncateSegmentLocked(s *segment, offset int64) (int64, error) {
	size := s.size.Load()
	cut, h, found, err := s.findBatch(offset, size)
	if err != nil {
		return 0, err
	}
	if !found {
		cut = size
	} else {
		offset = min(offset, h.BaseOffset)
	}
	if err := s.log.Truncate(cut); err != nil {
		return 0, err
	}
	if err := fdatasync(s.log); err != nil {
		return 0, err
	}
	oes := s.offIdx.load()
	k := 0
	for k < len(oes) && int64(oes[k].pos) < cut {
		k++
	}
	s.offIdx.truncate(k)
	tes := s.timeIdx.load()
	k = 0
	for k < len(tes) && s.base+int64(tes[k].rel) < offset {
		k++
	}
	s.timeIdx.truncate(k)
	if err := s.truncateIndexFilesLocked(); err != nil {
		return 0, err
	}
	// Recompute the timestamp bookkeeping from the kept entries and a scan
	// of the bytes after the last offset-index entry.
	maxTs, maxTsOffset := int64(-1), int64(-1)
	if n := len(s.timeIdx.buf); n > 0 {
		maxTs, maxTsOffset = s.timeIdx.buf[n-1].ts, s.base+int64(s.timeIdx.buf[n-1].rel)
	}
	start := int64(0)
	if n := len(s.offIdx.buf); n > 0 {
		start = int64(s.offIdx.buf[n-1].pos)
	}
	err = s.scanHeaders(start, cut, func(_ int64, h batch.Header) bool {
		if h.MaxTimestamp > maxTs {
			maxTs, maxTsOffset = h.MaxTimestamp, h.LastOffset()
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	s.maxTs.Store(maxTs)
	s.maxTsOffset.Store(maxTsOffset)
	s.bytesSinceIndex = cut - start
	s.size.Store(cut)
	s.next.Store(offset)
	s.syncedSize = min(s.syncedSize, cut)
	s.sealed.Store(false)
	s.indexSynced = false
	return offset, nil
}
