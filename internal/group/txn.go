package group

// Transactional offset commits (TxnOffsetCommit, key 28) and their
// completion by the transaction coordinator's markers.
//
// TxnOffsetCommit appends the offset records as a transactional batch of
// the producer (its id and epoch; sequences kept per producer by the
// partition state, since the partition log checks them) and holds the
// offsets as pending for that producer: OffsetFetch does not show them.
// CompleteTxn appends the commit or abort marker (a control batch) to the
// same partition and, once it is durable, materializes the pending offsets
// (commit) or drops them (abort), as Kafka's GroupMetadataManager does.
// Replay honours the markers the same way; offsets of a transaction still
// open at the end of the log come back pending.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// txnWrite is the producer of a transactional write: a data batch
// (control false) or a marker.
type txnWrite struct {
	producerID    int64
	producerEpoch int16
	baseSeq       int32
	control       bool
	commit        bool
}

// producerSeq is the next sequence of a producer's transactional offset
// batches in this partition.
type producerSeq struct {
	epoch int16
	next  int32
}

type (
	txnCommitEvent struct {
		req   *kmsg.TxnOffsetCommitRequest
		reply func(*kmsg.TxnOffsetCommitResponse)
	}
	txnCompleteEvent struct {
		producerID    int64
		producerEpoch int16
		commit        bool
		reply         func(error)
	}
)

func (*txnCommitEvent) isEvent()   {}
func (*txnCompleteEvent) isEvent() {}

// TxnOffsetCommit handles TxnOffsetCommit v0-3: the offsets are written
// durably as part of the producer's transaction and become visible when
// the transaction commits (CompleteTxn).
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	setErr := func(r *kmsg.TxnOffsetCommitResponse, code int16) {
		r.Topics = r.Topics[:0]
		for _, rt := range req.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			r.Topics = append(r.Topics, st)
		}
	}
	if req.Group == "" {
		setErr(resp, kerr.InvalidGroupID.Code)
		return resp
	}
	return do(ctx, c, req.Group, resp, setErr,
		func(reply func(*kmsg.TxnOffsetCommitResponse)) event { return &txnCommitEvent{req: req, reply: reply} })
}

// CompleteTxn writes the producer's commit or abort marker to partition p
// of __consumer_offsets and then makes its pending offsets visible
// (commit) or drops them. It returns once the marker is durable.
func (c *Coordinator) CompleteTxn(ctx context.Context, p int32, producerID int64, producerEpoch int16, commit bool) error {
	c.mu.RLock()
	sh := c.mu.shards[p]
	loading := c.mu.loading[p]
	c.mu.RUnlock()
	if sh == nil {
		if loading {
			return kerr.CoordinatorLoadInProgress
		}
		return kerr.NotCoordinator
	}
	err, ok, stopped := call(ctx, sh, func(reply func(error)) event {
		return &txnCompleteEvent{producerID: producerID, producerEpoch: producerEpoch, commit: commit, reply: reply}
	})
	if !ok {
		if stopped {
			return kerr.NotCoordinator
		}
		return ctx.Err()
	}
	return err
}

// txnCommit handles a TxnOffsetCommit in the state machine.
func (s *partitionState) txnCommit(ev *txnCommitEvent) {
	req := ev.req
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	fill := func(code int16) {
		resp.Topics = resp.Topics[:0]
		for _, rt := range req.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
	}
	if g := s.groups[req.Group]; g != nil && req.Version >= 3 && req.Generation >= 0 {
		if req.Generation != g.generation {
			fill(kerr.IllegalGeneration.Code)
			ev.reply(resp)
			return
		}
		if req.MemberID != "" && g.byID[req.MemberID] == nil {
			fill(kerr.UnknownMemberID.Code)
			ev.reply(resp)
			return
		}
	}
	seq := s.txnSeq[req.ProducerID]
	switch {
	case seq == nil || req.ProducerEpoch > seq.epoch:
		seq = &producerSeq{epoch: req.ProducerEpoch}
		s.txnSeq[req.ProducerID] = seq
	case req.ProducerEpoch < seq.epoch:
		fill(kerr.InvalidProducerEpoch.Code)
		ev.reply(resp)
		return
	}
	offs := make(map[tp]offset)
	var records []record
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			o := offset{offset: rp.Offset, leaderEpoch: rp.LeaderEpoch, commitTime: s.now}
			if rp.Metadata != nil {
				o.metadata = *rp.Metadata
			}
			if len(o.metadata) > s.cfg.MaxMetadataSize {
				fill(kerr.OffsetMetadataTooLarge.Code)
				ev.reply(resp)
				return
			}
			t := tp{rt.Topic, rp.Partition}
			offs[t] = o
			records = append(records, offsetRecord(req.Group, t.topic, t.partition, o))
		}
	}
	if len(records) == 0 {
		fill(0)
		ev.reply(resp)
		return
	}
	tw := &txnWrite{producerID: req.ProducerID, producerEpoch: req.ProducerEpoch, baseSeq: seq.next}
	seq.next += int32(len(records))
	pid, group := req.ProducerID, req.Group
	s.emitTxn(records, tw, func(err error) {
		if err != nil {
			if cur := s.txnSeq[pid]; cur != nil && cur.epoch == tw.producerEpoch && cur.next > tw.baseSeq {
				cur.next = tw.baseSeq // nothing was appended: reuse the sequences
			}
			fill(appendErrorCode(err))
			ev.reply(resp)
			return
		}
		s.addPending(pid, group, offs)
		fill(0)
		ev.reply(resp)
	})
}

