package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

// AppendResult describes a successful append.
type AppendResult struct {
	FirstOffset    int64 // base offset assigned to the first batch
	LastOffset     int64 // last offset of the last batch
	LogAppendTime  int64 // ms; -1 unless message.timestamp.type=LogAppendTime
	LogStartOffset int64
	NumBatches     int
	NumRecords     int64
	Bytes          int
	// Duplicate: the batch repeats one an idempotent producer already
	// wrote (a retry). Nothing was written; FirstOffset and LastOffset are
	// the original batch's, and LogAppendTime its max timestamp when the
	// topic uses LogAppendTime.
	Duplicate bool
}

// Partition is one partition's log. All methods are safe for concurrent use:
// one appender at a time (Append serializes internally) beside many readers
// that never block it.
//
// Readers take no lock: they load the segment list, the log end offset and
// each segment's committed size from atomics that the appender publishes
// after its write has completed, so they never see a half-written batch.
type Partition struct {
	tp     TopicPartition
	dir    string
	m      *Manager
	logger *slog.Logger
	now    func() time.Time
	hooks  *faultHooks

	cfg atomic.Pointer[Config] // with defaults applied

	segs          atomic.Pointer[[]*segment] // copy on write; last is active
	logStart      atomic.Int64
	logEnd        atomic.Int64
	durable       atomic.Int64 // offsets below are fsynced
	recoveryPoint atomic.Int64 // segments wholly below are fsynced with their indexes
	lastFlushMs   atomic.Int64
	failed        atomic.Pointer[error] // sticky write/fsync error (wraps ErrWriteFailed)
	closed        atomic.Bool
	durableCh     atomic.Pointer[chan struct{}] // closed and replaced when durable advances

	flushKick chan struct{} // cap 1: wakes the flusher
	stop      chan struct{} // closed by Close: stops the flusher
	done      chan struct{} // closed when the flusher has exited

	// appendMu serializes appends and every change of the segment list
	// (roll, truncation, retention, DeleteRecords). Lock order: appendMu,
	// then flushMu.
	appendMu sync.Mutex
	// flushMu serializes fsyncs and index-file writes (flusher-owned
	// segment fields). Never held while waiting for appendMu.
	flushMu sync.Mutex

	epochs *epochCache

	// hw is the high watermark set by replication (highwatermark.go); -1
	// while none was set: the high watermark is then the log end. Written
	// under hwMu (a leaf), which truncation also holds while it lowers
	// logEnd; read lock-free.
	hw   atomic.Int64
	hwMu sync.Mutex
	// recoveredUnclean: the log was opened after an unclean shutdown, or
	// recovery cut a torn tail or rebuilt a segment that failed validation.
	recoveredUnclean atomic.Bool

	// producers is the idempotent-producer state (producer_state.go);
	// guarded by appendMu.
	producers producerStates
	// firstUnstable is the first offset of the earliest ongoing
	// transaction (MaxInt64: none); aborted the aborted transactions by
	// marker offset (copy on write). Written under appendMu, read
	// lock-free (txn.go).
	firstUnstable atomic.Int64
	aborted       atomic.Pointer[[]AbortedTxn]
	// snapMu guards pendingSnaps (leaf lock).
	snapMu       sync.Mutex
	pendingSnaps []pendingSnapshot
}

func (p *Partition) segments() []*segment { return *p.segs.Load() }

func (p *Partition) active() *segment {
	s := p.segments()
	return s[len(s)-1]
}

func (p *Partition) config() *Config { return p.cfg.Load() }

// Topic and PartitionID name the partition.
func (p *Partition) Topic() string { return p.tp.Topic }

// PartitionID is the partition number.
func (p *Partition) PartitionID() int32 { return p.tp.Partition }

// Config returns the partition's config with defaults applied.
func (p *Partition) Config() Config { return *p.config() }

// Dir is the partition's directory.
func (p *Partition) Dir() string { return p.dir }

// Err returns the sticky write error, or nil.
func (p *Partition) Err() error { return p.failedErr() }

func (p *Partition) failedErr() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// fail makes err sticky: every later append and durability wait fails.
func (p *Partition) fail(op string, err error) error {
	werr := fmt.Errorf("%w: %s: %s: %w", ErrWriteFailed, p.tp, op, err)
	if p.failed.CompareAndSwap(nil, &werr) {
		p.logger.Error("partition failed; appends refused until reopened", "op", op, "err", err)
	}
	p.notifyDurable()
	return p.failedErr()
}

func (p *Partition) notifyDurable() {
	ch := make(chan struct{})
	old := p.durableCh.Swap(&ch)
	close(*old)
}

