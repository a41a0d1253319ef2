package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestRaftVoterErrors: AddRaftVoter and RemoveRaftVoter (KIP-853) through
// a franz-go client against a single broker (node 1, a lone voter): every
// refusal carries Kafka's error code and leaves the quorum as it was.
func TestRaftVoterErrors(t *testing.T) {
	b := sluicetest.New(t)
	cl := newClient(t, b.Addr())
	ctx := testCtx(t, 60*time.Second)

	// Advertised in ApiVersions with Kafka 4.x's version ranges.
	vs, err := kadm.NewClient(cl).ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		for key, want := range map[int16][2]int16{80: {0, 1}, 81: {0, 0}} {
			lo, hi, ok := v.KeyVersions(key)
			if !ok || lo != want[0] || hi != want[1] {
				t.Errorf("ApiVersions %s: %d-%d (%v), want %d-%d", kmsg.NameForKey(key), lo, hi, ok, want[0], want[1])
			}
		}
	}
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clusterID := md.Cluster

	add := func(id int32, cluster *string, listeners ...kmsg.AddRaftVoterRequestListener) *kmsg.AddRaftVoterResponse {
		t.Helper()
		req := kmsg.NewPtrAddRaftVoterRequest()
		req.ClusterID, req.VoterID, req.Listeners = cluster, id, listeners
		req.TimeoutMillis = 5000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	remove := func(id int32, cluster *string) *kmsg.RemoveRaftVoterResponse {
		t.Helper()
		req := kmsg.NewPtrRemoveRaftVoterRequest()
		req.ClusterID, req.VoterID = cluster, id
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	controller := func(host string, port uint16) kmsg.AddRaftVoterRequestListener {
		l := kmsg.NewAddRaftVoterRequestListener()
		l.Name, l.Host, l.Port = "CONTROLLER", host, port
		return l
	}
	want := func(what string, code int16, msg *string, wantErr *kerr.Error, wantMsg string) {
		t.Helper()
		if code != wantErr.Code {
			t.Errorf("%s: %v (%s), want %s", what, kerr.ErrorForCode(code), deref(msg), wantErr.Message)
			return
		}
		if !strings.Contains(deref(msg), wantMsg) {
			t.Errorf("%s: message %q lacks %q", what, deref(msg), wantMsg)
		}
	}
	other := "not-this-cluster"

	r := add(1, nil, controller("127.0.0.1", 9093))
	want("add the existing voter", r.ErrorCode, r.ErrorMessage, kerr.DuplicateVoter, "already part of the set of voters [1]")
	r = add(1, &clusterID, controller("127.0.0.1", 9093))
	want("add the existing voter, cluster id given", r.ErrorCode, r.ErrorMessage, kerr.DuplicateVoter, "already part")
	r = add(2, &other, controller("127.0.0.1", 9093))
	want("add, another cluster", r.ErrorCode, r.ErrorMessage, kerr.InconsistentClusterID, `"not-this-cluster" doesn't match`)
	r = add(-1, nil, controller("127.0.0.1", 9093))
	want("add a negative id", r.ErrorCode, r.ErrorMessage, kerr.InvalidRequest, "valid voter")
	r = add(2, nil)
	want("add without listeners", r.ErrorCode, r.ErrorMessage, kerr.InvalidRequest, "CONTROLLER")
	r = add(2, nil, controller("", 9093))
	want("add without a host", r.ErrorCode, r.ErrorMessage, kerr.InvalidRequest, "no host or port")
	// A lone voter's quorum cannot grow while it runs.
	r = add(2, nil, controller("127.0.0.1", 9093))
	want("add to a lone voter", r.ErrorCode, r.ErrorMessage, kerr.UnsupportedVersion, "single voter")

	rr := remove(42, nil)
	want("remove an unknown voter", rr.ErrorCode, rr.ErrorMessage, kerr.VoterNotFound, "Cannot remove voter 42 from the set of voters [1]")
	rr = remove(1, &other)
	want("remove, another cluster", rr.ErrorCode, rr.ErrorMessage, kerr.InconsistentClusterID, "doesn't match")
	rr = remove(1, &clusterID)
	want("remove the last voter", rr.ErrorCode, rr.ErrorMessage, kerr.InvalidRequest, "last voter")
	rr = remove(-3, nil)
	want("remove a negative id", rr.ErrorCode, rr.ErrorMessage, kerr.InvalidRequest, "valid voter")

	// The quorum is unchanged and the broker still takes writes.
	voters, observers := quorum(ctx, t, cl)
	if len(voters) != 1 || voters[0] != 1 || len(observers) != 0 {
		t.Fatalf("quorum after refusals: voters %v observers %v", voters, observers)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "after-voter-refusals"); err != nil {
		t.Fatal(err)
	}
}

// quorum is DescribeQuorum's voters and observers.
func quorum(ctx context.Context, t *testing.T, cl *kgo.Client) (voters, observers []int32) {
	t.Helper()
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
				t.Fatal(err)
			}
			for _, v := range sp.CurrentVoters {
				voters = append(voters, v.ReplicaID)
			}
			for _, o := range sp.Observers {
				observers = append(observers, o.ReplicaID)
			}
		}
	}
	return voters, observers
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
