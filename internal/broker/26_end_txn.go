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
//   - v5 under transaction.version 2 (KIP-890 part 2): the epoch is bumped
//     at every transaction end. The prepare/complete records and the
//     markers carry epoch+1 and the response the producer id and epoch
//     for the next transaction (a new producer id with epoch 0 when the
//     epoch runs out). A retry with the old epoch of an EndTxn that
//     already completed answers success with the same id and epoch; an
//     abort with no transaction ongoing is allowed and bumps the epoch,
//     as in Kafka 4. With transaction.version 0/1 a v5 request is
//     answered classically (ProducerID/ProducerEpoch -1).
//
// Version notes:
//   - v2: PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH; v3: flexible
//   - v4: TRANSACTION_ABORTABLE (KIP-1050); v5: KIP-890 part 2

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(26, 0, 5, (*Broker).handleEndTxn) }

func (b *Broker) handleEndTxn(r *request, req *kmsg.EndTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	var tv int16
	if req.Version >= 5 && b.txns.version() >= 2 {
		tv = 2
	}
	r.serial(func(ctx context.Context) kmsg.Response {
		pid, epoch, err := b.txns.coord.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, tv)
		resp.ErrorCode = txnErrCode(err, req.Version < 2)
		if err == nil && tv >= 2 {
			resp.ProducerID, resp.ProducerEpoch = pid, epoch
		}
		return resp
	})
	return nil
}
