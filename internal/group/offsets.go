package group

// Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete. A commit is
// visible to OffsetFetch, and answered, only once its records are durable
// in __consumer_offsets.

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type topicPartition struct {
	topic     string
	partition int32
}

// offset is one committed offset.
type offset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  time.Time
	expireTime  time.Time // OffsetCommit v2-4 retention time; zero when none
}

// validateOffsetCommit is Kafka 4's ClassicGroup.validateOffsetCommit.
func (g *group) validateOffsetCommit(req *kmsg.OffsetCommitRequest) int16 {
	if req.Generation < 0 && g.state == stateEmpty {
		// The admin client, or a consumer that assigns itself.
		return 0
	}
	if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil {
		if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
			return code
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration.Code
		}
	} else if g.state != stateEmpty {
		// Without member and generation, only an empty group takes
		// commits.
		return kerr.UnknownMemberID.Code
	}
	if g.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// commit handles an OffsetCommit.
func (s *partitionState) commit(ev *commitEvent) {
	req := ev.req
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	// The response, in request order; unknown partitions keep their code
	// whatever happens to the rest.
	var todo []*kmsg.OffsetCommitResponseTopicPartition
	var todoReq []*kmsg.OffsetCommitRequestTopicPartition
	var todoTopic []string
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(rt.Partitions))
		resp.Topics = append(resp.Topics, st)
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			sp := &resp.Topics[i].Partitions[j]
			*sp = kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rt.Partitions[j].Partition
			if ev.unknown[topicPartition{rt.Topic, sp.Partition}] {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			todo = append(todo, sp)
			todoReq = append(todoReq, &rt.Partitions[j])
			todoTopic = append(todoTopic, rt.Topic)
		}
	}
	failAll := func(code int16) {
		for _, sp := range todo {
			sp.ErrorCode = code
		}
		ev.reply(resp)
	}
	if len(todo) == 0 {
		ev.reply(resp)
		return
	}

	g := s.groups[req.Group]
	created := false
	if g == nil {
		switch {
		case req.Generation < 0:
			// A "simple" group: created Empty to hold the offsets.
			g = s.newGroup(req.Group)
			created = true
		case req.Version >= 9:
			failAll(kerr.GroupIDNotFound.Code)
			return
		default:
			failAll(kerr.IllegalGeneration.Code)
			return
		}
	}
	if code := g.validateOffsetCommit(req); code != 0 {
		if created {
			s.dropGroup(g)
		}
		failAll(code)
		return
	}
	if m := g.byID[req.MemberID]; m != nil {
		m.deadline = s.after(m.sessionTimeout)
		s.rearm(g)
	}

	var expire time.Time
	if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis >= 0 {
		expire = s.now.Add(time.Duration(req.RetentionTimeMillis) * time.Millisecond)
	}
	type pendingCommit struct {
		tp tp
		o  offset
		sp *kmsg.OffsetCommitResponseTopicPartition
	}
	var pend []pendingCommit
	records := make([]record, 0, len(todo))
	for i, sp := range todo {
		rp := todoReq[i]
		md := derefString(rp.Metadata)
		if len(md) > s.cfg.MaxMetadataSize {
			sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			continue
		}
		o := offset{
			offset:      rp.Offset,
			leaderEpoch: rp.LeaderEpoch,
			metadata:    md,
			commitTime:  s.now,
			expireTime:  expire,
		}
		t := tp{todoTopic[i], rp.Partition}
		records = append(records, offsetRecord(req.Group, t.topic, t.partition, o))
		pend = append(pend, pendingCommit{t, o, sp})
		g.pendingCommits[t]++
	}
	if len(records) == 0 {
		if created {
			s.dropGroup(g)
		}
		ev.reply(resp)
		return
	}
	s.emit(records, func(err error) {
		for _, pc := range pend {
			if g.pendingCommits[pc.tp]--; g.pendingCommits[pc.tp] <= 0 {
				delete(g.pendingCommits, pc.tp)
			}
		}
		if err != nil {
			code := appendErrorCode(err)
			if code == kerr.MessageTooLarge.Code || code == kerr.RecordListTooLarge.Code {
				code = kerr.InvalidCommitOffsetSize.Code
			}
			for _, pc := range pend {
				pc.sp.ErrorCode = code
			}
			if g.isEmptyShell() && s.groups[g.id] == g {
				s.dropGroup(g)
			}
			ev.reply(resp)
			return
		}
		// The records are in the log after anything written before
		// them, so memory follows the log: a group deleted meanwhile
		// comes back holding these offsets, as it would on reload.
		h := s.groups[g.id]
		if h == nil {
			h = s.newGroup(g.id)
		}
		for _, pc := range pend {
			h.setOffset(pc.tp, pc.o)
		}
		ev.reply(resp)
	})
}

type tp = topicPartition

func (g *group) setOffset(t tp, o offset) {
	ps := g.offsets[t.topic]
	if ps == nil {
		ps = make(map[int32]offset)
		g.offsets[t.topic] = ps
	}
	ps[t.partition] = o
}

func (g *group) deleteOffset(t tp) bool {
	ps := g.offsets[t.topic]
	if _, ok := ps[t.partition]; !ok {
		return false
	}
	delete(ps, t.partition)
	if len(ps) == 0 {
		delete(g.offsets, t.topic)
	}
	return true
}

