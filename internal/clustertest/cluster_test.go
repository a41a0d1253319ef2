package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { Main(m) }

func newClient(t *testing.T, c *Cluster, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.RetryTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// leaders returns partition -> leader of topic as node n sees it (a
// client seeded with n only), and each partition's error.
func leaders(ctx context.Context, n *Node, topic string) (map[int32]int32, map[int32]error, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr), kgo.RetryTimeout(time.Second))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	t, ok := td[topic]
	if !ok || t.Err != nil {
		return nil, nil, fmt.Errorf("topic %s: %v", topic, t.Err)
	}
	ls, errs := map[int32]int32{}, map[int32]error{}
	for _, p := range t.Partitions {
		ls[p.Partition] = p.Leader
		errs[p.Partition] = p.Err
	}
	return ls, errs, nil
}

// produceN produces n records with acks=all (kgo's default, idempotent)
// spread over the topic's partitions; values are "<prefix>-<i>".
func produceN(t *testing.T, ctx context.Context, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	errc := make(chan error, 1)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(prefix + "-" + strconv.Itoa(i))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatalf("produce: %v", err)
	default:
	}
}

// consumeAll reads topic from the start until want records arrived;
// it checks offsets increase per partition and returns value -> count.
func consumeAll(t *testing.T, ctx context.Context, c *Cluster, topic string, want int) map[string]int {
	t.Helper()
	cl, _ := newClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	next := map[int32]int64{}
	total := 0
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for total < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s: %v", total, want, topic, ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Logf("fetch %s/%d: %v (retried)", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < next[r.Partition] {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition] = r.Offset + 1
			seen[string(r.Value)]++
			total++
		})
	}
	return seen
}

func checkAll(t *testing.T, seen map[string]int, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		v := prefix + "-" + strconv.Itoa(i)
		if seen[v] != 1 {
			t.Fatalf("record %s seen %d times", v, seen[v])
		}
	}
}

type clusterInfo struct {
	ClusterID  string       `json:"cluster_id"`
	Controller int32        `json:"controller"`
	Voters     []int32      `json:"voters"`
	Observers  []int32      `json:"observers"`
	Brokers    []brokerInfo `json:"brokers"`
}

type brokerInfo struct {
	NodeID     int32 `json:"node_id"`
	Port       int32 `json:"port"`
	Controller bool  `json:"controller"`
	Voter      bool  `json:"voter"`
	Fenced     bool  `json:"fenced"`
}

// info runs `sluice cluster info --format json` against the cluster.
func info(t *testing.T, c *Cluster) clusterInfo {
	t.Helper()
	cmd := exec.Command(c.BinaryPath(), "cluster", "info", "-X", "brokers="+strings.Join(c.Seeds(), ","), "--format", "json")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice cluster info: %v\n%s", err, out)
	}
	var ci clusterInfo
	if err := json.Unmarshal(out, &ci); err != nil {
		t.Fatalf("cluster info output %q: %v", out, err)
	}
	return ci
}

// controllerOf asks node n for the controller id.
func controllerOf(ctx context.Context, n *Node) (int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr), kgo.RetryTimeout(time.Second))
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return -1, err
	}
	return md.Controller, nil
}

