package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/log/batch"
)

// Follower side of replication (Kafka's ReplicaFetcherThread and
// AbstractFetcherThread): one Fetcher per leader broker fetches every
// partition this broker follows from it. See DESIGN.md, "Follower".

// FollowerLog is what a fetcher uses of a follower's log (*log.Partition).
type FollowerLog interface {
	LogStartOffset() int64
	LogEndOffset() int64
	DurableOffset() int64
	HighWatermark() int64
	SetHighWatermark(hw int64) int64
	LatestEpoch() (int32, bool)
	EndOffsetForEpoch(epoch int32) (int32, int64)
	AppendAsFollower(batches []byte) (log.AppendResult, error)
	TruncateTo(offset int64) error
	TruncateFullyAndStartAt(offset int64) error
	DeleteRecordsBefore(offset int64) (int64, error)
	WaitDurable(ctx context.Context, offset int64) error
}

// FollowerPartition is a partition this broker follows at a leader epoch.
type FollowerPartition struct {
	Topic       string
	TopicID     [16]byte
	Partition   int32
	LeaderEpoch int32
	Log         FollowerLog
	// WriteCaching mirrors the log's config; without it (durable mode) the
	// fetcher fetches offset N only once its log is durable below N.
	WriteCaching bool
	// OnChange is called (on the fetcher's goroutine, outside its lock)
	// after records were appended or the high watermark moved, e.g. to
	// wake parked consumer fetches; may be nil.
	OnChange func()
}

type followState int

const (
	stateTruncating followState = iota // ask OffsetForLeaderEpoch first
	stateFetching
	stateFenced // FENCED_LEADER_EPOCH: wait for a newer leader epoch (Add)
)

func (s followState) String() string {
	switch s {
	case stateTruncating:
		return "truncating"
	case stateFetching:
		return "fetching"
	case stateFenced:
		return "fenced"
	}
	return "?"
}

type tpKey struct {
	topic string
	part  int32
}

type followPart struct {
	FollowerPartition
	state      followState
	gen        uint64
	delayUntil time.Time
	backoff    time.Duration
	logger     *slog.Logger
}

// Fetcher fetches from one leader broker. Its goroutine runs from
// NewFetcher to Close.
type Fetcher struct {
	cfg      Config
	leaderID int32
	client   LeaderClient
	logger   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	// mu guards parts and is held while a response is applied to the
	// logs, so after Remove returns the fetcher no longer touches the
	// partition's log.
	mu      sync.Mutex
	parts   map[tpKey]*followPart
	nextGen uint64
}

// NewFetcher starts a fetcher for leader broker leaderID.
func NewFetcher(cfg Config, leaderID int32, client LeaderClient) *Fetcher {
	cfg = cfg.WithDefaults()
	f := &Fetcher{cfg: cfg, leaderID: leaderID, client: client,
		logger: cfg.Logger.With("leader", leaderID),
		wake:   make(chan struct{}, 1), parts: map[tpKey]*followPart{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.run()
	}()
	return f
}

// Add starts following a partition (or restarts it at a new leader epoch):
// it first truncates by OffsetForLeaderEpoch, then fetches from its log end.
// Adding a partition already followed at the same leader epoch with the
// same log changes nothing.
func (f *Fetcher) Add(fp FollowerPartition) {
	f.mu.Lock()
	if cur := f.parts[tpKey{fp.Topic, fp.Partition}]; cur != nil && cur.Log == fp.Log &&
		cur.LeaderEpoch == fp.LeaderEpoch && cur.state != stateFenced {
		// Same leadership (e.g. only the ISR changed): keep fetching.
		cur.OnChange = fp.OnChange
		f.mu.Unlock()
		return
	}
	f.nextGen++
	p := &followPart{FollowerPartition: fp, state: stateTruncating, gen: f.nextGen,
		logger: f.logger.With("topic", fp.Topic, "partition", fp.Partition)}
	f.parts[tpKey{fp.Topic, fp.Partition}] = p
	f.mu.Unlock()
	p.logger.Info("following", "leader_epoch", fp.LeaderEpoch, "log_end", fp.Log.LogEndOffset())
	f.kick()
}

// Remove stops following a partition. When it returns, the fetcher no
// longer touches the partition's log. It reports whether the partition was
// followed.
func (f *Fetcher) Remove(topic string, partition int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := tpKey{topic, partition}
	_, ok := f.parts[k]
	delete(f.parts, k)
	return ok
}

// Len is the number of partitions followed.
func (f *Fetcher) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parts)
}

