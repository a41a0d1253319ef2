package metadata

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Broker liveness, as KRaft does it: every broker heartbeats to the active
// controller every BrokerHeartbeatInterval (the Store runs this loop for
// its own broker); the controller keeps the time of each broker's last
// heartbeat in memory, outside the FSM, and proposes fence_broker for a
// broker silent for BrokerSessionTimeout. A heartbeat from a fenced broker
// proposes unfence_broker; one that asks to shut down proposes
// controlled_shutdown. A controller that takes over gives every broker a
// full session before fencing it. The controller never fences its own
// broker (same process).

// session is the controller's record of a broker's last heartbeat.
type session struct {
	epoch int64
	at    time.Time
}

// HeartbeatResult is the controller's answer to a broker heartbeat.
type HeartbeatResult struct {
	Fenced               bool
	InControlledShutdown bool
	// ShouldShutDown: the broker is in controlled shutdown and leads no
	// partition, so it may stop.
	ShouldShutDown bool
	// index is the controller's applied index when it answered.
	index uint64
}

func (s *Store) sessionTick() time.Duration {
	return min(max(s.cfg.BrokerSessionTimeout/10, 10*time.Millisecond), 500*time.Millisecond)
}

// controllerLoop checks broker sessions while this node leads.
func (s *Store) controllerLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.sessionTick())
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.checkSessions()
		}
	}
}

// checkSessions fences the brokers whose session expired.
func (s *Store) checkSessions() {
	leader := s.raft.State() == raft.Leader
	now := s.cfg.Now()
	s.ctrl.Lock()
	if !leader {
		if s.ctrl.leader {
			s.logger.Info("no longer the active controller", "node-id", s.cfg.NodeID, "controller", s.ControllerID())
		}
		s.ctrl.leader, s.ctrl.seen = false, nil
		s.ctrl.Unlock()
		return
	}
	if !s.ctrl.leader {
		// New leadership: every broker gets a full session from now.
		if !s.fast {
			s.logger.Info("active controller", "node-id", s.cfg.NodeID, "term", s.raft.Stats()["term"])
		}
		s.ctrl.leader, s.ctrl.seen = true, map[int32]session{}
	}
	var expired []Broker
	for _, b := range s.fsm.brokers() {
		r, ok := s.ctrl.seen[b.NodeID]
		if !ok || r.epoch != b.Epoch {
			// Registered meanwhile (a registration counts as a heartbeat).
			s.ctrl.seen[b.NodeID] = session{epoch: b.Epoch, at: now}
			continue
		}
		// The controller's own broker lives in this process: a missed
		// heartbeat means the process stalled, not that the broker died.
		if !b.Fenced && b.NodeID != s.cfg.NodeID && now.Sub(r.at) > s.cfg.BrokerSessionTimeout {
			expired = append(expired, b)
		}
	}
	s.ctrl.Unlock()
	for _, b := range expired {
		s.logger.Info("fencing broker: no heartbeat within the session timeout", "broker", b.NodeID, "epoch", b.Epoch,
			"session-timeout", s.cfg.BrokerSessionTimeout)
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		data, err := encodeCommand(&fenceBrokerCmd{NodeID: b.NodeID, Epoch: b.Epoch})
		if err == nil {
			var res applyResult
			res, _, _, err = s.applyLocal(ctx, data)
			if err == nil {
				err = res.err
			}
		}
		cancel()
		if err != nil && !errors.Is(err, kerr.StaleBrokerEpoch) {
			s.logger.Warn("fencing broker failed", "broker", b.NodeID, "err", err)
		}
	}
}

// touch records a heartbeat.
func (s *Store) touch(id int32, epoch int64) {
	s.ctrl.Lock()
	defer s.ctrl.Unlock()
	if s.ctrl.seen == nil {
		s.ctrl.seen = map[int32]session{}
	}
	s.ctrl.seen[id] = session{epoch: epoch, at: s.cfg.Now()}
}

