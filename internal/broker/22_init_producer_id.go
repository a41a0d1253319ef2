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
//   - With a transactional id: the transaction coordinator (internal/txn)
//     answers, serial on the connection. First use: a new producer id,
//     epoch 0. Later: the next epoch, which fences older producers; an
//     ongoing transaction of the old epoch is aborted first (abort markers
//     written with the new epoch) and a prepared one completed. When the
//     epoch runs out, a new producer id. TransactionTimeoutMillis must be
//     in (0, transaction.max.timeout.ms], else INVALID_TRANSACTION_TIMEOUT.
//     v3+ ProducerID/ProducerEpoch not matching the id's current (or
//     previous) epoch: PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v4).
//     Not coordinated here: NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS.
//   - TransactionTimeoutMillis is ignored without a transactional id.
//   - If no id block can be reserved (no controller, shutting down):
//     COORDINATOR_NOT_AVAILABLE, which clients retry.
//
// Version notes:
//   - v2: throttle; v3: ProducerID/ProducerEpoch in the request (KIP-360)
//   - v4: flexible; v5: KIP-890 epoch handling (transactions only)

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(22, 0, 5, (*Broker).handleInitProducerID) }

func (b *Broker) handleInitProducerID(r *request, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		r.serial(func(ctx context.Context) kmsg.Response {
			curPID, curEpoch := int64(-1), int16(-1)
			if req.Version >= 3 {
				curPID, curEpoch = req.ProducerID, req.ProducerEpoch
			}
			pid, epoch, err := b.txns.coord.InitProducerID(ctx, *req.TransactionalID, req.TransactionTimeoutMillis, curPID, curEpoch)
			resp.ErrorCode = txnErrCode(err, req.Version < 4)
			if err == nil {
				resp.ProducerID, resp.ProducerEpoch = pid, epoch
			}
			return resp
		})
		return nil
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
