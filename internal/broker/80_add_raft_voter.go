package broker

// AddRaftVoter: v0-1
//
// Behavior:
//   - Makes a node a voter of the metadata quorum with the cluster up
//     (KIP-853, `kafka-metadata-quorum.sh add-controller`). Any broker
//     accepts it: the change is forwarded to the active controller (the
//     Raft leader) through the metadata store, where Kafka's admin client
//     sends it to a controller. The answer comes once the new
//     configuration is committed.
//   - The new voter's Raft address is the request's listener named
//     CONTROLLER (or its only listener): host:port of the node's
//     controller listener (--controller-listen).
//   - The node must already follow the metadata as an observer (a Raft
//     non-voter: a broker-only node, started without its id in
//     --controller-voters, which joins and catches up by itself) and be a
//     live broker; hashicorp/raft then promotes it (AddVoter on a
//     non-voter), so the quorum never counts a voter that has not caught
//     up. Kafka answers a new voter that is not caught up with
//     REQUEST_TIMED_OUT, and so does Sluice for a node that is not an
//     observer or is fenced.
//   - Errors, in Kafka's order: INCONSISTENT_CLUSTER_ID (ClusterID set
//     and not this cluster's; null is accepted, as Kafka does);
//     INVALID_REQUEST (negative VoterID, no CONTROLLER listener or a bad
//     host/port, an observer whose controller address is not the one
//     named); DUPLICATE_VOTER (already a voter); UNSUPPORTED_VERSION (a
//     single-node quorum: a lone voter's Raft timeouts cannot change
//     while it runs, see internal/metadata/DESIGN.md; Kafka answers this
//     for a static quorum, kraft.version 0); REQUEST_TIMED_OUT (not an
//     observer or not live, or TimeoutMillis passed, 0 or less meaning
//     already expired, as Kafka); NOT_CONTROLLER if no controller could
//     be reached, or if it lost its leadership before the change
//     committed (Kafka's NOT_LEADER_OR_FOLLOWER; the change may still
//     commit).
//   - The voter checks read the Raft configuration as this broker last
//     saw it (DescribeQuorum's view).
//   - VoterDirectoryID is not checked: Sluice nodes have no directory ids
//     (DescribeQuorum reports the zero id).
//
// Version notes:
//   - v1: AckWhenCommitted; Sluice always answers after the commit.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(80, 0, 1, (*Broker).handleAddRaftVoter) }

// controllerListener is the name of the listener that carries a voter's
// Raft address in AddRaftVoter and DescribeQuorum.
const controllerListener = "CONTROLLER"

func (b *Broker) handleAddRaftVoter(r *request, req *kmsg.AddRaftVoterRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.addRaftVoter(ctx, req) })
	return nil
}

func (b *Broker) addRaftVoter(ctx context.Context, req *kmsg.AddRaftVoterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddRaftVoterResponse)
	fail := func(err error) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), adminMessage(err)
		b.logger.Info("add raft voter refused", "voter-id", req.VoterID, "err", err)
		return resp
	}
	if err := b.checkVoterClusterID(req.ClusterID); err != nil {
		return fail(err)
	}
	if req.VoterID < 0 {
		return fail(kerrorf(kerr.InvalidRequest, "Add voter request didn't include a valid voter"))
	}
	addr, err := voterAddr(req.Listeners)
	if err != nil {
		return fail(err)
	}
	members, err := b.meta.Members()
	if err != nil {
		return fail(err)
	}
	var member *metadata.Member
	for i := range members {
		if members[i].NodeID == req.VoterID {
			member = &members[i]
		}
	}
	if member != nil && member.Voter {
		return fail(kerrorf(kerr.DuplicateVoter, "The voter id %d is already part of the set of voters %s", req.VoterID, voterIDs(members)))
	}
	if !b.clusterCfg {
		return fail(kerrorf(kerr.UnsupportedVersion, "the metadata quorum is a single voter (node %d started without other --controller-voters), whose Raft timeouts cannot change while it runs; restart it with a voter list of more than one member to add voters", b.cfg.NodeID))
	}
	if member == nil {
		return fail(kerrorf(kerr.RequestTimedOut, "node %d is not an observer of the metadata quorum: start it as a broker-only node (its id not in --controller-voters) so that it joins and catches up, then add it", req.VoterID))
	}
	if member.Addr != addr {
		return fail(kerrorf(kerr.InvalidRequest, "node %d follows the metadata quorum with controller address %s, not %s", req.VoterID, member.Addr, addr))
	}
	if !b.liveBroker(req.VoterID) {
		return fail(kerrorf(kerr.RequestTimedOut, "node %d is not a live broker (fenced or not registered): it may be lagging behind", req.VoterID))
	}
	actx, cancel := adminCtx(ctx, req.TimeoutMillis)
	defer cancel()
	if err := b.meta.AddVoter(actx, req.VoterID, addr); err != nil {
		return fail(adminErr(actx, err, req.TimeoutMillis))
	}
	b.logger.Info("raft voter added", "voter-id", req.VoterID, "addr", addr)
	return resp
}

// checkVoterClusterID is KafkaRaftClient's hasValidClusterId: a null id
// is accepted, another cluster's is INCONSISTENT_CLUSTER_ID.
func (b *Broker) checkVoterClusterID(id *string) error {
	if id == nil || *id == b.meta.ClusterID() {
		return nil
	}
	return kerrorf(kerr.InconsistentClusterID, "The given id %q doesn't match the cluster id %q", *id, b.meta.ClusterID())
}

// voterAddr is the Raft address (host:port) of a new voter: its
// CONTROLLER listener, or its only listener.
func voterAddr(ls []kmsg.AddRaftVoterRequestListener) (string, error) {
	var l *kmsg.AddRaftVoterRequestListener
	for i := range ls {
		if strings.EqualFold(ls[i].Name, controllerListener) {
			l = &ls[i]
			break
		}
	}
	if l == nil && len(ls) == 1 {
		l = &ls[0]
	}
	if l == nil {
		names := make([]string, len(ls))
		for i := range ls {
			names[i] = ls[i].Name
		}
		return "", kerrorf(kerr.InvalidRequest, "Add voter request didn't include the endpoint for the default listener %s (listeners %v)", controllerListener, names)
	}
	if l.Host == "" || l.Port == 0 {
		return "", kerrorf(kerr.InvalidRequest, "Add voter request's %s listener has no host or port (%q:%d)", l.Name, l.Host, l.Port)
	}
	return net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port))), nil
}

// voterIDs formats the voters among members as "[1 2 3]".
func voterIDs(members []metadata.Member) string {
	var ids []int32
	for _, m := range members {
		if m.Voter {
			ids = append(ids, m.NodeID)
		}
	}
	return fmt.Sprint(ids)
}

// liveBroker reports whether node id is a registered broker that is
// neither fenced nor shutting down.
func (b *Broker) liveBroker(id int32) bool {
	for _, br := range b.liveBrokers() {
		if br.NodeID == id {
			return true
		}
	}
	return false
}
