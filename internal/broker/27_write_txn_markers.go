package broker

// WriteTxnMarkers: v0-1
//
// Behavior:
//   - Kafka's inter-broker API from the transaction coordinator to the
//     partition leaders: each marker (producer id, epoch, commit or abort)
//     is written as a control batch to every named partition, durably,
//     through the same path the in-process coordinator uses (data
//     partitions: an append through the partition's producer state;
//     __consumer_offsets: the group coordinator, which also materializes
//     or drops the transaction's pending offsets).
//   - Per partition: a partition that does not exist
//     UNKNOWN_TOPIC_OR_PARTITION; a marker whose epoch is older than the
//     producer's epoch on the partition (a stale marker)
//     INVALID_PRODUCER_EPOCH, nothing written; a partition not hosted
//     here NOT_LEADER_OR_FOLLOWER.
//   - CoordinatorEpoch is not checked (one coordinator: always 0).
//   - Serial on its connection.
//
// Version notes:
//   - v1: flexible. v2 (TransactionVersion per marker) is not registered.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/txn"
)

func init() { register(27, 0, 1, (*Broker).handleWriteTxnMarkers) }

func (b *Broker) handleWriteTxnMarkers(r *request, req *kmsg.WriteTxnMarkersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	r.serial(func(ctx context.Context) kmsg.Response {
		for _, m := range req.Markers {
			sm := kmsg.NewWriteTxnMarkersResponseMarker()
			sm.ProducerID = m.ProducerID
			for _, t := range m.Topics {
				st := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
				st.Topic = t.Topic
				n, exists := b.meta.PartitionCount(t.Topic)
				for _, p := range t.Partitions {
					sp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
					sp.Partition = p
					if !exists || p < 0 || p >= n {
						sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
					} else {
						err := txnMarkers{b}.WriteMarker(ctx, txn.Partition{Topic: t.Topic, Partition: p}, m.ProducerID, m.ProducerEpoch, m.Committed)
						sp.ErrorCode = errCode(err)
					}
					st.Partitions = append(st.Partitions, sp)
				}
				sm.Topics = append(sm.Topics, st)
			}
			resp.Markers = append(resp.Markers, sm)
		}
		return resp
	})
	return nil
}
