package log

// The log cleaner: compaction for cleanup.policy=compact (and
// compact,delete), after Kafka's LogCleaner.
//
// A pass over one partition:
//
//  1. Bounds. The cleanable section runs from the log start to the first
//     uncleanable offset: the active segment's base, lowered to the first
//     segment holding a record newer than min.compaction.lag.ms and to the
//     first offset of an open transaction (see compact_txn.go). The dirty
//     section starts at the cleaner checkpoint (the end of the previous
//     pass). The partition is cleaned when dirty/(clean+dirty) bytes reach
//     min.cleanable.dirty.ratio, when the first dirty batch is older than
//     max.compaction.lag.ms, or when a tombstone's delete horizon has passed.
//  2. Offset map. Every key of the dirty section is mapped to its latest
//     offset (control batches and aborted transactions excluded). If the
//     map fills, the pass stops there and cleans the rest next time.
//  3. Rewrite. The sealed segments from the log start up to the map's end
//     are grouped (a group fits in segment.bytes and segment.index.bytes
//     and spans at most 2^31-1 offsets) and each group is rewritten into
//     one segment: a record is kept if no later record of its key is in
//     the map, unless it is a tombstone (null value) whose batch's delete
//     horizon has passed; records without a key are dropped (Kafka refuses
//     them at produce time for compacted topics: that check belongs to the
//     produce path). Batches keep their offsets (gaps are fine), base
//     offset, last offset delta, producer id/epoch, base sequence,
//     transactional and control bits and codec; a batch whose records all
//     survive is copied byte for byte. Control batches stay until their
//     transaction has no batch left and then their delete horizon passes;
//     aborted transactional data is dropped; the last batch of each
//     producer stays, emptied if need be; other emptied batches go.
//  4. Swap, crash-safely (Kafka's replaceSegments): the group is written
//     to "<base>.log.cleaned" (+ ".index.cleaned", ".timeindex.cleaned")
//     and fsynced; the index files and then the log are renamed to
//     "*.swap" and the directory fsynced (the commit point: recovery
//     completes a swap from here on, see completeSwap); under the append
//     lock the old segments are renamed to "*.deleted", the directory
//     fsynced, the swap files renamed to their final names and the
//     segment list replaced. A crash before the commit point leaves
//     ".cleaned" files that open deletes; after it, open deletes the old
//     segments the swap covers and renames the swap into place.
//  5. The cleaner checkpoint ("cleaner-offset-checkpoint" in the partition
//     directory: version, count, "<first dirty offset> <delete horizon>")
//     moves to the map's end.
//
// Tombstones follow KIP-534: the first pass that keeps a tombstone (or a
// marker whose transaction is gone) in a batch without a delete horizon
// rewrites the batch with the delete-horizon attribute set and
// baseTimestamp = now + delete.retention.ms; a later pass after that time
// drops them. So a consumer that starts from the beginning and finishes
// within delete.retention.ms sees every delete.
//
// The cleaner never touches the active segment, and it gives up a group
// (deleting its .cleaned files) if retention, DeleteRecords or truncation
// changed the segments meanwhile.

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/sluice-io/sluice/internal/log/batch"
)

const (
	cleanerCheckpointFile = "cleaner-offset-checkpoint"
	maxOffset             = math.MaxInt64
	cleanerWriteBuf       = 1 << 20
)

// CleanStats describes one cleaning pass of a partition.
type CleanStats struct {
	Cleaned        bool // false: nothing was due (Reason says why)
	Reason         string
	FirstDirty     int64 // dirty section [FirstDirty, EndOffset)
	EndOffset      int64
	DirtyRatio     float64
	Groups         int // cleaned segments written
	SegmentsRead   int
	BatchesRead    int64
	BatchesKept    int64
	RecordsRead    int64
	RecordsKept    int64
	BytesRead      int64
	BytesWritten   int64
	TombstonesGone int64
	Elapsed        time.Duration
}

// errCleanAborted: the segments changed under a pass (retention,
// truncation, close); the pass is abandoned and retried later.
var errCleanAborted = errors.New("log: cleaning abandoned: segments changed")

// cleanOptions tune a pass; the zero value is the normal cleaner.
type cleanOptions struct {
	force      bool // clean whatever is cleanable, ignoring the dirty ratio
	mapEntries int  // offset map capacity; 0 = default
	// crashAfter, if > 0, stops the swap after that step (see swapStep*),
	// leaving the files as a crash there would: tests only.
	crashAfter int
	stop       <-chan struct{} // closed: abandon the pass
}

