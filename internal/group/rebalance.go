package group

// The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup and the group timers. The logic follows Kafka 4's
// GroupMetadataManager (classicGroupJoin, classicGroupSync, ...) closely,
// and the comments name the Kafka function each part mirrors.

import (
	"bytes"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *partitionState) newGroup(id string) *group {
	g := newGroup(id, s.now)
	s.groups[id] = g
	return g
}

// dropGroup removes a group from the partition (it becomes Dead).
func (s *partitionState) dropGroup(g *group) {
	g.transition(stateDead, s.now)
	g.removed = true
	if s.groups[g.id] == g {
		delete(s.groups, g.id)
	}
}

func joinError(version int16, memberID string, code int16) *kmsg.JoinGroupResponse {
	r := &kmsg.JoinGroupResponse{Version: version}
	r.Default()
	r.MemberID = memberID
	r.ErrorCode = code
	return r
}

// join is classicGroupJoinToClassicGroup. The caller has checked the group
// id and the session timeout.
func (s *partitionState) join(ev *joinEvent) {
	req := ev.req
	g := s.groups[req.Group]
	unknown := req.MemberID == ""
	created := false
	if g == nil {
		if !unknown {
			ev.reply(joinError(req.Version, req.MemberID, kerr.UnknownMemberID.Code))
			return
		}
		g = s.newGroup(req.Group)
		created = true
	}
	switch {
	case !s.acceptJoiningMember(g, req.MemberID):
		g.remove(req.MemberID)
		ev.reply(joinError(req.Version, "", kerr.GroupMaxSizeReached.Code))
		s.maybeCompleteJoinPhase(g)
	case unknown:
		s.joinNewMember(g, ev)
	default:
		s.joinExistingMember(g, ev)
	}
	if created && g.isEmptyShell() {
		s.dropGroup(g)
	}
	s.rearm(g)
}

// acceptJoiningMember enforces group.max.size.
func (s *partitionState) acceptJoiningMember(g *group, memberID string) bool {
	switch g.state {
	case statePreparingRebalance:
		if m := g.byID[memberID]; m != nil && m.awaitingJoin() {
			return true
		}
		return g.awaitingJoin < s.cfg.MaxGroupSize
	case stateCompletingRebalance, stateStable:
		return g.byID[memberID] != nil || len(g.members) < s.cfg.MaxGroupSize
	default:
		return true
	}
}

func (s *partitionState) joinNewMember(g *group, ev *joinEvent) {
	req := ev.req
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		ev.reply(joinError(req.Version, "", kerr.InconsistentGroupProtocol.Code))
		return
	}
	id := s.newMemberID(ev.client.ID, req.InstanceID)
	if req.InstanceID != nil {
		if old, ok := g.static[*req.InstanceID]; ok {
			s.updateStaticMember(g, ev, old, id)
		} else {
			s.addMember(g, ev, id)
		}
		return
	}
	if req.Version >= 4 {
		// KIP-394: hand out the id and wait for the member to come
		// back with it, so that members that never do are not kept.
		g.pending[id] = s.after(time.Duration(req.SessionTimeoutMillis) * time.Millisecond)
		ev.reply(joinError(req.Version, id, kerr.MemberIDRequired.Code))
		return
	}
	s.addMember(g, ev, id)
}

func (s *partitionState) joinExistingMember(g *group, ev *joinEvent) {
	req := ev.req
	id := req.MemberID
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		ev.reply(joinError(req.Version, id, kerr.InconsistentGroupProtocol.Code))
		return
	}
	if _, ok := g.pending[id]; ok {
		s.addMember(g, ev, id)
		return
	}
	if code := g.validateMember(id, req.InstanceID); code != 0 {
		ev.reply(joinError(req.Version, id, code))
		return
	}
	m := g.byID[id]
	current := func(withMembers bool) {
		r := joinError(req.Version, id, 0)
		g.fillJoin(r, id, g.leader, withMembers)
		ev.reply(r)
	}
	switch g.state {
	case statePreparingRebalance:
		s.updateMemberAndRebalance(g, m, ev)
	case stateCompletingRebalance:
		if m.matches(req.Protocols) {
			// The member lost the first response: the same again.
			current(g.leader == id)
		} else {
			s.updateMemberAndRebalance(g, m, ev)
		}
	case stateStable:
		if g.leader == id || !m.matches(req.Protocols) {
			// The leader rejoins to force a rebalance (e.g. new
			// topic metadata); others when their metadata changed.
			s.updateMemberAndRebalance(g, m, ev)
		} else {
			current(false)
		}
	default:
		ev.reply(joinError(req.Version, id, kerr.UnknownMemberID.Code))
	}
}

