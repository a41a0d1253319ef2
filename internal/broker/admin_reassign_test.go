package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// Single-node tests of ElectLeaders, AlterPartitionReassignments and
// ListPartitionReassignments with kadm (the multi-node behaviour is in
// internal/clustertest/admin_test.go and internal/metadata).

func wantCode(t *testing.T, what string, got error, want *kerr.Error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Errorf("%s: error %v, want none", what, got)
		}
		return
	}
	if !errors.Is(got, want) {
		t.Errorf("%s: error %v, want %s", what, got, want.Message)
	}
}

// TestElectLeadersSingleNode: on one broker every partition is led by its
// only (preferred) replica: nothing to elect, preferred or unclean.
func TestElectLeadersSingleNode(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("el", 2))
	cl := newClient(t, b.Addr())
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 30*time.Second)

	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{"el": {0: {}, 1: {}}, "nope": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "preferred el-0", res["el"][0].Err, kerr.ElectionNotNeeded)
	wantCode(t, "preferred el-1", res["el"][1].Err, kerr.ElectionNotNeeded)
	wantCode(t, "preferred nope-0", res["nope"][0].Err, kerr.UnknownTopicOrPartition)
	if res["el"][0].How != kadm.ElectPreferredReplica {
		t.Errorf("How = %v", res["el"][0].How)
	}
	res, err = adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{"el": {1: {}, 7: {}}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "unclean el-1", res["el"][1].Err, kerr.ElectionNotNeeded)
	wantCode(t, "unclean el-7", res["el"][7].Err, kerr.UnknownTopicOrPartition)

	// A null topic list (kadm sends null for an empty set): every topic is
	// listed, with no partition since none needed an election.
	req := kmsg.NewPtrElectLeadersRequest()
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Topic != "el" || len(resp.Topics[0].Partitions) != 0 {
		t.Errorf("ElectLeaders(null) = %+v", resp)
	}
	if res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil); err != nil || len(res) != 1 || len(res["el"]) != 0 {
		t.Errorf("kadm ElectLeaders(all) = %v, %v", res, err)
	}

	// An unknown election type, and an expired timeout: the error at the
	// top level and for every partition (Kafka's error response).
	for _, tc := range []struct {
		typ     int8
		timeout int32
		want    *kerr.Error
	}{{typ: 7, timeout: 10000, want: kerr.InvalidRequest}, {typ: 0, timeout: 0, want: kerr.RequestTimedOut}} {
		req := kmsg.NewPtrElectLeadersRequest()
		req.ElectionType = tc.typ
		req.TimeoutMillis = tc.timeout
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = "el", []int32{0, 1}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, "top level", kerr.ErrorForCode(resp.ErrorCode), tc.want)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("response %+v", resp)
		}
		for _, p := range resp.Topics[0].Partitions {
			wantCode(t, "partition", kerr.ErrorForCode(p.ErrorCode), tc.want)
		}
	}

	// v0 (no election type: preferred, no top-level error code).
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(43, 0)
	cl0 := newClient(t, b.Addr(), kgo.MaxVersions(vs))
	res, err = kadm.NewClient(cl0).ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{"el": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "v0 el-0", res["el"][0].Err, kerr.ElectionNotNeeded)
}

