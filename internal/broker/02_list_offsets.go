package broker

// ListOffsets: v1-10
//
// Behavior:
//   - Timestamp -1 (latest): the high watermark, or the last stable offset
//     for read_committed (v2+). -2 (earliest) and -4 (earliest local, v8+):
//     the log start offset. -3 (max timestamp, v7+, KIP-734): the offset
//     of the record with the largest timestamp. -5 (latest tiered, v9+):
//     -1, since nothing is tiered.
//   - Any other timestamp: the first offset whose record timestamp is >= it,
//     or offset -1 / timestamp -1 if there is none.
//   - Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION; current
//     leader epoch checks (v4+) as for Fetch.
//
// Version notes:
//   - v1: single offset; v2: isolation level; v4: leader epochs
//   - v6: flexible; v7: max timestamp; v8: earliest local; v9: latest tiered

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(2, 1, 10, (*Broker).handleListOffsets) }

func (b *Broker) handleListOffsets(r *request, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			if err := b.listOffset(req, rt.Topic, rp, &sp); err != nil {
				sp.ErrorCode = errCode(err)
				sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) listOffset(req *kmsg.ListOffsetsRequest, topic string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) error {
	p, ok := b.parts.get(topic, rp.Partition)
	if !ok {
		return b.missingPartitionErr(topic, rp.Partition)
	}
	ep := p.leaderEpoch.Load()
	if rp.CurrentLeaderEpoch >= 0 {
		if rp.CurrentLeaderEpoch < ep {
			return kerr.FencedLeaderEpoch
		} else if rp.CurrentLeaderEpoch > ep {
			return kerr.UnknownLeaderEpoch
		}
	}
	sp.LeaderEpoch = ep
	switch rp.Timestamp {
	case -1:
		sp.Offset = p.highWatermark()
		if req.IsolationLevel == 1 {
			sp.Offset = p.lastStableOffset()
		}
	case -2, -4:
		sp.Offset = p.log.LogStartOffset()
	case -3:
		ts, off, ok, err := p.log.MaxTimestamp()
		if err != nil {
			return err
		}
		if ok {
			sp.Timestamp, sp.Offset = ts, off
		}
	case -5:
		// Nothing is tiered: no latest-tiered offset.
	default:
		if rp.Timestamp < 0 {
			return kerr.InvalidRequest
		}
		off, ts, ok, err := p.log.OffsetForTimestamp(rp.Timestamp)
		if err != nil {
			return err
		}
		bound := p.highWatermark()
		if req.IsolationLevel == 1 {
			bound = p.lastStableOffset()
		}
		if ok && off < bound {
			sp.Timestamp, sp.Offset = ts, off
		}
	}
	return nil
}
