package replica

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/metadata"
)

// Leader side of replication (Kafka's Partition.scala and Replica.scala as
// far as the leader goes). See DESIGN.md, "Leader".

// LeaderLog is what the leader uses of its partition log (*log.Partition).
type LeaderLog interface {
	LogStartOffset() int64
	LogEndOffset() int64
	DurableOffset() int64
	HighWatermark() int64
	SetHighWatermark(hw int64) int64
	AssignEpochStart(epoch int32, offset int64) error
	EndOffsetForEpoch(epoch int32) (int32, int64)
	WaitDurable(ctx context.Context, offset int64) error
}

// ISRProposer sends AlterPartition to the controller (*metadata.Store
// through a small adapter, see DESIGN.md). Errors wrap kerr codes.
type ISRProposer interface {
	AlterPartition(ctx context.Context, req metadata.AlterPartitionRequest) (metadata.Partition, error)
	// Partition re-reads the committed partition state after
	// INVALID_UPDATE_VERSION; ok is false if the partition is gone.
	Partition(topic string, partition int32) (metadata.Partition, bool)
}

// PartitionState is a partition's leadership as metadata records it.
type PartitionState struct {
	Topic          string
	TopicID        [16]byte
	Partition      int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
}

// StateFromMetadata builds a PartitionState from a metadata partition.
func StateFromMetadata(topic string, topicID [16]byte, p metadata.Partition) PartitionState {
	return PartitionState{Topic: topic, TopicID: topicID, Partition: p.ID, Leader: p.Leader,
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
		Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR)}
}

// LeaderConfig is one partition's leadership.
type LeaderConfig struct {
	State    PartitionState // Leader must be Config.NodeID
	Log      LeaderLog
	Proposer ISRProposer
	// BrokerEpoch is sent in AlterPartition; 0 = Config.BrokerEpoch() at
	// each proposal (so a re-registration is picked up).
	BrokerEpoch int64
	// MinInsyncReplicas is the topic's min.insync.replicas; default 1.
	MinInsyncReplicas int
	// WriteCaching mirrors the log's config: with it, the leader's log end
	// (not its durable offset) counts toward the high watermark.
	WriteCaching bool
	// Eligible reports whether a broker may join the ISR (registered,
	// unfenced, not shutting down: metadata Broker.Live); nil = all.
	Eligible func(brokerID int32) bool
	// OnHighWatermark is called (outside the leader's lock) after the high
	// watermark advanced, e.g. to wake parked consumer fetches; may be nil.
	OnHighWatermark func(hw int64)
}

// followerState is the leader's view of one follower (Kafka's
// Replica.ReplicaState). Offsets are -1 while unknown.
type followerState struct {
	leo                int64 // fetch offset of its last fetch
	logStart           int64
	lastFetchLeaderLEO int64 // the leader's log end at its previous fetch
	lastFetchTime      time.Time
	lastCaughtUpTime   time.Time
	brokerEpoch        int64
	unclean            bool // restarted unclean: out of the ISR until it reaches the leader's log end
}

// FollowerSnapshot is one follower as the leader sees it.
type FollowerSnapshot struct {
	ReplicaID        int32
	LogEndOffset     int64
	LastCaughtUpTime time.Time
	InISR            bool
	Unclean          bool
}

// LeaderSnapshot is the leader's state, for metrics and tests.
type LeaderSnapshot struct {
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32 // committed ISR
	MaximalISR     []int32 // ISR plus a pending change (used for the high watermark)
	Pending        bool    // an AlterPartition is in flight
	HighWatermark  int64
	Leading        bool
	Followers      []FollowerSnapshot
}

type waiter struct {
	required int64 // high watermark that completes it: last offset + 1
	ch       chan error
}

