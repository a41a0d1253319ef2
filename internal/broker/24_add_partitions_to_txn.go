package broker

// AddPartitionsToTxn: v0-5
//
// Behavior:
//   - Adds partitions to the producer's ongoing transaction (starting it),
//     durably in __transaction_state before answering. The transaction
//     coordinator (internal/txn) checks the producer id and epoch: another
//     id INVALID_PRODUCER_ID_MAPPING, another epoch PRODUCER_FENCED
//     (INVALID_PRODUCER_EPOCH before v2), a transaction being completed
//     CONCURRENT_TRANSACTIONS (retried by clients).
//   - A partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION, and the
//     others OPERATION_NOT_ATTEMPTED, as Kafka does.
//   - A transactional id this broker does not coordinate (its
//     __transaction_state partition is not loaded): NOT_COORDINATOR, or
//     COORDINATOR_LOAD_IN_PROGRESS while loading.
//   - Serial on its connection, like the group requests.
//   - v4+ (KIP-890, the broker-to-broker form): many transactions per
//     request, each answered on its own. VerifyOnly: each partition is
//     checked against the ongoing transaction of the producer id and
//     epoch (Verify): NONE or TRANSACTION_ABORTABLE per partition, or the
//     transaction's error (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED,
//     CONCURRENT_TRANSACTIONS) on all its partitions. Otherwise the
//     partitions are added as in v0-3. Kafka answers v4+ only to brokers
//     (CLUSTER_AUTHORIZATION_FAILED for clients, by ACL); without an
//     authorizer it serves them, and so does Sluice (used by tests and by a
//     future multi-broker partition leader).
//
// Version notes:
//   - v2: PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH; v3: flexible
//   - v4: batched transactions, VerifyOnly, top-level ErrorCode
//   - v5: TRANSACTION_ABORTABLE may be returned (KIP-1050)

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/txn"
)

func init() { register(24, 0, 5, (*Broker).handleAddPartitionsToTxn) }

func (b *Broker) handleAddPartitionsToTxn(r *request, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		r.serial(func(ctx context.Context) kmsg.Response {
			for i := range req.Transactions {
				resp.Transactions = append(resp.Transactions, b.addPartitionsBatched(ctx, &req.Transactions[i]))
			}
			return resp
		})
		return nil
	}
	fill := func(code func(topic string, p int32) int16) {
		for _, rt := range req.Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, code(rt.Topic, p)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
	}
	var parts []txn.Partition
	unknown := map[txn.Partition]bool{}
	for _, rt := range req.Topics {
		n, ok := b.meta.PartitionCount(rt.Topic)
		for _, p := range rt.Partitions {
			tp := txn.Partition{Topic: rt.Topic, Partition: p}
			if !ok || p < 0 || p >= n {
				unknown[tp] = true
			}
			parts = append(parts, tp)
		}
	}
	if len(unknown) > 0 {
		fill(func(t string, p int32) int16 {
			if unknown[txn.Partition{Topic: t, Partition: p}] {
				return kerr.UnknownTopicOrPartition.Code
			}
			return kerr.OperationNotAttempted.Code
		})
		return resp
	}
	r.serial(func(ctx context.Context) kmsg.Response {
		err := b.txns.coord.AddPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts)
		code := txnErrCode(err, req.Version < 2)
		fill(func(string, int32) int16 { return code })
		return resp
	})
	return nil
}

// addPartitionsBatched answers one transaction of an AddPartitionsToTxn
// v4+.
func (b *Broker) addPartitionsBatched(ctx context.Context, rt *kmsg.AddPartitionsToTxnRequestTransaction) kmsg.AddPartitionsToTxnResponseTransaction {
	st := kmsg.NewAddPartitionsToTxnResponseTransaction()
	st.TransactionalID = rt.TransactionalID
	fill := func(code func(tp txn.Partition) int16) {
		for _, t := range rt.Topics {
			ot := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			ot.Topic = t.Topic
			for _, p := range t.Partitions {
				op := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				op.Partition, op.ErrorCode = p, code(txn.Partition{Topic: t.Topic, Partition: p})
				ot.Partitions = append(ot.Partitions, op)
			}
			st.Topics = append(st.Topics, ot)
		}
	}
	var parts []txn.Partition
	unknown := map[txn.Partition]bool{}
	for _, t := range rt.Topics {
		n, ok := b.meta.PartitionCount(t.Topic)
		for _, p := range t.Partitions {
			tp := txn.Partition{Topic: t.Topic, Partition: p}
			if !ok || p < 0 || p >= n {
				unknown[tp] = true
			}
			parts = append(parts, tp)
		}
	}
	if len(unknown) > 0 {
		fill(func(tp txn.Partition) int16 {
			if unknown[tp] {
				return kerr.UnknownTopicOrPartition.Code
			}
			return kerr.OperationNotAttempted.Code
		})
		return st
	}
	if !rt.VerifyOnly {
		code := errCode(b.txns.coord.AddPartitions(ctx, rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, parts))
		fill(func(txn.Partition) int16 { return code })
		return st
	}
	fill(func(tp txn.Partition) int16 {
		return errCode(b.txns.coord.Verify(rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, tp))
	})
	return st
}

// txnErrCode is the code of a transaction coordinator error; before
// KIP-588 (oldFenced) PRODUCER_FENCED is INVALID_PRODUCER_EPOCH.
func txnErrCode(err error, oldFenced bool) int16 {
	code := errCode(err)
	if oldFenced && code == kerr.ProducerFenced.Code {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
