package broker

// AddPartitionsToTxn: v0-3
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
//
// Version notes:
//   - v2: PRODUCER_FENCED instead of INVALID_PRODUCER_EPOCH; v3: flexible
//   - v4+ (batched, broker to broker) and v5 (KIP-890) are not registered.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/txn"
)

func init() { register(24, 0, 3, (*Broker).handleAddPartitionsToTxn) }

func (b *Broker) handleAddPartitionsToTxn(r *request, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
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

// txnErrCode is the code of a transaction coordinator error; before
// KIP-588 (oldFenced) PRODUCER_FENCED is INVALID_PRODUCER_EPOCH.
func txnErrCode(err error, oldFenced bool) int16 {
	code := errCode(err)
	if oldFenced && code == kerr.ProducerFenced.Code {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}
