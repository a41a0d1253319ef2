package clustertest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Network-partition tests (issue 7): RF 3, min.insync.replicas=2, the
// nodes behind fault proxies (Options.Proxies) or paused, idempotent
// acks=all producers, raw acks=all probes sent straight to the old leader,
// and a final consume proving every acknowledged record is there exactly
// once, in order.

// probeResult is the answer to one raw acks=all produce.
type probeResult struct {
	value  string
	sent   time.Time
	got    time.Time
	code   int16 // partition error code; meaningful when err is nil
	offset int64
	err    error // request failed (timeout, connection)
}

func (r probeResult) acked() bool { return r.err == nil && r.code == 0 }

func (r probeResult) String() string {
	if r.err != nil {
		return fmt.Sprintf("%s: %v", r.value, r.err)
	}
	if r.code == 0 {
		return fmt.Sprintf("%s: acknowledged at %d", r.value, r.offset)
	}
	return fmt.Sprintf("%s: %v", r.value, kerr.ErrorForCode(r.code))
}

// prober sends raw acks=all ProduceRequests of one record to one broker
// (a client seeded with that broker's address only, so no metadata
// decides where they go).
type prober struct {
	cl        *kgo.Client
	topic     string
	topicID   [16]byte
	partition int32
}

func newProber(t *testing.T, ctx context.Context, adm *kadm.Client, n *Node, topic string, partition int32, opts ...kgo.Opt) *prober {
	t.Helper()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr), kgo.DisableIdempotentWrite()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &prober{cl: cl, topic: topic, topicID: md.Topics[topic].ID, partition: partition}
}

// produce sends value with acks=all and a server-side timeout of
// timeoutMs; ctx bounds the wait for the answer.
func (p *prober) produce(ctx context.Context, value string, timeoutMs int32) probeResult {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, timeoutMs
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = p.topic, p.topicID
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = p.partition
	rp.Records = recordBatch([]byte(value))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	res := probeResult{value: value, sent: time.Now(), offset: -1}
	raw, err := p.cl.SeedBrokers()[0].Request(ctx, req)
	res.got = time.Now()
	if err != nil {
		res.err = err
		return res
	}
	resp := raw.(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		res.err = fmt.Errorf("malformed produce response: %d topics", len(resp.Topics))
		return res
	}
	sp := resp.Topics[0].Partitions[0]
	res.code, res.offset = sp.ErrorCode, sp.BaseOffset
	return res
}

// recordBatch is a v2 batch of one record, no producer id.
func recordBatch(value []byte) []byte {
	rec := kmsg.NewRecord()
	rec.Value = value
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	rb := kmsg.NewRecordBatch()
	rb.Magic = 2
	rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = -1, -1, -1
	rb.FirstTimestamp = time.Now().UnixMilli()
	rb.MaxTimestamp = rb.FirstTimestamp
	rb.NumRecords = 1
	rb.Records = rec.AppendTo(nil)
	rb.Length = int32(len(rb.AppendTo(nil)) - 12)
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// refusal reports whether a probe's answer is one of the ways an acks=all
// write that cannot be replicated may end: refused, timed out or fenced,
// never acknowledged.
func refusal(r probeResult) bool {
	if r.err != nil {
		return true
	}
	switch kerr.ErrorForCode(r.code) {
	case kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut,
		kerr.NotLeaderForPartition, kerr.FencedLeaderEpoch:
		return true
	}
	return false
}

// producer is an idempotent acks=all producer writing about 1,000
// records/s round-robin over topic's partitions until stop. A request to
// a broker that does not answer (paused, or cut off) is given up after
// the produce timeout plus 2 s, so the producer moves on to a new leader
// in seconds. startProducer's opts override these client options (the
// fault-cycle test of replication_test.go uses it too).
type producer struct {
	a    *acks
	cl   *kgo.Client
	stop func()
}

func startProducer(t *testing.T, ctx context.Context, c *Cluster, topic, prefix string, opts ...kgo.Opt) *producer {
	t.Helper()
	a := &acks{m: map[string]ack{}}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.RecordDeliveryTimeout(2 * time.Minute),
		kgo.ProduceRequestTimeout(3 * time.Second), kgo.RequestTimeoutOverhead(2 * time.Second),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 1_000_000; i++ {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			cl.Produce(pctx, &kgo.Record{Topic: topic, Value: []byte(prefix + strconv.Itoa(i))}, a.promise)
		}
	}()
	p := &producer{a: a, cl: cl}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close() // fails what is still buffered: unacknowledged
		})
	}
	t.Cleanup(p.stop)
	return p
}

