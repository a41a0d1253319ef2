package log

import (
	"os"
	"time"
)

// Steps of swapping a cleaned segment in, numbered for crash tests
// (cleanOptions.crashAfter stops right after one of them).
const (
	swapStepWritten      = 1 + iota // .cleaned files written and fsynced
	swapStepIndexSwap               // index files renamed to .swap
	swapStepLogSwap                 // log renamed to .swap, directory fsynced: the commit point
	swapStepFirstDeleted            // the first old segment renamed to .deleted
	swapStepAllDeleted              // every old segment renamed, directory fsynced
	swapStepIndexFinal              // index swap files renamed to their final names
	swapStepLogFinal                // log swap file renamed to its final name
	swapStepListed                  // segment list replaced (before the directory fsync)
	swapSteps                       // number of steps + 1
)

// swapIn replaces group (whose committed sizes were sizes when the cleaner
// read them) by the cleaned segment ns, whose .cleaned files are written
// and fsynced. committed reports whether the commit point (the log's .swap
// file durable) was passed: before it, the caller removes the .cleaned and
// .swap files; after it, they must stay (recovery completes the swap). See
// the top of cleaner.go for the protocol and why each crash point is safe.
//
// The append lock is held from the check that group is still in place
// until the segment list is replaced, so retention, DeleteRecords and
// truncation cannot change those segments in between; that covers two
// directory fsyncs and a handful of renames.
func (p *Partition) swapIn(group []*segment, sizes []int64, ns *segment, opts *cleanOptions) (committed bool, err error) {
	crash := func(step int) bool { return opts.crashAfter == step }
	if crash(swapStepWritten) {
		return false, errSimulatedCrash
	}
	base := ns.base
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		from := segmentPath(p.dir, base, suf) + cleanedSuffix
		if err := os.Rename(from, segmentPath(p.dir, base, suf)+swapSuffix); err != nil {
			return false, err
		}
	}
	if crash(swapStepIndexSwap) {
		return false, errSimulatedCrash
	}

	p.appendMu.Lock()
	locked := true
	defer func() {
		if locked {
			p.appendMu.Unlock()
		}
	}()
	if p.closed.Load() {
		return false, ErrClosed
	}
	if err := p.failedErr(); err != nil {
		return false, err
	}
	segs := p.segments()
	at := -1
	for i, s := range segs {
		if s == group[0] {
			at = i
			break
		}
	}
	if at < 0 || at+len(group) >= len(segs) { // gone, or would reach the active segment
		return false, errCleanAborted
	}
	for k, s := range group {
		if segs[at+k] != s || !s.sealed.Load() || s.size.Load() != sizes[k] {
			return false, errCleanAborted
		}
	}
	logSwap := segmentPath(p.dir, base, logSuffix) + swapSuffix
	if err := os.Rename(segmentPath(p.dir, base, logSuffix)+cleanedSuffix, logSwap); err != nil {
		return false, err
	}
	if err := syncDir(p.dir); err != nil {
		// Unknown whether the rename is durable: treat it as committed.
		return true, p.fail("cleaner swap", err)
	}
	if crash(swapStepLogSwap) {
		return true, errSimulatedCrash
	}

	// Past the commit point, a failure leaves the directory in a state
	// that only recovery resolves: the partition fails (sticky) so that it
	// is reopened, which completes the swap.
	for k, s := range group {
		if err := s.renameDeleted(); err != nil {
			return true, p.fail("cleaner swap", err)
		}
		if k == 0 && crash(swapStepFirstDeleted) {
			return true, errSimulatedCrash
		}
	}
	if err := syncDir(p.dir); err != nil {
		return true, p.fail("cleaner swap", err)
	}
	if crash(swapStepAllDeleted) {
		return true, errSimulatedCrash
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		final := segmentPath(p.dir, base, suf)
		if err := os.Rename(final+swapSuffix, final); err != nil {
			return true, p.fail("cleaner swap", err)
		}
	}
	if crash(swapStepIndexFinal) {
		return true, errSimulatedCrash
	}
	if err := os.Rename(logSwap, segmentPath(p.dir, base, logSuffix)); err != nil {
		return true, p.fail("cleaner swap", err)
	}
	if crash(swapStepLogFinal) {
		return true, errSimulatedCrash
	}
	next := make([]*segment, 0, len(segs)-len(group)+1)
	next = append(next, segs[:at]...)
	next = append(next, ns)
	next = append(next, segs[at+len(group):]...)
	p.segs.Store(&next)
	// The old segments' .txnindex files were renamed with them; the
	// flusher writes the cleaned segment's from the in-memory list.
	ns.txnDirty.Store(true)
	p.kickFlusher()
	locked = false
	p.appendMu.Unlock()
	if crash(swapStepListed) {
		return true, errSimulatedCrash
	}
	if err := syncDir(p.dir); err != nil {
		return true, p.fail("cleaner swap", err)
	}

	// The old segments' files are already renamed; close and remove them
	// after file.delete.delay.ms so that Regions handed out stay readable.
	delay := time.Duration(p.config().FileDeleteDelayMs) * time.Millisecond
	old := append([]*segment(nil), group...)
	p.m.scheduleDelete(delay, func() {
		p.flushMu.Lock() // the flusher may still hold the old list
		defer p.flushMu.Unlock()
		for _, s := range old {
			if err := s.close(); err != nil {
				p.logger.Warn("closing cleaned-away segment", "segment", s.logPath(), "err", err)
			}
			if err := s.removeDeleted(); err != nil {
				p.logger.Warn("removing cleaned-away segment", "segment", s.logPath(), "err", err)
			}
		}
	})
	p.logger.Debug("swapped in cleaned segment", "base", base, "replaced", len(group), "size", ns.size.Load())
	return true, nil
}

// createCleanedSegment creates the "<base>.*.cleaned" files of a segment
// being written by the cleaner.
func createCleanedSegment(dir string, base int64) (s *segment, err error) {
	s = &segment{base: base, dir: dir}
	defer func() {
		if err != nil {
			s.close()
			removeSegmentFiles(dir, base, cleanedSuffix)
		}
	}()
	if s.log, err = os.OpenFile(segmentPath(dir, base, logSuffix)+cleanedSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return nil, err
	}
	if s.indexFile, err = createIndexFile(segmentPath(dir, base, indexSuffix)+cleanedSuffix, offsetIndexMagic, base); err != nil {
		return nil, err
	}
	if s.timeFile, err = createIndexFile(segmentPath(dir, base, timeIndexSuffix)+cleanedSuffix, timeIndexMagic, base); err != nil {
		return nil, err
	}
	s.next.Store(base)
	s.maxTs.Store(-1)
	s.maxTsOffset.Store(-1)
	return s, nil
}

// removeSegmentFiles removes "<base>.{log,index,timeindex}<suffix>",
// ignoring missing files.
func removeSegmentFiles(dir string, base int64, suffix string) {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		// Best effort: open removes leftovers too.
		_ = os.Remove(segmentPath(dir, base, suf) + suffix)
	}
}
