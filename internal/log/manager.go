package log

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Manager owns every partition log under one data directory: opening and
// recovery, the clean-shutdown marker, background retention, compaction and
// flushing.
//
// Goroutines: one flusher per open partition, plus the retention loop, the
// flush scheduler (flush.ms and checkpoints), the deleter (delayed file
// removal) and the log cleaner (cleaner.go). All are started by the Manager
// and waited for by Close.
type Manager struct {
	cfg      ManagerConfig
	logger   *slog.Logger
	wasClean bool

	mu struct {
		sync.Mutex
		parts  map[TopicPartition]*Partition
		clean  map[TopicPartition]bool // partitions closed in this process: cleanly?
		closed bool
	}

	// ckMu serializes checkpoint writes and guards the maps below, which
	// also hold entries of partitions that are on disk but not open.
	ckMu           sync.Mutex
	recoveryPoints offsetCheckpoint
	logStarts      offsetCheckpoint
	// highWatermarks holds the partitions whose high watermark replication
	// sets (highwatermark.go); hwFile says the file exists (it is not
	// written while no partition ever had one).
	highWatermarks offsetCheckpoint
	hwFile         bool
	hwLast         []byte // contents last written by this process

	del struct {
		sync.Mutex
		items []pendingDelete
	}
	delKick chan struct{}

	bgWG    sync.WaitGroup // background loops (retention, scheduler, deleter, cleaner)
	flushWG sync.WaitGroup // partition flushers
	stop    chan struct{}
}

type pendingDelete struct {
	due time.Time
	fn  func()
}

// OpenManager opens (creating if needed) the data directory. It does not
// open partitions; the broker opens those it owns with Open.
func OpenManager(cfg ManagerConfig) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:     cfg,
		logger:  cfg.Logger.With("component", "log", "dir", cfg.Dir),
		delKick: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	m.mu.parts = make(map[TopicPartition]*Partition)
	m.mu.clean = make(map[TopicPartition]bool)

	marker := filepath.Join(cfg.Dir, cleanShutdownFile)
	if _, err := os.Stat(marker); err == nil {
		m.wasClean = true
		// Remove the marker now: a crash from here on must not look clean.
		if err := os.Remove(marker); err != nil {
			return nil, err
		}
		if err := syncDir(cfg.Dir); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), deleteDirSuffix) {
			if err := os.RemoveAll(filepath.Join(cfg.Dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	m.recoveryPoints = m.loadCheckpoint(recoveryPointFile)
	m.logStarts = m.loadCheckpoint(logStartFile)
	m.highWatermarks = m.loadCheckpoint(highWatermarkFile)
	if _, err := os.Stat(filepath.Join(cfg.Dir, highWatermarkFile)); err == nil {
		m.hwFile = true
	}
	m.logger.Info("opened log manager", "clean_shutdown", m.wasClean)

	m.goFunc(&m.bgWG, "log-retention", m.retentionLoop)
	m.goFunc(&m.bgWG, "log-flush-scheduler", m.flushSchedulerLoop)
	m.goFunc(&m.bgWG, "log-deleter", m.deleterLoop)
	m.goFunc(&m.bgWG, "log-cleaner", m.runCleaner)
	m.goFunc(&m.bgWG, "log-producer-expiry", m.producerExpiryLoop)
	return m, nil
}

func (m *Manager) loadCheckpoint(name string) offsetCheckpoint {
	c, err := loadOffsetCheckpoint(filepath.Join(m.cfg.Dir, name))
	if err != nil {
		// Without it, recovery scans everything and the log start falls
		// back to the first segment: safe, just slower or less tidy.
		m.logger.Warn("ignoring unreadable checkpoint", "file", name, "err", err)
	}
	return c
}

// goFunc starts a goroutine owned by the Manager (waited for by Close).
func (m *Manager) goFunc(wg *sync.WaitGroup, name string, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		pprof.Do(context.Background(), pprof.Labels("goroutine", name), func(context.Context) { fn() })
	}()
}

// WasCleanShutdown reports whether the previous process left the
// clean-shutdown marker (and so whether partitions were opened without a scan).
func (m *Manager) WasCleanShutdown() bool { return m.wasClean }

// Dir is the data directory.
func (m *Manager) Dir() string { return m.cfg.Dir }

// parseDirName splits "<topic>-<partition>".
func parseDirName(name string) (TopicPartition, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return TopicPartition{}, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != name[i+1:] {
		return TopicPartition{}, false
	}
	return TopicPartition{Topic: name[:i], Partition: int32(p)}, true
}

// OnDisk lists the partition directories present in the data directory.
func (m *Manager) OnDisk() ([]TopicPartition, error) {
	ents, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var out []TopicPartition
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), deleteDirSuffix) {
			continue
		}
		if tp, ok := parseDirName(e.Name()); ok {
			out = append(out, tp)
		}
	}
	return out, nil
}

