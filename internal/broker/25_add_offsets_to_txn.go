package broker

// AddOffsetsToTxn: v0-4
//
// Behavior:
//   - Adds the group's __consumer_offsets partition to the producer's
//     transaction (durably), so EndTxn writes its marker there and the
//     offsets of TxnOffsetCommit become visible on commit. Errors as
//     AddPartitionsToTxn. Serial on its connection.
//
// Version notes:
//   - v2: PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH; v3: flexible
//   - v4: TRANSACTION_ABORTABLE (KIP-1050). Under transaction.version 2
//     clients skip this request: TxnOffsetCommit v5 adds the partition.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(25, 0, 4, (*Broker).handleAddOffsetsToTxn) }

func (b *Broker) handleAddOffsetsToTxn(r *request, req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	r.serial(func(ctx context.Context) kmsg.Response {
		err := b.txns.coord.AddOffsets(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
		resp.ErrorCode = txnErrCode(err, req.Version < 2)
		return resp
	})
	return nil
}
