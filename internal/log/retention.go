package log

import (
	"fmt"
	"time"
)

// Segment deletion (retention, DeleteRecords, truncation) follows Kafka:
// the segment leaves the segment list under the append lock, its files are
// renamed to "<name>.deleted", and the Manager closes and removes them
// file.delete.delay.ms later, so Regions handed out before stay readable.

// retire renames s's files and schedules their removal.
func (p *Partition) retire(s *segment) {
	if err := s.renameDeleted(); err != nil {
		p.logger.Warn("renaming deleted segment", "segment", s.logPath(), "err", err)
	}
	delay := time.Duration(p.config().FileDeleteDelayMs) * time.Millisecond
	closeFn := func() {
		// The flusher may still hold the segment from an older list.
		p.flushMu.Lock()
		defer p.flushMu.Unlock()
		if err := s.close(); err != nil {
			p.logger.Warn("closing deleted segment", "segment", s.logPath(), "err", err)
		}
		if err := s.removeDeleted(); err != nil {
			p.logger.Warn("removing deleted segment", "segment", s.logPath(), "err", err)
		}
	}
	p.m.scheduleDelete(delay, closeFn)
}

// ApplyRetention deletes whole segments that are below the log start
// offset, older than retention.ms (by their largest timestamp) or beyond
// retention.bytes, oldest first, and returns how many it deleted. If every
// segment has expired, a new empty active segment is rolled first. The
// Manager calls it every log.retention.check.interval.ms. It holds the
// append lock only to swap the segment list.
func (p *Partition) ApplyRetention() (int, error) {
	cfg := p.config()
	nowMs := p.now().UnixMilli()
	p.appendMu.Lock()
	if p.closed.Load() {
		p.appendMu.Unlock()
		return 0, ErrClosed
	}
	segs := p.segments()
	ls := p.logStart.Load()
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= ls {
		n++
	}
	reason := "log start offset"
	if cfg.Delete() && cfg.RetentionMs >= 0 {
		for n < len(segs) && segs[n].size.Load() > 0 && segmentExpired(segs[n], nowMs, cfg.RetentionMs) {
			n++
			reason = "retention.ms"
		}
	}
	if cfg.Delete() && cfg.RetentionBytes >= 0 {
		var total int64
		for _, s := range segs[n:] {
			total += s.size.Load()
		}
		for n < len(segs)-1 && total-segs[n].size.Load() >= cfg.RetentionBytes {
			total -= segs[n].size.Load()
			n++
			reason = "retention.bytes"
		}
	}
	if n == len(segs) {
		if p.failedErr() != nil {
			n--
		} else if _, err := p.rollLocked(nowMs); err != nil {
			p.appendMu.Unlock()
			return 0, err
		}
		segs = p.segments()
	}
	if n <= 0 {
		p.appendMu.Unlock()
		return 0, nil
	}
	deleted := segs[:n]
	remaining := append([]*segment(nil), segs[n:]...)
	p.segs.Store(&remaining)
	newLs := max(ls, remaining[0].base)
	p.logStart.Store(newLs)
	p.pruneProducersLocked(newLs)
	p.appendMu.Unlock()

	for _, s := range deleted {
		p.retire(s)
	}
	p.dropSnapshotsBelow(remaining[0].base)
	p.logger.Info("deleted segments", "count", n, "reason", reason, "log_start", newLs)
	if err := p.epochs.truncateFromStart(newLs); err != nil {
		return n, err
	}
	return n, nil
}

func segmentExpired(s *segment, nowMs, retentionMs int64) bool {
	ts := s.maxTs.Load()
	if ts < 0 {
		ts = s.lastModMs.Load()
	}
	return nowMs-ts > retentionMs
}

// DeleteRecordsBefore advances the log start offset to offset (DeleteRecords);
// offset must be <= LogEndOffset. Whole segments below it are deleted.
// The new log start offset is checkpointed before it returns.
func (p *Partition) DeleteRecordsBefore(offset int64) (logStart int64, err error) {
	p.appendMu.Lock()
	if p.closed.Load() {
		p.appendMu.Unlock()
		return 0, ErrClosed
	}
	leo, ls := p.logEnd.Load(), p.logStart.Load()
	if offset < 0 || offset > leo {
		p.appendMu.Unlock()
		return ls, fmt.Errorf("%w: %s: delete records before %d, log end %d", ErrOffsetOutOfRange, p.tp, offset, leo)
	}
	if offset <= ls {
		p.appendMu.Unlock()
		return ls, nil
	}
	if err := p.checkBelowHighWatermark(offset); err != nil {
		p.appendMu.Unlock()
		return ls, err
	}
	p.logStart.Store(offset)
	segs := p.segments()
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= offset {
		n++
	}
	deleted := segs[:n]
	remaining := append([]*segment(nil), segs[n:]...)
	p.segs.Store(&remaining)
	p.pruneProducersLocked(offset)
	p.appendMu.Unlock()

	for _, s := range deleted {
		p.retire(s)
	}
	p.dropSnapshotsBelow(remaining[0].base)
	p.logger.Info("advanced log start offset", "log_start", offset, "segments_deleted", n)
	if err := p.epochs.truncateFromStart(offset); err != nil {
		return offset, err
	}
	if err := p.m.writeCheckpoints(); err != nil {
		return offset, err
	}
	return offset, nil
}

// AssignEpochStart records that leader epoch epoch starts at offset
// (leader-epoch checkpoint). Later appends stamp batches with the latest
// epoch as their partitionLeaderEpoch.
func (p *Partition) AssignEpochStart(epoch int32, offset int64) error {
	if p.closed.Load() {
		return ErrClosed
	}
	return p.epochs.assign(epoch, offset)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= epoch
// and the end offset of that epoch; (-1, -1) if unknown.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return p.epochs.endOffsetFor(epoch, p.logEnd.Load())
}

// LatestEpoch returns the latest leader epoch in the cache; ok is false if
// none was assigned.
func (p *Partition) LatestEpoch() (epoch int32, ok bool) { return p.epochs.latest() }
