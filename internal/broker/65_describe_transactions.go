package broker

// DescribeTransactions: v0
//
// Behavior:
//   - KIP-664. For each transactional id, its coordinator state: state
//     name (Kafka's: Empty, Ongoing, PrepareCommit, PrepareAbort,
//     CompleteCommit, CompleteAbort, ...), transaction timeout, start
//     timestamp of the ongoing transaction (-1 when none), producer id and
//     epoch, and the partitions of the transaction (including the
//     __consumer_offsets partition of AddOffsetsToTxn), by topic.
//   - The state is the last one made durable; the request does not wait
//     for a request in progress on the id (an EndTxn writing markers shows
//     PrepareCommit/PrepareAbort).
//   - An unknown id answers TRANSACTIONAL_ID_NOT_FOUND (also when
//     __transaction_state does not exist yet); while the coordinator
//     loads, COORDINATOR_NOT_AVAILABLE.
//
// Version notes:
//   - v0 only (flexible)

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(65, 0, 0, (*Broker).handleDescribeTransactions) }

func (b *Broker) handleDescribeTransactions(r *request, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	readErr := b.txns.readErr()
	if errors.Is(readErr, errNoTxnState) {
		readErr = kerr.TransactionalIDNotFound
	}
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
		if readErr != nil {
			st.ErrorCode = errCode(readErr)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		md, err := b.txns.coord.Describe(id)
		if err != nil {
			st.ErrorCode = errCode(err)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State = md.State.String()
		st.TimeoutMillis = md.TimeoutMs
		st.StartTimestamp = md.StartMs
		st.ProducerID, st.ProducerEpoch = md.ProducerID, md.ProducerEpoch
		for _, p := range md.SortedPartitions() {
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != p.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = p.Topic
				st.Topics = append(st.Topics, t)
			}
			t := &st.Topics[len(st.Topics)-1]
			t.Partitions = append(t.Partitions, p.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
