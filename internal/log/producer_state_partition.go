package log

import (
	"fmt"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Producer state kept by a Partition: rebuild on open and truncation,
// snapshots at roll and close, pruning at retention, expiry.
//
// p.producers is guarded by appendMu. Snapshot files are written and
// removed under flushMu (or by open/close, when no flusher runs);
// pendingSnaps, the snapshots taken at a roll and not yet written, by
// snapMu (a leaf).

// pendingSnapshot is a producer-state snapshot encoded at a roll, written
// by the flusher once the data below its offset is synced.
type pendingSnapshot struct {
	offset int64
	data   []byte
}

// queueSnapshotLocked encodes the producer state as of offset (the log
// end) for the flusher to write. Caller holds appendMu.
func (p *Partition) queueSnapshotLocked(offset int64) {
	data := encodeProducerSnapshot(p.producers, offset)
	p.snapMu.Lock()
	p.pendingSnaps = append(p.pendingSnaps, pendingSnapshot{offset: offset, data: data})
	p.snapMu.Unlock()
}

// writePendingSnapshotsLocked writes the queued snapshots at or below
// synced (the offset up to which the log is fsynced). A failure is logged,
// not sticky: snapshots only shorten recovery. Caller holds flushMu.
func (p *Partition) writePendingSnapshotsLocked(synced int64) {
	p.snapMu.Lock()
	var due []pendingSnapshot
	keep := p.pendingSnaps[:0]
	for _, ps := range p.pendingSnaps {
		if ps.offset <= synced {
			due = append(due, ps)
		} else {
			keep = append(keep, ps)
		}
	}
	p.pendingSnaps = keep
	p.snapMu.Unlock()
	for _, ps := range due {
		if err := writeProducerSnapshot(p.dir, ps.offset, ps.data); err != nil {
			p.logger.Warn("writing producer-state snapshot", "offset", ps.offset, "err", err)
		}
	}
}

// dropSnapshotsAboveLocked forgets snapshots (queued and on disk) above
// offset, before a truncation to offset. Caller holds flushMu.
func (p *Partition) dropSnapshotsAboveLocked(offset int64) {
	p.snapMu.Lock()
	keep := p.pendingSnaps[:0]
	for _, ps := range p.pendingSnaps {
		if ps.offset <= offset {
			keep = append(keep, ps)
		}
	}
	p.pendingSnaps = keep
	p.snapMu.Unlock()
	if err := removeProducerSnapshots(p.dir, func(o int64) bool { return o > offset }); err != nil {
		p.logger.Warn("removing producer-state snapshots", "above", offset, "err", err)
	}
}

// rebuildProducerState sets p.producers to the state after every batch
// below end: the latest readable snapshot at or below end, then a header
// scan of the batches from its offset. Snapshots above end are removed
// (they describe data the log no longer has), as are unreadable ones.
// Producers whose last batch is below logStart are dropped, expired ones
// too. Caller holds appendMu and flushMu, or is the loader.
func (p *Partition) rebuildProducerState(end, logStart int64) error {
	offs, err := listProducerSnapshots(p.dir)
	if err != nil {
		return err
	}
	m := producerStates{}
	from := int64(-1)
	for i := len(offs) - 1; i >= 0; i-- {
		off := offs[i]
		if off > end {
			if err := removeProducerSnapshots(p.dir, func(o int64) bool { return o == off }); err != nil {
				return err
			}
			continue
		}
		sm, err := readProducerSnapshot(p.dir, off)
		if err != nil {
			p.logger.Warn("ignoring unreadable producer-state snapshot", "offset", off, "err", err)
			if err := removeProducerSnapshots(p.dir, func(o int64) bool { return o == off }); err != nil {
				return err
			}
			continue
		}
		m, from = sm, off
		break
	}
	segs := p.segments()
	aborted, err := p.abortedBelow(segs, from)
	if err != nil {
		p.logger.Warn("ignoring unreadable transaction index; replaying the whole log", "err", err)
		m, from, aborted = producerStates{}, -1, nil
	}
	start := 0
	if from >= 0 {
		start = segmentFor(segs, from)
	}
	scanned := 0
	var (
		dec     batch.Decoder
		scanErr error
	)
	for _, s := range segs[start:] {
		size := s.size.Load()
		pos := int64(0)
		if from > s.base {
			bp, _, found, err := s.findBatch(from, size)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			pos = bp
		}
		err := s.scanHeaders(pos, size, func(bpos int64, h batch.Header) bool {
			if h.BaseOffset >= end {
				return false
			}
			if h.LastOffset() < from {
				return true
			}
			if ps := m[h.ProducerID]; h.IsControl() && h.NumRecords > 0 && ps != nil && ps.TxnFirstOffset >= 0 {
				// A control batch the cleaner emptied (NumRecords 0) still ends
				// the transaction in replay below, with no aborted entry: the
				// cleaner only empties markers whose data is gone.
				b, err := readBatchAt(s, bpos, h)
				if err != nil {
					scanErr = err
					return false
				}
				c, err := controlType(&dec, b)
				if err != nil {
					scanErr = corruptionf("%s: control batch at offset %d: %v", p.tp, h.BaseOffset, err)
					return false
				}
				if c.Type == batch.ControlAbort {
					lso := min(m.firstUnstable(nil, h.ProducerID), h.LastOffset()+1)
					aborted = append(aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: ps.TxnFirstOffset, LastOffset: h.LastOffset(), LastStableOffset: lso})
				}
			}
			m.replay(h)
			scanned++
			return true
		})
		if err == nil {
			err = scanErr
		}
		if err != nil {
			return err
		}
		s.txnDirty.Store(true) // its .txnindex may describe lost or unknown markers
	}
	m.removeBefore(logStart)
	m.expire(p.now().UnixMilli(), p.m.cfg.ProducerIDExpiration.Milliseconds())
	p.producers = m
	p.setAbortedLocked(aborted)
	p.pruneAbortedLocked(logStart)
	p.firstUnstable.Store(m.firstUnstable(nil, -1))
	if scanned > 0 || from >= 0 {
		p.logger.Debug("rebuilt producer state", "snapshot", from, "batches_scanned", scanned, "producers", len(m))
	}
	return nil
}

