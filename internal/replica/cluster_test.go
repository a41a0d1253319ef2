package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/log/batch"
	"github.com/sluice-io/sluice/internal/metadata"
)

// An in-process cluster: real internal/log partitions in temp dirs, one
// Manager per node, followers fetching through localClient, which calls the
// leader node's Leader directly (no broker), and a controller that applies
// AlterPartition with Kafka's checks.

const testTopic = "rep"

type testNode struct {
	id  int32
	dir string
	lm  *log.Manager
	p   *log.Partition
	m   *Manager
}

type testCluster struct {
	t       testing.TB
	lagTime time.Duration

	mu      sync.Mutex
	nodes   map[int32]*testNode
	dirs    map[int32]string
	state   metadata.Partition // the controller's committed state
	changed chan struct{}      // closed (and replaced) on appends and HW changes
	paused  map[int32]chan struct{}
}

func newTestCluster(t testing.TB, ids ...int32) *testCluster {
	t.Helper()
	c := &testCluster{t: t, lagTime: 400 * time.Millisecond, nodes: map[int32]*testNode{}, dirs: map[int32]string{},
		changed: make(chan struct{}), paused: map[int32]chan struct{}{}}
	c.state = metadata.Partition{ID: 0, Leader: -1, Replicas: slices.Clone(ids), ISR: slices.Clone(ids)}
	for _, id := range ids {
		c.startNode(id, t.TempDir())
	}
	t.Cleanup(func() {
		for _, id := range ids {
			c.stopNode(id)
		}
	})
	return c
}

func (c *testCluster) startNode(id int32, dir string) *testNode {
	c.t.Helper()
	lm, err := log.OpenManager(log.ManagerConfig{Dir: dir})
	if err != nil {
		c.t.Fatal(err)
	}
	p, err := lm.Open(testTopic, 0, log.Config{})
	if err != nil {
		c.t.Fatal(err)
	}
	n := &testNode{id: id, dir: dir, lm: lm, p: p}
	n.m, err = NewManager(Config{NodeID: id, ReplicaLagTimeMax: c.lagTime, FetchMaxWait: 50 * time.Millisecond,
		FetchBackoff: 5 * time.Millisecond, AlterPartitionBackoff: 5 * time.Millisecond},
		func(leader int32) LeaderClient { return &localClient{c: c, from: id, leader: leader} })
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.dirs[id] = dir
	c.mu.Unlock()
	return n
}

// stopNode stops a node's replication and closes its log (a clean
// shutdown).
func (c *testCluster) stopNode(id int32) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	n.m.Close()
	if err := n.lm.Close(); err != nil {
		c.t.Errorf("close node %d: %v", id, err)
	}
}

// crashNode stops a node's replication and takes a copy of its data
// directory as a kill -9 would leave it (page cache included, no
// clean-shutdown marker); it returns the copy's path to restart from.
func (c *testCluster) crashNode(id int32) string {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	n.m.Close()
	dst := c.t.TempDir()
	err := filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(n.dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := n.lm.Close(); err != nil {
		c.t.Fatal(err)
	}
	return dst
}

func (c *testCluster) node(id int32) *testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *testCluster) changedCh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *testCluster) pause(id int32) {
	c.mu.Lock()
	c.paused[id] = make(chan struct{})
	c.mu.Unlock()
}

func (c *testCluster) resume(id int32) {
	c.mu.Lock()
	if ch := c.paused[id]; ch != nil {
		close(ch)
		delete(c.paused, id)
	}
	c.mu.Unlock()
}

