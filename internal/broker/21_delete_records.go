package broker

// DeleteRecords: v0-2
//
// Behavior:
//   - Advances the log start offset of each partition to the given offset
//     (-1 means the high watermark); reads below it answer
//     OFFSET_OUT_OF_RANGE and whole segments below it are deleted.
//   - An offset above the high watermark answers OFFSET_OUT_OF_RANGE; an
//     unknown partition UNKNOWN_TOPIC_OR_PARTITION.
//   - The response carries the new low watermark (log start offset).
//
// Version notes:
//   - v2: flexible

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(21, 0, 2, (*Broker).handleDeleteRecords) }

func (b *Broker) handleDeleteRecords(r *request, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			low, err := func() (int64, error) {
				p, ok := b.parts.get(rt.Topic, rp.Partition)
				if !ok {
					return -1, b.missingPartitionErr(rt.Topic, rp.Partition)
				}
				off := rp.Offset
				hw := p.highWatermark()
				if off == -1 {
					off = hw
				}
				if off < 0 || off > hw {
					return -1, kerr.OffsetOutOfRange
				}
				return p.log.DeleteRecordsBefore(off)
			}()
			if err != nil {
				sp.ErrorCode = errCode(err)
			} else {
				sp.LowWatermark = low
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