// errSimulatedCrash is returned when cleanOptions.crashAfter stops a pass.
var errSimulatedCrash = errors.New("log: cleaner stopped for a simulated crash")

// cleanerCheckpoint is what the cleaner persists per partition.
type cleanerCheckpoint struct {
	firstDirty int64 // the end of the last pass
	horizon    int64 // earliest delete horizon of a kept tombstone or marker; -1 if none
}

func (p *Partition) loadCleanerCheckpoint() cleanerCheckpoint {
	ck := cleanerCheckpoint{firstDirty: -1, horizon: -1}
	b, err := readCheckpointFile(filepath.Join(p.dir, cleanerCheckpointFile))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.logger.Warn("ignoring unreadable cleaner checkpoint", "err", err)
		}
		return ck
	}
	rows, err := parseCheckpoint(b, 2)
	if err == nil && len(rows) != 1 {
		err = corruptionf("cleaner checkpoint has %d entries", len(rows))
	}
	if err != nil {
		p.logger.Warn("ignoring unreadable cleaner checkpoint", "err", err)
		return ck
	}
	off, err1 := strconv.ParseInt(rows[0][0], 10, 64)
	hz, err2 := strconv.ParseInt(rows[0][1], 10, 64)
	if err1 != nil || err2 != nil || off < 0 || hz < -1 {
		p.logger.Warn("ignoring unreadable cleaner checkpoint", "entry", rows[0])
		return ck
	}
	return cleanerCheckpoint{firstDirty: off, horizon: hz}
}

func (p *Partition) writeCleanerCheckpoint(ck cleanerCheckpoint) error {
	data := fmt.Appendf(nil, "%d\n1\n%d %d\n", checkpointVersion, ck.firstDirty, ck.horizon)
	return writeFileAtomic(filepath.Join(p.dir, cleanerCheckpointFile), data)
}

// truncateCleanerCheckpoint moves the cleaner checkpoint back to offset if
// it lies beyond it (after TruncateTo, so re-appended data is seen dirty).
func (p *Partition) truncateCleanerCheckpoint(offset int64) error {
	ck := p.loadCleanerCheckpoint()
	if ck.firstDirty <= offset {
		return nil
	}
	ck.firstDirty = offset
	return p.writeCleanerCheckpoint(ck)
}

// runCleaner is the cleaner goroutine: every CleanerBackoff it cleans the
// open compacted partitions that are due, dirtiest first. Start it with
// m.goFunc("log-cleaner", m.runCleaner); it returns when m.stop closes.
func (m *Manager) runCleaner() { m.every(m.cfg.CleanerBackoff, func() { m.RunCleaner() }) }

// RunCleaner runs one cleaning round over the open compacted partitions now
// (the cleaner goroutine does this every log.cleaner.backoff.ms), dirtiest
// first, and returns the stats of the partitions it cleaned.
func (m *Manager) RunCleaner() map[TopicPartition]CleanStats {
	type cand struct {
		p     *Partition
		ratio float64
	}
	var cands []cand
	for _, p := range m.Partitions() {
		if !p.config().Compact() {
			continue
		}
		cands = append(cands, cand{p, p.dirtyRatio()})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ratio > cands[j].ratio })
	out := make(map[TopicPartition]CleanStats)
	for _, c := range cands {
		select {
		case <-m.stop:
			return out
		default:
		}
		st, err := c.p.clean(m.cfg.Now(), cleanOptions{stop: m.stop})
		switch {
		case err == nil:
			if st.Cleaned {
				out[c.p.tp] = st
			}
		case errors.Is(err, ErrClosed), errors.Is(err, errCleanAborted), c.p.closed.Load():
		default:
			c.p.logger.Warn("log cleaner failed", "err", err)
		}
	}
	return out
}

// dirtyRatio estimates the partition's dirty ratio from segment sizes and
// the checkpoint (for ordering; clean computes the exact bounds).
func (p *Partition) dirtyRatio() float64 {
	segs := p.segments()
	ck := p.loadCleanerCheckpoint()
	var clean, dirty int64
	for _, s := range segs[:len(segs)-1] {
		if s.next.Load() <= ck.firstDirty {
			clean += s.size.Load()
		} else {
			dirty += s.size.Load()
		}
	}
	if clean+dirty == 0 {
		return 0
	}
	return float64(dirty) / float64(clean+dirty)
}

// Clean runs one cleaning pass over the partition now, regardless of the
// dirty ratio (as if min.cleanable.dirty.ratio were 0). It returns
// without doing anything unless cleanup.policy includes compact.
func (p *Partition) Clean() (CleanStats, error) {
	return p.clean(p.now(), cleanOptions{force: true})
}

