package broker

// DescribeProducers: v0
//
// Behavior:
//   - KIP-664. For each requested partition, every producer in the
//     partition's producer state (idempotent and transactional, as Kafka):
//     producer id, epoch, last sequence and last timestamp of its latest
//     batch (-1 when none is remembered), coordinator epoch, and the first
//     offset of its ongoing transaction (-1 when none).
//   - Producers are listed by producer id. Expired producers
//     (producer.id.expiration.ms) are gone.
//   - An unknown topic or partition answers UNKNOWN_TOPIC_OR_PARTITION
//     (per partition); a partition that failed to open
//     KAFKA_STORAGE_ERROR.
//
// Version notes:
//   - v0 only (flexible)

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(61, 0, 0, (*Broker).handleDescribeProducers) }

func (b *Broker) handleDescribeProducers(r *request, req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, part := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = part
			p, ok := b.parts.get(rt.Topic, part)
			if !ok {
				err := b.missingPartitionErr(rt.Topic, part)
				sp.ErrorCode = errCode(err)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			for _, ps := range p.log.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = ps.ProducerID
				ap.ProducerEpoch = int32(ps.Epoch)
				ap.LastSequence, ap.LastTimestamp = -1, -1
				if n := len(ps.Batches); n > 0 {
					ap.LastSequence = ps.Batches[n-1].LastSeq
					ap.LastTimestamp = ps.Batches[n-1].Timestamp
				}
				ap.CoordinatorEpoch = ps.CoordinatorEpoch
				ap.CurrentTxnStartOffset = ps.TxnFirstOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