func timeouts(req *kmsg.JoinGroupRequest) (rebalance, session time.Duration) {
	session = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || req.RebalanceTimeoutMillis < 0 {
		rebalance = session // v0 has no rebalance timeout
	}
	return rebalance, session
}

// addMember is addMemberThenRebalanceOrCompleteJoin.
func (s *partitionState) addMember(g *group, ev *joinEvent, id string) {
	req := ev.req
	rebalance, session := timeouts(req)
	m := &member{
		id:               id,
		clientID:         ev.client.ID,
		clientHost:       ev.client.Host,
		protocolType:     req.ProtocolType,
		protocols:        cloneProtocols(req.Protocols),
		sessionTimeout:   session,
		rebalanceTimeout: rebalance,
		isNew:            true,
	}
	if req.InstanceID != nil {
		inst := *req.InstanceID
		m.instanceID = &inst
	}
	if g.state == statePreparingRebalance && g.prevState == stateEmpty {
		g.newMemberAdded = true
	}
	g.add(m, &joinWaiter{version: req.Version, reply: ev.reply})
	// A new member cannot heartbeat while its JoinGroup is parked; it is
	// dropped if the rebalance has not answered it by then.
	m.deadline = s.after(newMemberJoinTimeout)
	s.logger.Debug("member joins", "group", g.id, "member", id, "instance", derefString(m.instanceID))
	s.maybePrepareRebalanceOrCompleteJoin(g, "new member")
}

// updateMemberAndRebalance is updateMemberThenRebalanceOrCompleteJoin.
func (s *partitionState) updateMemberAndRebalance(g *group, m *member, ev *joinEvent) {
	rebalance, session := timeouts(ev.req)
	g.updateMember(m, cloneProtocols(ev.req.Protocols), rebalance, session, &joinWaiter{version: ev.req.Version, reply: ev.reply})
	s.maybePrepareRebalanceOrCompleteJoin(g, "member rejoins")
}

// updateStaticMember is updateStaticMemberThenRebalanceOrCompleteJoin: a
// known group.instance.id joins with an unknown member id (a restart).
func (s *partitionState) updateStaticMember(g *group, ev *joinEvent, oldID, newID string) {
	req := ev.req
	instance := *req.InstanceID
	currentLeader := g.leader
	m := g.replaceStaticMember(instance, oldID, newID)
	m.deadline = s.after(m.sessionTimeout)
	rebalance, session := timeouts(req)
	g.updateMember(m, cloneProtocols(req.Protocols), rebalance, session, &joinWaiter{version: req.Version, reply: ev.reply})
	s.logger.Info("static member rejoins", "group", g.id, "instance", instance, "old_member", oldID, "member", newID, "state", g.state.String())
	switch g.state {
	case stateStable:
		if g.protocol != g.selectProtocol() {
			s.maybePrepareRebalanceOrCompleteJoin(g, "static member changes the group's protocol")
			return
		}
		// KIP-345: no rebalance. Persist the new member id, then
		// answer with the current generation; the member gets its
		// assignment back from SyncGroup.
		gen := g.generation
		s.emit([]record{groupRecord(g, nil, s.now)}, func(err error) {
			if g.byID[newID] != m || m.joinReply == nil {
				return // answered meanwhile (a rebalance started)
			}
			if err != nil {
				g.answerJoin(m, func(r *kmsg.JoinGroupResponse) { r.ErrorCode = appendErrorCode(err) })
				return
			}
			g.answerJoin(m, func(r *kmsg.JoinGroupResponse) {
				if req.Version >= 9 {
					// KIP-814: the leader learns it leads but
					// keeps the current assignment.
					isLeader := g.leader == newID
					g.fillJoin(r, newID, g.leader, isLeader)
					r.SkipAssignment = isLeader
				} else {
					// The old leader id, so a restarted leader
					// does not run a useless assignment that a
					// Stable group would not propagate.
					g.fillJoin(r, newID, currentLeader, false)
				}
				r.Generation = gen
			})
			m.deadline = s.after(m.sessionTimeout)
			s.rearm(g)
		})
	case stateCompletingRebalance:
		s.prepareRebalance(g, "static member rejoins while completing a rebalance")
	case statePreparingRebalance:
		s.maybeCompleteJoinPhase(g)
	}
}