func (s *partitionState) addPending(pid int64, group string, offs map[tp]offset) {
	byGroup := s.pendingTxn[pid]
	if byGroup == nil {
		byGroup = make(map[string]map[tp]offset)
		s.pendingTxn[pid] = byGroup
	}
	m := byGroup[group]
	if m == nil {
		m = make(map[tp]offset)
		byGroup[group] = m
	}
	for t, o := range offs {
		m[t] = o
	}
}

// pendingFor reports whether a transaction not yet decided holds an
// offset of group for t (OffsetFetch require_stable).
func (s *partitionState) pendingFor(group string, t tp) bool {
	for _, byGroup := range s.pendingTxn {
		if _, ok := byGroup[group][t]; ok {
			return true
		}
	}
	return false
}

// txnComplete writes a marker, then applies or drops the pending offsets.
func (s *partitionState) txnComplete(ev *txnCompleteEvent) {
	tw := &txnWrite{producerID: ev.producerID, producerEpoch: ev.producerEpoch, control: true, commit: ev.commit}
	if seq := s.txnSeq[ev.producerID]; seq != nil && ev.producerEpoch > seq.epoch {
		// The marker moves the log's producer state to the new epoch.
		s.txnSeq[ev.producerID] = &producerSeq{epoch: ev.producerEpoch}
	}
	s.emitTxn(nil, tw, func(err error) {
		if err != nil {
			ev.reply(err)
			return
		}
		s.materialize(ev.producerID, ev.commit)
		ev.reply(nil)
	})
}

// materialize ends the producer's pending offsets.
func (s *partitionState) materialize(pid int64, commit bool) {
	byGroup := s.pendingTxn[pid]
	delete(s.pendingTxn, pid)
	if !commit {
		return
	}
	for id, offs := range byGroup {
		g := s.groups[id]
		if g == nil {
			g = s.newGroup(id)
			g.stateTime = time.Time{}
		}
		for t, o := range offs {
			g.setOffset(t, o)
		}
		s.rearm(g)
	}
}

func (s *partitionState) emitTxn(records []record, tw *txnWrite, done func(error)) {
	s.nextID++
	s.writes = append(s.writes, &write{id: s.nextID, records: records, txn: tw, done: done})
}

// buildWrite encodes a write as one batch.
func buildWrite(dst []byte, w *write, now time.Time) ([]byte, error) {
	if w.txn == nil {
		return buildBatch(dst, w.records, now)
	}
	if w.txn.control {
		typ := batch.ControlAbort
		if w.txn.commit {
			typ = batch.ControlCommit
		}
		b, err := batch.ControlBatch(0, w.txn.producerID, w.txn.producerEpoch, batch.ControlRecord{Type: typ}, now.UnixMilli())
		if err != nil {
			return dst, err
		}
		return append(dst, b...), nil
	}
	recs := make([]batch.Record, len(w.records))
	ts := now.UnixMilli()
	for i, r := range w.records {
		recs[i] = batch.Record{Offset: int64(i), Timestamp: ts, Key: r.key, Value: r.value}
	}
	return batch.AppendBatch(dst, batch.Header{
		PartitionLeaderEpoch: -1,
		Attributes:           batch.AttrTransactional,
		ProducerID:           w.txn.producerID,
		ProducerEpoch:        w.txn.producerEpoch,
		BaseSequence:         w.txn.baseSeq,
	}, recs, batch.CodecNone)
}
