package broker

// InitProducerId: v0-5
//
// Behavior:
//   - Without a transactional id (the idempotent producer): a new producer
//     id with epoch 0. Ids come from blocks of 1000 reserved in the
//     metadata quorum (internal/txn), so they are never reused, across
//     restarts too. Like Kafka 4, a v3+ request that carries the producer's
//     current id and epoch still gets a fresh id with epoch 0 (Kafka's
//     TransactionCoordinator "blindly accepts" a null transactional id);
//     the partitions' state for the old id is left to expire.
//   - With a transactional id: NOT_COORDINATOR. There is no transaction
//     coordinator yet and FindCoordinator for transaction keys answers
//     COORDINATOR_NOT_AVAILABLE, so a client never gets here with one; a
//     client that does re-discovers the coordinator and keeps retrying.
//   - TransactionTimeoutMillis is ignored without a transactional id.
//   - If no id block can be reserved (no controller, shutting down):
//     COORDINATOR_NOT_AVAILABLE, which clients retry.
//
// Version notes:
//   - v2: throttle; v3: ProducerID/ProducerEpoch in the request (KIP-360)
//   - v4: flexible; v5: KIP-890 epoch handling (transactions only)

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(22, 0, 5, (*Broker).handleInitProducerID) }

func (b *Broker) handleInitProducerID(r *request, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	id, err := b.pids.Next(r.ctx)
	if err != nil {
		b.logger.Warn("allocating producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
