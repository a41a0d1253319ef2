package broker

// FindCoordinator: v0-4
//
// Behavior:
//   - Group keys (key type 0): this broker coordinates every group of a
//     single node. The first request creates __consumer_offsets
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
	host, port := splitHostPort(b.advertise)
	find := func(key string) (int32, error) {
		switch req.CoordinatorType {
		case 0:
			if err := b.groups.ensure(true); err != nil {
				return -1, err
			}
			return b.cfg.NodeID, nil
		case 1:
			if err := b.txns.ensure(true); err != nil {
				return -1, err
			}
			return b.cfg.NodeID, nil
		default:
			return -1, kerr.InvalidRequest
		}
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = key
			node, err := find(key)
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
	node, err := find(req.CoordinatorKey)
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