func (p *Partition) kickFlusher() {
	select {
	case p.flushKick <- struct{}{}:
	default:
	}
}

// Append validates raw record-batch bytes (one or many v2 batches), assigns
// offsets by rewriting each batch's baseOffset in place (and maxTimestamp for
// LogAppendTime, recomputing the CRC), and writes them with one write. A bad
// batch fails the whole call and nothing is written. It never decompresses.
// When the leader-epoch cache holds an epoch (AssignEpochStart), the latest
// is written into each batch's partitionLeaderEpoch (outside the CRC).
//
// Batches with a producer id are checked against the producer state under
// the append lock (see producer_state.go): a retried batch is reported as
// a Duplicate with its original offsets and not written again (an append
// of several batches that includes a duplicate is refused with
// ErrInvalidRecord); sequence gaps give ErrOutOfOrderSequence, an old
// epoch ErrInvalidProducerEpoch.
func (p *Partition) Append(batches []byte) (AppendResult, error) {
	return p.append(batches, false)
}

// appendInfo is what the validation before the lock learned about an
// append's batches.
type appendInfo struct {
	nBatches    int
	nRecords    int64
	nOffsets    int64 // leader: offsets to assign
	hasProducer bool
	// Follower appends keep the leader's offsets: the first batch's base
	// and last offset, and the last offset of the whole append.
	firstBase, firstLast, last int64
}

// validateAppend checks every batch (structure, CRC, record count, producer
// fields) before the append lock is taken. A follower's batches keep their
// offsets, which must increase (densely unless the log is compacted, whose
// leader may have removed offsets), and may hold fewer records than offsets
// (compacted batches); max.message.bytes is not applied to them (Kafka's
// ignoreRecordSize), since the leader accepted them.
func (p *Partition) validateAppend(batches []byte, cfg *Config, follower bool) (appendInfo, error) {
	var in appendInfo
	prevLast := int64(-1)
	it := batch.NewIter(batches)
	for it.Next() {
		h := it.Header()
		if !follower && h.Size() > int(cfg.MaxMessageBytes) {
			return in, fmt.Errorf("%w: %s: batch of %d bytes, max.message.bytes %d", ErrMessageTooLarge, p.tp, h.Size(), cfg.MaxMessageBytes)
		}
		switch {
		case !follower && int64(h.NumRecords) != int64(h.LastOffsetDelta)+1,
			follower && (h.NumRecords < 0 || int64(h.NumRecords) > int64(h.LastOffsetDelta)+1):
			return in, fmt.Errorf("%w: %s: batch %d has %d records, lastOffsetDelta %d", ErrInvalidRecord, p.tp, in.nBatches, h.NumRecords, h.LastOffsetDelta)
		}
		if h.ProducerID >= 0 && !h.IsControl() && h.BaseSequence < 0 {
			return in, fmt.Errorf("%w: %s: batch %d has producer id %d but sequence %d", ErrInvalidRecord, p.tp, in.nBatches, h.ProducerID, h.BaseSequence)
		}
		if follower {
			switch {
			case h.BaseOffset < 0 || h.LastOffset() < h.BaseOffset:
				return in, fmt.Errorf("%w: %s: batch %d at offset %d", ErrInvalidRecord, p.tp, in.nBatches, h.BaseOffset)
			case in.nBatches == 0:
				in.firstBase, in.firstLast = h.BaseOffset, h.LastOffset()
			case h.BaseOffset <= prevLast:
				return in, fmt.Errorf("%w: %s: batch %d at offset %d overlaps the previous batch ending at %d", ErrUnexpectedAppendOffset, p.tp, in.nBatches, h.BaseOffset, prevLast)
			case h.BaseOffset != prevLast+1 && !cfg.Compact():
				return in, fmt.Errorf("%w: %s: batch %d at offset %d leaves a gap after %d in a log that is not compacted", ErrUnexpectedAppendOffset, p.tp, in.nBatches, h.BaseOffset, prevLast)
			}
			prevLast = h.LastOffset()
		}
		if h.ProducerID >= 0 {
			in.hasProducer = true
		}
		in.nBatches++
		in.nRecords += int64(h.NumRecords)
		in.nOffsets += int64(h.LastOffsetDelta) + 1
	}
	in.last = prevLast
	if err := it.Err(); err != nil {
		switch {
		case errors.Is(err, batch.ErrHeader):
			return in, fmt.Errorf("%w: %s: batch %d: %w", ErrInvalidRecord, p.tp, in.nBatches, err)
		default:
			return in, fmt.Errorf("%w: %s: batch %d: %w", ErrCorruptBatch, p.tp, in.nBatches, err)
		}
	}
	if in.nBatches == 0 {
		return in, fmt.Errorf("%w: %s: no record batches", ErrCorruptBatch, p.tp)
	}
	return in, nil
}