// Leader is this broker's leadership of one partition at one leader epoch.
// It is safe for concurrent use. Close it when leadership ends.
type Leader struct {
	cfg    Config
	lc     LeaderConfig
	logger *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		leaderEpoch      int32
		partitionEpoch   int32
		epochStartOffset int64 // first offset of this leader epoch
		replicas         []int32
		isr              []int32
		pending          []int32 // proposed ISR while an AlterPartition is in flight
		followers        map[int32]*followerState
		waiters          []*waiter
		hw               int64
		leading          bool
		closed           bool
		logErr           error // sticky: the log failed (durable watcher)
	}
}

// NewLeader makes this broker the leader of a partition: the epoch starts
// at the log end (AssignEpochStart), the log's high watermark becomes a
// replicated one, and every follower's position is unknown until it
// fetches (Kafka's makeLeader with a new leader). With a durable log it
// starts the goroutine that follows the log's durable offset.
func NewLeader(cfg Config, lc LeaderConfig) (*Leader, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := lc.State
	if st.Leader != cfg.NodeID {
		return nil, fmt.Errorf("replica: %s-%d: leader is %d, not this node %d", st.Topic, st.Partition, st.Leader, cfg.NodeID)
	}
	if lc.Log == nil {
		return nil, fmt.Errorf("%w: leader without a log", ErrInvalidConfig)
	}
	if lc.MinInsyncReplicas <= 0 {
		lc.MinInsyncReplicas = 1
	}
	if lc.Eligible == nil {
		lc.Eligible = func(int32) bool { return true }
	}
	lc.State.Replicas = slices.Clone(st.Replicas)
	lc.State.ISR = slices.Clone(st.ISR)
	leo := lc.Log.LogEndOffset()
	if err := lc.Log.AssignEpochStart(st.LeaderEpoch, leo); err != nil {
		return nil, fmt.Errorf("replica: %s-%d: start leader epoch %d: %w", st.Topic, st.Partition, st.LeaderEpoch, err)
	}
	l := &Leader{cfg: cfg, lc: lc, logger: cfg.Logger.With("topic", st.Topic, "partition", st.Partition)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	now := cfg.Clock.Now()
	l.mu.leaderEpoch = st.LeaderEpoch
	l.mu.partitionEpoch = st.PartitionEpoch
	l.mu.epochStartOffset = leo
	l.mu.replicas = lc.State.Replicas
	l.mu.isr = lc.State.ISR
	l.mu.followers = map[int32]*followerState{}
	l.mu.leading = true
	// Latch the log into "replicated high watermark" mode at its current
	// value (a no-op change).
	l.mu.hw = lc.Log.SetHighWatermark(lc.Log.HighWatermark())
	for _, id := range st.Replicas {
		if id != cfg.NodeID {
			l.mu.followers[id] = newFollowerState(now, slices.Contains(st.ISR, id))
		}
	}
	l.logger.Info("became leader", "leader_epoch", st.LeaderEpoch, "partition_epoch", st.PartitionEpoch,
		"isr", st.ISR, "log_end", leo, "high_watermark", l.mu.hw)
	l.mu.Lock()
	fire := l.maybeIncrementHWLocked(now)
	l.mu.Unlock()
	l.fireHW(fire)
	if !lc.WriteCaching {
		l.goFunc(l.watchDurable)
	}
	return l, nil
}

// newFollowerState is Kafka's resetReplicaState for a new leader: position
// unknown, caught up "now" if in the ISR (so it is not shrunk at once),
// else never.
func newFollowerState(now time.Time, inISR bool) *followerState {
	f := &followerState{leo: -1, logStart: -1, lastFetchLeaderLEO: -1, brokerEpoch: -1}
	if inISR {
		f.lastCaughtUpTime = now
	}
	return f
}

func (l *Leader) goFunc(fn func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn()
	}()
}

// watchDurable recomputes the high watermark each time the leader's
// durable offset advances.
func (l *Leader) watchDurable() {
	for {
		d := l.lc.Log.DurableOffset()
		l.OnAppend() // covers everything durable up to d
		err := l.lc.Log.WaitDurable(l.ctx, d)
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			l.logger.Error("leader log failed; acks=all waiters fail", "err", err)
			l.mu.Lock()
			l.mu.logErr = fmt.Errorf("%w: %w", kerr.KafkaStorageError, err)
			l.failWaitersLocked(l.mu.logErr)
			l.mu.Unlock()
			return
		}
	}
}

