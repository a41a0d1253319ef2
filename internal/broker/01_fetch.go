package broker

// Fetch: v4-18
//
// Behavior:
//   - Reads whole record batches from the storage engine as file regions and
//     sends them with sendfile(2) behind hand-encoded response headers
//     (protocol.EncodeFetchResponse): no record bytes pass through user space.
//   - read_uncommitted reads up to the high watermark, read_committed up to
//     the last stable offset, with the aborted transactions (from the log's
//     .txnindex) that overlap [fetch offset, LSO) when data is returned.
//   - Long poll: when fewer than MinBytes are available the request parks in
//     the fetch purgatory; an append to any of its partitions wakes it, and
//     MaxWaitMillis ends it. No polling loop.
//   - Byte limits: PartitionMaxBytes per partition, MaxBytes (capped by
//     fetch.max.bytes) per response; the first batch of the first partition
//     with data is returned whole even when larger (KIP-74).
//   - Incremental fetch sessions (KIP-227), see fetch_session.go.
//   - In a cluster the high watermark is the replicated one (the minimum
//     over the ISR, replication.go); an advance wakes parked fetches. A
//     fetch with a replica id (ReplicaID, v15+ ReplicaState) is a
//     follower's: the partition's replica.Leader checks the leader epoch
//     and the replica, answers DivergingEpoch (KIP-320, v12+) when the
//     follower's log diverges, records the follower's position (ISR, high
//     watermark), and the records go up to the log end. Consumers of a
//     partition this broker does not lead get NOT_LEADER_OR_FOLLOWER (no
//     KIP-392 follower fetching).
//   - Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID
//     (v13+), OFFSET_OUT_OF_RANGE, FENCED_LEADER_EPOCH /
//     UNKNOWN_LEADER_EPOCH (v9+), KAFKA_STORAGE_ERROR.
//
// Version notes:
//   - v4: isolation level, LSO, aborted transactions; v5: log start offset
//   - v7: sessions; v9: current leader epoch; v11: rack, preferred replica
//   - v12: flexible, diverging epoch; v13: topic ids; v15: replica state

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/protocol"
	"github.com/sluice-io/sluice/internal/replica"
)

func init() { register(1, 4, 18, (*Broker).handleFetch) }

// fetchWaiter is a parked fetch in the purgatory: appends to any of its
// partitions signal it.
type fetchWaiter struct{ ch chan struct{} }

func (w *fetchWaiter) wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// fetchItem is one partition of a fetch.
type fetchItem struct {
	topic    string
	topicID  [16]byte
	part     int32
	offset   int64
	maxBytes int32
	leaderEp int32
	// From a follower's fetch (replica id >= 0): its id, broker epoch,
	// last fetched epoch (-1 below v12) and log start.
	replicaID        int32
	brokerEpoch      int64
	lastFetchedEpoch int32
	logStartOffset   int64
	sess             *sessPart // nil without a session
	err              error     // resolution error (unknown topic id)
}

// fetchRead is the outcome of reading one item.
type fetchRead struct {
	err      error
	hw, lso  int64
	logStart int64
	regions  []protocol.Region
	bytes    int64
	// aborted: for read_committed, the aborted transactions that may
	// cover the returned batches.
	aborted []log.AbortedTxn
	// diverging is set for a follower whose log diverges (KIP-320).
	diverging *replica.EpochEndOffset
}

