package broker

// OffsetForLeaderEpoch: v0-4
//
// Behavior:
//   - KIP-101/279 (followers truncating after a leader change) and KIP-320
//     (consumers validating their position): per partition, the largest
//     leader epoch <= the requested one this leader knows and its end
//     offset (the start offset of the next epoch, or the log end for the
//     latest epoch); -1/-1 when the epoch is older than the log.
//   - Answered by the partition's leader only, in Kafka's order: unknown
//     topic or partition UNKNOWN_TOPIC_OR_PARTITION; not the leader
//     NOT_LEADER_OR_FOLLOWER; CurrentLeaderEpoch (v2+, -1 skips) older
//     FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
//   - In a cluster the partition's replica.Leader answers; on a single
//     node the log does (AnswerOffsetForLeaderEpoch).
//
// Version notes:
//   - v1: LeaderEpoch in the answer; v2: CurrentLeaderEpoch, throttle;
//     v3: ReplicaID (-1 consumer, -2 debug, >= 0 a follower); v4: flexible

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/replica"
)

func init() { register(23, 0, 4, (*Broker).handleOffsetForLeaderEpoch) }

func (b *Broker) handleOffsetForLeaderEpoch(r *request, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			current := rp.CurrentLeaderEpoch
			if req.Version < 2 {
				current = -1
			}
			ans, err := b.offsetForLeaderEpoch(rt.Topic, rp.Partition, current, rp.LeaderEpoch)
			if err != nil {
				sp.ErrorCode = errCode(err)
				sp.LeaderEpoch, sp.EndOffset = -1, -1
			} else {
				sp.LeaderEpoch, sp.EndOffset = ans.Epoch, ans.EndOffset
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (b *Broker) offsetForLeaderEpoch(topic string, part, current, epoch int32) (replica.EpochEndOffset, error) {
	p, ok := b.parts.get(topic, part)
	if !ok {
		return replica.EpochEndOffset{}, b.missingPartitionErr(topic, part)
	}
	if l := p.leader.Load(); l != nil {
		return l.OffsetForLeaderEpoch(current, epoch)
	}
	if current >= 0 {
		if ep := p.leaderEpoch.Load(); current < ep {
			return replica.EpochEndOffset{}, kerr.FencedLeaderEpoch
		} else if current > ep {
			return replica.EpochEndOffset{}, kerr.UnknownLeaderEpoch
		}
	}
	return replica.AnswerOffsetForLeaderEpoch(p.log, epoch), nil
}