// append is Append (follower false) and AppendAsFollower (follower true):
// one path, so that producer state, transactions, indexes and durability
// behave the same on leaders and followers. A leader's append assigns
// offsets, stamps its leader epoch and checks producers (duplicates,
// epochs, sequences); a follower's keeps the leader's offsets, records
// the batches' leader epochs in the epoch cache and stages producer state
// without checking it (Kafka's AppendOrigin.REPLICATION).
func (p *Partition) append(batches []byte, follower bool) (AppendResult, error) {
	cfg := p.config()
	in, err := p.validateAppend(batches, cfg, follower)
	if err != nil {
		return AppendResult{}, err
	}

	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.closed.Load() {
		return AppendResult{}, ErrClosed
	}
	if err := p.failedErr(); err != nil {
		return AppendResult{}, err
	}
	nowMs := p.now().UnixMilli()
	var pc producerCheck
	if in.hasProducer {
		pc.committed = p.producers
		if !follower {
			if res, dup, err := p.findDuplicateLocked(&pc, batches, in.nBatches, cfg); dup || err != nil {
				return res, err
			}
		}
	}
	first := p.logEnd.Load()
	lastOffset := first + in.nOffsets - 1
	if follower {
		if err := p.checkFollowerOffsetLocked(in, cfg); err != nil {
			return AppendResult{}, err
		}
		first, lastOffset = in.firstBase, in.last
		pc.committed = p.producers // may have been reset by a full truncation
	}
	seg := p.active()
	if p.shouldRollLocked(seg, cfg, int64(len(batches)), in.nBatches, lastOffset, nowMs) ||
		first-seg.base > maxRelOffset {
		var err error
		if seg, err = p.rollAtLocked(first, nowMs); err != nil {
			return AppendResult{}, err
		}
		if lastOffset-seg.base > maxRelOffset {
			return AppendResult{}, fmt.Errorf("%w: %s: offsets %d to %d do not fit one segment; append fewer batches", ErrInvalidRecord, p.tp, first, lastOffset)
		}
	}

	logAppendTime := int64(-1)
	if !follower && cfg.MessageTimestampType == TimestampLogAppend {
		logAppendTime = nowMs
	}
	epoch, hasEpoch := int32(-1), false
	if !follower {
		epoch, hasEpoch = p.epochs.latest()
	}
	next := first
	var (
		txnChanged  bool // a transaction started or ended
		aborts      []AbortedTxn
		dec         *batch.Decoder
		epochStarts []epochEntry // follower: leader epochs that start in this append
	)
	for pos := 0; pos < len(batches); {
		b := batches[pos:]
		h, _ := batch.ParseHeader(b) // validated above
		if follower {
			next = h.BaseOffset
			if e := h.PartitionLeaderEpoch; e >= 0 && (len(epochStarts) == 0 || epochStarts[len(epochStarts)-1].Epoch != e) {
				epochStarts = append(epochStarts, epochEntry{Epoch: e, StartOffset: h.BaseOffset})
			}
		} else {
			batch.SetBaseOffset(b, next)
			if hasEpoch {
				batch.SetPartitionLeaderEpoch(b, epoch)
			}
			if logAppendTime >= 0 {
				batch.SetLogAppendTime(b[:h.Size()], logAppendTime)
			}
		}
		if h.ProducerID >= 0 {
			if !follower {
				h, _ = batch.ParseHeader(b) // with the assigned offset and timestamp
			}
			s := pc.entry(h.ProducerID)
			switch {
			case h.IsControl():
				// A follower may receive an empty control batch: the
				// leader's cleaner emptied a finished transaction (Kafka
				// skips the marker then).
				var c batch.ControlRecord
				decode := !follower || h.NumRecords > 0
				if decode {
					if dec == nil {
						dec = new(batch.Decoder)
					}
					var err error
					if c, err = controlType(dec, b[:h.Size()]); err != nil {
						return AppendResult{}, fmt.Errorf("%w: %s: control batch of producer %d: %w", ErrInvalidRecord, p.tp, h.ProducerID, err)
					}
				}
				if s != nil && s.TxnFirstOffset >= 0 {
					txnChanged = true
					if decode && c.Type == batch.ControlAbort {
						aborts = append(aborts, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: s.TxnFirstOffset, LastOffset: h.LastOffset()})
					}
				}
			case h.IsTransactional():
				txnChanged = txnChanged || s == nil || s.TxnFirstOffset < 0
			}
			if follower {
				pc.stage(h)
			} else if err := pc.check(p.tp, h); err != nil {
				return AppendResult{}, err
			}
		}
		next += int64(h.LastOffsetDelta) + 1 // a follower's next batch may start after a gap
		pos += h.Size()
	}
	// Leader epochs first, as Kafka does: an entry whose data a crash then
	// loses starts at or after the recovered log end and is truncated away
	// on open.
	for _, e := range epochStarts {
		if err := p.epochs.assign(e.Epoch, e.StartOffset); err != nil {
			return AppendResult{}, p.fail("leader-epoch checkpoint", err)
		}
	}

	start := seg.size.Load()
	if err := p.hooks.beforeWrite(seg); err != nil {
		return AppendResult{}, p.fail("write", err)
	}
	if _, err := seg.log.WriteAt(batches, start); err != nil {
		return AppendResult{}, p.fail("write", err)
	}
	interval := int64(cfg.IndexIntervalBytes)
	if start == 0 {
		seg.rollTs = nowMs
	}
	for pos := 0; pos < len(batches); {
		h, _ := batch.ParseHeader(batches[pos:])
		seg.observe(start+int64(pos), h, interval)
		pos += h.Size()
	}
	// Publish: the segment's next offset, then its size, then the log
	// end. A reader that sees the new log end also sees the bytes; one that
	// loads size and then next knows every batch below that size ends
	// before that next (Read's scan-free path).
	seg.next.Store(next)
	seg.size.Store(start + int64(len(batches)))
	seg.lastModMs.Store(nowMs)
	pc.commit()
	if txnChanged {
		// Before the log end (see txn.go): aborted list, then LSO.
		for i := range aborts {
			lso := p.producers.firstUnstable(nil, aborts[i].ProducerID)
			aborts[i].LastStableOffset = min(lso, aborts[i].LastOffset+1)
		}
		if len(aborts) > 0 {
			p.addAbortedLocked(aborts)
			seg.txnDirty.Store(true)
		}
		p.firstUnstable.Store(p.producers.firstUnstable(nil, -1))
	}
	p.logEnd.Store(next)

	if !cfg.WriteCaching || next-p.durable.Load() >= cfg.FlushMessages {
		p.kickFlusher()
	}
	return AppendResult{
		FirstOffset:    first,
		LastOffset:     next - 1,
		LogAppendTime:  logAppendTime,
		LogStartOffset: p.logStart.Load(),
		NumBatches:     in.nBatches,
		NumRecords:     in.nRecords,
		Bytes:          len(batches),
	}, nil
}

