package broker_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/broker"
)

// startCluster starts n in-process brokers, all voters, on loopback ports.
func startCluster(t *testing.T, n int) []*broker.Broker {
	t.Helper()
	bs, _ := startClusterWith(t, n, nil)
	return bs
}

// startClusterWith is startCluster with extra settings; it also returns
// each broker's config, to restart one on the same data and controller
// address.
func startClusterWith(t *testing.T, n int, settings map[string]string) ([]*broker.Broker, []broker.Config) {
	t.Helper()
	addrs := make([]string, n)
	var voters []string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, addrs[i]))
	}
	cfgs := make([]broker.Config, n)
	logs := &scenarioLog{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SLUICE_CLUSTER_LOG") != "" {
			t.Logf("brokers' log (tail):\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for i := range cfgs {
		set := map[string]string{
			"broker.heartbeat.interval.ms":     "100",
			"offsets.topic.num.partitions":     "3",
			"group.initial.rebalance.delay.ms": "0",
		}
		for k, v := range settings {
			set[k] = v
		}
		cfgs[i] = broker.Config{
			NodeID:           int32(i + 1),
			Listen:           "127.0.0.1:0",
			DataDir:          t.TempDir(),
			ControllerListen: addrs[i],
			ControllerVoters: strings.Join(voters, ","),
			ElectionTimeout:  400 * time.Millisecond,
			AdminListen:      "127.0.0.1:0",
			Settings:         set,
			Logger:           logger.With("node", i+1),
		}
	}
	bs := make([]*broker.Broker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs[i], errs[i] = broker.Start(cfgs[i])
		}()
	}
	wg.Wait()
	for i, b := range bs {
		if b != nil {
			t.Cleanup(func() { b.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("broker %d: %v", i+1, errs[i])
		}
	}
	return bs, cfgs
}

// TestClusterNotLeaderHints: a partition led by another broker answers
// NOT_LEADER_OR_FOLLOWER with KIP-951's CurrentLeader and NodeEndpoints on
// Produce v10+ and Fetch v12+/v16+; Metadata lists the brokers and leaders;
// replication factors above 1 are accepted (replication is on).
func TestClusterNotLeaderHints(t *testing.T) {
	bs := startCluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	cl := newClient(t, bs[0].Addr().String())
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "hints"); err != nil {
		t.Fatal(err)
	}
	if resp, err := adm.CreateTopic(ctx, 3, 2, nil, "rf2"); err != nil {
		t.Fatalf("RF 2 in a cluster: %v %q", err, resp.ErrMessage)
	}

	// Metadata from broker 1 once every broker knows the topic.
	var md kadm.Metadata
	var adms []*kadm.Client
	for _, b := range bs {
		adms = append(adms, kadm.NewClient(newClient(t, b.Addr().String())))
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, a := range adms {
			m, err := a.Metadata(ctx, "hints")
			if err != nil || m.Topics["hints"].Err != nil {
				return false
			}
			md = m
		}
		return true
	})
	if len(md.Brokers) != 3 || md.Controller < 1 {
		t.Fatalf("metadata brokers %v controller %d", md.Brokers, md.Controller)
	}
	// A partition not led by broker 1.
	var part, leader, epoch int32 = -1, -1, -1
	for _, p := range md.Topics["hints"].Partitions {
		if p.Leader != 1 {
			part, leader, epoch = p.Partition, p.Leader, p.LeaderEpoch
		}
	}
	if part < 0 {
		t.Fatalf("every partition led by broker 1: %+v", md.Topics["hints"].Partitions)
	}
	var leaderAddr string
	for _, b := range md.Brokers {
		if b.NodeID == leader {
			leaderAddr = net.JoinHostPort(b.Host, fmt.Sprint(b.Port))
		}
	}

	// Raw requests to broker 1 only.
	raw := newClient(t, bs[0].Addr().String())
	b1 := raw.Broker(1)
	preq := kmsg.NewPtrProduceRequest()
	preq.Version, preq.Acks, preq.TimeoutMillis = 11, 1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic, pt.TopicID = "hints", md.Topics["hints"].ID // kgo sends the broker's highest version (v13: by id)
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = part
	pp.Records = oneRecordBatch([]byte("v"))
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	presp, err := preq.RequestWith(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	sp := presp.Topics[0].Partitions[0]
	if sp.ErrorCode != kerr.NotLeaderForPartition.Code || sp.CurrentLeader.LeaderID != leader || sp.CurrentLeader.LeaderEpoch != epoch {
		t.Fatalf("produce to non-leader: code %d current leader %+v, want NOT_LEADER with %d/%d", sp.ErrorCode, sp.CurrentLeader, leader, epoch)
	}
	if len(presp.Brokers) != 1 || presp.Brokers[0].NodeID != leader || net.JoinHostPort(presp.Brokers[0].Host, fmt.Sprint(presp.Brokers[0].Port)) != leaderAddr {
		t.Fatalf("produce node endpoints %+v, want broker %d at %s", presp.Brokers, leader, leaderAddr)
	}

	freq := kmsg.NewPtrFetchRequest()
	freq.Version, freq.MaxWaitMillis, freq.SessionEpoch = 16, 0, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.TopicID = md.Topics["hints"].ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes = part, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fresp, err := freq.RequestWith(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	fr := fresp.Topics[0].Partitions[0]
	if fr.ErrorCode != kerr.NotLeaderForPartition.Code || fr.CurrentLeader.LeaderID != leader || fr.CurrentLeader.LeaderEpoch != epoch {
		t.Fatalf("fetch from non-leader: code %d current leader %+v", fr.ErrorCode, fr.CurrentLeader)
	}
	if len(fresp.Brokers) != 1 || fresp.Brokers[0].NodeID != leader {
		t.Fatalf("fetch node endpoints %+v", fresp.Brokers)
	}

	// A client seeded with broker 1 only follows the leaders.
	prod := newClient(t, bs[0].Addr().String())
	for i := 0; i < 30; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "hints", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	got := consumeAll(t, bs[0].Addr().String(), "hints", 30)
	if len(got) != 30 {
		t.Fatalf("consumed %d of 30", len(got))
	}
}

// TestClusterCoordinators: FindCoordinator names the leader of the group's
// __consumer_offsets partition from whichever broker is asked; a group
// request sent to another broker answers NOT_COORDINATOR.
func TestClusterCoordinators(t *testing.T) {
	bs := startCluster(t, 3)
	ctx := testCtx(t, 30*time.Second)
	var coord int32 = -1
	var adms []*kadm.Client
	for _, b := range bs {
		adms = append(adms, kadm.NewClient(newClient(t, b.Addr().String())))
	}
	waitFor(t, 15*time.Second, func() bool {
		seen := map[int32]bool{}
		for _, a := range adms {
			resps := a.FindGroupCoordinators(ctx, "g")
			r, ok := resps["g"]
			if !ok || r.Err != nil {
				return false
			}
			seen[r.NodeID] = true
			coord = r.NodeID
		}
		return len(seen) == 1 // every broker names the same coordinator
	})
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = "g", "m", 1
	cl := newClient(t, bs[0].Addr().String())
	var otherID int32 = 1
	if coord == 1 {
		otherID = 2
	}
	resp, err := req.RequestWith(ctx, cl.Broker(int(otherID)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat to broker %d (coordinator %d): code %d, want NOT_COORDINATOR", otherID, coord, resp.ErrorCode)
	}
	// The coordinator itself knows the group is not there (a real answer,
	// not NOT_COORDINATOR).
	resp, err = req.RequestWith(ctx, cl.Broker(int(coord)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode == kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat to the coordinator %d answered NOT_COORDINATOR", coord)
	}
}

// TestLoneVoterWithBrokerOnlyNode: a single node (a lone voter) that a
// broker-only node joined is a cluster too: replication factors above 1
// are accepted, and partitions are spread over both.
func TestLoneVoterWithBrokerOnlyNode(t *testing.T) {
	var addrs [2]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	voters := "1@" + addrs[0]
	var bs []*broker.Broker
	for i := range addrs {
		b, err := broker.Start(broker.Config{NodeID: int32(i + 1), Listen: "127.0.0.1:0", DataDir: t.TempDir(),
			ControllerListen: addrs[i], ControllerVoters: voters,
			Settings: map[string]string{"broker.heartbeat.interval.ms": "100"}})
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(func() { b.Close() })
		bs = append(bs, b)
	}
	ctx := testCtx(t, 30*time.Second)
	adm := kadm.NewClient(newClient(t, bs[0].Addr().String()))
	waitFor(t, 10*time.Second, func() bool {
		md, err := adm.BrokerMetadata(ctx)
		return err == nil && len(md.Brokers) == 2
	})
	if resp, err := adm.CreateTopic(ctx, 2, 2, nil, "rf2"); err != nil {
		t.Fatalf("RF 2 on a lone voter with a broker-only node: %v %q", err, resp.ErrMessage)
	}
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "spread"); err != nil {
		t.Fatal(err)
	}
	prod := newClient(t, bs[0].Addr().String(), kgo.DefaultProduceTopic("spread"))
	for i := 0; i < 20; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	md, err := adm.Metadata(ctx, "spread")
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]bool{}
	for _, p := range md.Topics["spread"].Partitions {
		leaders[p.Leader] = true
	}
	if len(leaders) != 2 {
		t.Fatalf("leaders %v: want both brokers", leaders)
	}
	if got := consumeAll(t, bs[1].Addr().String(), "spread", 20); len(got) != 20 {
		t.Fatalf("consumed %d of 20", len(got))
	}
}