// TestThreeNodeCluster: a 6-partition topic spread over three brokers,
// 10,000 records produced with acks=all and consumed back through the
// leaders; cluster info; RF>1 refused; a consumer group; a killed broker
// fenced (LEADER_NOT_AVAILABLE) and back with its data after restart; a
// paused broker fenced and back after SIGCONT.
func TestThreeNodeCluster(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	ctx := context.Background()
	cl, adm := newClient(t, c)

	const topic = "spread"
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// Every node learns of the topic shortly after the creation returns.
	var ls map[int32]int32
	Eventually(t, 10*time.Second, "topic known to node 1", func() (err error) {
		ls, _, err = leaders(ctx, c.Nodes[0], topic)
		return err
	})
	perBroker := map[int32]int{}
	for _, l := range ls {
		perBroker[l]++
	}
	if len(ls) != 6 || len(perBroker) != 3 {
		t.Fatalf("leaders %v: want 6 partitions over 3 brokers", ls)
	}

	// Replication is on: RF 3 is accepted.
	if resp, err := adm.CreateTopic(ctx, 1, 3, nil, "replicated"); err != nil {
		t.Fatalf("RF 3: %v %q", err, resp.ErrMessage)
	}

	start := time.Now()
	produceN(t, ctx, cl, topic, "a", 10000)
	t.Logf("produced 10000 records (acks=all) in %v", time.Since(start).Round(time.Millisecond))
	checkAll(t, consumeAll(t, ctx, c, topic, 10000), "a", 10000)

	ci := info(t, c)
	if !slices.Equal(ci.Voters, []int32{1, 2, 3}) || len(ci.Brokers) != 3 || ci.Controller < 1 {
		t.Fatalf("cluster info: %+v", ci)
	}
	for _, b := range ci.Brokers {
		if b.Fenced || !b.Voter || b.Controller != (b.NodeID == ci.Controller) {
			t.Fatalf("cluster info broker %+v (controller %d)", b, ci.Controller)
		}
	}

	// A consumer group commits offsets through its coordinator (the
	// leader of its __consumer_offsets partition).
	gcl, gadm := newClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g1"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	got := 0
	gctx, gcancel := context.WithTimeout(ctx, 30*time.Second)
	for got < 10000 {
		fs := gcl.PollFetches(gctx)
		if gctx.Err() != nil {
			t.Fatalf("group consumed %d of 10000: %v", got, gctx.Err())
		}
		got += fs.NumRecords()
	}
	if err := gcl.CommitUncommittedOffsets(gctx); err != nil {
		t.Fatal(err)
	}
	gcancel()
	offs, err := gadm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != 10000 {
		t.Fatalf("group g1 committed %d records' worth of offsets, want 10000", committed)
	}

	// Kill a broker that is not the controller: its partitions lose
	// their leader once it is fenced, and come back with the data.
	ctrl, err := controllerOf(ctx, c.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Nodes[0]
	for _, n := range c.Nodes {
		if n.ID != ctrl {
			victim = n
			break
		}
	}
	var led []int32
	for p, l := range ls {
		if l == victim.ID {
			led = append(led, p)
		}
	}
	victim.Kill()
	witness := c.Node(ctrl)
	took := Eventually(t, 15*time.Second, "killed broker's partitions leaderless", func() error {
		_, errs, err := leaders(ctx, witness, topic)
		if err != nil {
			return err
		}
		for _, p := range led {
			if !errors.Is(errs[p], kerr.LeaderNotAvailable) {
				return fmt.Errorf("partition %d: %v", p, errs[p])
			}
		}
		return nil
	})
	t.Logf("broker %d killed: its partitions %v leaderless after %v", victim.ID, led, took.Round(time.Millisecond))
	// Every node learns of the fencing (the one cluster info asks may lag).
	Eventually(t, 5*time.Second, "cluster info shows the killed broker fenced", func() error {
		if ci := info(t, c); !slices.ContainsFunc(ci.Brokers, func(b brokerInfo) bool { return b.NodeID == victim.ID && b.Fenced }) {
			return fmt.Errorf("broker %d not fenced: %+v", victim.ID, ci)
		}
		return nil
	})
	victim.Restart()
	Eventually(t, 15*time.Second, "restarted broker leads again", func() error {
		now, _, err := leaders(ctx, witness, topic)
		if err != nil {
			return err
		}
		for _, p := range led {
			if now[p] != victim.ID {
				return fmt.Errorf("partition %d led by %d", p, now[p])
			}
		}
		return nil
	})
	checkAll(t, consumeAll(t, ctx, c, topic, 10000), "a", 10000)

	// A paused broker is fenced too, and unfenced when it resumes.
	victim.Stop()
	Eventually(t, 15*time.Second, "paused broker fenced", func() error {
		_, errs, err := leaders(ctx, witness, topic)
		if err != nil {
			return err
		}
		if !errors.Is(errs[led[0]], kerr.LeaderNotAvailable) {
			return fmt.Errorf("partition %d: %v", led[0], errs[led[0]])
		}
		return nil
	})
	victim.Cont()
	Eventually(t, 15*time.Second, "resumed broker leads again", func() error {
		now, _, err := leaders(ctx, witness, topic)
		if err != nil {
			return err
		}
		if now[led[0]] != victim.ID {
			return fmt.Errorf("partition %d led by %d", led[0], now[led[0]])
		}
		return nil
	})
	produceN(t, ctx, cl, topic, "b", 1000)
	checkAll(t, consumeAll(t, ctx, c, topic, 11000), "b", 1000)
}

// TestControllerFailover: kill -9 the active controller; a new one is
// elected within a few seconds and topic creation keeps working.
func TestControllerFailover(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	ctx := context.Background()
	old, err := controllerOf(ctx, c.Nodes[0])
	if err != nil || old < 1 {
		t.Fatalf("controller %d: %v", old, err)
	}
	var survivors []*Node
	for _, n := range c.Nodes {
		if n.ID != old {
			survivors = append(survivors, n)
		}
	}
	c.Node(old).Kill()
	took := Eventually(t, 10*time.Second, "new controller elected", func() error {
		for _, n := range survivors {
			id, err := controllerOf(ctx, n)
			if err != nil {
				return err
			}
			if id == old || id < 0 {
				return fmt.Errorf("node %d sees controller %d", n.ID, id)
			}
		}
		return nil
	})
	t.Logf("controller %d killed; new controller elected in %v", old, took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Errorf("controller failover took %v, want a few seconds", took)
	}
	_, adm := newClient(t, c)
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("after-failover-%d", i)
		if _, err := adm.CreateTopic(ctx, 2, 1, nil, name); err != nil {
			t.Fatalf("create %s after failover: %v", name, err)
		}
	}
	// The old controller rejoins as a follower.
	c.Node(old).Restart()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "after-rejoin"); err != nil {
		t.Fatal(err)
	}
}