// Close ends the leadership: pending acks=all waiters fail with
// NOT_LEADER_OR_FOLLOWER, in-flight AlterPartition calls are abandoned and
// the leader's goroutines are waited for.
func (l *Leader) Close() {
	l.mu.Lock()
	l.mu.closed = true
	l.mu.leading = false
	l.failWaitersLocked(kerr.NotLeaderForPartition)
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
}

// Update applies a newer partition state from metadata while this broker
// stays leader (PartitionChanged): the committed ISR and partition epoch,
// the replica set; a higher leader epoch (re-elected) starts a new epoch at
// the log end. A state that names another leader ends the leadership
// (the caller should Close). Stale states are ignored.
func (l *Leader) Update(st PartitionState) {
	now := l.cfg.Clock.Now()
	l.mu.Lock()
	if l.mu.closed || st.LeaderEpoch < l.mu.leaderEpoch ||
		st.LeaderEpoch == l.mu.leaderEpoch && st.PartitionEpoch < l.mu.partitionEpoch {
		l.mu.Unlock()
		return
	}
	if st.Leader != l.cfg.NodeID {
		l.stopLeadingLocked("metadata names another leader")
		l.mu.Unlock()
		return
	}
	if st.LeaderEpoch > l.mu.leaderEpoch {
		leo := l.lc.Log.LogEndOffset()
		if err := l.lc.Log.AssignEpochStart(st.LeaderEpoch, leo); err != nil {
			l.logger.Error("start leader epoch", "leader_epoch", st.LeaderEpoch, "err", err)
		}
		l.mu.leaderEpoch = st.LeaderEpoch
		l.mu.epochStartOffset = leo
		// Kafka's resetReplicaState for a re-elected leader: positions
		// kept, ISR members caught up now.
		for id, f := range l.mu.followers {
			in := slices.Contains(st.ISR, id)
			f.lastFetchLeaderLEO = leo
			f.lastFetchTime, f.lastCaughtUpTime = time.Time{}, time.Time{}
			if in {
				f.lastFetchTime, f.lastCaughtUpTime = now, now
			}
		}
		l.logger.Info("re-elected leader", "leader_epoch", st.LeaderEpoch)
	}
	var changed func()
	if l.mu.pending != nil && slices.Equal(st.ISR, l.mu.pending) && st.LeaderEpoch == l.mu.leaderEpoch {
		changed = l.ownChangeLocked(st.ISR) // before the controller's answer
	}
	l.mu.partitionEpoch = st.PartitionEpoch
	if !slices.Equal(l.mu.isr, st.ISR) {
		l.logger.Info("ISR updated from metadata", "isr", st.ISR, "partition_epoch", st.PartitionEpoch)
	}
	l.mu.isr = slices.Clone(st.ISR)
	l.mu.replicas = slices.Clone(st.Replicas)
	l.mu.pending = nil
	for _, id := range st.Replicas {
		if _, ok := l.mu.followers[id]; !ok && id != l.cfg.NodeID {
			l.mu.followers[id] = newFollowerState(now, slices.Contains(st.ISR, id))
		}
	}
	for id := range l.mu.followers {
		if !slices.Contains(st.Replicas, id) {
			delete(l.mu.followers, id)
		}
	}
	fire := l.maybeIncrementHWLocked(now)
	l.mu.Unlock()
	l.fireHW(fire)
	if changed != nil {
		changed()
	}
}

// stopLeadingLocked marks the leadership over (fenced, or another leader
// elected): appends and fetches get NOT_LEADER_OR_FOLLOWER from now on.
func (l *Leader) stopLeadingLocked(why string) {
	if !l.mu.leading {
		return
	}
	l.mu.leading = false
	l.failWaitersLocked(kerr.NotLeaderForPartition)
	l.logger.Info("stopped leading", "reason", why, "leader_epoch", l.mu.leaderEpoch)
}