// elect makes leader the leader at a new epoch (the controller's
// election) and tells every running node its role.
func (c *testCluster) elect(leader int32, isr []int32) {
	c.t.Helper()
	c.mu.Lock()
	c.state.Leader = leader
	c.state.LeaderEpoch++
	c.state.PartitionEpoch++
	c.state.ISR = slices.Clone(isr)
	st := c.state.Clone()
	nodes := make([]*testNode, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	c.mu.Unlock()
	for _, n := range nodes {
		c.assignRole(n, st)
	}
}

func (c *testCluster) assignRole(n *testNode, st metadata.Partition) {
	c.t.Helper()
	if st.Leader == n.id {
		_, err := n.m.BecomeLeader(LeaderConfig{State: StateFromMetadata(testTopic, [16]byte{}, st), Log: n.p,
			Proposer: c, MinInsyncReplicas: 2, OnHighWatermark: func(int64) { c.notify() }})
		if err != nil {
			c.t.Fatal(err)
		}
		return
	}
	n.m.BecomeFollower(FollowerPartition{Topic: testTopic, Partition: 0, LeaderEpoch: st.LeaderEpoch, Log: n.p,
		OnChange: c.notify}, st.Leader)
}

// AlterPartition is the controller (ISRProposer).
func (c *testCluster) AlterPartition(_ context.Context, req metadata.AlterPartitionRequest) (metadata.Partition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case req.LeaderEpoch < c.state.LeaderEpoch:
		return metadata.Partition{}, kerr.FencedLeaderEpoch
	case req.BrokerID != c.state.Leader:
		return metadata.Partition{}, kerr.InvalidRequest
	case req.PartitionEpoch != c.state.PartitionEpoch:
		return metadata.Partition{}, kerr.InvalidUpdateVersion
	}
	c.state.ISR = slices.Clone(req.ISR)
	c.state.PartitionEpoch++
	return c.state.Clone(), nil
}

// Partition is the controller's committed state (ISRProposer).
func (c *testCluster) Partition(string, int32) (metadata.Partition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.Clone(), true
}

func (c *testCluster) isr() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := slices.Clone(c.state.ISR)
	slices.Sort(s)
	return s
}

// localClient is a LeaderClient answering in-process from the leader
// node's Leader and log, with long polling on the cluster's change signal.
type localClient struct {
	c      *testCluster
	from   int32
	leader int32
}