func (s *partitionState) maybePrepareRebalanceOrCompleteJoin(g *group, reason string) {
	if g.canRebalance() {
		s.prepareRebalance(g, reason)
	} else {
		s.maybeCompleteJoinPhase(g)
	}
}

// maybeCompleteJoinPhase completes the join phase once every member has
// rejoined, except while the initial rebalance delay runs.
func (s *partitionState) maybeCompleteJoinPhase(g *group) {
	if g.state == statePreparingRebalance && g.hasAllMembersJoined() && !g.join.initial {
		s.completeJoin(g)
	}
}

// prepareRebalance enters PreparingRebalance.
func (s *partitionState) prepareRebalance(g *group, reason string) {
	if g.state == stateCompletingRebalance {
		s.resetAndPropagateAssignment(g, kerr.RebalanceInProgress.Code)
	}
	g.syncDeadline = time.Time{}
	initial := g.state == stateEmpty && s.cfg.InitialRebalanceDelay > 0
	if initial {
		// Kafka's InitialDelayedJoin: wait for more members before
		// the first rebalance of an empty group.
		delay := s.cfg.InitialRebalanceDelay
		g.join = joinTimer{
			at:        s.after(delay),
			initial:   true,
			delay:     delay,
			remaining: max(g.rebalanceTimeout()-delay, 0),
		}
		g.newMemberAdded = false
	}
	s.logger.Info("preparing to rebalance", "group", g.id, "from", g.state.String(), "generation", g.generation, "reason", reason)
	g.transition(statePreparingRebalance, s.now)
	if initial {
		return
	}
	if g.hasAllMembersJoined() {
		s.completeJoin(g)
		return
	}
	g.join = joinTimer{at: s.after(g.rebalanceTimeout())}
}

// joinTimerFired is DelayedJoin / InitialDelayedJoin expiring.
func (s *partitionState) joinTimerFired(g *group) {
	jt := g.join
	if jt.initial && g.newMemberAdded && jt.remaining != 0 {
		g.newMemberAdded = false
		delay := min(s.cfg.InitialRebalanceDelay, jt.remaining)
		g.join = joinTimer{
			at:        s.after(delay),
			initial:   true,
			delay:     delay,
			remaining: max(jt.remaining-jt.delay, 0),
		}
		return
	}
	s.completeJoin(g)
}

// completeJoin is completeClassicGroupJoin: the end of the join phase.
func (s *partitionState) completeJoin(g *group) {
	g.join = joinTimer{}
	if g.state != statePreparingRebalance {
		return
	}
	// Dynamic members that did not rejoin in time are out; static ones
	// stay until their session expires.
	for _, m := range append([]*member(nil), g.members...) {
		if !m.awaitingJoin() && !m.isStatic() {
			s.logger.Info("member did not rejoin in time; removing it", "group", g.id, "member", m.id)
			g.remove(m.id)
		}
	}
	if !g.maybeElectNewJoinedLeader() && len(g.members) > 0 {
		// Nobody rejoined: wait another round for sessions to expire.
		g.join = joinTimer{at: s.after(g.rebalanceTimeout())}
		return
	}
	g.initNextGeneration(s.now)
	if g.state == stateEmpty {
		s.logger.Info("group is empty", "group", g.id, "generation", g.generation)
		s.emit([]record{groupRecord(g, nil, s.now)}, s.logWriteError(g.id))
		return
	}
	s.logger.Info("rebalance joined", "group", g.id, "generation", g.generation, "protocol", g.protocol, "leader", g.leader, "members", len(g.members))
	for _, m := range g.members {
		g.answerJoin(m, func(r *kmsg.JoinGroupResponse) {
			g.fillJoin(r, m.id, g.leader, m.id == g.leader)
		})
		m.deadline = s.after(m.sessionTimeout)
		m.isNew = false
		g.pendingSync[m.id] = true
	}
	g.syncDeadline = s.after(g.rebalanceTimeout())
	g.syncGeneration = g.generation
}

