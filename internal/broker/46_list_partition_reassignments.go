package broker

// ListPartitionReassignments: v0
//
// Behavior:
//   - KIP-455. Lists the reassignments in progress from this broker's copy
//     of the metadata (at least as new as any write this broker answered):
//     for each partition, Replicas (the target followed by the replicas
//     being removed), AddingReplicas and RemovingReplicas.
//   - A null topic list lists every reassignment; otherwise only the
//     named partitions. Unknown topics and partitions, and partitions
//     without a reassignment, are left out without an error, as Kafka
//     does. Topics are ordered by name, partitions by id.
//
// Version notes:
//   - v0 only (flexible)

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(46, 0, 0, (*Broker).handleListPartitionReassignments) }

func (b *Broker) handleListPartitionReassignments(_ *request, req *kmsg.ListPartitionReassignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	var parts []metadata.TopicPartition
	if req.Topics != nil {
		parts = []metadata.TopicPartition{}
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				parts = append(parts, metadata.TopicPartition{Topic: rt.Topic, Partition: p})
			}
		}
	}
	for _, rs := range b.meta.ListPartitionReassignments(parts) {
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != rs.Topic {
			st := kmsg.NewListPartitionReassignmentsResponseTopic()
			st.Topic = rs.Topic
			resp.Topics = append(resp.Topics, st)
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition = rs.Partition
		sp.Replicas = rs.Replicas
		sp.AddingReplicas = rs.AddingReplicas
		sp.RemovingReplicas = rs.RemovingReplicas
		st := &resp.Topics[len(resp.Topics)-1]
		st.Partitions = append(st.Partitions, sp)
	}
	return resp
}
