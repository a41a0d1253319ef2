package broker

// FindCoordinator: v0-4
//
// Behavior:
//   - Group keys (key type 0): on a single node this broker coordinates
//     every group; in a cluster the coordinator is the leader of the
//     group's __consumer_offsets partition (COORDINATOR_NOT_AVAILABLE while
//     it has no live leader). The first request creates __consumer_offsets
//     (offsets.topic.num.partitions, compacted, internal) and loads it in
//     the background; until loading is done the answer is
//     COORDINATOR_NOT_AVAILABLE, which clients retry.
//   - Transaction keys (key type 1): likewise for __transaction_state
//     (transaction.state.log.num.partitions, compacted, internal), which
//     also makes sure __consumer_offsets exists (AddOffsetsToTxn markers).
//   - Other key types: INVALID_REQUEST.
//
// Version notes:
//   - v1: key type, throttle, error message; v3: flexible
//   - v4: batched keys (Coordinators)

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(10, 0, 4, (*Broker).handleFindCoordinator) }

func (b *Broker) handleFindCoordinator(r *request, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	find := func(key string) (node int32, host string, port int32, err error) {
		switch req.CoordinatorType {
		case 0:
			return b.findCoordinator(&b.groups.internalLoader, b.groups.coord.PartitionFor(key))
		case 1:
			return b.findCoordinator(&b.txns.internalLoader, b.txns.coord.PartitionFor(key))
		default:
			return -1, "", -1, kerr.InvalidRequest
		}
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = key
			node, host, port, err := find(key)
			c.NodeID, c.ErrorCode, c.ErrorMessage = node, errCode(err), errMessage(err)
			if err == nil {
				c.Host, c.Port = host, port
			} else {
				c.NodeID, c.Port = -1, -1
			}
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp
	}
	node, host, port, err := find(req.CoordinatorKey)
	if err != nil {
		resp.ErrorCode = errCode(err)
		if req.Version >= 1 {
			resp.ErrorMessage = errMessage(err)
		}
		resp.NodeID, resp.Port = -1, -1
		return resp
	}
	resp.NodeID, resp.Host, resp.Port = node, host, port
	return resp
}

// findCoordinator makes sure the internal topic of l exists and this
// broker's share of it is loading, then names the coordinator of its
// partition part: this broker on a single node; in a cluster the
// partition's leader, or COORDINATOR_NOT_AVAILABLE while it has none or
// while this broker, the leader, still loads it.
func (b *Broker) findCoordinator(l *internalLoader, part int32) (int32, string, int32, error) {
	loadErr := l.ensure(true)
	if !b.clustered() {
		if loadErr != nil {
			return -1, "", -1, loadErr
		}
		host, port := splitHostPort(b.advertise)
		return b.cfg.NodeID, host, port, nil
	}
	if _, ok := b.meta.Topic(l.topic); !ok {
		return -1, "", -1, kerr.CoordinatorNotAvailable
	}
	br, err := b.coordinatorNode(l.topic, part)
	if err != nil {
		return -1, "", -1, err
	}
	if br.NodeID == b.cfg.NodeID && loadErr != nil {
		return -1, "", -1, loadErr
	}
	return br.NodeID, br.Host, br.Port, nil
}
