package broker

// TxnOffsetCommit: v0-3
//
// Behavior:
//   - The group coordinator (internal/group) appends the offsets to the
//     group's __consumer_offsets partition as a transactional batch of the
//     producer and holds them pending: they become visible to OffsetFetch
//     when the transaction's commit marker is written (EndTxn), and are
//     dropped by an abort marker. Replay after a restart honours the
//     markers; offsets of a transaction still open come back pending.
//   - v3 with a generation: a generation other than the group's is
//     ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID.
//   - An older producer epoch than the partition has seen for the
//     producer: INVALID_PRODUCER_EPOCH.
//   - Checked against the transaction coordinator first (KIP-890 part 1):
//     the group's __consumer_offsets partition must be in the ongoing
//     transaction of the producer id and epoch (AddOffsetsToTxn), else
//     TRANSACTION_ABORTABLE (v4+; INVALID_TXN_STATE before), an old
//     epoch INVALID_PRODUCER_EPOCH, a transaction being completed
//     CONCURRENT_TRANSACTIONS, the coordinator unavailable
//     COORDINATOR_NOT_AVAILABLE; nothing is written. With
//     transaction.version 2, v5+ adds the partition to the transaction
//     itself (KIP-890 part 2: the client skips AddOffsetsToTxn).
//   - OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for
//     the partitions of pending offsets until the transaction ends.
//   - Serial on its connection.
//
// Version notes:
//   - v2: commited leader epoch; v3: flexible, generation, member id,
//     instance id (KIP-447)
//   - v4: TRANSACTION_ABORTABLE (KIP-1050); v5: implicit AddOffsetsToTxn
//     under transaction.version 2 (KIP-890 part 2)

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(28, 0, 5, (*Broker).handleTxnOffsetCommit) }

func (b *Broker) handleTxnOffsetCommit(r *request, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response {
		if req.Group != "" {
			if err := b.txnOffsetsCheck(ctx, req); err != nil {
				resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
				code := errCode(err)
				for _, rt := range req.Topics {
					st := kmsg.NewTxnOffsetCommitResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
						sp.Partition, sp.ErrorCode = rp.Partition, code
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp
			}
		}
		return b.groups.coord.TxnOffsetCommit(ctx, req)
	})
	return nil
}

// txnOffsetsCheck verifies (or, v5+ under transaction.version 2, adds)
// the group's __consumer_offsets partition in the producer's transaction,
// at the transaction coordinator wherever it is (in a cluster the group's
// and the transactional id's coordinators may be different brokers).
func (b *Broker) txnOffsetsCheck(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) error {
	gp := b.txns.coord.GroupPartition(req.Group)
	var err error
	if req.Version >= 5 && b.txns.version() >= 2 {
		err = b.txnAddPartition(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, gp)
	} else {
		err = b.txnVerify(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, gp)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.ProducerFenced):
		return kerr.InvalidProducerEpoch
	case errors.Is(err, kerr.TransactionAbortable) && req.Version < 4:
		return kerr.InvalidTxnState
	case errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorLoadInProgress):
		return kerr.CoordinatorNotAvailable
	}
	return err
}
