package group

import (
	"container/heap"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionState is the state machine of one __consumer_offsets partition:
// every group whose id hashes to the partition, their members, timers and
// committed offsets. It has no goroutines, no clock and does no I/O (STYLE
// §6): its driver (shard.go) feeds it events with Step and the time with
// Tick, takes the records it wants appended with TakeWrites, and reports
// each append's outcome back as an appendDone event. Replies to requests
// go out through the callbacks the request events carry; they must not
// block. Tests drive it directly.
type partitionState struct {
	partition int32
	cfg       Config
	logger    *slog.Logger

	now    time.Time
	groups map[string]*group

	timers    deadlines // group timers, earliest first (lazily invalidated)
	nextSweep time.Time // next offsets retention sweep

	// pendingTxn: offsets of open transactions, producer id → group →
	// partition (txn.go); txnSeq: next sequence per producer.
	pendingTxn map[int64]map[string]map[tp]offset
	txnSeq     map[int64]*producerSeq

	writes   []*write          // emitted, not yet taken by the driver
	inflight map[uint64]*write // taken, outcome not yet reported
	nextID   uint64

	// newMemberID makes member ids; tests replace it for determinism.
	newMemberID func(clientID string, instanceID *string) string
}

// write is a set of records the state machine wants durable in the
// partition, appended as one batch, and what to do once they are (or the
// append failed).
type write struct {
	id      uint64
	records []record
	txn     *txnWrite // nil for the coordinator's own (non-transactional) records
	done    func(error)
}

// record is one __consumer_offsets record; a nil value is a tombstone.
type record struct {
	key, value []byte
}

func newPartitionState(p int32, cfg Config, now time.Time) *partitionState {
	return &partitionState{
		partition:   p,
		cfg:         cfg,
		logger:      cfg.Logger.With("offsets_partition", p),
		now:         now,
		groups:      make(map[string]*group),
		inflight:    make(map[uint64]*write),
		pendingTxn:  make(map[int64]map[string]map[tp]offset),
		txnSeq:      make(map[int64]*producerSeq),
		nextSweep:   now.Add(cfg.OffsetsRetentionCheck),
		newMemberID: randomMemberID,
	}
}

// Events. Each request event carries the callback that answers it.
type (
	event interface{ isEvent() }

	joinEvent struct {
		req    *kmsg.JoinGroupRequest
		client Client
		reply  func(*kmsg.JoinGroupResponse)
	}
	syncEvent struct {
		req   *kmsg.SyncGroupRequest
		reply func(*kmsg.SyncGroupResponse)
	}
	heartbeatEvent struct {
		req   *kmsg.HeartbeatRequest
		reply func(*kmsg.HeartbeatResponse)
	}
	leaveEvent struct {
		req   *kmsg.LeaveGroupRequest
		reply func(*kmsg.LeaveGroupResponse)
	}
	commitEvent struct {
		req *kmsg.OffsetCommitRequest
		// unknown holds the partitions the broker does not host
		// (UNKNOWN_TOPIC_OR_PARTITION); nil if none.
		unknown map[topicPartition]bool
		reply   func(*kmsg.OffsetCommitResponse)
	}
	fetchEvent struct {
		group         kmsg.OffsetFetchRequestGroup // Topics nil: every committed offset
		requireStable bool                         // OffsetFetch v7+ require_stable
		reply         func(kmsg.OffsetFetchResponseGroup)
	}
	offsetDeleteEvent struct {
		req   *kmsg.OffsetDeleteRequest
		reply func(*kmsg.OffsetDeleteResponse)
	}
	describeEvent struct {
		groups []string
		reply  func([]kmsg.DescribeGroupsResponseGroup)
	}
	deleteGroupsEvent struct {
		groups []string
		reply  func([]kmsg.DeleteGroupsResponseGroup)
	}
	listEvent struct {
		states, types []string // lower-cased filters; empty = all
		reply         func([]kmsg.ListGroupsResponseGroup)
	}
	// appendDone reports the outcome of a write taken with TakeWrites.
	appendDone struct {
		id  uint64
		err error
	}
)

func (*joinEvent) isEvent()         {}
func (*syncEvent) isEvent()         {}
func (*heartbeatEvent) isEvent()    {}
func (*leaveEvent) isEvent()        {}
func (*commitEvent) isEvent()       {}
func (*fetchEvent) isEvent()        {}
func (*offsetDeleteEvent) isEvent() {}
func (*describeEvent) isEvent()     {}
func (*deleteGroupsEvent) isEvent() {}
func (*listEvent) isEvent()         {}
func (appendDone) isEvent()         {}

// Step applies one event at the current time (the last Tick), then runs
// any timer that is already due (a zero delay).
func (s *partitionState) Step(ev event) {
	switch ev := ev.(type) {
	case *joinEvent:
		s.join(ev)
	case *syncEvent:
		s.sync(ev)
	case *heartbeatEvent:
		s.heartbeat(ev)
	case *leaveEvent:
		s.leave(ev)
	case *commitEvent:
		s.commit(ev)
	case *fetchEvent:
		ev.reply(s.fetch(ev.group, ev.requireStable))
	case *offsetDeleteEvent:
		s.offsetDelete(ev)
	case *describeEvent:
		out := make([]kmsg.DescribeGroupsResponseGroup, 0, len(ev.groups))
		for _, id := range ev.groups {
			out = append(out, s.describe(id))
		}
		ev.reply(out)
	case *deleteGroupsEvent:
		s.deleteGroups(ev)
	case *listEvent:
		ev.reply(s.list(ev.states, ev.types))
	case *txnCommitEvent:
		s.txnCommit(ev)
	case *txnCompleteEvent:
		s.txnComplete(ev)
	case appendDone:
		w := s.inflight[ev.id]
		if w == nil {
			s.logger.Error("append outcome for an unknown write", "write", ev.id)
			return
		}
		delete(s.inflight, ev.id)
		w.done(ev.err)
	}
	s.fireDue()
}

// Tick advances the state machine's clock to now and fires every timer
// due by then: session and pending-member expiry, join and sync
// deadlines, the initial rebalance delay, and the retention sweep. Time
// never goes backwards.
func (s *partitionState) Tick(now time.Time) {
	if now.After(s.now) {
		s.now = now
	}
	s.fireDue()
}

// NextDeadline is when the next timer is due (zero if none); the driver
// calls Tick then.
func (s *partitionState) NextDeadline() time.Time {
	next := s.nextSweep
	if len(s.timers) > 0 && (next.IsZero() || s.timers[0].at.Before(next)) {
		next = s.timers[0].at
	}
	return next
}

// TakeWrites returns the writes emitted since the last call, in order. The
// driver must append them in this order and report each with appendDone.
func (s *partitionState) TakeWrites() []*write {
	ws := s.writes
	s.writes = nil
	for _, w := range ws {
		s.inflight[w.id] = w
	}
	return ws
}

// emit queues records for appending; done runs (in a later Step) once they
// are durable or the append failed.
func (s *partitionState) emit(records []record, done func(error)) {
	s.nextID++
	s.writes = append(s.writes, &write{id: s.nextID, records: records, done: done})
}

func (s *partitionState) fireDue() {
	for len(s.timers) > 0 && !s.timers[0].at.After(s.now) {
		d := heap.Pop(&s.timers).(deadline)
		g := d.g
		if g.removed || !g.armedAt.Equal(d.at) {
			continue // stale: the group moved its deadline or is gone
		}
		g.armedAt = time.Time{}
		s.tickGroup(g)
		s.rearm(g)
	}
	if !s.nextSweep.IsZero() && !s.nextSweep.After(s.now) {
		s.sweep()
		s.nextSweep = s.now.Add(s.cfg.OffsetsRetentionCheck)
	}
}

// rearm makes sure the group's earliest deadline is in the timer heap. A
// deadline that moved later keeps its old, earlier entry: when that fires
// tickGroup finds nothing due and rearm pushes the real one.
func (s *partitionState) rearm(g *group) {
	if g.removed {
		return
	}
	at := g.nextDeadline()
	if at.IsZero() {
		return
	}
	if g.armedAt.IsZero() || at.Before(g.armedAt) {
		g.armedAt = at
		heap.Push(&s.timers, deadline{at: at, g: g})
	}
}

// after is now+d, at least a millisecond later so a zero timeout cannot
// spin.
func (s *partitionState) after(d time.Duration) time.Time {
	return s.now.Add(max(d, time.Millisecond))
}

// deadline is one entry of the timer heap.
type deadline struct {
	at time.Time
	g  *group
}

type deadlines []deadline

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlines) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlines) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlines) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = deadline{}
	*h = old[:len(old)-1]
	return x
}
