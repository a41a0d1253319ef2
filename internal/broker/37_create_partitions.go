package broker

// CreatePartitions: v0-3
//
// Behavior:
//   - Grows a topic to Count partitions through the metadata quorum; the
//     new partitions this broker leads are open when the call returns.
//   - Errors per topic: UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS
//     (count not larger than the current one), INVALID_REPLICA_ASSIGNMENT,
//     INVALID_REQUEST (a topic named twice).
//   - ValidateOnly checks without applying.
//   - In a cluster, a topic whose replication factor is above 1 answers
//     INVALID_REPLICATION_FACTOR (replication is not implemented yet).
//
// Version notes:
//   - v2: flexible

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(37, 0, 3, (*Broker).handleCreatePartitions) }

func (b *Broker) handleCreatePartitions(r *request, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		switch {
		case count[rt.Topic] > 1:
			err = kerr.InvalidRequest
		case rt.Assignment != nil:
			// Manual placement of new partitions needs the cluster's
			// reassignment support; refuse clearly rather than ignore it.
			err = kerr.InvalidReplicaAssignment
		default:
			err = b.meta.CreatePartitions(r.ctx, rt.Topic, rt.Count, req.ValidateOnly)
		}
		if err != nil {
			st.ErrorCode = errCode(err)
			st.ErrorMessage = errMessage(err)
		} else if !req.ValidateOnly {
			b.logger.Info("added partitions", "topic", rt.Topic, "count", rt.Count)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