// fetch answers one group of an OffsetFetch. A group that does not exist
// has no offsets: -1 for each partition asked for, and no error. With
// requireStable, a partition with a pending transactional offset (a
// TxnOffsetCommit whose transaction is not decided yet) answers
// UNSTABLE_OFFSET_COMMIT and offset -1, as Kafka does.
func (s *partitionState) fetch(rg kmsg.OffsetFetchRequestGroup, requireStable bool) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	g := s.groups[rg.Group]
	part := func(topic string, p int32, o offset, ok bool) kmsg.OffsetFetchResponseGroupTopicPartition {
		sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		sp.Partition = p
		sp.Offset, sp.LeaderEpoch, sp.Metadata = -1, -1, kmsg.StringPtr("")
		if requireStable && s.pendingFor(rg.Group, tp{topic, p}) {
			sp.ErrorCode = kerr.UnstableOffsetCommit.Code
			return sp
		}
		if ok {
			sp.Offset, sp.LeaderEpoch, sp.Metadata = o.offset, o.leaderEpoch, kmsg.StringPtr(o.metadata)
		}
		return sp
	}
	if rg.Topics == nil {
		if g == nil {
			return sg
		}
		topics := make([]string, 0, len(g.offsets))
		for t := range g.offsets {
			topics = append(topics, t)
		}
		slices.Sort(topics)
		for _, t := range topics {
			st := kmsg.NewOffsetFetchResponseGroupTopic()
			st.Topic = t
			ps := g.offsets[t]
			ids := make([]int32, 0, len(ps))
			for p := range ps {
				ids = append(ids, p)
			}
			slices.Sort(ids)
			for _, p := range ids {
				st.Partitions = append(st.Partitions, part(t, p, ps[p], true))
			}
			sg.Topics = append(sg.Topics, st)
		}
		return sg
	}
	for _, rt := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = rt.Topic
		var ps map[int32]offset
		if g != nil {
			ps = g.offsets[rt.Topic]
		}
		for _, p := range rt.Partitions {
			o, ok := ps[p]
			st.Partitions = append(st.Partitions, part(rt.Topic, p, o, ok))
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}

// offsetDelete is Kafka 4's OffsetMetadataManager.deleteOffsets.
func (s *partitionState) offsetDelete(ev *offsetDeleteEvent) {
	req := ev.req
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g := s.groups[req.Group]
	switch {
	case g == nil:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
	case g.state != stateEmpty && g.protocolType != consumerProtocolType:
		resp.ErrorCode = kerr.NonEmptyGroup.Code
	}
	if resp.ErrorCode != 0 {
		ev.reply(resp)
		return
	}
	var records []record
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		subscribed := g.isSubscribedToTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case subscribed:
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			case g.deleteOffset(tp{rt.Topic, rp.Partition}):
				records = append(records, offsetTombstone(g.id, rt.Topic, rp.Partition))
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(records) == 0 {
		ev.reply(resp)
		return
	}
	s.emit(records, func(err error) {
		if err != nil {
			resp.ErrorCode = appendErrorCode(err)
			resp.Topics = nil
		}
		ev.reply(resp)
	})
}

// deleteGroups handles DeleteGroups for groups of this partition: Empty
// groups are removed with tombstones for their offsets and metadata.
func (s *partitionState) deleteGroups(ev *deleteGroupsEvent) {
	out := make([]kmsg.DeleteGroupsResponseGroup, len(ev.groups))
	var records []record
	var deleted []int
	for i, id := range ev.groups {
		out[i] = kmsg.NewDeleteGroupsResponseGroup()
		out[i].Group = id
		g := s.groups[id]
		switch {
		case g == nil:
			out[i].ErrorCode = kerr.GroupIDNotFound.Code
		case g.state != stateEmpty:
			out[i].ErrorCode = kerr.NonEmptyGroup.Code
		default:
			records = append(records, g.tombstones()...)
			s.dropGroup(g)
			deleted = append(deleted, i)
			s.logger.Info("group deleted", "group", id)
		}
	}
	if len(records) == 0 {
		ev.reply(out)
		return
	}
	s.emit(records, func(err error) {
		if err != nil {
			for _, i := range deleted {
				out[i].ErrorCode = appendErrorCode(err)
			}
		}
		ev.reply(out)
	})
}

// tombstones deletes every offset of the group, then the group.
func (g *group) tombstones() []record {
	var records []record
	topics := make([]string, 0, len(g.offsets))
	for t := range g.offsets {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		ps := make([]int32, 0, len(g.offsets[t]))
		for p := range g.offsets[t] {
			ps = append(ps, p)
		}
		slices.SortFunc(ps, cmp.Compare)
		for _, p := range ps {
			records = append(records, offsetTombstone(g.id, t, p))
		}
	}
	return append(records, groupTombstone(g.id))
}

// appendErrorCode maps a failed append to the code Kafka gives
// (appendGroupMetadataErrorToResponseError): retriable coordinator errors
// that send the client to FindCoordinator again.
func appendErrorCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
			return kerr.CoordinatorNotAvailable.Code
		case kerr.NotLeaderForPartition, kerr.KafkaStorageError, kerr.NotCoordinator:
			return kerr.NotCoordinator.Code
		case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
			return ke.Code
		}
		return kerr.UnknownServerError.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.NotCoordinator.Code
}

func (s *partitionState) logWriteError(groupID string) func(error) {
	return func(err error) {
		if err != nil {
			s.logger.Warn("writing group metadata failed", "group", groupID, "err", err)
		}
	}
}