func (b *Broker) handleFetch(r *request, req *kmsg.FetchRequest) kmsg.Response {
	now := time.Now()
	byID := req.Version >= 13
	var (
		sess   *fetchSession
		items  []fetchItem
		incr   bool
		respID int32
	)
	errResp := func(err error) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = errCode(err)
		return resp
	}
	replicaID, brokerEpoch := req.ReplicaID, int64(-1)
	if req.Version >= 15 {
		replicaID, brokerEpoch = req.ReplicaState.ID, req.ReplicaState.Epoch
	}
	reqItems := func() []fetchItem {
		var out []fetchItem
		for _, rt := range req.Topics {
			name, err := b.resolveTopic(byID, rt.Topic, rt.TopicID)
			for _, rp := range rt.Partitions {
				lfe := rp.LastFetchedEpoch
				if req.Version < 12 {
					lfe = -1
				}
				out = append(out, fetchItem{topic: name, topicID: rt.TopicID, part: rp.Partition, offset: rp.FetchOffset,
					maxBytes: rp.PartitionMaxBytes, leaderEp: rp.CurrentLeaderEpoch, err: err,
					replicaID: replicaID, brokerEpoch: brokerEpoch, lastFetchedEpoch: lfe, logStartOffset: rp.LogStartOffset})
			}
		}
		return out
	}

	switch {
	case req.Version < 7 || req.SessionEpoch == sessionEpochFinal:
		if req.SessionID != 0 {
			b.sessions.remove(req.SessionID)
		}
		items = reqItems()
	case req.SessionEpoch == sessionEpochInitial:
		if req.SessionID != 0 {
			b.sessions.remove(req.SessionID)
		}
		items = reqItems()
		sess = b.sessions.create(now)
		if sess != nil {
			sess.mu.Lock()
			respID = sess.id
			for i := range items {
				it := &items[i]
				if it.err != nil {
					continue
				}
				sess.upsert(sessPart{topic: it.topic, topicID: it.topicID, part: it.part, offset: it.offset, maxBytes: it.maxBytes, leaderEp: it.leaderEp})
				it.sess = sess.idx[tpKey{it.topic, it.part}]
			}
		}
	default:
		s, err := b.sessions.lookup(req.SessionID, req.SessionEpoch, now)
		if err != nil {
			return errResp(err)
		}
		sess, incr, respID = s, true, s.id
		sess.epoch++ // the epoch the next request must carry
		var bad []fetchItem
		for _, it := range reqItems() {
			if it.err != nil {
				bad = append(bad, it)
				continue
			}
			sess.upsert(sessPart{topic: it.topic, topicID: it.topicID, part: it.part, offset: it.offset, maxBytes: it.maxBytes, leaderEp: it.leaderEp})
		}
		for _, ft := range req.ForgottenTopics {
			name, err := b.resolveTopic(byID, ft.Topic, ft.TopicID)
			if err != nil {
				continue
			}
			for _, p := range ft.Partitions {
				sess.forget(name, p)
			}
		}
		items = bad
		for _, sp := range sess.parts {
			items = append(items, fetchItem{topic: sp.topic, topicID: sp.topicID, part: sp.part, offset: sp.offset,
				maxBytes: sp.maxBytes, leaderEp: sp.leaderEp, sess: sp, replicaID: -1, brokerEpoch: -1, lastFetchedEpoch: -1})
		}
	}

	maxBytes := int64(b.set.fetchMaxBytes)
	if req.MaxBytes > 0 && int64(req.MaxBytes) < maxBytes {
		maxBytes = int64(req.MaxBytes)
	}
	st := fetchState{b: b, hdr: r.hdr, req: req, sess: sess, items: items, incr: incr, respID: respID, maxBytes: maxBytes}
	reads, total, anyErr := st.readAll()
	if total >= int64(req.MinBytes) || req.MaxWaitMillis <= 0 || anyErr || len(items) == 0 {
		// Answer at once, on this goroutine: nothing of st escapes.
		r.respond(st.finish(reads))
		return nil
	}
	ps := new(fetchState)
	*ps = st
	b.parkFetch(r, ps)
	return nil
}

// fetchState is one fetch request's resolved partitions and limits.
type fetchState struct {
	b        *Broker
	hdr      protocol.Header
	req      *kmsg.FetchRequest
	sess     *fetchSession // held (sess.mu) until finish; nil without a session
	items    []fetchItem
	incr     bool
	respID   int32
	maxBytes int64
}