// summary is the number of acknowledged and failed records and the last
// failure.
func (a *acks) summary() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("%d acknowledged, %d failed (last %v)", len(a.m), a.failed, a.last)
}

// ackedOn counts the acknowledged records of one partition.
func (a *acks) ackedOn(part int32) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, x := range a.m {
		if x.part == part {
			n++
		}
	}
	return n
}

// waitProgress waits until n more records of partition part (all
// partitions: -1) are acknowledged.
func waitProgress(t *testing.T, a *acks, part int32, n int, timeout time.Duration, what string) {
	t.Helper()
	count := func() int {
		if part < 0 {
			return a.count()
		}
		return a.ackedOn(part)
	}
	before := count()
	Eventually(t, timeout, what, func() error {
		if got := count(); got < before+n {
			a.mu.Lock()
			defer a.mu.Unlock()
			return fmt.Errorf("%d of %d more acknowledged (%d failed, last %v)", got-before, n, a.failed, a.last)
		}
		return nil
	})
}

// partitionState is one partition as a metadata answer shows it.
type partitionState struct {
	leader, epoch int32
	replicas, isr []int32
	brokers       []int32 // the live brokers of the answer
}

func stateOf(ctx context.Context, adm *kadm.Client, topic string, partition int32) (partitionState, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return partitionState{}, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return partitionState{}, fmt.Errorf("topic %s: %v", topic, td.Err)
	}
	p, ok := td.Partitions[partition]
	if !ok {
		return partitionState{}, fmt.Errorf("no partition %d", partition)
	}
	return partitionState{leader: p.Leader, epoch: p.LeaderEpoch, replicas: p.Replicas, isr: p.ISR, brokers: md.Brokers.NodeIDs()}, p.Err
}

// stateAt is the partition as node n sees it: a Metadata request to n
// itself (a client's own choice of broker could ask another node).
func stateAt(ctx context.Context, n *Node, topic string, partition int32) (partitionState, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr))
	if err != nil {
		return partitionState{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	raw, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return partitionState{}, fmt.Errorf("node %d: %w", n.ID, err)
	}
	resp := raw.(*kmsg.MetadataResponse)
	var st partitionState
	for _, b := range resp.Brokers {
		st.brokers = append(st.brokers, b.NodeID)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return st, fmt.Errorf("node %d: topic %s: %w", n.ID, topic, err)
		}
		for _, p := range t.Partitions {
			if p.Partition == partition {
				st.leader, st.epoch, st.replicas, st.isr = p.Leader, p.LeaderEpoch, p.Replicas, p.ISR
				return st, kerr.ErrorForCode(p.ErrorCode)
			}
		}
	}
	return st, fmt.Errorf("node %d: no partition %s-%d", n.ID, topic, partition)
}

// onEvery checks cond against every node but except.
func onEvery(c *Cluster, except int32, cond func(n *Node) error) error {
	for _, n := range c.Nodes {
		if n.ID == except {
			continue
		}
		if err := cond(n); err != nil {
			return err
		}
	}
	return nil
}

