package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// quorumOf is node id's view of the metadata quorum (DescribeQuorum sent
// to that broker): its voters and observers, sorted.
func quorumOf(ctx context.Context, cl *kgo.Client, id int32) (voters, observers []int32, err error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Broker(int(id)).Request(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	resp := kresp.(*kmsg.DescribeQuorumResponse)
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
				return nil, nil, err
			}
			for _, v := range sp.CurrentVoters {
				voters = append(voters, v.ReplicaID)
			}
			for _, o := range sp.Observers {
				observers = append(observers, o.ReplicaID)
			}
		}
	}
	slices.Sort(voters)
	slices.Sort(observers)
	return voters, observers, nil
}

// waitQuorum waits until every running node reports these voters and
// observers.
func waitQuorum(t *testing.T, ctx context.Context, c *Cluster, cl *kgo.Client, voters, observers []int32) {
	t.Helper()
	Eventually(t, 30*time.Second, fmt.Sprintf("voters %v observers %v on every running node", voters, observers), func() error {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			v, o, err := quorumOf(ctx, cl, n.ID)
			if err != nil {
				return fmt.Errorf("node %d: %w", n.ID, err)
			}
			if !slices.Equal(v, voters) || !slices.Equal(o, observers) {
				return fmt.Errorf("node %d sees voters %v observers %v", n.ID, v, o)
			}
		}
		return nil
	})
}

// createTopic creates a topic through the cluster, retrying while no
// controller answers (an election after a kill); a retry that finds the
// topic created by an earlier attempt counts as done.
func createTopic(t *testing.T, ctx context.Context, adm *kadm.Client, name string, partitions int32, rf int16) {
	t.Helper()
	Eventually(t, 30*time.Second, "create topic "+name, func() error {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := adm.CreateTopic(rctx, partitions, rf, nil, name)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		return err
	})
}

