package log

import (
	"fmt"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
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

// TruncateTo removes every record at or above offset (follower truncation).
// The batch holding offset is removed whole; the log end becomes offset.
// The change is fsynced before it returns.
func (p *Partition) TruncateTo(offset int64) error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.failedErr(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: %s: truncate to %d", ErrOffsetOutOfRange, p.tp, offset)
	}
	if offset >= p.logEnd.Load() {
		return nil
	}
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	segs := p.segments()
	nowMs := p.now().UnixMilli()
	var remaining []*segment
	if offset < segs[0].base || offset < p.logStart.Load() {
		// Below the log start: drop everything and start over at offset.
		for _, s := range segs {
			p.retire(s)
		}
		ns, err := createSegment(p.dir, offset, nowMs)
		if err != nil {
			return p.fail("truncate", err)
		}
		remaining = []*segment{ns}
		p.logStart.Store(offset)
	} else {
		i := segmentFor(segs, offset)
		s := segs[i]
		for _, d := range segs[i+1:] {
			p.retire(d)
		}
		if err := p.truncateSegmentLocked(s, offset); err != nil {
			return p.fail("truncate", err)
		}
		remaining = append([]*segment(nil), segs[:i+1]...)
	}
	p.segs.Store(&remaining)
	p.logEnd.Store(offset)
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
	p.logger.Info("truncated log", "offset", offset)
	return p.epochs.truncateFromEnd(offset)
}

// truncateSegmentLocked cuts s before the first batch whose last offset is
// >= offset and makes it the active segment. Caller holds both locks.
func (p *Partition) truncateSegmentLocked(s *segment, offset int64) error {
	size := s.size.Load()
	cut, _, found, err := s.findBatch(offset, size)
	if err != nil {
		return err
	}
	if !found {
		cut = size
	}
	if err := s.log.Truncate(cut); err != nil {
		return err
	}
	if err := fdatasync(s.log); err != nil {
		return err
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
		return err
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
		return err
	}
	s.maxTs.Store(maxTs)
	s.maxTsOffset.Store(maxTsOffset)
	s.bytesSinceIndex = cut - start
	s.size.Store(cut)
	s.next.Store(offset)
	s.syncedSize = min(s.syncedSize, cut)
	s.sealed.Store(false)
	s.indexSynced = false
	return nil
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
