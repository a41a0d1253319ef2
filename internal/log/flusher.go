package log

// Group commit. Each partition has one flusher goroutine (started and
// waited for by the Manager). Appends kick it through a one-slot channel;
// it reads the log end offset, fdatasyncs every segment with unsynced
// bytes, and then publishes the log end it read as the durable offset. Kicks
// that arrive while it syncs coalesce into the next round, so one fdatasync
// covers every append made meanwhile.

// flushLoop is the flusher goroutine.
func (p *Partition) flushLoop() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.flushKick:
		}
		// An error is sticky (p.fail) and reported to appenders and waiters.
		_ = p.flush(false)
	}
}

// flush makes every batch appended before the call durable: segment data
// (fdatasync), the directory when a segment was created, and the indexes of
// sealed segments. With final set (clean close) the active segment's
// indexes are synced too and the recovery point reaches the log end. A
// failure is sticky.
func (p *Partition) flush(final bool) error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	if err := p.failedErr(); err != nil {
		return err
	}
	target := p.logEnd.Load()
	segs := p.segments()
	if err := p.writeTxnIndexesLocked(segs); err != nil {
		return p.fail("write txn index", err)
	}
	dirSynced := false
	rp := target
	for _, s := range segs {
		size := s.size.Load()
		sealed := s.sealed.Load()
		if s.syncedSize >= size && s.dirSynced && (s.indexSynced || !(sealed || final)) {
			if !s.indexSynced || !(sealed || final) {
				rp = min(rp, s.base)
			}
			continue
		}
		if !s.dirSynced && !dirSynced {
			if err := syncDir(p.dir); err != nil {
				return p.fail("fsync directory", err)
			}
			dirSynced = true
		}
		s.dirSynced = true
		if size > s.syncedSize {
			if err := p.hooks.beforeSync(s); err != nil {
				return p.fail("fdatasync", err)
			}
			if err := fdatasync(s.log); err != nil {
				return p.fail("fdatasync", err)
			}
			s.syncedSize = size
		}
		if err := s.writeIndexes(); err != nil {
			return p.fail("write index", err)
		}
		if (sealed || final) && !s.indexSynced {
			if err := fdatasync(s.indexFile); err != nil {
				return p.fail("fsync index", err)
			}
			if err := fdatasync(s.timeFile); err != nil {
				return p.fail("fsync time index", err)
			}
			s.indexSynced = sealed || final
		}
		if !s.indexSynced || !(sealed || final) {
			rp = min(rp, s.base) // an active segment is always rescanned after a crash
		}
	}
	if target > p.durable.Load() {
		p.durable.Store(target)
		p.notifyDurable()
	}
	if rp > p.recoveryPoint.Load() {
		p.recoveryPoint.Store(rp)
	}
	p.writePendingSnapshotsLocked(target)
	p.lastFlushMs.Store(p.now().UnixMilli())
	return nil
}