// TestReassignSingleNode: reassignment targets are checked as Kafka does
// (unregistered broker, duplicates, empty list, unknown partition),
// cancelling nothing is NO_REASSIGNMENT_IN_PROGRESS, a target equal to the
// current replicas is accepted and completes at once, and nothing is
// listed in progress.
func TestReassignSingleNode(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("ra", 2))
	cl := newClient(t, b.Addr())
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 30*time.Second)

	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("ra", 0, []int32{2})    // broker 2 is not registered
	req.Assign("ra", 1, []int32{1, 1}) // twice
	req.Assign("empty", 0, []int32{})  // unknown topic comes first
	req.Assign("ra", 9, []int32{1})    // no such partition
	req.Assign("nope", 0, []int32{1})  // no such topic
	req.CancelAssign("other", 0)       // unknown topic, cancel
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "ra-0 -> [2]", res["ra"][0].Err, kerr.InvalidReplicaAssignment)
	if msg := res["ra"][0].ErrMessage; msg != "ra-0: the manual partition assignment includes broker 2, but no such broker is registered" {
		t.Errorf("ra-0 message %q", msg)
	}
	wantCode(t, "ra-1 -> [1 1]", res["ra"][1].Err, kerr.InvalidReplicaAssignment)
	wantCode(t, "empty-0", res["empty"][0].Err, kerr.UnknownTopicOrPartition)
	wantCode(t, "ra-9", res["ra"][9].Err, kerr.UnknownTopicOrPartition)
	wantCode(t, "nope-0", res["nope"][0].Err, kerr.UnknownTopicOrPartition)
	wantCode(t, "cancel other-0", res["other"][0].Err, kerr.UnknownTopicOrPartition)

	req = nil
	req.Assign("ra", 0, []int32{}) // empty list
	req.CancelAssign("ra", 1)      // nothing to cancel
	if res, err = adm.AlterPartitionAssignments(ctx, req); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "ra-0 -> []", res["ra"][0].Err, kerr.InvalidReplicaAssignment)
	wantCode(t, "cancel ra-1", res["ra"][1].Err, kerr.NoReassignmentInProgress)

	// The same replicas: accepted, nothing in progress, nothing changed.
	req = nil
	req.Assign("ra", 0, []int32{1})
	if res, err = adm.AlterPartitionAssignments(ctx, req); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "ra-0 -> [1]", res["ra"][0].Err, nil)
	ls, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"ra": {0: {}, 1: {}}, "nope": {0: {}}})
	if err != nil || len(ls) != 0 {
		t.Fatalf("ListPartitionReassignments = %v, %v", ls, err)
	}
	lreq := kmsg.NewPtrListPartitionReassignmentsRequest() // null: all
	lresp, err := lreq.RequestWith(ctx, cl)
	if err != nil || lresp.ErrorCode != 0 || len(lresp.Topics) != 0 {
		t.Fatalf("ListPartitionReassignments(null) = %+v, %v", lresp, err)
	}
	md, err := adm.Metadata(ctx, "ra")
	if err != nil {
		t.Fatal(err)
	}
	if p := md.Topics["ra"].Partitions[0]; p.Leader != 1 || len(p.Replicas) != 1 || p.Replicas[0] != 1 {
		t.Errorf("ra-0 after a no-op reassignment: %+v", p)
	}

	// v1 echoes AllowReplicationFactorChange; an expired timeout answers
	// REQUEST_TIMED_OUT at the top level and for every partition.
	for _, tc := range []struct {
		timeout int32
		allow   bool
		want    *kerr.Error
	}{{10000, false, nil}, {0, true, kerr.RequestTimedOut}} {
		areq := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		areq.TimeoutMillis = tc.timeout
		areq.AllowReplicationFactorChange = tc.allow
		rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		rt.Topic = "ra"
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = 1, []int32{1}
		rt.Partitions = append(rt.Partitions, rp)
		areq.Topics = append(areq.Topics, rt)
		aresp, err := areq.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if aresp.Version != 1 || aresp.AllowReplicationFactorChange != tc.allow {
			t.Errorf("v%d AllowReplicationFactorChange = %v, want %v", aresp.Version, aresp.AllowReplicationFactorChange, tc.allow)
		}
		wantCode(t, "top level", kerr.ErrorForCode(aresp.ErrorCode), tc.want)
		if len(aresp.Topics) != 1 || len(aresp.Topics[0].Partitions) != 1 {
			t.Fatalf("response %+v", aresp)
		}
		wantCode(t, "ra-1", kerr.ErrorForCode(aresp.Topics[0].Partitions[0].ErrorCode), tc.want)
	}
}