// waitFullISR waits until every node sees partition led, with an ISR of
// all its replicas.
func waitFullISR(t *testing.T, ctx context.Context, c *Cluster, topic string, partition int32, timeout time.Duration) time.Duration {
	t.Helper()
	return Eventually(t, timeout, fmt.Sprintf("%s-%d: full ISR on every node", topic, partition), func() error {
		return onEvery(c, -1, func(n *Node) error {
			st, err := stateAt(ctx, n, topic, partition)
			if err != nil {
				return err
			}
			if st.leader < 0 || len(st.isr) != len(st.replicas) {
				return fmt.Errorf("node %d: leader %d ISR %v replicas %v", n.ID, st.leader, st.isr, st.replicas)
			}
			return nil
		})
	})
}

// readPartition reads partition from its start to its current end offset
// (through the leader).
func readPartition(t *testing.T, ctx context.Context, c *Cluster, topic string, partition int32) []*kgo.Record {
	t.Helper()
	_, adm := newClient(t, c)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok || end.Err != nil {
		t.Fatalf("end offset of %s-%d: %v", topic, partition, end.Err)
	}
	cl, _ := newClient(t, c, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	next := int64(0)
	for next < end.Offset {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("%s-%d: read up to %d of %d: %v", topic, partition, next, end.Offset, rctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			next = r.Offset + 1
		})
	}
	return out
}

// checkAbsent fails if any of values is in the records.
func checkAbsent(t *testing.T, recs []*kgo.Record, values map[string]bool) {
	t.Helper()
	for _, r := range recs {
		if values[string(r.Value)] {
			t.Fatalf("unacknowledged value %s is in the log at %d/%d", r.Value, r.Partition, r.Offset)
		}
	}
}