// TestVoterAddRemoveWithCLI: with the cluster up and producing, `sluice
// cluster add-voter` makes the broker-only node 4 a controller voter
// (AddRaftVoter), so four voters share the quorum; killing one of the
// original voters (kill -9) leaves three of four, enough to elect a
// controller and create topics; `sluice cluster remove-voter` then removes
// the dead voter (RemoveRaftVoter) and the three voters left keep the
// cluster working. Refusals exit non-zero with the Kafka error's name.
func TestVoterAddRemoveWithCLI(t *testing.T) {
	c := Start(t, Options{Nodes: 4, Voters: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n4 := c.Node(4)
	if n4.Voter {
		t.Fatal("node 4 should start as a broker-only node")
	}
	waitQuorum(t, ctx, c, cl, []int32{1, 2, 3}, []int32{4})

	cli := func(wantCode int, args ...string) (stdout, stderr string) {
		t.Helper()
		stdout, stderr, code, err := c.CLI(ctx, args...)
		if err != nil {
			t.Fatalf("sluice %v: %v", args, err)
		}
		if code != wantCode {
			t.Fatalf("sluice %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		t.Logf("sluice %s: exit %d: %s%s", strings.Join(args, " "), code, stdout, stderr)
		return stdout, stderr
	}

	// A producer runs (acks=all, RF 3) while node 4 becomes a voter.
	const loadTopic = "voters-load"
	createTopic(t, ctx, adm, loadTopic, 3, 3)
	var (
		mu       sync.Mutex
		acked    int
		firstErr error
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			rec := &kgo.Record{Topic: loadTopic, Key: []byte(strconv.Itoa(i)), Value: []byte("during-add-voter")}
			err := cl.ProduceSync(ctx, rec).FirstErr()
			mu.Lock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if err == nil {
				acked++
			}
			mu.Unlock()
		}
	}()
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return acked }
	Eventually(t, 30*time.Second, "producer started", func() error {
		if got := ackedNow(); got < 20 {
			return fmt.Errorf("%d records acked", got)
		}
		return nil
	})
	before := ackedNow()
	out, _ := cli(0, "cluster", "add-voter", "--node-id", "4", "--controller-address", n4.ControllerAddr)
	if !strings.Contains(out, "Node 4 is a voter") {
		t.Fatalf("add-voter output: %q", out)
	}
	waitQuorum(t, ctx, c, cl, []int32{1, 2, 3, 4}, nil)
	// The producer went on through the change.
	Eventually(t, 30*time.Second, "records acked after the change", func() error {
		if ackedNow() <= before {
			return errors.New("no record acked since add-voter started")
		}
		return nil
	})
	close(stop)
	<-done
	mu.Lock()
	loadAcked, loadErr := acked, firstErr
	mu.Unlock()
	if loadErr != nil {
		t.Fatalf("produce during add-voter: %v (%d acked)", loadErr, loadAcked)
	}
	t.Logf("%d records acked while node 4 became a voter", loadAcked)

	// Refusals through the CLI: non-zero exit, Kafka's error name.
	_, stderr := cli(1, "cluster", "add-voter", "--node-id", "4", "--controller-address", n4.ControllerAddr)
	if !strings.Contains(stderr, "DUPLICATE_VOTER") {
		t.Fatalf("add-voter of a voter: stderr %q", stderr)
	}
	_, stderr = cli(1, "cluster", "remove-voter", "--node-id", "42")
	if !strings.Contains(stderr, "VOTER_NOT_FOUND") {
		t.Fatalf("remove-voter of an unknown node: stderr %q", stderr)
	}
	_, stderr = cli(2, "cluster", "remove-voter")
	if !strings.Contains(stderr, "--node-id") {
		t.Fatalf("remove-voter without --node-id: stderr %q", stderr)
	}

	// Four voters: a quorum of three. Kill one of the original voters (the
	// active controller if it is one, so that the four-voter quorum has to
	// elect) and the cluster still takes metadata writes.
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := md.Controller
	if victim < 1 || victim > 3 {
		victim = 1
	}
	t.Logf("killing voter %d (controller %d)", victim, md.Controller)
	c.Node(victim).Kill()
	createTopic(t, ctx, adm, "after-kill", 3, 3)

	// Remove the dead voter; three voters remain.
	out, _ = cli(0, "cluster", "remove-voter", "--node-id", strconv.Itoa(int(victim)))
	if !strings.Contains(out, fmt.Sprintf("Node %d is no longer a voter", victim)) {
		t.Fatalf("remove-voter output: %q", out)
	}
	var left []int32
	for id := int32(1); id <= 4; id++ {
		if id != victim {
			left = append(left, id)
		}
	}
	waitQuorum(t, ctx, c, cl, left, nil)
	// The dead node is no observer: adding it back is refused.
	_, stderr = cli(1, "cluster", "add-voter", "--node-id", strconv.Itoa(int(victim)), "--controller-address", c.Node(victim).ControllerAddr)
	if !strings.Contains(stderr, "REQUEST_TIMED_OUT") {
		t.Fatalf("add-voter of a dead node: stderr %q", stderr)
	}

	// The cluster keeps working: a new topic, produced (acks=all) and
	// consumed back.
	const topic = "after-remove"
	createTopic(t, ctx, adm, topic, 3, 3)
	const n = 200
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce after remove-voter: %v", err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	for len(seen) < n {
		fs := cons.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(seen), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := "v" + string(r.Key); string(r.Value) != want {
				t.Fatalf("record %s = %q, want %q", r.Key, r.Value, want)
			}
			seen[string(r.Key)] = true
		})
	}

	// The promoted voter keeps its place across a restart (its Raft state
	// says it votes, though its id is not in --controller-voters), and
	// the quorum of three goes on.
	n4.Restart()
	waitQuorum(t, ctx, c, cl, left, nil)
	createTopic(t, ctx, adm, "after-restart", 1, 3)

	// Below a quorum nothing can commit: with two of the three voters
	// dead, removing one of them fails cleanly, with REQUEST_TIMED_OUT
	// (no controller answered in time) or NOT_CONTROLLER (the survivor
	// led and stepped down before the change committed, Kafka's
	// NOT_LEADER_OR_FOLLOWER).
	c.Node(left[0]).Kill()
	c.Node(left[1]).Kill()
	start := time.Now()
	_, stderr = cli(1, "cluster", "remove-voter", "--node-id", strconv.Itoa(int(left[0])))
	if !strings.Contains(stderr, "REQUEST_TIMED_OUT") && !strings.Contains(stderr, "NOT_CONTROLLER") {
		t.Fatalf("remove-voter without a quorum: stderr %q", stderr)
	}
	t.Logf("remove-voter without a quorum refused after %v", time.Since(start).Round(time.Millisecond))
}
