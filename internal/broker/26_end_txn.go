package broker

// EndTxn: v0-4
//
// Behavior:
//   - Commits or aborts the producer's ongoing transaction: the
//     PrepareCommit/PrepareAbort record is made durable in
//     __transaction_state, then a commit or abort marker (control batch)
//     is written durably to every partition of the transaction (to
//     __consumer_offsets through the group coordinator, which then makes
//     the transaction's offsets visible), then the CompleteCommit /
//     CompleteAbort record. The answer comes after the markers; if a marker
//     cannot be written the answer is success once the decision is durable
//     (as Kafka answers after the prepare record) and the coordinator
//     retries the markers every
//     transaction.abort.timed.out.transaction.cleanup.interval.ms, answering
//     CONCURRENT_TRANSACTIONS for the id meanwhile.
//   - A retry of a finished EndTxn (same outcome) succeeds; the other
//     outcome is INVALID_TXN_STATE. Producer checks as AddPartitionsToTxn.
//   - Serial on its connection.
//
// Version notes:
//   - v2: PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH; v3: flexible
//   - v5 (KIP-890 part 2, epoch bump per transaction) is not registered:
//     the broker does not advertise transaction.version 2, so clients use
//     the classic protocol.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(26, 0, 4, (*Broker).handleEndTxn) }

func (b *Broker) handleEndTxn(r *request, req *kmsg.EndTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	r.serial(func(ctx context.Context) kmsg.Response {
		err := b.txns.coord.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
		resp.ErrorCode = txnErrCode(err, req.Version < 2)
		return resp
	})
	return nil
}