// TestPartitionIsolatedLeader cuts the leader of a partition off from the
// controller and both followers while an idempotent producer writes
// through a client that still reaches every broker. Raw acks=all
// produces sent to the isolated broker are never acknowledged; the
// controller fences it and elects a new leader from the remaining ISR; the
// producer goes on through the new leader. After the heal the old leader
// rejoins as a follower (ISR of 3 again), truncates the tail it appended
// alone, and, made leader again by a preferred election, serves a log in
// which every acknowledged record sits at its offset and none of the
// probes' records appears.
func TestPartitionIsolatedLeader(t *testing.T) {
	c := Start(t, Options{Nodes: 3, Settings: replSettings, Proxies: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, adm := newClient(t, c)
	const topic = "part-iso"
	createReplicated(t, ctx, adm, topic, 3)

	// A partition led by its preferred replica, which is not the active
	// controller (so the controller is on the other side of the cut).
	ctrl, err := controllerOf(ctx, c.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	part, victim, before := int32(-1), int32(-1), partitionState{}
	for p := range int32(3) {
		st, err := stateOf(ctx, adm, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if st.leader != ctrl && st.leader == st.replicas[0] {
			part, victim, before = p, st.leader, st
			break
		}
	}
	if part < 0 {
		t.Fatalf("no partition of %s led by its preferred replica other than the controller %d", topic, ctrl)
	}
	t.Logf("controller %d; partition %d led by %d at epoch %d, replicas %v", ctrl, part, victim, before.epoch, before.replicas)

	prod := startProducer(t, ctx, c, topic, "iso-")
	waitProgress(t, prod.a, -1, 1500, 60*time.Second, "progress before the partition")
	probe := newProber(t, ctx, adm, c.Node(victim), topic, part)

	c.Isolate(victim)
	isolatedAt := time.Now()
	// Probes to the isolated broker, one after another, until the heal.
	var (
		probeMu sync.Mutex
		probes  []probeResult
	)
	pctx, pcancel := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for i := 0; pctx.Err() == nil && i < 100; i++ {
			rctx, cancel := context.WithTimeout(pctx, 10*time.Second)
			r := probe.produce(rctx, "iso-probe-"+strconv.Itoa(i), 2000)
			cancel()
			if pctx.Err() != nil && r.err != nil {
				return // cancelled by the heal, not an answer
			}
			probeMu.Lock()
			probes = append(probes, r)
			probeMu.Unlock()
		}
	}()

	var after partitionState
	failover := Eventually(t, 30*time.Second, "new leader from the remaining ISR, isolated broker fenced", func() error {
		return onEvery(c, victim, func(n *Node) error {
			st, err := stateAt(ctx, n, topic, part)
			if err != nil {
				return err
			}
			after = st
			switch {
			case st.leader < 0 || st.leader == victim:
				return fmt.Errorf("node %d: leader %d", n.ID, st.leader)
			case st.epoch <= before.epoch:
				return fmt.Errorf("node %d: leader %d at epoch %d, not above %d", n.ID, st.leader, st.epoch, before.epoch)
			case slices.Contains(st.isr, victim):
				return fmt.Errorf("node %d: ISR %v still holds %d", n.ID, st.isr, victim)
			case slices.Contains(st.brokers, victim):
				return fmt.Errorf("node %d: broker %d still live (brokers %v)", n.ID, victim, st.brokers)
			}
			return nil
		})
	})
	t.Logf("isolated %d: leader %d at epoch %d (ISR %v) after %v", victim, after.leader, after.epoch, after.isr, failover.Round(time.Millisecond))
	waitProgress(t, prod.a, part, 300, 60*time.Second, "producing to the new leader")
	// At least two probes answered (or timed out) while isolated, one of
	// them after the failover.
	Eventually(t, 30*time.Second, "probes answered after the failover", func() error {
		probeMu.Lock()
		defer probeMu.Unlock()
		if len(probes) < 2 || probes[len(probes)-1].sent.Before(isolatedAt.Add(failover)) {
			return fmt.Errorf("%d probes", len(probes))
		}
		return nil
	})

	c.Heal()
	healedAt := time.Now()
	pcancel()
	<-probeDone
	probeValues := map[string]bool{}
	for _, r := range probes {
		t.Logf("probe to isolated broker %d: %v after %v", victim, r, r.got.Sub(r.sent).Round(time.Millisecond))
		if !refusal(r) {
			t.Errorf("probe to the isolated broker %d answered %v: want NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or a timeout", victim, r)
		}
		probeValues[r.value] = true
	}
	if t.Failed() {
		t.FailNow()
	}

	waitFullISR(t, ctx, c, topic, part, 60*time.Second)
	rejoin := time.Since(healedAt)
	// Leadership back to the old leader (its preferred replica): from now
	// on reads of the partition are reads of its log.
	Eventually(t, 30*time.Second, "preferred leader election back to the old leader", func() error {
		res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {part: {}}})
		if err != nil {
			return err
		}
		if r := res[topic][part]; r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
			return r.Err
		}
		st, err := stateOf(ctx, adm, topic, part)
		if err != nil {
			return err
		}
		if st.leader != victim || len(st.isr) != 3 {
			return fmt.Errorf("leader %d ISR %v", st.leader, st.isr)
		}
		return nil
	})
	waitProgress(t, prod.a, part, 300, 60*time.Second, "producing to the old leader again")
	prod.stop()
	t.Logf("ISR of 3 again %v after the heal (on every node); %s", rejoin.Round(time.Millisecond), prod.a.summary())
	checkAcked(t, ctx, c, topic, prod.a)
	checkAbsent(t, readPartition(t, ctx, c, topic, part), probeValues)
}

