package broker

// RemoveRaftVoter: v0
//
// Behavior:
//   - Removes a voter from the metadata quorum with the cluster up
//     (KIP-853, `kafka-metadata-quorum.sh remove-controller`). Any broker
//     accepts it: the change is forwarded to the active controller (the
//     Raft leader) through the metadata store (raft's RemoveServer). The
//     answer comes once the new configuration is committed by a majority
//     of the voters; a removed leader then steps down, as Kafka's resigns.
//   - The node leaves the Raft configuration. Removing a dead voter is
//     the usual case; a removed node that still runs asks to be added
//     back as an observer (a Raft non-voter that keeps following the
//     metadata), as a removed KRaft voter keeps fetching as an observer.
//   - Errors, in Kafka's order: INCONSISTENT_CLUSTER_ID (ClusterID set
//     and not this cluster's; null is accepted, as Kafka does);
//     INVALID_REQUEST (negative VoterID; the last voter, which would leave
//     the quorum empty); VOTER_NOT_FOUND (not a voter, observers
//     included); REQUEST_TIMED_OUT when the change is not committed
//     within 5 s (the request has no timeout field; Kafka bounds it by
//     the quorum request timeout), e.g. when too few voters are up to
//     commit it; NOT_CONTROLLER if no controller could be reached, or if
//     the controller lost its leadership before the change committed
//     (Kafka's NOT_LEADER_OR_FOLLOWER; the change may still commit).
//   - The voter checks read the Raft configuration as this broker last
//     saw it (DescribeQuorum's view). VoterDirectoryID is not checked:
//     Sluice nodes have no directory ids.
//
// Version notes:
//   - v0 only (Kafka 3.9 / 4.x)

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(81, 0, 0, (*Broker).handleRemoveRaftVoter) }

// removeVoterTimeout bounds a RemoveRaftVoter, which has no TimeoutMillis.
// It stays below franz-go's default request timeout overhead (10 s), so
// that the client reads the answer.
const removeVoterTimeout = 5 * time.Second

func (b *Broker) handleRemoveRaftVoter(r *request, req *kmsg.RemoveRaftVoterRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.removeRaftVoter(ctx, req) })
	return nil
}

func (b *Broker) removeRaftVoter(ctx context.Context, req *kmsg.RemoveRaftVoterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.RemoveRaftVoterResponse)
	fail := func(err error) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), adminMessage(err)
		b.logger.Info("remove raft voter refused", "voter-id", req.VoterID, "err", err)
		return resp
	}
	if err := b.checkVoterClusterID(req.ClusterID); err != nil {
		return fail(err)
	}
	if req.VoterID < 0 {
		return fail(kerrorf(kerr.InvalidRequest, "Remove voter request didn't include a valid voter"))
	}
	members, err := b.meta.Members()
	if err != nil {
		return fail(err)
	}
	voters, found := 0, false
	for _, m := range members {
		if m.Voter {
			voters++
			found = found || m.NodeID == req.VoterID
		}
	}
	if !found {
		return fail(kerrorf(kerr.VoterNotFound, "Cannot remove voter %d from the set of voters %s", req.VoterID, voterIDs(members)))
	}
	if voters == 1 {
		return fail(kerrorf(kerr.InvalidRequest, "Cannot remove voter %d: it is the last voter of the metadata quorum", req.VoterID))
	}
	const timeoutMillis = int32(removeVoterTimeout / time.Millisecond)
	actx, cancel := adminCtx(ctx, timeoutMillis)
	defer cancel()
	if err := b.meta.RemoveVoter(actx, req.VoterID); err != nil {
		return fail(adminErr(actx, err, timeoutMillis))
	}
	b.logger.Info("raft voter removed", "voter-id", req.VoterID)
	return resp
}