// TestFiveNodeFormation: 3 voters and 2 broker-only nodes form one
// cluster; partitions are led by all five; records go through.
func TestFiveNodeFormation(t *testing.T) {
	c := Start(t, Options{Nodes: 5, Voters: 3})
	ctx := context.Background()
	cl, adm := newClient(t, c)
	ci := info(t, c)
	if !slices.Equal(ci.Voters, []int32{1, 2, 3}) || !slices.Equal(ci.Observers, []int32{4, 5}) || len(ci.Brokers) != 5 {
		t.Fatalf("cluster info: %+v", ci)
	}
	if ci.Controller < 1 || ci.Controller > 3 {
		t.Fatalf("controller %d is not a voter", ci.Controller)
	}
	const topic = "five"
	if _, err := adm.CreateTopic(ctx, 10, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var ls map[int32]int32
	Eventually(t, 10*time.Second, "topic known to broker-only node 5", func() (err error) {
		ls, _, err = leaders(ctx, c.Nodes[4], topic)
		return err
	})
	perBroker := map[int32]int{}
	for _, l := range ls {
		perBroker[l]++
	}
	if len(perBroker) != 5 {
		t.Fatalf("leaders %v: want all 5 brokers", ls)
	}
	produceN(t, ctx, cl, topic, "f", 2000)
	checkAll(t, consumeAll(t, ctx, c, topic, 2000), "f", 2000)

	// Group coordinators are the leaders of the groups' __consumer_offsets
	// partitions: spread over the brokers, not the broker asked.
	var groups []string
	for i := 0; i < 20; i++ {
		groups = append(groups, fmt.Sprintf("group-%d", i))
	}
	coordinators := map[int32]bool{}
	Eventually(t, 15*time.Second, "group coordinators found", func() error {
		clear(coordinators)
		for _, r := range adm.FindGroupCoordinators(ctx, groups...) {
			if r.Err != nil {
				return fmt.Errorf("group %s: %v", r.Name, r.Err)
			}
			coordinators[r.NodeID] = true
		}
		return nil
	})
	if len(coordinators) < 2 {
		t.Fatalf("20 groups coordinated by %v: want several brokers", coordinators)
	}

	// SIGTERM: controlled shutdown moves leadership away at once, long
	// before the session timeout would fence the broker.
	n5 := c.Node(5)
	var led5 []int32
	for p, l := range ls {
		if l == 5 {
			led5 = append(led5, p)
		}
	}
	start := time.Now()
	n5.Terminate(15 * time.Second)
	t.Logf("broker 5 stopped by SIGTERM in %v", time.Since(start).Round(time.Millisecond))
	if log := tail(n5.LogPath, 1<<20); !strings.Contains(log, "controlled shutdown done") {
		t.Fatalf("broker 5 log has no controlled shutdown:\n%s", tail(n5.LogPath, 4000))
	}
	// Within less than the 2 s session timeout: not fencing's doing.
	Eventually(t, time.Second, "stopped broker's partitions leaderless", func() error {
		_, errs, err := leaders(ctx, c.Node(1), topic)
		if err != nil {
			return err
		}
		for _, p := range led5 {
			if !errors.Is(errs[p], kerr.LeaderNotAvailable) {
				return fmt.Errorf("partition %d of stopped broker 5: %v, want LEADER_NOT_AVAILABLE", p, errs[p])
			}
		}
		return nil
	})
}

// TestTransactionsAcrossBrokers: a transactional producer writes to
// partitions led by all three brokers while its coordinator is one of
// them (verification and markers between brokers); read_committed sees
// exactly the committed transactions.
func TestTransactionsAcrossBrokers(t *testing.T) {
	c := Start(t, Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	_, adm := newClient(t, c)
	const topic = "txn"
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "topic known to every node", func() error {
		for _, n := range c.Nodes {
			if _, _, err := leaders(ctx, n, topic); err != nil {
				return err
			}
		}
		return nil
	})
	pcl, _ := newClient(t, c, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic(topic), kgo.TransactionTimeout(20*time.Second))
	want := map[string]bool{}
	for txnNo := 0; txnNo < 4; txnNo++ {
		if err := pcl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		commit := txnNo%2 == 0
		for i := 0; i < 60; i++ {
			v := fmt.Sprintf("t%d-%d", txnNo, i)
			if commit {
				want[v] = true
			}
			if err := pcl.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("transaction %d: %v", txnNo, err)
			}
		}
		if err := pcl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d (commit %v): %v", txnNo, commit, err)
		}
	}
	ccl, _ := newClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string]int{}
	n := 0
	for n < len(want) {
		fs := ccl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed consumed %d of %d", n, len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)]++
			n++
		})
	}
	for v, k := range got {
		if !want[v] || k != 1 {
			t.Fatalf("read_committed saw %q %d times (committed: %v)", v, k, want[v])
		}
	}

	txnOffsetsAcrossBrokers(t, ctx, c, adm, topic, len(want))
}

