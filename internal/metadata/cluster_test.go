package metadata

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Multi-node tests: several Stores in one process, each with its own
// directory and a controller listener on 127.0.0.1:0.

// Test timings: fast enough for a -race run on a shared machine, slow
// enough that raft does not flap under load.
const (
	testElection  = 400 * time.Millisecond
	testSession   = 1500 * time.Millisecond
	testHeartbeat = 100 * time.Millisecond
)

type testCluster struct {
	t      *testing.T
	opt    func(*Config)
	voters []Voter
	mu     sync.Mutex
	stores map[int32]*Store
	dirs   map[int32]string
}

// newTestCluster starts n voters (ids 1..n) and waits for all of them.
func newTestCluster(t *testing.T, n int, opt ...func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, stores: map[int32]*Store{}, dirs: map[int32]string{}}
	if len(opt) > 0 {
		c.opt = opt[0]
	}
	lns := map[int32]net.Listener{}
	for i := int32(1); i <= int32(n); i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		c.voters = append(c.voters, Voter{NodeID: i, Addr: ln.Addr().String()})
		c.dirs[i] = t.TempDir()
	}
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := int32(1); i <= int32(n); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctxT(t), c.config(i, lns[i]))
			errs[i] = err
			if err == nil {
				c.mu.Lock()
				c.stores[i] = s
				c.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Cleanup(c.closeAll)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open node %d: %v", i, err)
		}
	}
	return c
}

func (c *testCluster) config(id int32, ln net.Listener) Config {
	cfg := Config{
		NodeID: id, Dir: c.dirs[id], Addr: fmt.Sprintf("broker%d:9092", id), RaftListener: ln, Voters: c.voters,
		ElectionTimeout: testElection, BrokerSessionTimeout: testSession, BrokerHeartbeatInterval: testHeartbeat,
	}
	if c.opt != nil {
		c.opt(&cfg)
	}
	return cfg
}

func (c *testCluster) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.stores {
		if err := s.Close(); err != nil {
			c.t.Errorf("Close node %d: %v", id, err)
		}
		delete(c.stores, id)
	}
}

func (c *testCluster) store(id int32) *Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[id]
}

func (c *testCluster) all() []*Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Store
	for _, id := range slices.Sorted(mapsKeys(c.stores)) {
		out = append(out, c.stores[id])
	}
	return out
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// kill closes a node (as a crash would, without controlled shutdown).
func (c *testCluster) kill(id int32) {
	c.t.Helper()
	c.mu.Lock()
	s := c.stores[id]
	delete(c.stores, id)
	c.mu.Unlock()
	if err := s.Close(); err != nil {
		c.t.Fatalf("Close node %d: %v", id, err)
	}
}

