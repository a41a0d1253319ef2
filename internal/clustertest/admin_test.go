package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
// `sluice serve` processes. Replication is not wired into the broker yet,
// so a replica added by a reassignment never joins the ISR: the
// reassignment stays in progress, the partition's data stays on (and is
// served by) its current leader, nothing is copied to the target broker,
// and the preferred replica (the target) cannot be elected. Cancelling
// restores the original assignment. The completion of a move (the target
// joins the ISR, the leadership moves, the old replica is dropped) is
// tested at the metadata level in internal/metadata
// (TestClusterReassignmentMovesLeader).
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

	// Refused targets: an unregistered broker; two replicas, while
	// replication is not wired into the broker (as CreateTopics refuses
	// RF 2); the same with KIP-860's AllowReplicationFactorChange false
	// (its own check is tested in internal/metadata).
	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign(topic, 0, []int32{dst, 9})
	bad.Assign(topic, 1, []int32{dst, src})
	res, err := adm.AlterPartitionAssignments(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[topic][0].Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("target with broker 9: %v, want INVALID_REPLICA_ASSIGNMENT", res[topic][0].Err)
	}
	if !errors.Is(res[topic][1].Err, kerr.InvalidReplicationFactor) || !strings.Contains(res[topic][1].ErrMessage, "not implemented") {
		t.Fatalf("target of two replicas: %v %q, want INVALID_REPLICATION_FACTOR (replication not implemented)", res[topic][1].Err, res[topic][1].ErrMessage)
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

	// Move partition 0 to dst: accepted, in progress.
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
	wantList("move listed in progress", []kadm.ListPartitionReassignmentsResponse{{Topic: topic, Partition: 0,
		Replicas: []int32{dst, src}, AddingReplicas: []int32{dst}, RemovingReplicas: []int32{src}}})

	// The data stays where it is: src still leads, dst is a replica out of
	// the ISR, and the ten records are read from src.
	Eventually(t, 10*time.Second, "metadata of the move in progress", func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		if p := parts[0]; p.Leader != src || !slices.Equal(p.Replicas, []int32{dst, src}) || !slices.Equal(p.ISR, []int32{src}) {
			return fmt.Errorf("%s-0: %+v", topic, p)
		}
		return nil
	})
	readPartition0(t, ctx, c, topic, 10)

	// The preferred replica is now dst, which is not in the ISR.
	el, err = adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(el[topic][0].Err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("preferred election during the move: %v, want PREFERRED_LEADER_NOT_AVAILABLE", el[topic][0].Err)
	}
	// All partitions (null list): only partition 0 needs one, and cannot.
	all, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all[topic]) != 1 || !errors.Is(all[topic][0].Err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("preferred election of all partitions: %+v", all[topic])
	}

	// Cancel: the original assignment is back, nothing in progress.
	var cancelReq kadm.AlterPartitionAssignmentsReq
	cancelReq.CancelAssign(topic, 0)
	cancelReq.CancelAssign(topic, 1) // nothing to cancel
	if res, err = adm.AlterPartitionAssignments(ctx, cancelReq); err != nil {
		t.Fatal(err)
	}
	if res[topic][0].Err != nil || !errors.Is(res[topic][1].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel: %v / %v, want ok / NO_REASSIGNMENT_IN_PROGRESS", res[topic][0].Err, res[topic][1].Err)
	}
	wantList("nothing listed after the cancel", nil)
	Eventually(t, 10*time.Second, "metadata after the cancel", func() error {
		parts, err := adminMetadata(ctx, adm, topic)
		if err != nil {
			return err
		}
		if p := parts[0]; p.Leader != src || !slices.Equal(p.Replicas, []int32{src}) || !slices.Equal(p.ISR, []int32{src}) {
			return fmt.Errorf("%s-0: %+v", topic, p)
		}
		return nil
	})
	readPartition0(t, ctx, c, topic, 10)

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