// findDuplicateLocked looks for a retried batch among the batches of an
// append. One duplicate batch answers the append with its original
// offsets; a duplicate mixed with other batches is refused.
func (p *Partition) findDuplicateLocked(pc *producerCheck, batches []byte, nBatches int, cfg *Config) (AppendResult, bool, error) {
	for pos := 0; pos < len(batches); {
		h, _ := batch.ParseHeader(batches[pos:]) // validated by the caller
		pos += h.Size()
		if h.ProducerID < 0 || h.IsControl() {
			continue
		}
		d, ok := pc.duplicate(h)
		if !ok {
			continue
		}
		if nBatches > 1 {
			return AppendResult{}, false, fmt.Errorf("%w: %s: producer %d sequences [%d, %d] were already written, in an append of %d batches", ErrInvalidRecord, p.tp, h.ProducerID, d.FirstSeq, d.LastSeq, nBatches)
		}
		lat := int64(-1)
		if cfg.MessageTimestampType == TimestampLogAppend {
			lat = d.Timestamp
		}
		return AppendResult{
			FirstOffset:    d.FirstOffset,
			LastOffset:     d.LastOffset,
			LogAppendTime:  lat,
			LogStartOffset: p.logStart.Load(),
			NumBatches:     1,
			NumRecords:     int64(h.NumRecords),
			Duplicate:      true,
		}, true, nil
	}
	return AppendResult{}, false, nil
}

// shouldRollLocked reports whether an append of n bytes in nBatches batches
// whose last offset is lastOffset must go to a new segment.
func (p *Partition) shouldRollLocked(seg *segment, cfg *Config, n int64, nBatches int, lastOffset int64, nowMs int64) bool {
	size := seg.size.Load()
	if size == 0 {
		return false
	}
	return size+n > cfg.SegmentBytes ||
		size+n > math.MaxInt32 ||
		nowMs-seg.rollTs >= cfg.SegmentMs ||
		lastOffset-seg.base > maxRelOffset ||
		int64(len(seg.offIdx.buf)+nBatches)*offsetEntrySize > int64(cfg.SegmentIndexBytes) ||
		int64(len(seg.timeIdx.buf)+nBatches)*timeEntrySize > int64(cfg.SegmentIndexBytes)
}