// TestPartitionLeaderCutFromFollowers cuts a partition's leader off from
// both followers while it still reaches the controller (4 voters; the
// controller holds no replica of the topic). The leader shrinks the ISR
// to itself through AlterPartition, and an acks=all produce is refused
// with NOT_ENOUGH_REPLICAS; after the heal the ISR grows back, produce
// succeeds, nothing acknowledged is lost.
func TestPartitionLeaderCutFromFollowers(t *testing.T) {
	c := Start(t, Options{Nodes: 4, Settings: replSettings, Proxies: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, adm := newClient(t, c)
	const topic = "part-cut"
	ctrl, err := controllerOf(ctx, c.Nodes[0])
	if err != nil || ctrl < 0 {
		t.Fatalf("controller %d: %v", ctrl, err)
	}
	var replicas []int32
	for _, n := range c.Nodes {
		if n.ID != ctrl {
			replicas = append(replicas, n.ID)
		}
	}
	leader, followers := replicas[0], replicas[1:]
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, replicas
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	mi := kmsg.NewCreateTopicsRequestTopicConfig()
	mi.Name, mi.Value = "min.insync.replicas", kmsg.StringPtr("2")
	rt.Configs = append(rt.Configs, mi)
	req.Topics = append(req.Topics, rt)
	cl, _ := newClient(t, c)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	waitISR(t, ctx, adm, topic, 3, 30*time.Second)
	st, err := stateOf(ctx, adm, topic, 0)
	if err != nil || st.leader != leader {
		t.Fatalf("partition 0: leader %d (%v), want %d", st.leader, err, leader)
	}
	t.Logf("controller %d; partition 0 led by %d at epoch %d, followers %v", ctrl, leader, st.epoch, followers)

	prod := startProducer(t, ctx, c, topic, "cut-")
	waitProgress(t, prod.a, -1, 1000, 60*time.Second, "progress before the partition")
	probe := newProber(t, ctx, adm, c.Node(leader), topic, 0)

	c.Partition([]int32{leader}, followers)
	cutAt := time.Now()
	shrink := Eventually(t, 30*time.Second, "ISR shrunk to the leader", func() error {
		st, err := stateAt(ctx, c.Node(ctrl), topic, 0)
		if err != nil {
			return err
		}
		if st.leader != leader || !slices.Equal(st.isr, []int32{leader}) {
			return fmt.Errorf("leader %d ISR %v", st.leader, st.isr)
		}
		return nil
	})
	t.Logf("leader %d cut from %v: ISR [%d] after %v; %d acknowledged so far", leader, followers, leader, shrink.Round(time.Millisecond), prod.a.count())
	// Nobody was fenced: the leader still reaches the controller.
	if st, err := stateAt(ctx, c.Node(ctrl), topic, 0); err != nil || len(st.brokers) != 4 {
		t.Fatalf("live brokers %v (%v), want all 4", st.brokers, err)
	}
	acked := prod.a.count()
	// The leader learns its new ISR from the AlterPartition answer (or
	// the metadata): until then a probe may still be appended and end in
	// NOT_ENOUGH_REPLICAS_AFTER_APPEND. Never acknowledged either way;
	// three NOT_ENOUGH_REPLICAS in a row are the goal.
	refused := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for i, inRow := 0, 0; inRow < 3; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no 3 NOT_ENOUGH_REPLICAS in a row within 20 s of the shrink")
		}
		r := probe.produce(ctx, "cut-probe-"+strconv.Itoa(i), 5000)
		t.Logf("probe to %d with ISR [%d]: %v after %v", leader, leader, r, r.got.Sub(r.sent).Round(time.Millisecond))
		if !refusal(r) {
			t.Fatalf("acks=all produce with ISR [%d] and min.insync.replicas=2: %v, want NOT_ENOUGH_REPLICAS", leader, r)
		}
		if r.err == nil && errors.Is(kerr.ErrorForCode(r.code), kerr.NotEnoughReplicas) {
			refused[r.value] = true // refused before the append
			inRow++
		} else {
			inRow = 0
		}
	}
	if n := prod.a.count(); n != acked {
		t.Fatalf("%d records acknowledged while the ISR was [%d]: %s", n-acked, leader, prod.a.summary())
	}

	c.Heal()
	healedAt := time.Now()
	waitFullISR(t, ctx, c, topic, 0, 60*time.Second)
	rejoin := time.Since(healedAt)
	t.Logf("partition lasted %v; ISR of 3 again %v after the heal (on every node)", healedAt.Sub(cutAt).Round(time.Millisecond), rejoin.Round(time.Millisecond))
	waitProgress(t, prod.a, 0, 500, 60*time.Second, "producing after the heal")
	if st, err := stateAt(ctx, c.Node(ctrl), topic, 0); err != nil || st.leader != leader {
		t.Fatalf("leader after the heal %d (%v), want %d", st.leader, err, leader)
	}
	prod.stop()
	t.Logf("producer: %s", prod.a.summary())
	checkAcked(t, ctx, c, topic, prod.a)
	checkAbsent(t, readPartition(t, ctx, c, topic, 0), refused)
}