// State reports a followed partition's state ("truncating", "fetching",
// "fenced"); ok is false if it is not followed.
func (f *Fetcher) State(topic string, partition int32) (state string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.parts[tpKey{topic, partition}]
	if !ok {
		return "", false
	}
	return p.state.String(), true
}

// Close stops the fetcher and waits for its goroutine.
func (f *Fetcher) Close() {
	f.cancel()
	f.wg.Wait()
}

func (f *Fetcher) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Fetcher) run() {
	backoff := time.Duration(0)
	for f.ctx.Err() == nil {
		if f.waitDurable() {
			continue
		}
		trunc, fetch, next := f.plan()
		if len(trunc) == 0 && len(fetch) == 0 {
			f.sleep(next)
			continue
		}
		ok := true
		if len(trunc) > 0 {
			ok = f.truncate(trunc)
		}
		if len(fetch) > 0 && ok {
			ok = f.fetch(fetch)
		}
		if ok {
			backoff = 0
			continue
		}
		backoff = nextBackoff(backoff, f.cfg.FetchBackoff, f.cfg.FetchBackoffMax)
		f.sleep(f.cfg.Clock.Now().Add(backoff))
	}
}

func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	if cur == 0 {
		return lo
	}
	return min(2*cur, hi)
}

// sleep waits until t (zero: until kicked), a kick or Close.
func (f *Fetcher) sleep(t time.Time) {
	var tc <-chan time.Time
	if !t.IsZero() {
		d := t.Sub(f.cfg.Clock.Now())
		if d <= 0 {
			return
		}
		tm := time.NewTimer(d)
		defer tm.Stop()
		tc = tm.C
	}
	select {
	case <-f.ctx.Done():
	case <-f.wake:
	case <-tc:
	}
}

// waitDurable waits, outside the lock, until every durable-mode log is
// durable up to its end, so that the next fetch offset is a durable
// offset. It reports whether it waited (the caller plans afresh).
func (f *Fetcher) waitDurable() bool {
	type pending struct {
		p   *followPart
		leo int64
	}
	var ws []pending
	now := f.cfg.Clock.Now()
	f.mu.Lock()
	for _, p := range f.parts {
		if p.WriteCaching || p.state == stateFenced || now.Before(p.delayUntil) {
			continue
		}
		if leo := p.Log.LogEndOffset(); p.Log.DurableOffset() < leo {
			ws = append(ws, pending{p, leo})
		}
	}
	f.mu.Unlock()
	for _, w := range ws {
		if err := w.p.Log.WaitDurable(f.ctx, w.leo-1); err != nil && f.ctx.Err() == nil {
			w.p.logger.Error("follower log not durable", "err", err)
			f.mu.Lock()
			f.delayLocked(w.p)
			f.mu.Unlock()
		}
	}
	return len(ws) > 0
}

type planned struct {
	p   *followPart
	gen uint64
}