// IsLeader reports whether this Leader still leads (not closed, not fenced).
func (l *Leader) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.leading
}

// LeaderEpoch is the current leader epoch.
func (l *Leader) LeaderEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.leaderEpoch
}

// CheckAppend is the check before a produce appends (Kafka's
// appendRecordsToLeader): NOT_LEADER_OR_FOLLOWER when leadership ended;
// for acks=all (-1), NOT_ENOUGH_REPLICAS when the committed ISR is smaller
// than min.insync.replicas.
func (l *Leader) CheckAppend(acks int16) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.leading {
		return kerr.NotLeaderForPartition
	}
	if acks == -1 && len(l.mu.isr) < l.lc.MinInsyncReplicas {
		return fmt.Errorf("%w: %s-%d: ISR %v is smaller than min.insync.replicas %d", kerr.NotEnoughReplicas,
			l.lc.State.Topic, l.lc.State.Partition, l.mu.isr, l.lc.MinInsyncReplicas)
	}
	return nil
}

// OnAppend recomputes the high watermark after a local append (it moves
// only when the ISR is the leader alone, with write caching) or after the
// leader's durable offset advanced.
func (l *Leader) OnAppend() {
	l.mu.Lock()
	fire := l.maybeIncrementHWLocked(l.cfg.Clock.Now())
	l.mu.Unlock()
	l.fireHW(fire)
}

// WaitCommitted is the acks=all purgatory: it returns nil once the high
// watermark is above lastOffset and the ISR still has min.insync.replicas
// members (else NOT_ENOUGH_REPLICAS_AFTER_APPEND); REQUEST_TIMED_OUT when
// ctx ends first; NOT_LEADER_OR_FOLLOWER when leadership ends.
func (l *Leader) WaitCommitted(ctx context.Context, lastOffset int64) error {
	w := &waiter{required: lastOffset + 1, ch: make(chan error, 1)}
	l.mu.Lock()
	if !l.mu.leading {
		l.mu.Unlock()
		return kerr.NotLeaderForPartition
	}
	if l.mu.logErr != nil && l.mu.hw < w.required {
		err := l.mu.logErr
		l.mu.Unlock()
		return err
	}
	if l.mu.hw >= w.required {
		err := l.commitResultLocked()
		l.mu.Unlock()
		return err
	}
	l.mu.waiters = append(l.mu.waiters, w)
	l.mu.Unlock()
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		l.mu.Lock()
		l.mu.waiters = slices.DeleteFunc(l.mu.waiters, func(x *waiter) bool { return x == w })
		l.mu.Unlock()
		select {
		case err := <-w.ch: // completed meanwhile
			return err
		default:
		}
		return fmt.Errorf("%w: %w", kerr.RequestTimedOut, ctx.Err())
	}
}

// commitResultLocked is Kafka's checkEnoughReplicasReachOffset once the
// high watermark covers the offset.
func (l *Leader) commitResultLocked() error {
	if len(l.mu.isr) < l.lc.MinInsyncReplicas {
		return fmt.Errorf("%w: ISR %v, min.insync.replicas %d", kerr.NotEnoughReplicasAfterAppend, l.mu.isr, l.lc.MinInsyncReplicas)
	}
	return nil
}

func (l *Leader) failWaitersLocked(err error) {
	for _, w := range l.mu.waiters {
		w.ch <- err
	}
	l.mu.waiters = nil
}