// clean runs one pass; see the top of this file.
func (p *Partition) clean(now time.Time, opts cleanOptions) (CleanStats, error) {
	start := time.Now()
	var st CleanStats
	cfg := p.config()
	if !cfg.Compact() {
		st.Reason = "cleanup.policy has no compact"
		return st, nil
	}
	if p.closed.Load() {
		return st, ErrClosed
	}
	nowMs := now.UnixMilli()
	segs := p.segments()
	logStart := p.logStart.Load()
	active := segs[len(segs)-1]
	sealed := segs[:len(segs)-1]
	for i, s := range sealed {
		if !s.sealed.Load() { // cannot happen: only the last segment is open
			sealed = sealed[:i]
			break
		}
	}
	ck := p.loadCleanerCheckpoint()
	firstDirty := max(ck.firstDirty, logStart)
	if firstDirty > active.base {
		firstDirty = logStart // the log was truncated below the checkpoint
	}

	// Bounds of the cleanable section.
	upper := active.base
	if len(sealed) > 0 {
		upper = min(upper, sealed[len(sealed)-1].next.Load())
	} else {
		upper = min(upper, logStart)
	}
	if cfg.MinCompactionLagMs > 0 {
		for _, s := range sealed {
			if ts := s.maxTs.Load(); ts >= 0 && nowMs-ts < cfg.MinCompactionLagMs {
				upper = min(upper, s.base)
				break
			}
		}
	}
	ti, err := scanTxnInfo(segs, logStart)
	if err != nil {
		return st, fmt.Errorf("%s: %w", p.tp, err)
	}
	upper = min(upper, ti.firstUnstable, p.cleanableLimit())
	firstDirty = min(firstDirty, upper)
	st.FirstDirty = firstDirty

	// Is a pass due?
	var cleanBytes, dirtyBytes int64
	for _, s := range sealed {
		switch {
		case s.next.Load() <= firstDirty:
			cleanBytes += s.size.Load()
		case s.base < upper:
			dirtyBytes += s.size.Load()
		}
	}
	if cleanBytes+dirtyBytes > 0 {
		st.DirtyRatio = float64(dirtyBytes) / float64(cleanBytes+dirtyBytes)
	}
	horizonDue := ck.horizon >= 0 && ck.horizon <= nowMs
	due := opts.force || horizonDue ||
		(dirtyBytes > 0 && st.DirtyRatio >= cfg.MinCleanableDirtyRatio) ||
		(dirtyBytes > 0 && p.maxLagExceeded(sealed, firstDirty, nowMs, cfg.MaxCompactionLagMs))
	if !due {
		st.Reason = "not due"
		return st, nil
	}
	if upper <= logStart && !horizonDue {
		st.Reason = "nothing cleanable"
		return st, nil
	}

	// Offset map over the dirty section.
	entries := opts.mapEntries
	if entries <= 0 {
		entries = defaultOffsetMapEntries
	}
	om := newOffsetMap(entries, firstDirty)
	if err := p.buildOffsetMap(sealed, om, firstDirty, upper, ti, &opts); err != nil {
		return st, err
	}
	st.EndOffset = om.end

	// Group the sealed segments below the map's end and clean each group.
	var todo []*segment
	for _, s := range sealed {
		if s.base < max(om.end, firstDirty) || (horizonDue && s.base < upper) {
			todo = append(todo, s)
		}
	}
	txs := &txnCleanState{info: ti, seen: make(map[int64]bool)}
	minHorizon := int64(-1)
	for _, group := range groupSegments(todo, cfg, upper) {
		gs, hz, err := p.cleanGroup(group, om, txs, nowMs, cfg, &opts)
		st.Groups++
		st.SegmentsRead += len(group)
		st.BatchesRead += gs.BatchesRead
		st.BatchesKept += gs.BatchesKept
		st.RecordsRead += gs.RecordsRead
		st.RecordsKept += gs.RecordsKept
		st.BytesRead += gs.BytesRead
		st.BytesWritten += gs.BytesWritten
		st.TombstonesGone += gs.TombstonesGone
		if err != nil {
			return st, err
		}
		if hz >= 0 && (minHorizon < 0 || hz < minHorizon) {
			minHorizon = hz
		}
	}
	if err := p.writeCleanerCheckpoint(cleanerCheckpoint{firstDirty: max(om.end, firstDirty), horizon: minHorizon}); err != nil {
		return st, fmt.Errorf("%s: cleaner checkpoint: %w", p.tp, err)
	}
	st.Cleaned = true
	st.Elapsed = time.Since(start)
	p.logger.Info("cleaned log", "first_dirty", st.FirstDirty, "end", st.EndOffset, "dirty_ratio", st.DirtyRatio,
		"segments", st.SegmentsRead, "groups", st.Groups, "bytes_read", st.BytesRead, "bytes_written", st.BytesWritten,
		"records_kept", st.RecordsKept, "records_read", st.RecordsRead, "took", st.Elapsed)
	return st, nil
}