// readAll reads every item within the response budget.
func (st *fetchState) readAll() ([]fetchRead, int64, bool) {
	reads := make([]fetchRead, len(st.items))
	var total int64
	anyErr := false
	for i := range st.items {
		reads[i] = st.b.readFetchItem(&st.items[i], st.req.IsolationLevel, st.maxBytes-total, total == 0)
		total += reads[i].bytes
		if reads[i].err != nil {
			anyErr = true
		}
	}
	return reads, total, anyErr
}

// finish builds the response and releases the session.
func (st *fetchState) finish(reads []fetchRead) *protocol.Message {
	if st.sess != nil {
		defer st.sess.mu.Unlock()
	}
	return st.b.fetchResponse(st.hdr, st.req, st.items, reads, st.respID, st.incr)
}

// parkFetch parks a fetch in the purgatory until enough bytes arrive or
// MaxWait passes.
func (b *Broker) parkFetch(r *request, st *fetchState) {
	req := st.req
	w := &fetchWaiter{ch: make(chan struct{}, 1)}
	var parked []*partition
	for _, it := range st.items {
		if p, ok := b.parts.get(it.topic, it.part); ok {
			p.addWaiter(w)
			parked = append(parked, p)
		}
	}
	// An append may have landed between the read and registering.
	w.wake()
	b.metrics.fetchParked.Inc()
	b.parked.Add(1)
	r.deferMsg(func(ctx context.Context) *protocol.Message {
		defer b.metrics.fetchParked.Dec()
		defer b.parked.Add(-1)
		defer func() {
			for _, p := range parked {
				p.removeWaiter(w)
			}
		}()
		timer := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
		defer timer.Stop()
		for {
			select {
			case <-w.ch:
				reads, total, anyErr := st.readAll()
				if total >= int64(req.MinBytes) || anyErr {
					return st.finish(reads)
				}
			case <-timer.C:
				reads, _, _ := st.readAll()
				return st.finish(reads)
			case <-ctx.Done():
				reads, _, _ := st.readAll()
				return st.finish(reads)
			case <-b.draining:
				reads, _, _ := st.readAll()
				return st.finish(reads)
			}
		}
	})
}

// readFetchItem reads one partition within the remaining response budget.
func (b *Broker) readFetchItem(it *fetchItem, isolation int8, budget int64, first bool) fetchRead {
	out := fetchRead{hw: -1, lso: -1, logStart: -1}
	if it.err != nil {
		out.err = it.err
		return out
	}
	p, ok := b.parts.get(it.topic, it.part)
	if !ok {
		out.err = b.missingPartitionErr(it.topic, it.part)
		return out
	}
	if it.replicaID >= 0 {
		return b.readFollowerFetch(p, it, budget, first)
	}
	if it.leaderEp >= 0 {
		if ep := p.leaderEpoch.Load(); it.leaderEp < ep {
			out.err = kerr.FencedLeaderEpoch
			return out
		} else if it.leaderEp > ep {
			out.err = kerr.UnknownLeaderEpoch
			return out
		}
	}
	out.hw, out.lso = p.log.FetchBounds() // one high watermark read for both bounds
	out.logStart = p.log.LogStartOffset()
	bound := out.hw
	if isolation == 1 {
		bound = out.lso
	}
	limit := min(int64(it.maxBytes), budget)
	if limit < 0 {
		limit = 0
	}
	res, err := p.log.Read(it.offset, limit, bound, first)
	if err != nil {
		out.err = readErr(err)
		return out
	}
	out.logStart = res.LogStartOffset
	out.setRegions(res)
	if isolation == 1 && res.Bytes > 0 {
		out.aborted = p.log.AbortedTransactions(it.offset, bound)
	}
	return out
}

// setRegions records a log read's file regions.
func (out *fetchRead) setRegions(res log.ReadResult) {
	out.regions = make([]protocol.Region, len(res.Regions))
	for i, rg := range res.Regions {
		out.regions[i] = protocol.Region{File: rg.File, Pos: rg.Pos, Len: rg.Len}
	}
	out.bytes = res.Bytes
}