// handleHeartbeat is the controller side of a heartbeat (on the leader).
func (s *Store) handleHeartbeat(ctx context.Context, req *fwdRequest) *fwdResponse {
	resp := &fwdResponse{}
	b, ok := s.fsm.broker(req.NodeID)
	switch {
	case !ok:
		resp.setErr(kerrorf(kerr.BrokerIDNotRegistered, "broker %d is not registered", req.NodeID))
		return resp
	case b.Epoch != req.Epoch:
		resp.setErr(kerrorf(kerr.StaleBrokerEpoch, "broker %d has epoch %d, not %d", req.NodeID, b.Epoch, req.Epoch))
		return resp
	}
	s.touch(req.NodeID, req.Epoch)
	var cmd any
	switch {
	case req.WantShutdown && !b.InControlledShutdown:
		cmd = &controlledShutdownCmd{NodeID: b.NodeID, Epoch: b.Epoch}
	case req.WantFence && !b.Fenced:
		cmd = &fenceBrokerCmd{NodeID: b.NodeID, Epoch: b.Epoch}
	case !req.WantFence && !req.WantShutdown && b.Fenced && !b.InControlledShutdown:
		s.logger.Info("unfencing broker", "broker", b.NodeID, "epoch", b.Epoch)
		cmd = &unfenceBrokerCmd{NodeID: b.NodeID, Epoch: b.Epoch}
	}
	if cmd != nil {
		data, err := encodeCommand(cmd)
		if err != nil {
			resp.setErr(err)
			return resp
		}
		res, _, retry, err := s.applyLocal(ctx, data)
		if retry {
			return s.notLeader()
		}
		if err == nil {
			err = res.err
		}
		if err != nil {
			resp.setErr(err)
			return resp
		}
		b, _ = s.fsm.broker(req.NodeID)
	}
	resp.Fenced, resp.InControlledShutdown = b.Fenced, b.InControlledShutdown
	resp.ShouldShutDown = b.InControlledShutdown && s.fsm.leaderships(b.NodeID) == 0
	resp.Index = s.fsm.appliedIndex()
	return resp
}

// heartbeatLoop heartbeats this node's broker until Close.
func (s *Store) heartbeatLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.BrokerHeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.BrokerHeartbeatInterval)
			_, err := s.Heartbeat(ctx)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.logger.Debug("broker heartbeat failed", "err", err)
			}
			s.rejoinIfRemoved()
		}
	}
}

// rejoinIfRemoved makes a running node that was removed from the quorum
// (RemoveVoter, e.g. a voter removed while it still runs) an observer
// again: raft leaves a removed server without a leader, so the node asks
// the controller to add it back as a non-voter, the way a broker-only
// node joins at Open. Its metadata then keeps flowing, as a removed KRaft
// voter keeps fetching as an observer.
func (s *Store) rejoinIfRemoved() {
	ms, err := s.Members()
	if err != nil || len(ms) == 0 || slices.ContainsFunc(ms, func(m Member) bool { return m.NodeID == s.cfg.NodeID }) {
		return
	}
	s.logger.Info("removed from the controller quorum while running: joining again as an observer", "node-id", s.cfg.NodeID)
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if err := s.join(ctx); err != nil && s.ctx.Err() == nil {
		s.logger.Warn("joining the controller quorum again failed", "err", err)
	}
}

// Heartbeat sends one heartbeat for this node's broker to the active
// controller (the Store already does so every BrokerHeartbeatInterval;
// exported for ControlledShutdown-like flows and tests). If the controller
// no longer knows this broker's epoch, the broker registers again.
func (s *Store) Heartbeat(ctx context.Context) (HeartbeatResult, error) {
	b, ok := s.fsm.broker(s.cfg.NodeID)
	if !ok {
		return HeartbeatResult{}, s.registerSelf(ctx, true)
	}
	resp, err := s.call(ctx, &fwdRequest{Op: opHeartbeat, NodeID: b.NodeID, Epoch: b.Epoch, WantShutdown: s.wantShutdown.Load()})
	if errors.Is(err, kerr.StaleBrokerEpoch) || errors.Is(err, kerr.BrokerIDNotRegistered) {
		if cur, ok := s.fsm.broker(s.cfg.NodeID); ok && cur.Epoch != b.Epoch {
			return HeartbeatResult{}, err // our FSM was behind; the next heartbeat uses the new epoch
		}
		return HeartbeatResult{}, s.registerSelf(ctx, true)
	}
	if err != nil {
		return HeartbeatResult{}, err
	}
	return HeartbeatResult{Fenced: resp.Fenced, InControlledShutdown: resp.InControlledShutdown,
		ShouldShutDown: resp.ShouldShutDown, index: resp.Index}, nil
}

// ControlledShutdown asks the active controller to move every leadership
// and ISR membership of this broker to other brokers (Kafka's controlled
// shutdown) and returns once the broker leads nothing, so that the broker
// can stop without making partitions unavailable. Partitions whose ISR has
// no other live member lose their leader (-1) until this broker returns.
// The broker stays "in controlled shutdown" until it registers again
// (Open after a restart, or Register).
func (s *Store) ControlledShutdown(ctx context.Context) error {
	s.wantShutdown.Store(true)
	for {
		r, err := s.Heartbeat(ctx)
		if err == nil && r.ShouldShutDown {
			// Return once this node's metadata shows it too.
			if err := s.fsm.waitApplied(ctx, r.index); err != nil {
				return err
			}
			s.logger.Info("controlled shutdown: leadership moved away", "broker", s.cfg.NodeID)
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = ctx.Err()
			}
			return errors.Join(errors.New("metadata: controlled shutdown did not complete"), err)
		case <-t.C:
		}
	}
}