// cleanableLimit is the offset at which cleaning must stop whatever the
// segments say: Kafka bounds the cleaner by the high watermark, so that a
// record a follower truncation could still remove never shadows an older
// value (highwatermark.go; the log end while replication sets none).
func (p *Partition) cleanableLimit() int64 { return p.HighWatermark() }

// maxLagExceeded reports whether the first dirty batch is older than
// max.compaction.lag.ms.
func (p *Partition) maxLagExceeded(sealed []*segment, firstDirty, nowMs, maxLag int64) bool {
	if maxLag == math.MaxInt64 {
		return false
	}
	i := segmentFor(sealed, firstDirty)
	if i >= len(sealed) {
		return false
	}
	s := sealed[i]
	_, h, found, err := s.findBatch(firstDirty, s.size.Load())
	if err != nil || !found {
		return false
	}
	ts := h.MaxTimestamp
	if !h.LogAppendTime() && !h.HasDeleteHorizon() {
		ts = h.BaseTimestamp
	}
	return ts >= 0 && nowMs-ts > maxLag
}

// buildOffsetMap maps the keys of [from, upper) to their latest offsets,
// skipping control batches and aborted transactions, and stops early (at
// a batch boundary) when the map is full. It sets om.end.
func (p *Partition) buildOffsetMap(sealed []*segment, om *offsetMap, from, upper int64, ti *txnInfo, opts *cleanOptions) error {
	var dec batch.Decoder
	r := &chunkReader{}
	for _, s := range sealed {
		if s.next.Load() <= from {
			continue
		}
		if s.base >= upper {
			break
		}
		r.reset(s.log, s.size.Load())
		full := false
		for pos := int64(0); pos < r.size && !full; {
			if stopped(opts.stop) {
				return errCleanAborted
			}
			h, n, err := validateAt(r, pos)
			if err != nil {
				return p.cleanReadErr(s, r.size, pos, err)
			}
			pos += n
			if h.LastOffset() < from {
				continue
			}
			if h.BaseOffset >= upper {
				full = true // reached the bound
				break
			}
			if len(om.m) > 0 && !om.room(int(h.NumRecords)) {
				full = true
				break
			}
			om.end = h.NextOffset()
			if h.IsControl() || (h.IsTransactional() && ti.isAborted(h)) {
				continue
			}
			b, err := r.window(pos-n, n)
			if err != nil {
				return err
			}
			_, recs, err := dec.Decode(b)
			if err != nil {
				// Unreadable records (e.g. too large to inflate): the
				// batch is kept as is and does not shadow anything.
				p.logger.Warn("cleaner cannot decode batch; keeping it", "offset", h.BaseOffset, "err", err)
				continue
			}
			for i := range recs {
				if recs[i].Key != nil {
					om.put(recs[i].Key, recs[i].Offset)
				}
			}
		}
		if full {
			break
		}
	}
	return nil
}

// cleanReadErr classifies a failure to read a sealed segment: the segment
// changed or went away under the pass (truncation, retention, close), or
// real damage.
func (p *Partition) cleanReadErr(s *segment, size, pos int64, err error) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if !s.sealed.Load() || s.size.Load() != size || !slices.Contains(p.segments(), s) {
		return errCleanAborted
	}
	return corruptionf("%s: cleaner: segment %s position %d: %v", p.tp, s.logPath(), pos, err)
}

// reset points r at another file, keeping its buffer.
func (r *chunkReader) reset(f *os.File, size int64) {
	r.f, r.size, r.bufPos, r.bufLen = f, size, 0, 0
}