// plan builds the next requests: OffsetForLeaderEpoch for truncating
// partitions, Fetch for fetching ones; next is the earliest time a delayed
// partition becomes ready (zero if none).
func (f *Fetcher) plan() (trunc, fetch map[tpKey]planned, next time.Time) {
	now := f.cfg.Clock.Now()
	trunc, fetch = map[tpKey]planned{}, map[tpKey]planned{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, p := range f.parts {
		if p.state == stateFenced {
			continue
		}
		if now.Before(p.delayUntil) {
			if next.IsZero() || p.delayUntil.Before(next) {
				next = p.delayUntil
			}
			continue
		}
		if !p.WriteCaching && p.Log.DurableOffset() < p.Log.LogEndOffset() {
			continue // waitDurable's next round
		}
		if p.state == stateTruncating {
			if _, ok := p.Log.LatestEpoch(); !ok {
				// No epochs (never replicated, or a pre-epoch log):
				// truncate to the high watermark, as Kafka does.
				f.truncateLocked(p, p.Log.HighWatermark(), "no leader epoch in the log")
				p.state = stateFetching
			} else {
				trunc[k] = planned{p, p.gen}
				continue
			}
		}
		fetch[k] = planned{p, p.gen}
	}
	return trunc, fetch, next
}

// current returns the partition if it is still the one planned.
func (f *Fetcher) currentLocked(k tpKey, pl planned) *followPart {
	p := f.parts[k]
	if p == nil || p != pl.p || p.gen != pl.gen {
		return nil
	}
	return p
}

func (f *Fetcher) delayLocked(p *followPart) {
	p.backoff = nextBackoff(p.backoff, f.cfg.FetchBackoff, f.cfg.FetchBackoffMax)
	p.delayUntil = f.cfg.Clock.Now().Add(p.backoff)
}

func (f *Fetcher) truncateLocked(p *followPart, offset int64, why string) bool {
	leo := p.Log.LogEndOffset()
	if offset > leo {
		return true
	}
	// Even at the log end: the log drops epoch entries starting there (an
	// epoch this replica led without appending, unknown to the leader),
	// or the next fetch reports the same divergence forever.
	if err := p.Log.TruncateTo(offset); err != nil {
		p.logger.Error("truncation failed", "offset", offset, "err", err)
		f.delayLocked(p)
		return false
	}
	if offset < leo {
		p.logger.Info("truncated", "from", leo, "to", p.Log.LogEndOffset(), "reason", why)
	}
	return true
}

// truncate sends OffsetForLeaderEpoch for the truncating partitions and
// truncates each to the decided offset.
func (f *Fetcher) truncate(parts map[tpKey]planned) bool {
	req := &EpochRequest{ReplicaID: f.cfg.NodeID}
	for k, pl := range parts {
		ep, _ := pl.p.Log.LatestEpoch()
		req.Partitions = append(req.Partitions, EpochPartition{Topic: k.topic, Partition: k.part,
			CurrentLeaderEpoch: pl.p.LeaderEpoch, LeaderEpoch: ep})
	}
	resp, err := f.client.OffsetForLeaderEpoch(f.ctx, req)
	if err != nil {
		if f.ctx.Err() == nil {
			f.logger.Warn("OffsetForLeaderEpoch failed", "err", err)
		}
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range resp.Partitions {
		k := tpKey{a.Topic, a.Partition}
		pl, ok := parts[k]
		if !ok {
			continue
		}
		p := f.currentLocked(k, pl)
		if p == nil || p.state != stateTruncating {
			continue
		}
		if a.Err != nil {
			f.partitionErrorLocked(p, a.Err)
			continue
		}
		off, done := truncationTarget(p.Log.LogEndOffset(), p.Log.EndOffsetForEpoch, a.EpochEndOffset)
		if !f.truncateLocked(p, off, "OffsetForLeaderEpoch") {
			continue
		}
		if done {
			p.state = stateFetching
			p.backoff = 0
		}
	}
	return true
}

// partitionErrorLocked handles a partition error from the leader.
func (f *Fetcher) partitionErrorLocked(p *followPart, err error) {
	switch {
	case errors.Is(err, kerr.FencedLeaderEpoch):
		// The leader is at a newer epoch than we know: wait for the
		// metadata (Add at the new epoch).
		p.logger.Info("fenced by the leader; waiting for new metadata", "leader_epoch", p.LeaderEpoch)
		p.state = stateFenced
	default:
		// UNKNOWN_LEADER_EPOCH (the leader has not seen the new epoch
		// yet), NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
		// storage errors: back off and retry.
		p.logger.Debug("fetch error; backing off", "err", err)
		f.delayLocked(p)
	}
}

// fetch sends one Fetch for the fetching partitions and applies the answer.
func (f *Fetcher) fetch(parts map[tpKey]planned) bool {
	req := &FetchRequest{ReplicaID: f.cfg.NodeID, BrokerEpoch: f.cfg.BrokerEpoch(),
		MaxWait: f.cfg.FetchMaxWait, MinBytes: f.cfg.FetchMinBytes, MaxBytes: f.cfg.FetchMaxBytes}
	offsets := map[tpKey]int64{}
	for k, pl := range parts {
		lg := pl.p.Log
		last := int32(-1)
		if ep, ok := lg.LatestEpoch(); ok {
			last = ep
		}
		leo := lg.LogEndOffset()
		offsets[k] = leo
		req.Partitions = append(req.Partitions, FetchPartition{Topic: k.topic, TopicID: pl.p.TopicID, Partition: k.part,
			CurrentLeaderEpoch: pl.p.LeaderEpoch, FetchOffset: leo, LastFetchedEpoch: last,
			LogStartOffset: lg.LogStartOffset(), MaxBytes: f.cfg.FetchPartitionMaxBytes})
	}
	resp, err := f.client.Fetch(f.ctx, req)
	if err != nil {
		if f.ctx.Err() == nil {
			f.logger.Warn("fetch failed", "err", err)
		}
		return false
	}
	var changed []func()
	f.mu.Lock()
	for i := range resp.Partitions {
		fp := &resp.Partitions[i]
		k := tpKey{fp.Topic, fp.Partition}
		pl, ok := parts[k]
		if !ok {
			continue
		}
		p := f.currentLocked(k, pl)
		if p == nil || p.state != stateFetching || p.Log.LogEndOffset() != offsets[k] {
			continue
		}
		if f.applyLocked(p, fp, offsets[k]) && p.OnChange != nil {
			changed = append(changed, p.OnChange)
		}
	}
	f.mu.Unlock()
	for _, fn := range changed {
		fn()
	}
	return true
}

// applyLocked applies one partition of a fetch response (Kafka's
// processPartitionData and error handling). It reports whether the log or
// its high watermark changed.
func (f *Fetcher) applyLocked(p *followPart, fp *FetchedPartition, fetchOffset int64) bool {
	lg := p.Log
	switch {
	case errors.Is(fp.Err, kerr.OffsetOutOfRange):
		if fp.LogStartOffset >= 0 && fetchOffset < fp.LogStartOffset {
			if err := lg.TruncateFullyAndStartAt(fp.LogStartOffset); err != nil {
				p.logger.Error("full truncation failed", "offset", fp.LogStartOffset, "err", err)
				f.delayLocked(p)
				return false
			}
			p.logger.Info("fetch offset below the leader's log start; restarted the log", "from", fetchOffset, "log_start", fp.LogStartOffset)
			return true
		}
		// Above the leader's log end (its log is shorter: unclean
		// election) or an unknown last epoch: find the divergence.
		p.logger.Info("fetch offset out of range; truncating by leader epoch", "fetch_offset", fetchOffset)
		p.state = stateTruncating
		return false
	case fp.Err != nil:
		f.partitionErrorLocked(p, fp.Err)
		return false
	case fp.Diverging != nil:
		off, done := truncationTarget(lg.LogEndOffset(), lg.EndOffsetForEpoch, *fp.Diverging)
		if !f.truncateLocked(p, off, "diverging epoch") {
			return false
		}
		if !done {
			p.state = stateTruncating
		}
		return true
	}
	changed := false
	if recs := wholeBatches(fp.Records); len(recs) > 0 {
		if _, err := lg.AppendAsFollower(recs); err != nil {
			p.logger.Error("follower append failed", "fetch_offset", fetchOffset, "err", err)
			p.state = stateTruncating
			f.delayLocked(p)
			return false
		}
		changed = true
	}
	oldHW := lg.HighWatermark()
	if fp.HighWatermark >= 0 && lg.SetHighWatermark(fp.HighWatermark) != oldHW {
		changed = true
	}
	if fp.LogStartOffset > lg.LogStartOffset() {
		if _, err := lg.DeleteRecordsBefore(min(fp.LogStartOffset, lg.HighWatermark())); err != nil {
			p.logger.Warn("following the leader's log start failed", "log_start", fp.LogStartOffset, "err", err)
		}
	}
	p.backoff = 0
	return changed
}

// wholeBatches returns the prefix of b made of whole record batches: a
// leader may cut the last batch at the byte limit (Kafka does).
func wholeBatches(b []byte) []byte {
	n := 0
	for len(b)-n >= batch.LogOverhead {
		size := batch.LogOverhead + int(int32(binary.BigEndian.Uint32(b[n+8:])))
		if size < batch.LogOverhead || len(b)-n < size {
			break
		}
		n += size
	}
	return b[:n]
}