// txnOffsetsAcrossBrokers runs a read-process-write GroupTransactSession
// whose group coordinator and transaction coordinator are different
// brokers, so TxnOffsetCommit adds (or verifies) the offsets partition at
// a remote transaction coordinator. The output, read_committed, holds each
// input record exactly once and the group's committed offsets reach the
// input's end.
func txnOffsetsAcrossBrokers(t *testing.T, ctx context.Context, c *Cluster, adm *kadm.Client, in string, wantN int) {
	t.Helper()
	var group, txnID string
	for i := 0; i < 200 && group == ""; i++ {
		g, x := fmt.Sprintf("rpw-g%d", i), fmt.Sprintf("rpw-tx%d", i)
		gc, xc := adm.FindGroupCoordinators(ctx, g), adm.FindTxnCoordinators(ctx, x)
		if gc[g].Err == nil && xc[x].Err == nil && gc[g].NodeID != xc[x].NodeID {
			group, txnID = g, x
			t.Logf("group %s at broker %d, transactional id %s at broker %d", g, gc[g].NodeID, x, xc[x].NodeID)
		}
	}
	if group == "" {
		t.Fatal("no group / transactional id pair with coordinators on different brokers")
	}
	const out = "txn-out"
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, out); err != nil {
		t.Fatal(err)
	}
	// The group is done when its committed offset of each input partition
	// is past that partition's last committed record (trailing commit
	// markers are not records a consumer commits past).
	target := map[int32]int64{}
	icl, _ := newClient(t, c, kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for read := 0; read < wantN; {
		fs := icl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("input read_committed: %d of %d records", read, wantN)
		}
		fs.EachRecord(func(r *kgo.Record) {
			target[r.Partition] = max(target[r.Partition], r.Offset+1)
			read++
		})
	}
	icl.Close()
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(c.Seeds()...), kgo.RetryTimeout(30*time.Second),
		kgo.TransactionalID(txnID), kgo.TransactionTimeout(20*time.Second),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic(out),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	moved := 0
	done := func() bool {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for p, end := range target {
			if o, ok := offs.Lookup(in, p); !ok || o.At < end {
				return false
			}
		}
		return true
	}
	for !done() {
		if ctx.Err() != nil {
			t.Fatalf("group %s did not commit to the input's end %v: moved %d records", group, target, moved)
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := sess.PollFetches(pctx)
		pcancel()
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			if err := sess.ProduceSync(ctx, &kgo.Record{Value: append([]byte("out:"), r.Value...)}).FirstErr(); err != nil && perr == nil {
				perr = err
			}
			moved++
		})
		ok, err := sess.End(ctx, kgo.TransactionEndTry(perr == nil))
		if err != nil || perr != nil {
			t.Fatalf("transaction: produce %v, end %v", perr, err)
		}
		if !ok {
			t.Log("transaction aborted by the session (rebalance); retried")
		}
	}
	ocl, _ := newClient(t, c, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[string]int{}
	n := 0
	for n < wantN {
		fs := ocl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("output read_committed: %d of %d records", n, wantN)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			n++
		})
	}
	// Nothing beyond the committed input: a last bounded poll finds no
	// more records (a duplicate would show here or in seen).
	tctx, tcancel := context.WithTimeout(ctx, time.Second)
	ocl.PollFetches(tctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; n++ })
	tcancel()
	if n != wantN || len(seen) != wantN {
		t.Fatalf("output read_committed: %d records, %d distinct, want %d", n, len(seen), wantN)
	}
	for v, k := range seen {
		if k != 1 || !strings.HasPrefix(v, "out:") {
			t.Fatalf("output holds %q %d times", v, k)
		}
	}
}
