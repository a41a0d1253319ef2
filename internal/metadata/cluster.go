package metadata

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Quorum membership: joining, voters and non-voters.

// Member is one member of the Raft configuration.
type Member struct {
	NodeID int32
	Addr   string // controller address
	Voter  bool   // false: a non-voter (broker-only node following the metadata)
}

// join is Open's wait in a quorum of several voters or on a broker-only
// node: find the leader (through the voters' controller listeners), have it
// add this node as a non-voter if it is not a member yet, and wait until
// the local FSM has applied everything the leader had applied.
func (s *Store) join(ctx context.Context) error {
	resp, err := s.call(ctx, &fwdRequest{Op: opSync, NodeID: s.cfg.NodeID, Addr: string(s.localAddr)})
	if err != nil {
		return fmt.Errorf("metadata: joining the controller quorum: %w", err)
	}
	return s.fsm.waitApplied(ctx, resp.Index)
}

// ensureMember (on the leader) adds node id at addr as a non-voter unless
// it is a member, and updates a member's address if it moved (raft's
// AddNonvoter keeps a voter a voter).
func (s *Store) ensureMember(ctx context.Context, id int32, addr string) error {
	if addr == "" {
		return nil
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("metadata: raft configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == serverID(id) && string(srv.Address) == addr {
			return nil
		}
	}
	s.logger.Info("adding controller quorum member", "node-id", id, "addr", addr, "as", "non-voter (or address update)")
	if err := s.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, timeoutFrom(ctx)).Error(); err != nil {
		return fmt.Errorf("metadata: add non-voter %d: %v: %w", id, err, kerr.NotController)
	}
	return nil
}

// Members lists the Raft configuration (voters and non-voters) ordered by
// node id, as this node last saw it.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("metadata: raft configuration: %w", err)
	}
	var out []Member
	for _, srv := range f.Configuration().Servers {
		n, err := strconv.ParseInt(string(srv.ID), 10, 32)
		if err != nil {
			continue
		}
		out = append(out, Member{NodeID: int32(n), Addr: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out, nil
}

// IsController reports whether this node is the active controller (the
// Raft leader).
func (s *Store) IsController() bool { return s.raft.State() == raft.Leader }

// ControllerAddr is the active controller's controller address ("" if
// none is known).
func (s *Store) ControllerAddr() string {
	a, _ := s.raft.LeaderWithID()
	return string(a)
}

// AddVoter makes node id (at its controller address addr) a voter, with
// the cluster up: raft's AddVoter on the leader, forwarded there from any
// node. The usual way to add a controller is to start the node as a
// broker-only node (not in its Voters list) so that it joins as a
// non-voter and catches up, then AddVoter promotes it. A quorum started as
// a lone voter runs with 20 ms Raft timeouts that cannot be raised while it
// runs (raft's leader lease is not reloadable): such a quorum refuses
// AddVoter; restart its node with a voter list of more than one member
// first (see DESIGN.md).
func (s *Store) AddVoter(ctx context.Context, id int32, addr string) error {
	if id < 0 {
		return kerrorf(kerr.InvalidRequest, "invalid node id %d", id)
	}
	if _, _, err := splitHostPort(addr); err != nil {
		return kerrorf(kerr.InvalidRequest, "voter address %q: %v", addr, err)
	}
	_, err := s.call(ctx, &fwdRequest{Op: opAddVoter, NodeID: id, Addr: addr})
	return err
}

// RemoveVoter removes node id from the quorum (voter or non-voter), with
// the cluster up: raft's RemoveServer on the leader. Removing the leader
// makes it step down once the change commits.
func (s *Store) RemoveVoter(ctx context.Context, id int32) error {
	_, err := s.call(ctx, &fwdRequest{Op: opRemoveVoter, NodeID: id})
	return err
}

func (s *Store) addVoterLocal(ctx context.Context, id int32, addr string) error {
	if s.fast {
		return kerrorf(kerr.InvalidRequest, "the controller runs as a lone voter with single-voter timeouts; restart node %d with a voter list of more than one member before adding voters", s.cfg.NodeID)
	}
	if err := s.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, timeoutFrom(ctx)).Error(); err != nil {
		return fmt.Errorf("metadata: add voter %d: %v: %w", id, err, kerr.NotController)
	}
	s.logger.Info("voter added", "node-id", id, "addr", addr)
	return nil
}

func (s *Store) removeVoterLocal(ctx context.Context, id int32) error {
	ms, err := s.Members()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(ms, func(m Member) bool { return m.NodeID == id }) {
		return kerrorf(kerr.InvalidRequest, "node %d is not a member of the controller quorum", id)
	}
	if err := s.raft.RemoveServer(serverID(id), 0, timeoutFrom(ctx)).Error(); err != nil {
		return fmt.Errorf("metadata: remove voter %d: %v: %w", id, err, kerr.NotController)
	}
	s.logger.Info("quorum member removed", "node-id", id)
	return nil
}