// abortedBelow returns the aborted transactions whose marker is below from
// (the offset the replay starts at): kept from memory after a truncation,
// read from the segments' .txnindex files on open.
func (p *Partition) abortedBelow(segs []*segment, from int64) ([]AbortedTxn, error) {
	if from < 0 {
		return nil, nil
	}
	if cur := p.aborted.Load(); cur != nil {
		var out []AbortedTxn
		for _, e := range *cur {
			if e.LastOffset < from {
				out = append(out, e)
			}
		}
		return out, nil
	}
	var out []AbortedTxn
	for _, s := range segs {
		if s.base >= from {
			break
		}
		es, err := readTxnIndex(p.dir, s.base)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", s.base, err)
		}
		for _, e := range es {
			if e.LastOffset < from {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// Producers returns a copy of the partition's producer state, sorted by
// producer id (for DescribeProducers and tests).
func (p *Partition) Producers() []ProducerState {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	out := make([]ProducerState, 0, len(p.producers))
	for _, id := range p.producers.sortedIDs() {
		out = append(out, *p.producers[id].clone())
	}
	return out
}

// InTransaction reports whether the producer has a transaction ongoing in
// the partition at this epoch (KIP-890: a transactional batch that would
// start one must first be verified with the transaction coordinator).
func (p *Partition) InTransaction(producerID int64, epoch int16) bool {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	s := p.producers[producerID]
	return s != nil && s.Epoch == epoch && s.TxnFirstOffset >= 0
}

// ExpireProducers forgets producers idle for producer.id.expiration.ms and
// returns how many it removed. The Manager calls it every
// producer.id.expiration.check.interval.ms.
func (p *Partition) ExpireProducers() int {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.closed.Load() {
		return 0
	}
	n := p.producers.expire(p.now().UnixMilli(), p.m.cfg.ProducerIDExpiration.Milliseconds())
	if n > 0 {
		p.logger.Debug("expired producers", "count", n, "remaining", len(p.producers))
	}
	return n
}

// pruneProducersLocked drops producers whose batches are all below the new
// log start. Caller holds appendMu.
func (p *Partition) pruneProducersLocked(logStart int64) {
	p.producers.removeBefore(logStart)
	p.pruneAbortedLocked(logStart)
}

// dropSnapshotsBelow removes snapshot files below the first segment's base
// after retention (they can't shorten a rebuild any more). Takes flushMu.
func (p *Partition) dropSnapshotsBelow(base int64) {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	if err := removeProducerSnapshots(p.dir, func(o int64) bool { return o < base }); err != nil {
		p.logger.Warn("removing producer-state snapshots", "below", base, "err", err)
	}
}