func validTopic(t string) bool {
	return t != "" && t != "." && t != ".." && len(t) <= 249 && !strings.ContainsAny(t, "/\\ \n\x00")
}

// Open opens or creates the log of one partition, recovering it if the
// last shutdown was unclean. Opening an already-open partition returns it.
func (m *Manager) Open(topic string, partition int32, cfg Config) (*Partition, error) {
	tp := TopicPartition{Topic: topic, Partition: partition}
	if !validTopic(topic) || partition < 0 {
		return nil, fmt.Errorf("%w: partition name %q", ErrInvalidConfig, tp.String())
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", tp, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	if p, ok := m.mu.parts[tp]; ok {
		return p, nil
	}
	dir := filepath.Join(m.cfg.Dir, tp.String())
	clean := m.wasClean
	if c, ok := m.mu.clean[tp]; ok {
		clean = c
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		if err := syncDir(m.cfg.Dir); err != nil {
			return nil, err
		}
		clean = true
	} else if err != nil {
		return nil, err
	}
	c := cfg.WithDefaults()
	p := &Partition{
		tp:        tp,
		dir:       dir,
		m:         m,
		logger:    m.logger.With("topic", topic, "partition", partition),
		now:       m.cfg.Now,
		hooks:     m.cfg.hooks,
		flushKick: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		producers: producerStates{},
	}
	p.cfg.Store(&c)
	p.hw.Store(-1)
	ch := make(chan struct{})
	p.durableCh.Store(&ch)
	epochs, err := loadEpochCache(dir)
	if err != nil {
		p.logger.Warn("ignoring unreadable leader-epoch checkpoint", "err", err)
	}
	p.epochs = epochs

	m.ckMu.Lock()
	rp, ok := m.recoveryPoints[tp]
	if !ok {
		rp = -1
	}
	ls, ok := m.logStarts[tp]
	if !ok {
		ls = -1
	}
	hw, ok := m.highWatermarks[tp]
	if !ok {
		hw = -1
	}
	m.ckMu.Unlock()
	start := time.Now()
	if err := p.load(clean, rp, ls); err != nil {
		m.mu.clean[tp] = false
		return nil, fmt.Errorf("log: open %s: %w", tp, err)
	}
	p.restoreHighWatermark(hw)
	p.lastFlushMs.Store(p.now().UnixMilli())
	p.logger.Debug("opened partition", "clean", clean, "log_start", p.LogStartOffset(), "log_end", p.LogEndOffset(),
		"segments", p.NumSegments(), "took", time.Since(start))
	m.mu.parts[tp] = p
	delete(m.mu.clean, tp)
	m.goFunc(&m.flushWG, "log-flusher", p.flushLoop)
	return p, nil
}

// Partition returns an open partition log.
func (m *Manager) Partition(topic string, partition int32) (*Partition, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.mu.parts[TopicPartition{Topic: topic, Partition: partition}]
	return p, ok
}

// Partitions returns every open partition.
func (m *Manager) Partitions() []*Partition {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Partition, 0, len(m.mu.parts))
	for _, p := range m.mu.parts {
		out = append(out, p)
	}
	return out
}

// closePartition closes p and records whether it closed cleanly.
func (m *Manager) closePartition(p *Partition) error {
	err := m.closeAndRecord(p)
	if cerr := m.writeCheckpoints(); err == nil {
		err = cerr
	}
	return err
}

// closeAndRecord closes p, forgets it, and records its checkpoints and
// whether it closed cleanly (for the clean-shutdown marker).
func (m *Manager) closeAndRecord(p *Partition) error {
	err := p.close()
	m.mu.Lock()
	if m.mu.parts[p.tp] == p {
		delete(m.mu.parts, p.tp)
		m.mu.clean[p.tp] = err == nil
	}
	m.mu.Unlock()
	m.ckMu.Lock()
	m.recordLocked(p)
	m.ckMu.Unlock()
	return err
}

