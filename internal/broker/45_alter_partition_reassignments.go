package broker

// AlterPartitionReassignments: v0-1
//
// Behavior:
//   - KIP-455. Starts (Replicas set) or cancels (Replicas null) partition
//     reassignments through the metadata quorum, answering once committed
//     and applied on this broker. The replicas become the target followed
//     by the replicas being removed; the adding replicas join the ISR
//     through their leader's AlterPartition once caught up, and the
//     reassignment then completes (the leader moves if it was removed). A
//     pure removal completes at once. A new target replaces one in
//     progress.
//   - An adding replica copies the partition with a replica fetcher
//     (replication.go) and is added to the ISR by the leader once caught
//     up; a removed replica stops and deletes its copy when the
//     completed reassignment no longer lists it.
//   - Per-partition errors, checked in Kafka's order:
//     UNKNOWN_TOPIC_OR_PARTITION; for a cancel NO_REASSIGNMENT_IN_PROGRESS;
//     for a target INVALID_REPLICA_ASSIGNMENT (empty list, then over the
//     sorted ids: a broker not registered, a broker twice), then (v1,
//     AllowReplicationFactorChange false) INVALID_REPLICATION_FACTOR when
//     the target's length differs from the replica set the partition is
//     headed for; INVALID_REPLICA_ASSIGNMENT when no in-sync replica would
//     remain.
//   - TimeoutMillis bounds the wait for the controller; past it every
//     partition and the top level answer REQUEST_TIMED_OUT (Kafka's error
//     response). An empty topic list answers an empty response.
//
// Version notes:
//   - v0: flexible; v1: AllowReplicationFactorChange (KIP-860, Kafka 4.1),
//     echoed in the response

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(45, 0, 1, (*Broker).handleAlterPartitionReassignments) }

func (b *Broker) handleAlterPartitionReassignments(r *request, req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.alterPartitionReassignments(ctx, req) })
	return nil
}

func (b *Broker) alterPartitionReassignments(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	// v0 carries no flag: changing the replication factor is allowed.
	allowRF := req.Version < 1 || req.AllowReplicationFactorChange
	resp.AllowReplicationFactorChange = allowRF
	var items []metadata.Reassignment
	var errs []error // one per partition of the request
	var pos []int    // items[i] answers errs[pos[i]]
	for _, rt := range req.Topics {
		for _, p := range rt.Partitions {
			pos = append(pos, len(errs))
			errs = append(errs, nil)
			items = append(items, metadata.Reassignment{Topic: rt.Topic, Partition: p.Partition,
				Replicas: p.Replicas, KeepReplicationFactor: !allowRF})
		}
	}
	if len(items) > 0 {
		actx, cancel := adminCtx(ctx, req.TimeoutMillis)
		defer cancel()
		res, err := b.meta.AlterPartitionReassignments(actx, items)
		if err != nil {
			err = adminErr(actx, err, req.TimeoutMillis)
			resp.ErrorCode = errCode(err)
			resp.ErrorMessage = adminMessage(err)
			for i := range errs {
				errs[i] = err
			}
		} else {
			for i, e := range res {
				errs[pos[i]] = e
			}
		}
	}
	k := 0
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = p.Partition
			sp.ErrorCode = errCode(errs[k])
			sp.ErrorMessage = adminMessage(errs[k])
			if errs[k] == nil && resp.ErrorCode == 0 {
				if p.Replicas == nil {
					b.logger.Info("partition reassignment cancelled", "topic", rt.Topic, "partition", p.Partition)
				} else {
					b.logger.Info("partition reassignment started", "topic", rt.Topic, "partition", p.Partition, "target", p.Replicas)
				}
			}
			st.Partitions = append(st.Partitions, sp)
			k++
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
