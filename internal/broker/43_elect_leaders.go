package broker

// ElectLeaders: v0-2
//
// Behavior:
//   - Runs leader elections through the metadata quorum (forwarded to the
//     active controller) and answers once they are committed and applied
//     on this broker, as Kafka's controller does.
//   - Preferred (type 0, the only type of v0): the partition's first
//     replica becomes leader if it is in the ISR and live. Unclean (type
//     1): a partition without a live leader gets a leader from its ISR if
//     it has a live member, else the first live replica.
//   - Per-partition errors: ELECTION_NOT_NEEDED (the preferred replica
//     already leads / the leader is live), PREFERRED_LEADER_NOT_AVAILABLE,
//     ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.
//   - A null topic list means every partition: every topic is listed, with
//     the partitions that needed an election (ELECTION_NOT_NEEDED results
//     are left out, as Kafka does). An empty list answers an empty
//     response.
//   - TimeoutMillis bounds the wait for the controller (0 = already
//     expired, as on Kafka); past it the answer is REQUEST_TIMED_OUT, at
//     the top level (v1+) and for every requested partition, as Kafka's
//     error response. An unknown election type answers INVALID_REQUEST the
//     same way.
//
// Version notes:
//   - v1: ElectionType, top-level ErrorCode; v2: flexible

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(43, 0, 2, (*Broker).handleElectLeaders) }

func (b *Broker) handleElectLeaders(r *request, req *kmsg.ElectLeadersRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.electLeaders(ctx, req) })
	return nil
}

func (b *Broker) electLeaders(ctx context.Context, req *kmsg.ElectLeadersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	typ := metadata.ElectionType(req.ElectionType) // v0: 0, preferred
	if typ != metadata.ElectPreferred && typ != metadata.ElectUnclean {
		return electLeadersFailed(req, resp, kerrorf(kerr.InvalidRequest, "unknown election type %d", req.ElectionType))
	}
	if req.Topics != nil && len(req.Topics) == 0 {
		return resp
	}
	var parts []metadata.TopicPartition
	for _, rt := range req.Topics {
		for _, p := range rt.Partitions {
			parts = append(parts, metadata.TopicPartition{Topic: rt.Topic, Partition: p})
		}
	}
	if req.Topics != nil && len(parts) == 0 {
		// Topics without partitions: nothing to elect, each topic listed.
		for _, rt := range req.Topics {
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = rt.Topic
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	actx, cancel := adminCtx(ctx, req.TimeoutMillis)
	defer cancel()
	tps, errs, err := b.meta.ElectLeaders(actx, typ, parts)
	if err != nil {
		return electLeadersFailed(req, resp, adminErr(actx, err, req.TimeoutMillis))
	}
	for i, tp := range tps {
		if errs[i] != nil {
			b.logger.Debug("leader election refused", "topic", tp.Topic, "partition", tp.Partition, "err", errs[i])
		} else {
			b.logger.Info("leader elected", "topic", tp.Topic, "partition", tp.Partition, "type", typ)
		}
	}
	if req.Topics != nil {
		// Results are aligned with the request, topic by topic.
		k := 0
		for _, rt := range req.Topics {
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				st.Partitions = append(st.Partitions, electResult(p, errs[k]))
				k++
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	// Every partition: every topic, and the partitions that needed an
	// election (tps is ordered by topic, then partition).
	byTopic := map[string][]kmsg.ElectLeadersResponseTopicPartition{}
	var names []string
	for _, t := range b.meta.Topics() {
		names = append(names, t.Name)
		byTopic[t.Name] = nil
	}
	for i, tp := range tps {
		if kerrIs(errs[i], kerr.ElectionNotNeeded) {
			continue
		}
		if _, ok := byTopic[tp.Topic]; !ok {
			names = append(names, tp.Topic) // deleted meanwhile
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], electResult(tp.Partition, errs[i]))
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = name
		st.Partitions = byTopic[name]
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func electResult(partition int32, err error) kmsg.ElectLeadersResponseTopicPartition {
	sp := kmsg.NewElectLeadersResponseTopicPartition()
	sp.Partition = partition
	sp.ErrorCode = errCode(err)
	sp.ErrorMessage = adminMessage(err)
	return sp
}

// electLeadersFailed is Kafka's ElectLeadersRequest.getErrorResponse: the
// error at the top level (v1+) and for every requested partition.
func electLeadersFailed(req *kmsg.ElectLeadersRequest, resp *kmsg.ElectLeadersResponse, err error) kmsg.Response {
	resp.ErrorCode = errCode(err)
	for _, rt := range req.Topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			st.Partitions = append(st.Partitions, electResult(p, err))
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