// TestPartitionPausedLeader pauses (SIGSTOP) a partition's leader while
// raw acks=all produces are in flight to it, keeps sending to it while it
// is paused, waits for a new leader at a higher leader epoch, and resumes
// it (SIGCONT). Every produce the old leader read after the pause is
// answered with an error, not an acknowledgement; whatever it did
// acknowledge is in the log at that offset, as is every record the
// idempotent producer saw acknowledged, exactly once.
func TestPartitionPausedLeader(t *testing.T) {
	c := Start(t, Options{Nodes: 3, Settings: replSettings})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, adm := newClient(t, c)
	const topic = "part-pause"
	createReplicated(t, ctx, adm, topic, 1)
	before, err := stateOf(ctx, adm, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	victim := before.leader
	prod := startProducer(t, ctx, c, topic, "pause-")
	waitProgress(t, prod.a, 0, 1000, 60*time.Second, "progress before the pause")
	// Answers may take as long as the pause (a few seconds): the client
	// waits up to 30 s for each.
	probe := newProber(t, ctx, adm, c.Node(victim), topic, 0, kgo.RequestTimeoutOverhead(30*time.Second))

	// Probes pipelined to the leader, one every 10 ms, until the end.
	var (
		probeMu sync.Mutex
		probes  []probeResult
		wg      sync.WaitGroup
	)
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	spawned := make(chan struct{})
	go func() {
		defer close(spawned)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 10_000; i++ {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				r := probe.produce(rctx, "pause-probe-"+strconv.Itoa(i), 3000)
				probeMu.Lock()
				probes = append(probes, r)
				probeMu.Unlock()
			}()
		}
	}()
	Eventually(t, 30*time.Second, "probes acknowledged before the pause", func() error {
		probeMu.Lock()
		defer probeMu.Unlock()
		n := 0
		for _, r := range probes {
			if r.acked() {
				n++
			}
		}
		if n < 20 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})

	c.Node(victim).Stop()
	stoppedAt := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			c.Node(victim).Cont()
		}
	}()
	var after partitionState
	failover := Eventually(t, 30*time.Second, "new leader at a higher epoch while the old one is paused", func() error {
		return onEvery(c, victim, func(n *Node) error {
			st, err := stateAt(ctx, n, topic, 0)
			if err != nil {
				return err
			}
			after = st
			if st.leader < 0 || st.leader == victim || st.epoch <= before.epoch {
				return fmt.Errorf("node %d: leader %d epoch %d", n.ID, st.leader, st.epoch)
			}
			return nil
		})
	})
	t.Logf("paused %d: leader %d at epoch %d (was %d) after %v", victim, after.leader, after.epoch, before.epoch, failover.Round(time.Millisecond))
	waitProgress(t, prod.a, 0, 300, 60*time.Second, "producing to the new leader")

	c.Node(victim).Cont()
	resumedAt := time.Now()
	resumed = true
	// A few more probes go out after the resume; then stop and collect.
	Eventually(t, 30*time.Second, "probes answered after the resume", func() error {
		probeMu.Lock()
		defer probeMu.Unlock()
		n := 0
		for _, r := range probes {
			if r.got.After(resumedAt) && r.sent.After(resumedAt) {
				n++
			}
		}
		if n < 5 {
			return fmt.Errorf("%d probes sent and answered after the resume", n)
		}
		return nil
	})
	pcancel()
	<-spawned
	wg.Wait()

	counts := map[string]int{}
	whilePaused := 0
	for _, r := range probes {
		kind := "acknowledged"
		switch {
		case r.err != nil:
			kind = "failed: " + r.err.Error()
		case r.code != 0:
			kind = kerr.ErrorForCode(r.code).Error()
		}
		phase := "before the pause"
		switch {
		case r.sent.After(resumedAt):
			phase = "sent after the resume"
		case r.sent.After(stoppedAt):
			phase = "sent while paused"
		case r.got.After(stoppedAt):
			phase = "in flight at the pause"
		}
		counts[phase+": "+kind]++
		if r.acked() {
			prod.a.mu.Lock()
			prod.a.m[r.value] = ack{0, r.offset}
			prod.a.mu.Unlock()
		}
		// A produce the old leader read only after the pause (sent while
		// it was paused, or after its resume, before it could lead
		// again) was never replicated under its old epoch: it must not
		// be acknowledged.
		if r.sent.After(stoppedAt) && r.sent.Before(resumedAt) {
			whilePaused++
		}
		if r.sent.After(stoppedAt) && !refusal(r) {
			t.Errorf("probe %s sent to the paused old leader %d: %v; want an error", r.value, victim, r)
		}
	}
	for k, n := range counts {
		t.Logf("probes %s: %d", k, n)
	}
	if whilePaused == 0 {
		t.Fatal("no probe was sent while the old leader was paused")
	}
	waitFullISR(t, ctx, c, topic, 0, 60*time.Second)
	rejoin := time.Since(resumedAt)
	t.Logf("ISR of 3 again %v after the resume (on every node)", rejoin.Round(time.Millisecond))
	prod.stop()
	t.Logf("producer and probes: %s", prod.a.summary())
	checkAcked(t, ctx, c, topic, prod.a)
}