// readFollowerFetch answers one partition of a follower's fetch (replica
// id >= 0) through the partition's replica.Leader: epoch and replica
// checks, KIP-320 divergence, the follower's position (which may move the
// ISR and the high watermark), then records up to the log end.
func (b *Broker) readFollowerFetch(p *partition, it *fetchItem, budget int64, first bool) fetchRead {
	out := fetchRead{hw: -1, lso: -1, logStart: -1}
	l := p.leader.Load()
	if l == nil {
		out.err = kerr.NotLeaderForPartition
		return out
	}
	ans := l.OnFollowerFetch(replica.FollowerFetch{ReplicaID: it.replicaID, BrokerEpoch: it.brokerEpoch,
		CurrentLeaderEpoch: it.leaderEp, FetchOffset: it.offset, LastFetchedEpoch: it.lastFetchedEpoch,
		LogStartOffset: it.logStartOffset})
	out.hw, out.logStart = ans.HighWatermark, ans.LogStartOffset
	out.lso = min(p.log.LastStableOffset(), out.hw)
	if ans.Err != nil {
		out.err = ans.Err
		return out
	}
	if ans.Diverging != nil {
		out.diverging = ans.Diverging
		return out
	}
	limit := max(min(int64(it.maxBytes), budget), 0)
	res, err := p.log.Read(it.offset, limit, ans.ReadUpTo, first)
	if err != nil {
		out.err = readErr(err)
		return out
	}
	out.setRegions(res)
	return out
}

// fetchResponse assembles the response and, for a session, records what
// was sent so the next incremental response carries only changes.
func (b *Broker) fetchResponse(h protocol.Header, req *kmsg.FetchRequest, items []fetchItem, reads []fetchRead, sessionID int32, incremental bool) *protocol.Message {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SessionID = sessionID
	var (
		regions  [][][]protocol.Region // [topic][partition]
		topicIdx = map[string]int{}
		sent     int64
	)
	for i := range items {
		it, rd := &items[i], &reads[i]
		if incremental && it.sess != nil && rd.err == nil && rd.bytes == 0 && it.sess.responded &&
			rd.hw == it.sess.hw && rd.lso == it.sess.lso && rd.logStart == it.sess.logStart {
			continue // nothing new for this partition
		}
		if it.sess != nil {
			it.sess.hw, it.sess.lso, it.sess.logStart, it.sess.responded = rd.hw, rd.lso, rd.logStart, true
		}
		key := it.topic
		if key == "" {
			key = "\x00id:" + string(it.topicID[:])
		}
		ti, ok := topicIdx[key]
		if !ok {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = it.topic, it.topicID
			if req.Version >= 13 && it.topicID == ([16]byte{}) {
				if t, ok := b.meta.Topic(it.topic); ok {
					rt.TopicID = t.ID
				}
			}
			ti = len(resp.Topics)
			topicIdx[key] = ti
			resp.Topics = append(resp.Topics, rt)
			regions = append(regions, nil)
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = it.part
		rp.ErrorCode = errCode(rd.err)
		b.fetchLeaderHint(req.Version, resp, &rp, it.topic)
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = rd.hw, rd.lso, rd.logStart
		rp.PreferredReadReplica = -1
		if rd.diverging != nil {
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = rd.diverging.Epoch, rd.diverging.EndOffset
		}
		rp.RecordBatches = []byte{} // an empty, non-null records field, as Kafka sends
		if req.IsolationLevel == 1 && rd.err == nil {
			rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(rd.aborted))
			for _, a := range rd.aborted {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				rp.AbortedTransactions = append(rp.AbortedTransactions, at)
			}
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, rp)
		regions[ti] = append(regions[ti], rd.regions)
		sent += rd.bytes
	}
	b.metrics.fetchBytes.Add(float64(sent))
	return protocol.EncodeFetchResponse(h, resp, func(t, p int) []protocol.Region { return regions[t][p] })
}

// readErr is the partition error of a failed log read.
func readErr(err error) error {
	if errors.Is(err, log.ErrOffsetOutOfRange) {
		return kerr.OffsetOutOfRange
	}
	return err
}