// Remove closes a partition and deletes its directory. The directory is
// renamed to "<topic>-<partition>.<random>-delete" at once; its files stay
// open (for Regions already handed out) and are removed after
// file.delete.delay.ms.
func (m *Manager) Remove(topic string, partition int32) error {
	tp := TopicPartition{Topic: topic, Partition: partition}
	m.mu.Lock()
	p := m.mu.parts[tp]
	delete(m.mu.parts, tp)
	delete(m.mu.clean, tp)
	m.mu.Unlock()
	delay := time.Duration(DefaultFileDeleteDelayMs) * time.Millisecond
	var segs []*segment
	if p != nil {
		delay = time.Duration(p.config().FileDeleteDelayMs) * time.Millisecond
		segs = p.shutdown()
	}
	dir := filepath.Join(m.cfg.Dir, tp.String())
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	trash := dir + "." + hex.EncodeToString(rnd[:]) + deleteDirSuffix
	if err := os.Rename(dir, trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	m.ckMu.Lock()
	delete(m.recoveryPoints, tp)
	delete(m.logStarts, tp)
	delete(m.highWatermarks, tp)
	m.ckMu.Unlock()
	if err := syncDir(m.cfg.Dir); err != nil {
		return err
	}
	m.scheduleDelete(delay, func() {
		for _, s := range segs {
			if err := s.close(); err != nil {
				m.logger.Warn("closing removed segment", "segment", s.logPath(), "err", err)
			}
		}
		if err := os.RemoveAll(trash); err != nil {
			m.logger.Warn("removing partition directory", "dir", trash, "err", err)
		}
	})
	m.logger.Info("removed partition", "topic", topic, "partition", partition)
	return m.writeCheckpoints()
}

// shutdown stops the partition without flushing or closing its files (they
// are about to be deleted) and returns its segments.
func (p *Partition) shutdown() []*segment {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if !p.closed.Swap(true) {
		close(p.stop)
		<-p.done
	}
	p.notifyDurable()
	return p.segments()
}

// Close flushes and closes every partition, stops background work, and
// writes the clean-shutdown marker (only if every partition closed cleanly).
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.mu.closed = true
	parts := make([]*Partition, 0, len(m.mu.parts))
	for _, p := range m.mu.parts {
		parts = append(parts, p)
	}
	m.mu.Unlock()
	close(m.stop)
	m.bgWG.Wait()

	var errs []error
	for _, p := range parts {
		if err := m.closeAndRecord(p); err != nil {
			errs = append(errs, err)
		}
	}
	m.flushWG.Wait()
	m.runDeletes(true)
	if err := m.writeCheckpoints(); err != nil {
		errs = append(errs, err)
	}
	m.mu.Lock()
	allClean := true
	for _, c := range m.mu.clean {
		allClean = allClean && c
	}
	m.mu.Unlock()
	if len(errs) == 0 && allClean {
		if err := writeFileAtomic(filepath.Join(m.cfg.Dir, cleanShutdownFile), nil); err != nil {
			errs = append(errs, err)
		}
	}
	m.logger.Info("closed log manager", "clean", len(errs) == 0 && allClean)
	return errors.Join(errs...)
}

// writeCheckpoints writes the recovery-point, log-start-offset and
// high-watermark checkpoints of every partition (open ones from their
// current state).
func (m *Manager) writeCheckpoints() error {
	parts := m.Partitions()
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	for _, p := range parts {
		m.recordLocked(p)
	}
	return m.writeCheckpointFilesLocked()
}

// checkpointPartition records p's offsets and writes the checkpoint files
// (after a truncation moved them back). It takes only ckMu, so a caller
// may hold p.appendMu (lock order appendMu -> ckMu; ckMu holders take no
// partition lock).
func (m *Manager) checkpointPartition(p *Partition) error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	m.recordLocked(p)
	return m.writeCheckpointFilesLocked()
}

// recordLocked copies p's checkpointed offsets into the maps. Caller holds
// ckMu.
func (m *Manager) recordLocked(p *Partition) {
	m.recoveryPoints[p.tp] = p.RecoveryPoint()
	m.logStarts[p.tp] = p.LogStartOffset()
	if hw, ok := p.replicatedHighWatermark(); ok {
		m.highWatermarks[p.tp] = hw
	} else {
		delete(m.highWatermarks, p.tp)
	}
}

func (m *Manager) writeCheckpointFilesLocked() error {
	if err := writeFileAtomic(filepath.Join(m.cfg.Dir, recoveryPointFile), m.recoveryPoints.encode()); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(m.cfg.Dir, logStartFile), m.logStarts.encode()); err != nil {
		return err
	}
	return m.writeHighWatermarkFileLocked()
}

// writeHighWatermarks checkpoints the high watermarks of the open
// partitions (every HighWatermarkCheckpointInterval).
func (m *Manager) writeHighWatermarks() error {
	parts := m.Partitions()
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	for _, p := range parts {
		if hw, ok := p.replicatedHighWatermark(); ok {
			m.highWatermarks[p.tp] = hw
		}
	}
	return m.writeHighWatermarkFileLocked()
}