// TestPartitionProxyBlackHole checks the fault proxy alone, without
// nodes: this test process plays node 1 and an echo server node 2. A
// connection through node 2's proxy is recognised as node 1's; after
// Partition the bytes of the open connection and of a new one never reach
// the server; Heal closes both, and a new connection goes through.
func TestPartitionProxyBlackHole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		srvMu  sync.Mutex
		srvGot []byte
		srvWG  sync.WaitGroup
	)
	srvWG.Add(1)
	go func() {
		defer srvWG.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srvWG.Add(1)
			go func() {
				defer srvWG.Done()
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						srvMu.Lock()
						srvGot = append(srvGot, buf[:n]...)
						srvMu.Unlock()
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	f := newFaultNet(func() map[int]int32 { return map[int]int32{os.Getpid(): 1} })
	addr, err := f.listen(2, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		f.close()
		ln.Close()
		srvWG.Wait()
	}()
	echo := func(c net.Conn, s string) error {
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		if _, err := c.Write([]byte(s)); err != nil {
			return err
		}
		buf := make([]byte, len(s))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != s {
			return fmt.Errorf("echo %q, want %q", buf, s)
		}
		return nil
	}
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if err := echo(c1, "a"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	for pc := range f.conns {
		if pc.from != 1 || pc.to != 2 {
			t.Errorf("connection from %d to %d, want from 1 to 2", pc.from, pc.to)
		}
	}
	f.mu.Unlock()

	if n := f.partition([]int32{1}, []int32{2}); n != 1 {
		t.Fatalf("%d connections black-holed, want 1", n)
	}
	if _, err := c1.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "new connection across the cut accepted", func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.conns) != 2 {
			return fmt.Errorf("%d connections", len(f.conns))
		}
		return nil
	})
	if n := f.heal(); n != 2 {
		t.Fatalf("heal closed %d connections, want 2", n)
	}
	for _, c := range []net.Conn{c1, c2} {
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
			t.Fatalf("read on a black-holed connection after the heal: %d bytes, %v; want EOF", n, err)
		}
	}
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := echo(c3, "d"); err != nil {
		t.Fatal(err)
	}
	srvMu.Lock()
	got := string(srvGot)
	srvMu.Unlock()
	if got != "ad" {
		t.Fatalf("server received %q, want %q (nothing sent across the cut)", got, "ad")
	}
}
