package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// adminPartition is one partition as a Metadata response shows it.
type adminPartition struct {
	Leader   int32
	Replicas []int32
	ISR      []int32
}

// adminMetadata reads topic's partitions through cl.
func adminMetadata(ctx context.Context, adm *kadm.Client, topic string) (map[int32]adminPartition, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("topic %s: %v", topic, td.Err)
	}
	out := map[int32]adminPartition{}
	for _, p := range td.Partitions {
		out[p.Partition] = adminPartition{Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR}
	}
	return out, nil
}

// TestAdminReassignAndElect drives ElectLeaders,
// AlterPartitionReassignments and ListPartitionReassignments against three
// `sluice serve` processes. A move of a partition to another broker
// completes with replication: the target copies the partition by
// fetching, joins the ISR, takes the leadership, and the old replica is
// dropped; the records are then read from the target. Unclean election of
// a partition whose only replica is dead is refused.
func TestAdminReassignAndElect(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...), kgo.RetryTimeout(30*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	const topic = "mv"
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var parts map[int32]adminPartition
	Eventually(t, 10*time.Second, "leaders of "+topic, func() (err error) {
		if parts, err = adminMetadata(ctx, adm, topic); err != nil {
			return err
		}
		for p, st := range parts {
			if st.Leader < 0 {
				return fmt.Errorf("partition %d has no leader", p)
			}
		}
		return nil
	})
	src := parts[0].Leader
	dst := src%3 + 1
	t.Logf("moving %s-0 from broker %d to broker %d", topic, src, dst)

	// Ten records in partition 0, on broker src.
	for i := range 10 {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "r%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing to elect: every partition is led by its only replica.
	el, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if !errors.Is(el[topic][p].Err, kerr.ElectionNotNeeded) {
			t.Errorf("preferred election of %s-%d: %v, want ELECTION_NOT_NEEDED", topic, p, el[topic][p].Err)
		}
	}

	// Refused targets: an unregistered broker; two replicas with KIP-860's
	// AllowReplicationFactorChange false (its own check is tested in
	// internal/metadata).
	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign(topic, 0, []int32{dst, 9})
	res, err := adm.AlterPartitionAssignments(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[topic][0].Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("target with broker 9: %v, want INVALID_REPLICA_ASSIGNMENT", res[topic][0].Err)
	}
	rfReq := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rfReq.TimeoutMillis = 30000
	rfReq.AllowReplicationFactorChange = false
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, []int32{dst, src}
	rt.Partitions = append(rt.Partitions, rp)
	rfReq.Topics = append(rfReq.Topics, rt)
	rfResp, err := rfReq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := kerr.ErrorForCode(rfResp.Topics[0].Partitions[0].ErrorCode); !errors.Is(got, kerr.InvalidReplicationFactor) {
		t.Fatalf("RF 1 -> 2 with AllowReplicationFactorChange=false: %v, want INVALID_REPLICATION_FACTOR", got)
	}

	// Move partition 0 to dst: accepted.
	var mv kadm.AlterPartitionAssignmentsReq
	mv.Assign(topic, 0, []int32{dst})
	if res, err = adm.AlterPartitionAssignments(ctx, mv); err != nil || res[topic][0].Err != nil {
		t.Fatalf("move: %v %v", err, res[topic][0].Err)
	}
	wantList := func(what string, want []kadm.ListPartitionReassignmentsResponse) {
		t.Helper()
		// Every broker answers from its copy of the metadata: ask each.
		for _, n := range c.Nodes {
			ncl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr), kgo.RetryTimeout(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			Eventually(t, 10*time.Second, fmt.Sprintf("%s (node %d)", what, n.ID), func() error {
				ls, err := kadm.NewClient(ncl).ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
				if err != nil {
					return err
				}
				if got := ls.Sorted(); !slices.EqualFunc(got, want, func(a, b kadm.ListPartitionReassignmentsResponse) bool {
					return a.Topic == b.Topic && a.Partition == b.Partition && slices.Equal(a.Replicas, b.Replicas) &&
						slices.Equal(a.AddingReplicas, b.AddingReplicas) && slices.Equal(a.RemovingReplicas, b.RemovingReplicas)
				}) {
					return fmt.Errorf("listed %+v, want %+v", got, want)
				}
				return nil
			})
			ncl.Close()
		}
	}
	// With replication the move completes: dst copies the partition by
	// fetching from src, joins the ISR, takes the leadership, and src's
	// replica is removed; the ten records are read from dst.
	took := Eventually(t, 30*time.Second, "metadata of the completed move", func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		if p := parts[0]; p.Leader != dst || !slices.Equal(p.Replicas, []int32{dst}) || !slices.Equal(p.ISR, []int32{dst}) {
			return fmt.Errorf("%s-0: %+v", topic, p)
		}
		return nil
	})
	t.Logf("move of %s-0 completed in %v", topic, took.Round(time.Millisecond))
	wantList("nothing listed after the move", nil)
	readPartition0(t, ctx, c, topic, 10)

	// Nothing to cancel any more.
	var cancelReq kadm.AlterPartitionAssignmentsReq
	cancelReq.CancelAssign(topic, 0)
	if res, err = adm.AlterPartitionAssignments(ctx, cancelReq); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[topic][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel after completion: %v, want NO_REASSIGNMENT_IN_PROGRESS", res[topic][0].Err)
	}
	parts[0] = adminPartition{Leader: dst, Replicas: []int32{dst}, ISR: []int32{dst}}
	src = dst // partition 0's only replica from here on

	// An unclean election needs a partition without a live leader: kill
	// src; once it is fenced, partition 0 has no live replica.
	c.Node(src).Kill()
	Eventually(t, 20*time.Second, "partition 0 leaderless", func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		if parts[0].Leader != -1 {
			return fmt.Errorf("%s-0 led by %d", topic, parts[0].Leader)
		}
		return nil
	})
	el, err = adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		want := kerr.ElectionNotNeeded
		if parts[p].Leader == src {
			want = kerr.EligibleLeadersNotAvailable
		}
		if !errors.Is(el[topic][p].Err, want) {
			t.Errorf("unclean election of %s-%d: %v, want %s", topic, p, el[topic][p].Err, want.Message)
		}
	}
	c.Node(src).Restart()
	Eventually(t, 30*time.Second, "partition 0 led by its replica again", func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		if parts[0].Leader != src {
			return fmt.Errorf("%s-0 led by %d", topic, parts[0].Leader)
		}
		return nil
	})
	readPartition0(t, ctx, c, topic, 10)
}

// readPartition0 reads partition 0 of topic from the start and checks its
// n records "r0".."r<n-1>", in order.
func readPartition0(t *testing.T, ctx context.Context, c *Cluster, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s-0: %v", len(got), n, topic, rctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if want := fmt.Sprintf("r%d", i); v != want || i >= n {
			t.Fatalf("%s-0 record %d = %q, want %q (all: %q)", topic, i, v, want, got)
		}
	}
}