func stopped(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// groupSegments splits segs into runs that fit one cleaned segment: at
// most segment.bytes of log, segment.index.bytes of each index, and 2^31-1
// offsets from the group's base (Kafka's groupSegmentsBySize).
func groupSegments(segs []*segment, cfg *Config, upper int64) [][]*segment {
	var groups [][]*segment
	for len(segs) > 0 {
		g := segs[:1]
		size := segs[0].size.Load()
		idx := int64(len(segs[0].offIdx.load())) * offsetEntrySize
		tidx := int64(len(segs[0].timeIdx.load())) * timeEntrySize
		segs = segs[1:]
		for len(segs) > 0 {
			s := segs[0]
			ni := idx + int64(len(s.offIdx.load()))*offsetEntrySize
			nt := tidx + int64(len(s.timeIdx.load()))*timeEntrySize
			last := min(s.next.Load(), upper) - 1
			if size+s.size.Load() > cfg.SegmentBytes || ni > int64(cfg.SegmentIndexBytes) || nt > int64(cfg.SegmentIndexBytes) ||
				last-g[0].base > maxRelOffset {
				break
			}
			size += s.size.Load()
			idx, tidx = ni, nt
			g = g[:len(g)+1]
			segs = segs[1:]
		}
		groups = append(groups, g)
	}
	return groups
}

// groupStats are the counters of one group.
type groupStats struct {
	BatchesRead, BatchesKept, RecordsRead, RecordsKept int64
	BytesRead, BytesWritten, TombstonesGone            int64
}

// cleanGroup rewrites group into one cleaned segment and swaps it in. It
// returns the earliest delete horizon among kept batches holding a
// tombstone or a discardable marker (-1 if none).
func (p *Partition) cleanGroup(group []*segment, om *offsetMap, txs *txnCleanState, nowMs int64, cfg *Config, opts *cleanOptions) (gs groupStats, horizon int64, err error) {
	horizon = -1
	base := group[0].base
	sizes := make([]int64, len(group))
	for i, s := range group {
		sizes[i] = s.size.Load()
	}
	ns, err := createCleanedSegment(p.dir, base)
	if err != nil {
		return gs, horizon, err
	}
	committed := false
	defer func() {
		if err == nil {
			return
		}
		ns.close()
		if !committed && !errors.Is(err, errSimulatedCrash) {
			removeSegmentFiles(p.dir, base, cleanedSuffix)
			removeSegmentFiles(p.dir, base, swapSuffix)
		}
	}()
	w := bufio.NewWriterSize(ns.log, cleanerWriteBuf)
	var (
		pos     int64
		dec     batch.Decoder
		out     []byte
		kept    []batch.Record
		lastMod int64
	)
	interval := int64(cfg.IndexIntervalBytes)
	r := &chunkReader{}
	for gi, s := range group {
		lastMod = max(lastMod, s.lastModMs.Load())
		r.reset(s.log, sizes[gi])
		for rp := int64(0); rp < r.size; {
			if stopped(opts.stop) {
				return gs, horizon, errCleanAborted
			}
			h, n, err := validateAt(r, rp)
			if err != nil {
				return gs, horizon, p.cleanReadErr(s, r.size, rp, err)
			}
			b, err := r.window(rp, n)
			if err != nil {
				return gs, horizon, err
			}
			rp += n
			gs.BatchesRead++
			gs.BytesRead += n
			gs.RecordsRead += int64(h.NumRecords)
			res, err := filterBatch(b, h, &dec, om, txs, nowMs, cfg.DeleteRetentionMs, &out, &kept)
			if err != nil {
				return gs, horizon, fmt.Errorf("%s: cleaner: batch at offset %d: %w", p.tp, h.BaseOffset, err)
			}
			gs.TombstonesGone += int64(res.tombstonesGone)
			if res.out == nil {
				continue
			}
			nh, _ := batch.ParseHeader(res.out)
			if pos+int64(len(res.out)) > math.MaxInt32 {
				return gs, horizon, fmt.Errorf("%s: cleaner: cleaned segment %d over 2 GiB", p.tp, base)
			}
			if _, err := w.Write(res.out); err != nil {
				return gs, horizon, err
			}
			ns.observe(pos, nh, interval)
			ns.next.Store(nh.NextOffset())
			pos += int64(len(res.out))
			gs.BatchesKept++
			gs.RecordsKept += int64(nh.NumRecords)
			if res.horizon >= 0 && (horizon < 0 || res.horizon < horizon) {
				horizon = res.horizon
			}
		}
	}
	if err := w.Flush(); err != nil {
		return gs, horizon, err
	}
	gs.BytesWritten = pos
	ns.size.Store(pos)
	ns.syncedSize = pos
	ns.maybeAddTimeEntry()
	ns.sealed.Store(true)
	ns.lastModMs.Store(lastMod)
	if err := ns.rewriteIndexes(); err != nil {
		return gs, horizon, err
	}
	for _, f := range []*os.File{ns.log, ns.indexFile, ns.timeFile} {
		if err := fdatasync(f); err != nil {
			return gs, horizon, err
		}
	}
	ns.indexSynced = true
	ns.dirSynced = true
	committed, err = p.swapIn(group, sizes, ns, opts)
	return gs, horizon, err
}