// syncTimerFired is expirePendingSync: members that got the join response
// but never sent SyncGroup are removed.
func (s *partitionState) syncTimerFired(g *group) {
	g.syncDeadline = time.Time{}
	if g.syncGeneration != g.generation || len(g.pendingSync) == 0 {
		return
	}
	if g.state != stateCompletingRebalance && g.state != stateStable {
		return
	}
	for id := range g.pendingSync {
		s.logger.Info("member did not sync in time; removing it", "group", g.id, "member", id)
		g.remove(id)
	}
	s.prepareRebalance(g, "members did not sync")
}

// resetAndPropagateAssignment clears every assignment and answers parked
// SyncGroups with code.
func (s *partitionState) resetAndPropagateAssignment(g *group, code int16) {
	for _, m := range g.members {
		m.assignment = nil
	}
	s.propagateAssignment(g, code)
}

func (s *partitionState) propagateAssignment(g *group, code int16) {
	for _, m := range g.members {
		if g.answerSync(m, code, code == 0) {
			m.deadline = s.after(m.sessionTimeout)
		}
	}
}

// tickGroup runs the group's timers that are due.
func (s *partitionState) tickGroup(g *group) {
	now := s.now
	if !g.join.at.IsZero() && !g.join.at.After(now) {
		s.joinTimerFired(g)
	}
	if !g.syncDeadline.IsZero() && !g.syncDeadline.After(now) {
		s.syncTimerFired(g)
	}
	for id, at := range g.pending {
		if !at.After(now) {
			s.logger.Debug("pending member expired", "group", g.id, "member", id)
			delete(g.pending, id)
			if g.state == statePreparingRebalance && g.hasAllMembersJoined() {
				s.completeJoin(g)
			}
		}
	}
	for _, m := range append([]*member(nil), g.members...) {
		if m.deadline.IsZero() || m.deadline.After(now) || g.byID[m.id] != m {
			continue
		}
		if m.hasSatisfiedHeartbeat() {
			m.deadline = time.Time{} // rescheduled when its rebalance ends
			continue
		}
		s.logger.Info("member session expired; removing it", "group", g.id, "member", m.id, "instance", derefString(m.instanceID))
		s.removeMemberAndUpdate(g, m, "session expired")
	}
}

// removeMemberAndUpdate is removeMemberAndUpdateClassicGroup.
func (s *partitionState) removeMemberAndUpdate(g *group, m *member, reason string) {
	g.remove(m.id)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		s.maybePrepareRebalanceOrCompleteJoin(g, reason)
	case statePreparingRebalance:
		if g.hasAllMembersJoined() {
			s.completeJoin(g)
		}
	}
}

// sync is classicGroupSyncToClassicGroup.
func (s *partitionState) sync(ev *syncEvent) {
	req := ev.req
	fail := func(code int16) {
		r := req.ResponseKind().(*kmsg.SyncGroupResponse)
		r.ErrorCode = code
		ev.reply(r)
	}
	g := s.groups[req.Group]
	if g == nil {
		fail(kerr.UnknownMemberID.Code)
		return
	}
	if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
		fail(code)
		return
	}
	if req.Generation != g.generation {
		fail(kerr.IllegalGeneration.Code)
		return
	}
	if inconsistent(req.ProtocolType, g.protocolType) || inconsistent(req.Protocol, g.protocol) {
		fail(kerr.InconsistentGroupProtocol.Code)
		return
	}
	m := g.byID[req.MemberID]
	switch g.state {
	case statePreparingRebalance:
		fail(kerr.RebalanceInProgress.Code)
	case stateCompletingRebalance:
		if m.syncReply != nil {
			g.answerSync(m, kerr.RebalanceInProgress.Code, false) // a retry replaces it
		}
		m.syncReply = &syncWaiter{version: req.Version, reply: ev.reply}
		delete(g.pendingSync, m.id)
		if g.leader == m.id {
			s.leaderSync(g, req)
		}
	case stateStable:
		delete(g.pendingSync, m.id)
		r := req.ResponseKind().(*kmsg.SyncGroupResponse)
		r.ProtocolType = optString(g.protocolType)
		r.Protocol = optString(g.protocol)
		r.MemberAssignment = m.assignment
		m.deadline = s.after(m.sessionTimeout)
		ev.reply(r)
	default:
		fail(kerr.UnknownMemberID.Code)
	}
	s.rearm(g)
}