func (lc *localClient) waitUnpaused(ctx context.Context) error {
	lc.c.mu.Lock()
	ch := lc.c.paused[lc.from]
	lc.c.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (lc *localClient) leaderOf() (*Leader, *testNode) {
	n := lc.c.node(lc.leader)
	if n == nil {
		return nil, nil
	}
	l, ok := n.m.Leader(testTopic, 0)
	if !ok {
		return nil, n
	}
	return l, n
}

func (lc *localClient) Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	deadline := time.Now().Add(req.MaxWait)
	for {
		if err := lc.waitUnpaused(ctx); err != nil {
			return nil, err
		}
		ch := lc.c.changedCh()
		resp, bytes := lc.fetchOnce(req)
		if bytes >= int64(req.MinBytes) || !time.Now().Before(deadline) {
			return resp, nil
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

func (lc *localClient) fetchOnce(req *FetchRequest) (*FetchResponse, int64) {
	resp := &FetchResponse{}
	var total int64
	l, n := lc.leaderOf()
	for _, fp := range req.Partitions {
		out := FetchedPartition{Topic: fp.Topic, Partition: fp.Partition, HighWatermark: -1, LogStartOffset: -1}
		if l == nil {
			out.Err = kerr.NotLeaderForPartition
			resp.Partitions = append(resp.Partitions, out)
			total = 1 << 30 // answer at once
			continue
		}
		ans := l.OnFollowerFetch(FollowerFetch{ReplicaID: req.ReplicaID, BrokerEpoch: req.BrokerEpoch,
			CurrentLeaderEpoch: fp.CurrentLeaderEpoch, FetchOffset: fp.FetchOffset, LastFetchedEpoch: fp.LastFetchedEpoch,
			LogStartOffset: fp.LogStartOffset})
		out.Err, out.Diverging, out.HighWatermark, out.LogStartOffset = ans.Err, ans.Diverging, ans.HighWatermark, ans.LogStartOffset
		if ans.Err == nil && ans.Diverging == nil {
			res, err := n.p.Read(fp.FetchOffset, int64(fp.MaxBytes), ans.ReadUpTo, true)
			if err != nil {
				out.Err = kerr.OffsetOutOfRange
			} else {
				for _, rg := range res.Regions {
					b := make([]byte, rg.Len)
					if _, err := rg.File.ReadAt(b, rg.Pos); err != nil {
						out.Err = kerr.KafkaStorageError
						break
					}
					out.Records = append(out.Records, b...)
				}
			}
		}
		if out.Err != nil || out.Diverging != nil {
			total = 1 << 30
		}
		total += int64(len(out.Records))
		resp.Partitions = append(resp.Partitions, out)
	}
	return resp, total
}

func (lc *localClient) OffsetForLeaderEpoch(ctx context.Context, req *EpochRequest) (*EpochResponse, error) {
	if err := lc.waitUnpaused(ctx); err != nil {
		return nil, err
	}
	resp := &EpochResponse{}
	l, _ := lc.leaderOf()
	for _, p := range req.Partitions {
		a := EpochAnswer{Topic: p.Topic, Partition: p.Partition, EpochEndOffset: EpochEndOffset{-1, -1}}
		if l == nil {
			a.Err = kerr.NotLeaderForPartition
		} else {
			a.EpochEndOffset, a.Err = l.OffsetForLeaderEpoch(p.CurrentLeaderEpoch, p.LeaderEpoch)
		}
		resp.Partitions = append(resp.Partitions, a)
	}
	return resp, nil
}

var batchSeq int

func testRecords(n int) []byte {
	var recs []batch.Record
	batchSeq++
	for i := range n {
		recs = append(recs, batch.Record{Offset: int64(i), Timestamp: time.Now().UnixMilli(), Value: fmt.Appendf(nil, "batch %d record %d", batchSeq, i)})
	}
	b, err := batch.Build(batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, batch.CodecNone)
	if err != nil {
		panic(err)
	}
	return b
}

// produce appends one batch on the leader; with acks=all it waits for
// the commit and returns its error.
func (c *testCluster) produce(leader int32, acks int16) (log.AppendResult, error) {
	c.t.Helper()
	n := c.node(leader)
	l, ok := n.m.Leader(testTopic, 0)
	if !ok {
		c.t.Fatalf("node %d does not lead", leader)
	}
	if err := l.CheckAppend(acks); err != nil {
		return log.AppendResult{}, err
	}
	res, err := n.p.Append(testRecords(3))
	if err != nil {
		c.t.Fatal(err)
	}
	l.OnAppend()
	c.notify()
	if acks != -1 {
		return res, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return res, l.WaitCommitted(ctx, res.LastOffset)
}

// logBytes reads a node's whole log.
func logBytes(t testing.TB, p *log.Partition) []byte {
	t.Helper()
	res, err := p.Read(p.LogStartOffset(), 1<<40, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, rg := range res.Regions {
		b := make([]byte, rg.Len)
		if _, err := rg.File.ReadAt(b, rg.Pos); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// waitConverged waits until every node's log equals the leader's (same
// log end, same bytes) and every follower has the leader's HW.
func (c *testCluster) waitConverged(leader int32, ids ...int32) {
	c.t.Helper()
	ln := c.node(leader)
	waitFor(c.t, "logs to converge", func() bool {
		for _, id := range ids {
			n := c.node(id)
			if n.p.LogEndOffset() != ln.p.LogEndOffset() || n.p.HighWatermark() != ln.p.HighWatermark() {
				return false
			}
		}
		return true
	})
	want := logBytes(c.t, ln.p)
	for _, id := range ids {
		if got := logBytes(c.t, c.node(id).p); !bytes.Equal(got, want) {
			c.t.Fatalf("node %d log differs from leader %d's (%d vs %d bytes)", id, leader, len(got), len(want))
		}
	}
}

func TestClusterReplicates(t *testing.T) {
	c := newTestCluster(t, 1, 2, 3)
	c.elect(1, []int32{1, 2, 3})
	var last int64
	for range 40 {
		res, err := c.produce(1, -1)
		if err != nil {
			t.Fatalf("acks=all produce: %v", err)
		}
		// Committed means replicated and durable on every ISR member.
		for _, id := range []int32{2, 3} {
			if d := c.node(id).p.DurableOffset(); d <= res.LastOffset {
				t.Fatalf("acknowledged offset %d but node %d is durable only below %d", res.LastOffset, id, d)
			}
		}
		last = res.LastOffset
	}
	if hw := c.node(1).p.HighWatermark(); hw != last+1 {
		t.Fatalf("leader HW %d, want %d", hw, last+1)
	}
	c.waitConverged(1, 2, 3)
	for _, id := range []int32{1, 2, 3} {
		if ep, ok := c.node(id).p.LatestEpoch(); !ok || ep != 1 {
			t.Fatalf("node %d latest epoch %d %v, want 1", id, ep, ok)
		}
	}
}

func TestClusterISRShrinkAndExpand(t *testing.T) {
	c := newTestCluster(t, 1, 2, 3)
	c.elect(1, []int32{1, 2, 3})
	if _, err := c.produce(1, -1); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(1, 2, 3)
	c.pause(3)
	stalledAt := c.node(3).p.LogEndOffset()
	for range 5 {
		if _, err := c.produce(1, 1); err != nil {
			t.Fatal(err)
		}
	}
	// While 3 is in the ISR, the HW is held at its position.
	l, _ := c.node(1).m.Leader(testTopic, 0)
	if hw := l.HighWatermark(); hw != stalledAt || !slices.Contains(c.isr(), 3) {
		t.Fatalf("HW %d with ISR %v, want %d (held by the stalled follower)", hw, c.isr(), stalledAt)
	}
	start := time.Now()
	waitFor(t, "ISR shrink", func() bool { return slices.Equal(c.isr(), []int32{1, 2}) })
	if el := time.Since(start); el < c.lagTime/2 {
		t.Fatalf("shrunk after %v, before replica.lag.time.max.ms %v", el, c.lagTime)
	}
	waitFor(t, "HW past the stalled follower", func() bool { return l.HighWatermark() == c.node(1).p.LogEndOffset() })
	// acks=all still works with ISR {1,2} (min.insync.replicas 2).
	if _, err := c.produce(1, -1); err != nil {
		t.Fatal(err)
	}
	c.resume(3)
	waitFor(t, "ISR expand", func() bool { return slices.Equal(c.isr(), []int32{1, 2, 3}) })
	c.waitConverged(1, 2, 3)
	// Now lose two followers: min.insync.replicas refuses acks=all.
	c.pause(2)
	c.pause(3)
	res, err := c.produce(1, -1)
	if err == nil {
		t.Fatalf("acks=all acknowledged offset %d with two followers stalled", res.LastOffset)
	}
	if !errors.Is(err, kerr.NotEnoughReplicasAfterAppend) && !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("acks=all with stalled followers: %v", err)
	}
	waitFor(t, "ISR {1}", func() bool { return slices.Equal(c.isr(), []int32{1}) })
	if _, err := c.produce(1, -1); !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("acks=all with ISR {1}: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	c.resume(2)
	c.resume(3)
	waitFor(t, "ISR back", func() bool { return slices.Equal(c.isr(), []int32{1, 2, 3}) })
}

// TestClusterLeaderChangeTruncatesDivergentTail is KIP-101's scenario:
// follower 2 replicated records of epoch 1 that follower 3 never got and
// that were never committed; 3 becomes leader at epoch 2 and writes; 2 (and
// the old leader 1) must drop their epoch-1 tail and take 3's log.
func TestClusterLeaderChangeTruncatesDivergentTail(t *testing.T) {
	c := newTestCluster(t, 1, 2, 3)
	c.elect(1, []int32{1, 2, 3})
	for range 5 {
		if _, err := c.produce(1, -1); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(1, 2, 3)
	committed := c.node(1).p.HighWatermark()
	c.pause(3)
	for range 4 {
		if _, err := c.produce(1, 1); err != nil { // acks=1: not acknowledged as committed
			t.Fatal(err)
		}
	}
	leo1 := c.node(1).p.LogEndOffset()
	waitFor(t, "node 2 to replicate the uncommitted tail", func() bool { return c.node(2).p.LogEndOffset() == leo1 })
	if hw := c.node(1).p.HighWatermark(); hw != committed {
		t.Fatalf("HW %d moved past node 3 (%d)", hw, committed)
	}
	// Leader 1 dies; 3 (in the ISR) is elected at epoch 2.
	c.stopNode(1)
	c.resume(3)
	c.elect(3, []int32{2, 3})
	for range 3 {
		if _, err := c.produce(3, 1); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(3, 2)
	if got, want := c.node(2).p.LogEndOffset(), c.node(3).p.LogEndOffset(); got != want {
		t.Fatalf("node 2 log end %d, want %d", got, want)
	}
	if ep, end := c.node(2).p.EndOffsetForEpoch(1); ep != 1 || end != committed {
		t.Fatalf("node 2 epoch 1 ends at %d/%d, want %d (its uncommitted tail truncated)", ep, end, committed)
	}
	// The old leader restarts and follows 3: its longer epoch-1 tail goes too.
	n1 := c.startNode(1, c.nodeDir(1))
	if n1.p.LogEndOffset() != leo1 {
		t.Fatalf("restarted node 1 log end %d, want %d", n1.p.LogEndOffset(), leo1)
	}
	c.mu.Lock()
	st := c.state.Clone()
	c.mu.Unlock()
	c.assignRole(n1, st)
	if _, err := c.produce(3, 1); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(3, 1, 2)
}

func (c *testCluster) nodeDir(id int32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[id]
}

func TestClusterFollowerRestartResumes(t *testing.T) {
	c := newTestCluster(t, 1, 2)
	c.elect(1, []int32{1, 2})
	for range 10 {
		if _, err := c.produce(1, -1); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(1, 2)
	dir := c.nodeDir(2)
	c.stopNode(2)
	// Without 2, once the leader has records 2 lacks, the ISR shrinks to
	// {1} (a stopped follower at the leader's log end counts as caught up,
	// as in Kafka); acks=1 continues.
	for range 5 {
		if _, err := c.produce(1, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ISR {1}", func() bool { return slices.Equal(c.isr(), []int32{1}) })
	n2 := c.startNode(2, dir)
	c.mu.Lock()
	st := c.state.Clone()
	c.mu.Unlock()
	c.assignRole(n2, st)
	waitFor(t, "ISR {1,2}", func() bool { return slices.Equal(c.isr(), []int32{1, 2}) })
	if _, err := c.produce(1, -1); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(1, 2)

	// Crash (no clean shutdown) while the leader keeps writing; the
	// restarted follower recovers unclean and catches up.
	for range 3 {
		if _, err := c.produce(1, 1); err != nil {
			t.Fatal(err)
		}
	}
	dir = c.crashNode(2)
	for range 3 {
		if _, err := c.produce(1, 1); err != nil {
			t.Fatal(err)
		}
	}
	n2 = c.startNode(2, dir)
	if !n2.p.RecoveredUnclean() {
		t.Fatal("restart from a crash image is not marked unclean")
	}
	c.mu.Lock()
	st = c.state.Clone()
	c.mu.Unlock()
	c.assignRole(n2, st)
	if _, err := c.produce(1, 1); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(1, 2)
}

// BenchmarkClusterAcksAll: sequential acks=all produces of one 3-record
// batch to a 3-replica partition (durable logs: leader fsync, follower
// fetch, follower fsync, next fetch): the commit latency of one batch.
func BenchmarkClusterAcksAll(b *testing.B) {
	c := newTestCluster(b, 1, 2, 3)
	c.elect(1, []int32{1, 2, 3})
	b.ResetTimer()
	for range b.N {
		if _, err := c.produce(1, -1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClusterAcksAllParallel: concurrent acks=all producers; group
// commit and one fetch per round carry many batches.
func BenchmarkClusterAcksAllParallel(b *testing.B) {
	c := newTestCluster(b, 1, 2, 3)
	c.elect(1, []int32{1, 2, 3})
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.produce(1, -1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestClusterEmptyEpochLeaderRejoins: node 2 is made leader at epoch 2 and
// appends nothing before node 3 is elected at epoch 3 by a controller that
// never told node 3 about epoch 2. Node 2's epoch cache then has an entry
// for epoch 2 at its log end that the new leader does not know; the
// follower must drop it (truncating at its log end) and catch up, not
// report the same divergence forever.
func TestClusterEmptyEpochLeaderRejoins(t *testing.T) {
	c := newTestCluster(t, 1, 2, 3)
	c.elect(1, []int32{1, 2, 3})
	for range 5 {
		if _, err := c.produce(1, -1); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(1, 2, 3)
	c.mu.Lock()
	c.state.Leader = 2
	c.state.LeaderEpoch++
	c.state.PartitionEpoch++
	st := c.state.Clone()
	c.mu.Unlock()
	c.assignRole(c.node(2), st) // only node 2 hears of epoch 2
	if ep, _ := c.node(2).p.LatestEpoch(); ep != st.LeaderEpoch {
		t.Fatalf("node 2 latest epoch %d, want %d", ep, st.LeaderEpoch)
	}
	c.elect(3, []int32{1, 2, 3})
	for range 3 {
		if _, err := c.produce(3, -1); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(3, 1, 2)
	if ep, end := c.node(2).p.EndOffsetForEpoch(st.LeaderEpoch); ep == st.LeaderEpoch {
		t.Fatalf("node 2 still has epoch %d (ends %d)", ep, end)
	}
}