// writeHighWatermarkFileLocked writes replication-offset-checkpoint unless
// no partition ever had a replicated high watermark or nothing changed
// since the last write. Caller holds ckMu.
func (m *Manager) writeHighWatermarkFileLocked() error {
	if len(m.highWatermarks) == 0 && !m.hwFile {
		return nil
	}
	b := m.highWatermarks.encode()
	if m.hwLast != nil && bytes.Equal(b, m.hwLast) {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(m.cfg.Dir, highWatermarkFile), b); err != nil {
		return err
	}
	m.hwFile, m.hwLast = true, b
	return nil
}

// scheduleDelete runs fn after delay in the deleter goroutine (or at Close).
func (m *Manager) scheduleDelete(delay time.Duration, fn func()) {
	m.del.Lock()
	m.del.items = append(m.del.items, pendingDelete{due: time.Now().Add(delay), fn: fn})
	m.del.Unlock()
	select {
	case m.delKick <- struct{}{}:
	default:
	}
}

// runDeletes runs the due deletions (all of them with all set) and returns
// the time of the next one (zero if none).
func (m *Manager) runDeletes(all bool) time.Time {
	now := time.Now()
	m.del.Lock()
	var due []pendingDelete
	var next time.Time
	keep := m.del.items[:0]
	for _, it := range m.del.items {
		if all || !it.due.After(now) {
			due = append(due, it)
			continue
		}
		keep = append(keep, it)
		if next.IsZero() || it.due.Before(next) {
			next = it.due
		}
	}
	m.del.items = keep
	m.del.Unlock()
	for _, it := range due {
		it.fn()
	}
	return next
}

func (m *Manager) deleterLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.runDeletes(false)
		d := time.Hour
		if !next.IsZero() {
			d = max(time.Until(next), 0)
		}
		timer.Reset(d)
		select {
		case <-m.stop:
			return
		case <-m.delKick:
		case <-timer.C:
		}
	}
}

func (m *Manager) retentionLoop() { m.every(m.cfg.RetentionCheckInterval, m.RunRetention) }

func (m *Manager) producerExpiryLoop() {
	m.every(m.cfg.ProducerIDExpirationCheckInterval, m.ExpireProducers)
}

// ExpireProducers forgets, in every open partition, the producers idle for
// producer.id.expiration.ms (the expiry loop does this every
// ProducerIDExpirationCheckInterval).
func (m *Manager) ExpireProducers() {
	for _, p := range m.Partitions() {
		p.ExpireProducers()
	}
}

// every runs fn each interval until m.stop closes.
func (m *Manager) every(interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		fn()
	}
}

// RunRetention applies retention to every open partition now (the
// retention loop does this every RetentionCheckInterval).
func (m *Manager) RunRetention() {
	for _, p := range m.Partitions() {
		if _, err := p.ApplyRetention(); err != nil && !errors.Is(err, ErrClosed) {
			p.logger.Warn("retention failed", "err", err)
		}
	}
}

// flushSchedulerLoop kicks the flushers of write-caching partitions whose
// flush.ms has passed, and writes the checkpoints periodically.
func (m *Manager) flushSchedulerLoop() {
	flushT := time.NewTicker(m.cfg.FlushCheckInterval)
	defer flushT.Stop()
	ckT := time.NewTicker(m.cfg.CheckpointInterval)
	defer ckT.Stop()
	hwT := time.NewTicker(m.cfg.HighWatermarkCheckpointInterval)
	defer hwT.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-flushT.C:
			nowMs := m.cfg.Now().UnixMilli()
			for _, p := range m.Partitions() {
				cfg := p.config()
				if cfg.WriteCaching && p.logEnd.Load() > p.durable.Load() && nowMs-p.lastFlushMs.Load() >= cfg.FlushMs {
					p.kickFlusher()
				}
			}
		case <-ckT.C:
			if err := m.writeCheckpoints(); err != nil {
				m.logger.Warn("writing checkpoints", "err", err)
			}
		case <-hwT.C:
			if err := m.writeHighWatermarks(); err != nil {
				m.logger.Warn("writing high-watermark checkpoint", "err", err)
			}
		}
	}
}

// abandon stops the Manager's goroutines and closes its files without
// flushing or writing anything: the on-disk state is what a crash would
// leave. For tests.
func (m *Manager) abandon() {
	m.mu.Lock()
	m.mu.closed = true
	parts := make([]*Partition, 0, len(m.mu.parts))
	for _, p := range m.mu.parts {
		parts = append(parts, p)
	}
	m.mu.Unlock()
	close(m.stop)
	m.bgWG.Wait()
	for _, p := range parts {
		for _, s := range p.shutdown() {
			s.close()
		}
	}
	m.flushWG.Wait()
	m.runDeletes(true)
}