// leaderSync stores the leader's assignment, then makes the group Stable
// and hands every member its part.
func (s *partitionState) leaderSync(g *group, req *kmsg.SyncGroupRequest) {
	assignment := make(map[string][]byte, len(g.members))
	for _, a := range req.GroupAssignment {
		if g.byID[a.MemberID] != nil {
			assignment[a.MemberID] = bytes.Clone(a.MemberAssignment)
		}
	}
	for _, m := range g.members {
		if _, ok := assignment[m.id]; !ok {
			assignment[m.id] = []byte{}
		}
	}
	gen := g.generation
	s.emit([]record{groupRecord(g, assignment, s.now)}, func(err error) {
		if g.removed || g.state != stateCompletingRebalance || g.generation != gen {
			return // another rebalance began meanwhile
		}
		if err != nil {
			s.logger.Warn("storing the group assignment failed", "group", g.id, "generation", gen, "err", err)
			s.resetAndPropagateAssignment(g, appendErrorCode(err))
			s.maybePrepareRebalanceOrCompleteJoin(g, "storing the assignment failed")
			s.rearm(g)
			return
		}
		for _, m := range g.members {
			m.assignment = assignment[m.id]
		}
		s.propagateAssignment(g, 0)
		g.transition(stateStable, s.now)
		s.logger.Info("group is stable", "group", g.id, "generation", gen, "members", len(g.members))
		s.rearm(g)
	})
}

// inconsistent: a protocol type or name in SyncGroup (v5+) that differs
// from the group's.
func inconsistent(req *string, have string) bool {
	return req != nil && have != "" && *req != have
}

// heartbeat is classicGroupHeartbeatToClassicGroup.
func (s *partitionState) heartbeat(ev *heartbeatEvent) {
	req := ev.req
	r := req.ResponseKind().(*kmsg.HeartbeatResponse)
	g := s.groups[req.Group]
	switch {
	case g == nil:
		r.ErrorCode = kerr.UnknownMemberID.Code
	default:
		r.ErrorCode = g.validateMember(req.MemberID, req.InstanceID)
		if r.ErrorCode == 0 && req.Generation != g.generation {
			r.ErrorCode = kerr.IllegalGeneration.Code
		}
		if r.ErrorCode != 0 {
			break
		}
		m := g.byID[req.MemberID]
		switch g.state {
		case statePreparingRebalance:
			m.deadline = s.after(m.sessionTimeout)
			r.ErrorCode = kerr.RebalanceInProgress.Code
		case stateCompletingRebalance, stateStable:
			m.deadline = s.after(m.sessionTimeout)
		default:
			r.ErrorCode = kerr.UnknownMemberID.Code
		}
		s.rearm(g)
	}
	ev.reply(r)
}

// leave is classicGroupLeaveToClassicGroup, with v0-2 (one member by id)
// mapped onto the v3+ member list.
func (s *partitionState) leave(ev *leaveEvent) {
	req := ev.req
	r := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	defer ev.reply(r)
	g := s.groups[req.Group]
	if g == nil {
		r.ErrorCode = kerr.UnknownMemberID.Code
		return
	}
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	left := 0
	for _, lm := range leaving {
		mr := kmsg.NewLeaveGroupResponseMember()
		mr.MemberID = lm.MemberID
		mr.InstanceID = lm.InstanceID
		switch _, pending := g.pending[lm.MemberID]; {
		case lm.MemberID == "":
			// Administrative removal by group.instance.id.
			if lm.InstanceID != nil && g.static[*lm.InstanceID] != "" {
				s.removeLeaving(g, g.static[*lm.InstanceID], lm.Reason)
				left++
			} else {
				mr.ErrorCode = kerr.UnknownMemberID.Code
			}
		case pending:
			delete(g.pending, lm.MemberID)
			left++
		default:
			if mr.ErrorCode = g.validateMember(lm.MemberID, lm.InstanceID); mr.ErrorCode == 0 {
				s.removeLeaving(g, lm.MemberID, lm.Reason)
				left++
			}
		}
		if req.Version < 3 {
			r.ErrorCode = mr.ErrorCode
		} else {
			r.Members = append(r.Members, mr)
		}
	}
	if left > 0 {
		switch g.state {
		case stateStable, stateCompletingRebalance:
			s.maybePrepareRebalanceOrCompleteJoin(g, "members left")
		case statePreparingRebalance:
			s.maybeCompleteJoinPhase(g)
		}
	}
	s.rearm(g)
}

func (s *partitionState) removeLeaving(g *group, id string, reason *string) {
	s.logger.Info("member leaves", "group", g.id, "member", id, "reason", derefString(reason))
	g.remove(id)
}