// rollLocked seals the active segment and starts a new one at the log end.
// The flusher syncs the sealed segment and its indexes, and the directory.
func (p *Partition) rollLocked(nowMs int64) (*segment, error) {
	return p.rollAtLocked(p.logEnd.Load(), nowMs)
}

// rollAtLocked is rollLocked with the new segment's base at base (>= the
// log end: a follower's append may start past a compacted gap).
func (p *Partition) rollAtLocked(base, nowMs int64) (*segment, error) {
	old := p.active()
	if old.size.Load() == 0 && old.base == base {
		return old, nil
	}
	ns, err := createSegment(p.dir, base, nowMs)
	if err != nil {
		return nil, p.fail("roll", err)
	}
	old.maybeAddTimeEntry()
	old.sealed.Store(true)
	segs := append(append([]*segment(nil), p.segments()...), ns)
	p.segs.Store(&segs)
	p.queueSnapshotLocked(base)
	p.logger.Debug("rolled segment", "base", base)
	p.kickFlusher()
	return ns, nil
}

// Roll starts a new segment at the log end (a no-op if the active segment
// is empty).
func (p *Partition) Roll() error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.failedErr(); err != nil {
		return err
	}
	_, err := p.rollLocked(p.now().UnixMilli())
	return err
}

// WaitDurable blocks until every offset <= offset is fsynced (group commit:
// one fdatasync covers all appends made meanwhile), ctx ends, or the
// partition fails (ErrWriteFailed).
func (p *Partition) WaitDurable(ctx context.Context, offset int64) error {
	for {
		ch := *p.durableCh.Load()
		if p.durable.Load() > offset {
			return nil
		}
		if err := p.failedErr(); err != nil {
			return err
		}
		if p.closed.Load() {
			return ErrClosed
		}
		if p.config().WriteCaching {
			p.kickFlusher()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LogStartOffset is the first readable offset.
func (p *Partition) LogStartOffset() int64 { return p.logStart.Load() }

// LogEndOffset is the offset the next appended record will get.
func (p *Partition) LogEndOffset() int64 { return p.logEnd.Load() }

// DurableOffset is the offset up to which (exclusive) data is fsynced.
func (p *Partition) DurableOffset() int64 { return p.durable.Load() }

// RecoveryPoint is the offset below which segments and their indexes are
// fsynced; recovery after a crash rescans from the segment holding it.
func (p *Partition) RecoveryPoint() int64 { return p.recoveryPoint.Load() }

// SetConfig changes the partition's config (AlterConfigs) without reopening.
// An invalid config is ignored (and logged); use Config.Validate first.
func (p *Partition) SetConfig(cfg Config) {
	if err := cfg.Validate(); err != nil {
		p.logger.Warn("ignoring invalid config", "err", err)
		return
	}
	c := cfg.WithDefaults()
	p.cfg.Store(&c)
	p.kickFlusher()
}

// Size is the total bytes of all segments.
func (p *Partition) Size() int64 {
	var n int64
	for _, s := range p.segments() {
		n += s.size.Load()
	}
	return n
}

// NumSegments is the number of segments.
func (p *Partition) NumSegments() int { return len(p.segments()) }

// Flush fsyncs everything appended so far.
func (p *Partition) Flush() error {
	if p.closed.Load() {
		return ErrClosed
	}
	return p.flush(false)
}

// Close flushes and closes the partition.
func (p *Partition) Close() error { return p.m.closePartition(p) }

// close stops the flusher, seals the indexes, flushes and closes the files.
// A clean close (nil error) lets the next open skip recovery.
func (p *Partition) close() error {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stop)
	<-p.done
	var err error
	if p.failedErr() == nil {
		p.active().maybeAddTimeEntry()
		err = p.flush(true)
		if err == nil {
			// The state at the log end: the next open scans nothing.
			leo := p.logEnd.Load()
			if serr := writeProducerSnapshot(p.dir, leo, encodeProducerSnapshot(p.producers, leo)); serr != nil {
				p.logger.Warn("writing producer-state snapshot", "offset", leo, "err", serr)
			}
		}
	} else {
		err = p.failedErr()
	}
	for _, s := range p.segments() {
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	p.notifyDurable()
	if err != nil {
		p.logger.Warn("partition closed uncleanly", "err", err)
	} else {
		p.logger.Debug("partition closed")
	}
	return err
}