// maximalISRLocked is the ISR used for the high watermark: the committed
// one plus the members of a pending change (Kafka's maximalIsr: a pending
// expansion counts the new member, a pending shrink still counts the
// leaving one).
func (l *Leader) maximalISRLocked() []int32 {
	if l.mu.pending == nil {
		return l.mu.isr
	}
	out := slices.Clone(l.mu.isr)
	for _, id := range l.mu.pending {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// leaderOffsetLocked is what the leader itself counts toward the high
// watermark: its durable offset, or its log end with write caching.
func (l *Leader) leaderOffset() int64 {
	if l.lc.WriteCaching {
		return l.lc.Log.LogEndOffset()
	}
	return min(l.lc.Log.DurableOffset(), l.lc.Log.LogEndOffset())
}

// caughtUp is Kafka's ReplicaState.isCaughtUp.
func (l *Leader) caughtUp(f *followerState, leaderLEO int64, now time.Time) bool {
	return f.leo == leaderLEO || !f.lastCaughtUpTime.IsZero() && now.Sub(f.lastCaughtUpTime) <= l.cfg.ReplicaLagTimeMax
}

// maybeIncrementHWLocked is Kafka's maybeIncrementLeaderHW: the minimum
// over the leader's own (durable) offset and every follower in the maximal
// ISR, or caught up and eligible to join it. It completes acks=all waiters
// the new high watermark covers and returns the high watermark to announce
// (-1: unchanged).
func (l *Leader) maybeIncrementHWLocked(now time.Time) int64 {
	if !l.mu.leading {
		return -1
	}
	leaderLEO := l.lc.Log.LogEndOffset()
	newHW := l.leaderOffset()
	maximal := l.maximalISRLocked()
	for id, f := range l.mu.followers {
		if f.leo >= newHW {
			continue
		}
		if slices.Contains(maximal, id) ||
			l.caughtUp(f, leaderLEO, now) && !f.unclean && l.lc.Eligible(id) && f.leo >= 0 {
			newHW = f.leo
		}
	}
	if newHW <= l.mu.hw {
		return -1
	}
	l.mu.hw = l.lc.Log.SetHighWatermark(newHW)
	if len(l.mu.waiters) > 0 {
		res := l.commitResultLocked()
		l.mu.waiters = slices.DeleteFunc(l.mu.waiters, func(w *waiter) bool {
			if w.required <= l.mu.hw {
				w.ch <- res
				return true
			}
			return false
		})
	}
	return l.mu.hw
}

func (l *Leader) fireHW(hw int64) {
	if hw >= 0 && l.lc.OnHighWatermark != nil {
		l.lc.OnHighWatermark(hw)
	}
}

// HighWatermark is the leader's high watermark.
func (l *Leader) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.hw
}

// Snapshot returns the leader's state.
func (l *Leader) Snapshot() LeaderSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LeaderSnapshot{LeaderEpoch: l.mu.leaderEpoch, PartitionEpoch: l.mu.partitionEpoch,
		ISR: slices.Clone(l.mu.isr), MaximalISR: slices.Clone(l.maximalISRLocked()),
		Pending: l.mu.pending != nil, HighWatermark: l.mu.hw, Leading: l.mu.leading}
	slices.Sort(s.MaximalISR)
	for id, f := range l.mu.followers {
		s.Followers = append(s.Followers, FollowerSnapshot{ReplicaID: id, LogEndOffset: f.leo,
			LastCaughtUpTime: f.lastCaughtUpTime, InISR: slices.Contains(l.mu.isr, id), Unclean: f.unclean})
	}
	slices.SortFunc(s.Followers, func(a, b FollowerSnapshot) int { return int(a.ReplicaID - b.ReplicaID) })
	return s
}

// MarkUnclean records that a follower restarted after an unclean shutdown
// (its log may miss records it had fetched): it is dropped from the ISR at
// once and may rejoin only after it reached the leader's log end.
func (l *Leader) MarkUnclean(replicaID int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.mu.followers[replicaID]
	if !ok {
		return
	}
	f.unclean = true
	f.leo, f.lastFetchLeaderLEO = -1, -1
	f.lastCaughtUpTime, f.lastFetchTime = time.Time{}, time.Time{}
	l.logger.Info("follower marked unclean", "replica", replicaID)
	l.maybeShrinkLocked(l.cfg.Clock.Now())
}