// restart reopens a killed node on its old controller address.
func (c *testCluster) restart(id int32, cfg func(*Config)) *Store {
	c.t.Helper()
	var addr string
	for _, v := range c.voters {
		if v.NodeID == id {
			addr = v.Addr
		}
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.dirs[id] == "" {
		c.dirs[id] = c.t.TempDir()
	}
	conf := c.config(id, ln)
	if cfg != nil {
		cfg(&conf)
	}
	s, err := Open(ctxT(c.t), conf)
	if err != nil {
		c.t.Fatalf("reopen node %d: %v", id, err)
	}
	c.mu.Lock()
	c.stores[id] = s
	c.mu.Unlock()
	return s
}

// leader waits until every running node agrees on one controller among
// them and returns it.
func (c *testCluster) leader() *Store {
	c.t.Helper()
	var l *Store
	waitFor(c.t, 15*time.Second, "an agreed controller", func() bool {
		l = nil
		stores := c.all()
		id := stores[0].ControllerID()
		for _, s := range stores {
			if s.ControllerID() != id {
				return false
			}
			if s.cfg.NodeID == id && s.IsController() {
				l = s
			}
		}
		return l != nil
	})
	return l
}

func (c *testCluster) follower() *Store {
	c.t.Helper()
	l := c.leader()
	for _, s := range c.all() {
		if s != l {
			return s
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseVoters(t *testing.T) {
	got, err := ParseVoters("1@127.0.0.1:9093, 2@host-b:9193,3@[::1]:9293")
	if err != nil {
		t.Fatal(err)
	}
	want := []Voter{{1, "127.0.0.1:9093"}, {2, "host-b:9193"}, {3, "[::1]:9293"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseVoters = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "1", "1@", "x@h:1", "-1@h:1", "1@h", "1@h:99999", "1:h:9093"} {
		if _, err := ParseVoters(bad); err == nil {
			t.Errorf("ParseVoters(%q) succeeded", bad)
		}
	}
	for _, c := range []Config{
		{Dir: "x", Voters: []Voter{{1, "h:1"}, {1, "h:2"}}},
		{Dir: "x", Voters: []Voter{{1, "h:1"}, {2, "h:1"}}},
		{Dir: "x", NodeID: 4, Voters: []Voter{{1, "h:1"}}}, // broker-only without a listener
	} {
		c.setDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c.Voters)
		}
	}
	c := Config{NodeID: 2, Voters: want}
	c.setDefaults()
	if !c.IsVoter() || c.RaftAddr != "host-b:9193" || c.lone() {
		t.Errorf("voter 2: IsVoter=%v RaftAddr=%q lone=%v", c.IsVoter(), c.RaftAddr, c.lone())
	}
	c = Config{NodeID: 4, Voters: want, RaftAddr: "127.0.0.1:0"}
	if c.IsVoter() {
		t.Error("node 4 is not in the voter list")
	}
}

// TestClusterQuorum: three voters form a quorum, every write made on any
// node is visible on all, and every node registered its broker.
func TestClusterQuorum(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	f := c.follower()
	ids := map[string]bool{}
	for _, s := range c.all() {
		ids[s.ClusterID()] = true
		ms, err := s.Members()
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 3 || !ms[0].Voter || !ms[1].Voter || !ms[2].Voter {
			t.Fatalf("node %d: members %+v", s.cfg.NodeID, ms)
		}
		if s.ControllerAddr() != string(l.localAddr) {
			t.Fatalf("node %d: ControllerAddr %q, leader %q", s.cfg.NodeID, s.ControllerAddr(), l.localAddr)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("cluster ids differ: %v", ids)
	}

	ctx := ctxT(t)
	events := make(chan Event, 64)
	cancel := f.Subscribe(func(ev Event) { events <- ev })
	defer cancel()
	// A write on a follower is forwarded; it returns once applied locally,
	// with its events delivered.
	tp, err := f.CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 6, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Another node's registration may still be reaching this one (it was
	// applied on that node when its Open returned): skip broker events.
	for got := false; !got; {
		select {
		case ev := <-events:
			switch {
			case ev.Kind == BrokerRegistered || ev.Kind == BrokerUnfenced:
			case ev.Kind != TopicCreated || ev.Topic != "orders":
				t.Fatalf("event %+v", ev)
			default:
				got = true
			}
		default:
			t.Fatal("no TopicCreated event on the forwarding node when CreateTopic returned")
		}
	}
	if got, ok := f.Topic("orders"); !ok || !reflect.DeepEqual(got, tp) {
		t.Fatalf("follower Topic = %+v, %v", got, ok)
	}
	for _, s := range c.all() {
		waitFor(t, 5*time.Second, "topic on every node", func() bool {
			got, ok := s.Topic("orders")
			return ok && reflect.DeepEqual(got, tp)
		})
		if got := s.Brokers(); len(got) != 3 {
			t.Fatalf("node %d: brokers %+v", s.cfg.NodeID, got)
		}
	}
	leaders := map[int32]int{}
	for _, p := range tp.Partitions {
		if len(p.Replicas) != 3 || !reflect.DeepEqual(p.ISR, p.Replicas) || p.Leader != p.Replicas[0] {
			t.Fatalf("partition %+v", p)
		}
		leaders[p.Leader]++
	}
	if len(leaders) != 3 {
		t.Fatalf("leaders not spread: %v", leaders)
	}
	// Errors come back through forwarding with their Kafka code.
	_, err = f.CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 1, ReplicationFactor: 1}, false)
	wantKerr(t, err, kerr.TopicAlreadyExists)
	_, err = f.CreateTopic(ctx, TopicSpec{Name: "big", Partitions: 1, ReplicationFactor: 4}, false)
	wantKerr(t, err, kerr.InvalidReplicationFactor)
	first, err := f.AllocateProducerIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := l.AllocateProducerIDs(ctx, 10); err != nil || second != first+10 {
		t.Fatalf("producer ids %d then %d, %v", first, second, err)
	}
}

// TestClusterControllerFailover: killing the active controller elects a
// new one within seconds; writes keep working from a follower; the dead
// node's broker is fenced after the session timeout and its partition
// leaderships move within the ISR; back, it catches up and is unfenced.
func TestClusterControllerFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := ctxT(t)
	old := c.leader()
	oldID := old.cfg.NodeID
	tp, err := old.CreateTopic(ctx, TopicSpec{Name: "before", Partitions: 3, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until every node has it, so any new leader has it applied.
	for _, s := range c.all() {
		waitFor(t, 5*time.Second, "topic replicated", func() bool { _, ok := s.Topic("before"); return ok })
	}

	start := time.Now()
	c.kill(oldID)
	l := c.leader()
	took := time.Since(start)
	t.Logf("new controller %d elected %v after the old one (%d) stopped", l.cfg.NodeID, took, oldID)
	if took > 10*time.Second {
		t.Fatalf("failover took %v", took)
	}
	f := c.follower()
	if _, err := f.CreateTopic(ctx, TopicSpec{Name: "after", Partitions: 2, ReplicationFactor: 2}, false); err != nil {
		t.Fatalf("CreateTopic on a follower after failover: %v", err)
	}

	// The dead broker is fenced and leads nothing; leaders moved within
	// the ISR with a new leader epoch.
	waitFor(t, 10*time.Second, "the dead broker fenced", func() bool {
		b, ok := l.fsm.broker(oldID)
		return ok && b.Fenced
	})
	now, _ := l.Topic("before")
	for i, p := range now.Partitions {
		was := tp.Partitions[i]
		if slices.Contains(p.ISR, oldID) || p.Leader == oldID || p.Leader < 0 {
			t.Fatalf("partition %d after fencing: %+v", i, p)
		}
		if was.Leader == oldID && (p.LeaderEpoch != was.LeaderEpoch+1 || !slices.Contains(was.ISR, p.Leader)) {
			t.Fatalf("partition %d: leader moved from %+v to %+v", i, was, p)
		}
		if p.PartitionEpoch != was.PartitionEpoch+1 {
			t.Fatalf("partition %d: partition epoch %d -> %d", i, was.PartitionEpoch, p.PartitionEpoch)
		}
	}
	// A new topic is placed on live brokers only.
	tp2, err := f.CreateTopic(ctx, TopicSpec{Name: "live-only", Partitions: 4, ReplicationFactor: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tp2.Partitions {
		if slices.Contains(p.Replicas, oldID) {
			t.Fatalf("replica placed on fenced broker: %+v", p)
		}
	}
	_, err = f.CreateTopic(ctx, TopicSpec{Name: "rf3", Partitions: 1, ReplicationFactor: 3}, false)
	wantKerr(t, err, kerr.InvalidReplicationFactor)

	// Restarted, it catches up (topics created while down) and is live.
	back := c.restart(oldID, nil)
	if _, ok := back.Topic("live-only"); !ok {
		t.Fatal("restarted node did not catch up before Open returned")
	}
	waitFor(t, 5*time.Second, "the broker unfenced", func() bool {
		b, ok := c.leader().fsm.broker(oldID)
		return ok && b.Live()
	})
}

// TestClusterSnapshotCatchUp: a voter that was down while the leader
// compacted its log catches up from a snapshot before Open returns.
func TestClusterSnapshotCatchUp(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.TrailingLogs = 2 })
	ctx := ctxT(t)
	down := c.follower().cfg.NodeID
	c.kill(down)
	l := c.leader()
	for i := range 10 {
		if _, err := l.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("s%d", i), Partitions: 1, ReplicationFactor: 2}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.DeleteTopic(ctx, "s0"); err != nil {
		t.Fatal(err)
	}
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := l.bolt.FirstIndex(); first <= 2 {
		t.Fatalf("log not compacted: first index %d", first)
	}
	want := l.Topics()
	back := c.restart(down, nil)
	if got := back.Topics(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after catch-up: %d topics, want %d", len(got), len(want))
	}
	if back.fsm.appliedIndex() < l.fsm.appliedIndex()-1 {
		t.Fatalf("applied %d, leader %d", back.fsm.appliedIndex(), l.fsm.appliedIndex())
	}
}

// TestClusterFencing: a registered broker that never heartbeats is fenced
// by the controller; partition leadership moves within the ISR and
// subscribers see it; a heartbeat unfences it.
func TestClusterFencing(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := ctxT(t)
	l := c.leader()
	f := c.follower()
	events := make(chan Event, 256)
	cancel := f.Subscribe(func(ev Event) { events <- ev })
	defer cancel()
	// Broker 7 registers (through a follower) but never heartbeats.
	if err := f.propose(ctx, &registerBrokerCmd{NodeID: 7, Host: "ghost", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	tp, err := f.CreateTopic(ctx, TopicSpec{Name: "ghostly", Assignment: [][]int32{{7, 1, 2}, {1, 7, 2}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p := tp.Partitions[0]; p.Leader != 7 {
		t.Fatalf("partition 0 = %+v", p)
	}
	fencedAt := time.Now()
	waitFor(t, 10*time.Second, "broker 7 fenced", func() bool {
		b, _ := f.fsm.broker(7)
		return b.Fenced
	})
	t.Logf("fenced %v after registration (session %v)", time.Since(fencedAt), testSession)
	got, _ := f.Topic("ghostly")
	want0 := Partition{ID: 0, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1, Replicas: []int32{7, 1, 2}, ISR: []int32{1, 2}}
	want1 := Partition{ID: 1, Leader: 1, LeaderEpoch: 0, PartitionEpoch: 1, Replicas: []int32{1, 7, 2}, ISR: []int32{1, 2}}
	if !reflect.DeepEqual(got.Partitions, []Partition{want0, want1}) {
		t.Fatalf("after fencing: %+v", got.Partitions)
	}
	// Subscribers are called after the FSM applied the command (and after
	// the state read above may already show it): collect with a deadline.
	want := []string{"BrokerFenced -0 node=7", "PartitionChanged ghostly-0 node=0", "PartitionChanged ghostly-1 node=0"}
	var kinds []string
	deadline := time.After(5 * time.Second)
collect:
	for len(kinds) < len(want) {
		select {
		case ev := <-events:
			if ev.Kind == BrokerFenced || ev.Kind == PartitionChanged {
				kinds = append(kinds, fmt.Sprintf("%s %s-%d node=%d", ev.Kind, ev.Topic, ev.Partition, ev.NodeID))
			}
		case <-deadline:
			break collect
		}
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %q, want %q", kinds, want)
	}
	// Broker 7's heartbeat (sent to the controller from any node) unfences it.
	b7, _ := f.fsm.broker(7)
	resp, err := f.call(ctx, &fwdRequest{Op: opHeartbeat, NodeID: 7, Epoch: b7.Epoch})
	if err != nil || resp.Fenced {
		t.Fatalf("heartbeat: %+v, %v", resp, err)
	}
	if b, _ := l.fsm.broker(7); b.Fenced {
		t.Fatal("still fenced on the controller after the heartbeat")
	}
	_, err = f.call(ctx, &fwdRequest{Op: opHeartbeat, NodeID: 7, Epoch: b7.Epoch - 1})
	wantKerr(t, err, kerr.StaleBrokerEpoch)
	_, err = f.call(ctx, &fwdRequest{Op: opHeartbeat, NodeID: 99})
	wantKerr(t, err, kerr.BrokerIDNotRegistered)
}

// TestClusterControlledShutdown: a broker that asks to shut down leads
// nothing and is in no ISR when ControlledShutdown returns.
func TestClusterControlledShutdown(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := ctxT(t)
	s := c.follower()
	id := s.cfg.NodeID
	if _, err := s.CreateTopic(ctx, TopicSpec{Name: "cs", Partitions: 6, ReplicationFactor: 2}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.ControlledShutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tp, _ := s.Topic("cs")
	for _, p := range tp.Partitions {
		if p.Leader == id || p.Leader < 0 || (slices.Contains(p.ISR, id) && len(p.ISR) > 1) {
			t.Fatalf("after controlled shutdown of %d: %+v", id, p)
		}
	}
	if b, _ := s.fsm.broker(id); !b.InControlledShutdown {
		t.Fatalf("broker %+v", b)
	}
	// A restart registers again: a new epoch, live.
	old, _ := s.fsm.broker(id)
	c.kill(id)
	back := c.restart(id, nil)
	if b, _ := back.fsm.broker(id); !b.Live() || b.Epoch <= old.Epoch {
		t.Fatalf("after restart: %+v (was %+v)", b, old)
	}

	// Without a quorum no write can be made anywhere: NOT_CONTROLLER once
	// the caller's deadline passes.
	l := c.leader()
	c.kill(l.cfg.NodeID)
	last := c.all()[0]
	c.kill(c.all()[1].cfg.NodeID)
	short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := last.CreateTopic(short, TopicSpec{Name: "no-quorum", Partitions: 1, ReplicationFactor: 1}, false)
	if !errors.Is(err, kerr.NotController) {
		t.Fatalf("write without a quorum: %v", err)
	}
}

// TestClusterVoterChanges: a broker-only node joins as a non-voter and
// follows the metadata; AddVoter promotes it and RemoveVoter removes
// another voter, with the cluster up.
func TestClusterVoterChanges(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.leader().CreateTopic(ctx, TopicSpec{Name: "t1", Partitions: 2, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	// Node 4 is not in the voter list: it joins as a non-voter.
	n4 := c.restart(4, nil)
	if n4.cfg.IsVoter() || n4.fast {
		t.Fatal("node 4 should be a broker-only node")
	}
	if _, ok := n4.Topic("t1"); !ok {
		t.Fatal("non-voter did not catch up before Open returned")
	}
	members := func(s *Store) map[int32]bool {
		ms, err := s.Members()
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]bool{}
		for _, m := range ms {
			out[m.NodeID] = m.Voter
		}
		return out
	}
	if got := members(c.leader()); !reflect.DeepEqual(got, map[int32]bool{1: true, 2: true, 3: true, 4: false}) {
		t.Fatalf("members %v", got)
	}
	// It follows the metadata and writes through the leader.
	if _, err := c.leader().CreateTopic(ctx, TopicSpec{Name: "t2", Partitions: 1, ReplicationFactor: 4}, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "non-voter sees t2", func() bool { _, ok := n4.Topic("t2"); return ok })
	if _, err := n4.CreateTopic(ctx, TopicSpec{Name: "from-4", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	if n4.ControllerID() != c.leader().cfg.NodeID {
		t.Fatalf("non-voter ControllerID %d", n4.ControllerID())
	}

	// Promote it (the request may come from any node).
	if err := n4.AddVoter(ctx, 4, string(n4.localAddr)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "node 4 a voter everywhere", func() bool {
		for _, s := range c.all() {
			if !members(s)[4] {
				return false
			}
		}
		return true
	})
	// Remove a voter that is not the leader, then the leader itself.
	var victim int32
	for _, s := range c.all() {
		if id := s.cfg.NodeID; id != c.leader().cfg.NodeID && id != 4 {
			victim = id
			break
		}
	}
	var vs *Store
	for _, s := range c.all() {
		if s.cfg.NodeID == victim {
			vs = s
		}
	}
	if err := n4.RemoveVoter(ctx, victim); err != nil {
		t.Fatal(err)
	}
	// The removed node still runs: it joins again as an observer (a
	// non-voter) and keeps following the metadata.
	waitFor(t, 10*time.Second, "removed voter back as an observer", func() bool {
		voter, ok := members(c.leader())[victim]
		return ok && !voter
	})
	if _, err := c.leader().CreateTopic(ctx, TopicSpec{Name: "after-removal", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "removed voter follows the metadata", func() bool { _, ok := vs.Topic("after-removal"); return ok })
	c.kill(victim)
	lid := c.leader().cfg.NodeID
	if err := n4.RemoveVoter(ctx, lid); err != nil {
		t.Fatal(err)
	}
	c.kill(lid)
	l := c.leader()
	voters := 0
	for _, v := range members(l) {
		if v {
			voters++
		}
	}
	if got := members(l); voters != 2 || !got[4] {
		t.Fatalf("members after removals %v", got)
	}
	if _, err := c.follower().CreateTopic(ctx, TopicSpec{Name: "t3", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("write with the reduced quorum: %v", err)
	}
	err := l.RemoveVoter(ctx, 42)
	wantKerr(t, err, kerr.InvalidRequest)
}

// TestLoneVoterWithNonVoter: broker-only nodes can follow a lone voter.
func TestLoneVoterWithNonVoter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	voters := []Voter{{NodeID: 1, Addr: ln.Addr().String()}}
	s1 := openStore(t, Config{NodeID: 1, RaftListener: ln, Voters: voters})
	if !s1.fast {
		t.Fatal("a one-voter list is a lone voter")
	}
	s2 := openStore(t, Config{NodeID: 2, Addr: "b2:9092", RaftAddr: "127.0.0.1:0", Voters: voters, BrokerHeartbeatInterval: testHeartbeat})
	ctx := ctxT(t)
	if _, err := s2.CreateTopic(ctx, TopicSpec{Name: "rf2", Partitions: 2, ReplicationFactor: 2}, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := s1.Topic("rf2"); !ok {
		t.Fatal("the voter does not have the topic")
	}
	if got := len(s1.Brokers()); got != 2 {
		t.Fatalf("%d brokers", got)
	}
}

// TestLoneVoterRefusesAddVoter: a lone voter's 20 ms timeouts cannot be
// raised while it runs, so it refuses to grow (DESIGN.md explains how).
func TestLoneVoterRefusesAddVoter(t *testing.T) {
	s := openStore(t, Config{RaftAddr: "127.0.0.1:0"})
	err := s.AddVoter(ctxT(t), 2, "127.0.0.1:1")
	wantKerr(t, err, kerr.InvalidRequest)
	ms, merr := s.Members()
	if merr != nil || len(ms) != 1 {
		t.Fatalf("members %+v, %v", ms, merr)
	}
}
