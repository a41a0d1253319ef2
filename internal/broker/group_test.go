package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// killSwitch dials connections it can cut all at once: to the broker this
// looks like a crashed client (connections drop, no LeaveGroup).
type killSwitch struct {
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (k *killSwitch) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		return nil, errors.New("killed")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		k.conns = append(k.conns, c)
	}
	return c, err
}

// Dial makes killSwitch a golang.org/x/net/proxy.Dialer (sarama).
func (k *killSwitch) Dial(network, addr string) (net.Conn, error) {
	return k.DialContext(context.Background(), network, addr)
}

func (k *killSwitch) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
	for _, c := range k.conns {
		_ = c.Close()
	}
}

// scenarioLog keeps the tail of the broker's and sarama's logs during a
// group scenario, for captureLogs.
type scenarioLog struct {
	mu  sync.Mutex
	buf []byte
}

// scenarioLogMax bounds what a scenario keeps: the newest bytes win.
const scenarioLogMax = 1 << 20

func (l *scenarioLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if n := len(l.buf); n > scenarioLogMax {
		l.buf = append(l.buf[:0], l.buf[n-scenarioLogMax/2:]...)
	}
	return len(p), nil
}

func (l *scenarioLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// saramaLogs is where sarama.Logger writes: sarama.Logger is a package
// variable its background goroutines read, so it is set once and the
// destination swapped under a lock instead.
var saramaLogs struct {
	once sync.Once
	mu   sync.Mutex
	to   *scenarioLog
}

type saramaLogSink struct{}

func (saramaLogSink) Write(p []byte) (int, error) {
	saramaLogs.mu.Lock()
	to := saramaLogs.to
	saramaLogs.mu.Unlock()
	if to != nil {
		return to.Write(append([]byte("sarama: "), p...))
	}
	return len(p), nil
}

// captureLogs returns a broker option logging to a buffer that also gets
// sarama's log for the rest of the test; both are printed if the test
// fails, or always with SLUICE_GROUP_LOG set.
func captureLogs(t *testing.T) sluicetest.Option {
	l := &scenarioLog{}
	saramaLogs.once.Do(func() { sarama.Logger = log.New(saramaLogSink{}, "", log.Lmicroseconds) })
	saramaLogs.mu.Lock()
	saramaLogs.to = l
	saramaLogs.mu.Unlock()
	t.Cleanup(func() {
		saramaLogs.mu.Lock()
		if saramaLogs.to == l {
			saramaLogs.to = nil
		}
		saramaLogs.mu.Unlock()
		if t.Failed() || os.Getenv("SLUICE_GROUP_LOG") != "" {
			t.Logf("broker and client log (tail):\n%s", l.String())
		}
	})
	return sluicetest.Logger(slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// tracker records what group members consumed and committed, and flags a
// record consumed again after its offset was committed.
type tracker struct {
	mu         sync.Mutex
	seen       map[string]int
	committed  map[int32]int64
	committer  map[int32]string
	violations []string
}

func newTracker() *tracker {
	return &tracker{seen: map[string]int{}, committed: map[int32]int64{}, committer: map[int32]string{}}
}

func (t *tracker) consumed(member string, p int32, off int64, value string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.committed[p]; off < c {
		t.violations = append(t.violations, fmt.Sprintf("%s consumed %d/%d (%s) after offset %d was committed by %s", member, p, off, value, c, t.committer[p]))
	}
	t.seen[value]++
}

func (t *tracker) commit(member string, p int32, next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if next > t.committed[p] {
		t.committed[p] = next
		t.committer[p] = member
	}
}

func (t *tracker) distinct() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

// member is one group consumer under test.
type member interface {
	// stop ends it cleanly (LeaveGroup) or as a crash (connections cut).
	stop(clean bool)
}

type memberFactory func(t *testing.T, addr, group, name string, tr *tracker) member

const groupTopic = "grp"

// runGroupScenario: three members share 12 partitions; one leaves, one
// crashes, one joins; every record is consumed, none after its offset was
// committed, and the final assignment covers every partition once.
func runGroupScenario(t *testing.T, start memberFactory, strictRedelivery bool) {
	b := sluicetest.New(t,
		sluicetest.Setting("group.min.session.timeout.ms", "500"),
		sluicetest.Topic(groupTopic, 12), captureLogs(t))
	prod := newClient(t, b.Addr(), kgo.DefaultProduceTopic(groupTopic))
	ctx := testCtx(t, 4*time.Minute)
	tr := newTracker()
	next := 0
	produce := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(next % 97)), Value: []byte("v" + strconv.Itoa(next))}, nil)
			next++
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	waitAll := func(step string) {
		t.Helper()
		defer func() {
			t.Logf("%s: all %d records consumed at %v", step, next, time.Since(began).Round(time.Millisecond))
		}()
		deadline := time.Now().Add(2 * time.Minute)
		for tr.distinct() < next {
			if time.Now().After(deadline) {
				t.Fatalf("%s: consumed %d of %d records", step, tr.distinct(), next)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const group = "scenario"
	m1 := start(t, b.Addr(), group, "m1", tr)
	m2 := start(t, b.Addr(), group, "m2", tr)
	m3 := start(t, b.Addr(), group, "m3", tr)
	produce(600)
	waitAll("three members")

	m1.stop(true)
	produce(600)
	waitAll("after a clean leave")

	m2.stop(false)
	produce(600)
	waitAll("after a crash")

	m4 := start(t, b.Addr(), group, "m4", tr)
	produce(600)
	waitAll("after a join")

	// The assignment converges: the two live members hold all 12
	// partitions, each once.
	adm := kadm.NewClient(newClient(t, b.Addr()))
	deadline := time.Now().Add(time.Minute)
	for {
		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		g := dg[group]
		owned := map[int32]int{}
		for _, m := range g.Members {
			if ca, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range ca.Topics {
					for _, p := range tp.Partitions {
						owned[p]++
					}
				}
			}
		}
		ok := g.State == "Stable" && len(g.Members) == 2 && len(owned) == 12
		for _, n := range owned {
			ok = ok && n == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("assignment did not converge: state %s, %d members, owned %v", g.State, len(g.Members), owned)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m3.stop(true)
	m4.stop(true)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.violations) > 0 {
		if strictRedelivery {
			t.Fatalf("%d records consumed after their offset was committed; first: %s", len(tr.violations), tr.violations[0])
		}
		t.Logf("client re-delivered %d records after their offset was committed (first: %s)", len(tr.violations), tr.violations[0])
	}
}

// kgoMember consumes with franz-go, committing synchronously after each
// poll and allowing rebalances only between polls, so a clean handoff
// re-delivers nothing.
type kgoMember struct {
	cancel context.CancelFunc
	done   chan struct{}
	cl     *kgo.Client
	ks     *killSwitch
}

func kgoFactory(balancer kgo.GroupBalancer) memberFactory {
	return func(t *testing.T, addr, group, name string, tr *tracker) member {
		ks := &killSwitch{}
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(ks.DialContext),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(groupTopic), kgo.Balancers(balancer),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(1500*time.Millisecond), kgo.HeartbeatInterval(150*time.Millisecond),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &kgoMember{cancel: cancel, done: make(chan struct{}), cl: cl, ks: ks}
		go func() {
			defer close(m.done)
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				recs := fs.Records()
				for _, r := range recs {
					tr.consumed(name, r.Partition, r.Offset, string(r.Value))
				}
				if len(recs) > 0 {
					if err := cl.CommitRecords(ctx, recs...); err == nil {
						for _, r := range recs {
							tr.commit(name, r.Partition, r.Offset+1)
						}
					}
				}
				cl.AllowRebalance()
			}
		}()
		return m
	}
}

func (m *kgoMember) stop(clean bool) {
	if !clean {
		m.ks.kill()
	}
	m.cancel()
	<-m.done
	if clean {
		m.cl.Close() // leaves the group
	} else {
		go m.cl.Close() // its LeaveGroup cannot get through
	}
}

func TestGroupKgoEagerRange(t *testing.T) {
	runGroupScenario(t, kgoFactory(kgo.RangeBalancer()), true)
}

func TestGroupKgoCooperativeSticky(t *testing.T) {
	runGroupScenario(t, kgoFactory(kgo.CooperativeStickyBalancer()), true)
}

// saramaMember consumes with sarama's ConsumerGroup, committing each
// message synchronously.
type saramaMember struct {
	cancel context.CancelFunc
	done   chan struct{}
	cg     sarama.ConsumerGroup
	ks     *killSwitch
}

type saramaHandler struct {
	name string
	tr   *tracker
	ks   *killSwitch
}

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.tr.consumed(h.name, msg.Partition, msg.Offset, string(msg.Value))
			sess.MarkMessage(msg, "")
			sess.Commit() // synchronous; sarama reports no commit errors here
			h.ks.mu.Lock()
			dead := h.ks.dead
			h.ks.mu.Unlock()
			if !dead { // a commit of a crashed member may not have landed
				h.tr.commit(h.name, msg.Partition, msg.Offset+1)
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

func saramaFactory(t *testing.T, addr, group, name string, tr *tracker) member {
	ks := &killSwitch{}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Net.Proxy.Enable = true
	cfg.Net.Proxy.Dialer = ks
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Session.Timeout = 1500 * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = 150 * time.Millisecond
	// A member refused by SyncGroup (REBALANCE_IN_PROGRESS) does not
	// heartbeat until it rejoins: sarama's default 2 s backoff outlives
	// the 1.5 s session, so the coordinator expired it (as Kafka would)
	// and it came back as a new member, forcing one more rebalance.
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond // commits queue behind parked fetches on the shared connection, as on Kafka
	cfg.Consumer.Return.Errors = false
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &saramaMember{cancel: cancel, done: make(chan struct{}), cg: cg, ks: ks}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{groupTopic}, saramaHandler{name, tr, ks}); err != nil && ctx.Err() == nil {
				sarama.Logger.Printf("%s: Consume: %v", name, err)
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return m
}

func (m *saramaMember) stop(clean bool) {
	if !clean {
		m.ks.kill()
	}
	m.cancel()
	<-m.done
	if clean {
		_ = m.cg.Close()
	} else {
		go func() { _ = m.cg.Close() }()
	}
}

func TestGroupSarama(t *testing.T) { runGroupScenario(t, saramaFactory, true) }

// kafkaGoMember consumes with kafka-go's Reader in a group, committing
// each message synchronously.
type kafkaGoMember struct {
	cancel context.CancelFunc
	done   chan struct{}
	r      *kafka.Reader
	ks     *killSwitch
}

func kafkaGoFactory(t *testing.T, addr, group, name string, tr *tracker) member {
	ks := &killSwitch{}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
		GroupID:           group,
		Topic:             groupTopic,
		Dialer:            &kafka.Dialer{DialFunc: ks.DialContext, Timeout: 5 * time.Second},
		SessionTimeout:    1500 * time.Millisecond,
		HeartbeatInterval: 150 * time.Millisecond,
		RebalanceTimeout:  5 * time.Second,
		MaxWait:           200 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0,
	})
	ctx, cancel := context.WithCancel(context.Background())
	m := &kafkaGoMember{cancel: cancel, done: make(chan struct{}), r: r, ks: ks}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			msg, err := r.FetchMessage(ctx)
			if err != nil {
				continue
			}
			tr.consumed(name, int32(msg.Partition), msg.Offset, string(msg.Value))
			if err := r.CommitMessages(ctx, msg); err == nil {
				tr.commit(name, int32(msg.Partition), msg.Offset+1)
			}
		}
	}()
	return m
}

func (m *kafkaGoMember) stop(clean bool) {
	if !clean {
		m.ks.kill()
	}
	m.cancel()
	<-m.done
	if clean {
		_ = m.r.Close()
	} else {
		go func() { _ = m.r.Close() }()
	}
}

// TestGroupKafkaGo runs the scenario with kafka-go's Reader. Its
// CommitMessages runs beside the Reader's own rebalancing and commits with
// whatever generation is current, so a message fetched in one generation can
// be committed after the next generation has already read the committed
// offset: kafka-go is at-least-once across rebalances, against Kafka too.
// Re-deliveries are logged, not failed; every record must still be consumed
// and the assignment must converge.
func TestGroupKafkaGo(t *testing.T) { runGroupScenario(t, kafkaGoFactory, false) }

// TestStaticMembership restarts a member with a group.instance.id within
// the session timeout: the other member sees no rebalance (its generation
// is unchanged) and the restarted one gets the same partitions back.
func TestStaticMembership(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("group.min.session.timeout.ms", "500"), sluicetest.Topic("static", 6))
	type assigned struct {
		mu sync.Mutex
		ps []int32
	}
	start := func(instance string, a *assigned) *kgo.Client {
		return newClient(t, b.Addr(), kgo.ConsumerGroup("static-group"), kgo.ConsumeTopics("static"),
			kgo.InstanceID(instance), kgo.SessionTimeout(20*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.Balancers(kgo.RangeBalancer()), // eager: OnPartitionsAssigned sees the whole assignment
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				a.mu.Lock()
				a.ps = append([]int32(nil), m["static"]...)
				sort.Slice(a.ps, func(i, j int) bool { return a.ps[i] < a.ps[j] })
				a.mu.Unlock()
			}))
	}
	var aa, ab assigned
	ca := start("a", &aa)
	cb := start("b", &ab)
	ctx := testCtx(t, time.Minute)
	poll := func(cl *kgo.Client) {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		cl.PollFetches(pctx)
		cancel()
	}
	// Wait for both to be in one stable generation with 3 partitions each.
	waitFor(t, 30*time.Second, func() bool {
		poll(ca)
		poll(cb)
		_, ga := ca.GroupMetadata()
		_, gb := cb.GroupMetadata()
		aa.mu.Lock()
		ab.mu.Lock()
		defer aa.mu.Unlock()
		defer ab.mu.Unlock()
		return ga == gb && ga > 0 && len(aa.ps) == 3 && len(ab.ps) == 3
	})
	_, genB := cb.GroupMetadata()
	aa.mu.Lock()
	before := append([]int32(nil), aa.ps...)
	aa.mu.Unlock()

	ca.Close() // a static member does not send LeaveGroup
	var aa2 assigned
	ca2 := start("a", &aa2)
	waitFor(t, 30*time.Second, func() bool {
		poll(ca2)
		aa2.mu.Lock()
		defer aa2.mu.Unlock()
		return len(aa2.ps) > 0
	})
	aa2.mu.Lock()
	after := append([]int32(nil), aa2.ps...)
	aa2.mu.Unlock()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("restarted static member got %v, had %v", after, before)
	}
	poll(cb)
	if _, g := cb.GroupMetadata(); g != genB {
		t.Fatalf("other member's generation moved from %d to %d: a rebalance happened", genB, g)
	}
}

// TestCommittedOffsetsSurviveRestart commits offsets, restarts the broker
// and reads them back.
func TestCommittedOffsetsSurviveRestart(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("co", 3))
	ctx := testCtx(t, time.Minute)
	adm := kadm.NewClient(newClient(t, b.Addr()))
	offs := kadm.Offsets{}
	for p := int32(0); p < 3; p++ {
		offs.Add(kadm.Offset{Topic: "co", Partition: p, At: int64(10 * (p + 1)), LeaderEpoch: 0, Metadata: "m" + strconv.Itoa(int(p))})
	}
	// Retry while the coordinator loads.
	waitFor(t, 30*time.Second, func() bool {
		res, err := adm.CommitOffsets(ctx, "g-restart", offs)
		return err == nil && res.Error() == nil
	})
	b.Restart()
	adm2 := kadm.NewClient(newClient(t, b.Addr()))
	var got kadm.OffsetResponses
	waitFor(t, 30*time.Second, func() bool {
		var err error
		got, err = adm2.FetchOffsets(ctx, "g-restart")
		return err == nil && got.Error() == nil
	})
	for p := int32(0); p < 3; p++ {
		o, ok := got.Lookup("co", p)
		if !ok || o.At != int64(10*(p+1)) || o.Metadata != "m"+strconv.Itoa(int(p)) {
			t.Fatalf("partition %d after restart: %+v", p, o)
		}
	}
	// A group that never existed: offset -1, no error.
	none, err := adm2.FetchOffsets(ctx, "never-existed")
	if err != nil || none.Error() != nil {
		t.Fatalf("fetch offsets of a missing group: %v %v", err, none.Error())
	}
}

// TestInternalTopicsAutoCreatedByMetadata: a Metadata request naming
// __consumer_offsets or __transaction_state before any FindCoordinator
// (sarama sends one while the coordinator is not available yet) creates
// them as Kafka does, internal and compacted with their own partition
// counts, so every group finds its coordinator. Sluice used to create a
// one-partition ordinary topic there: groups outside partition 0 were then
// answered NOT_COORDINATOR forever (TestGroupSarama consumed nothing for
// two minutes when the race went that way).
func TestInternalTopicsAutoCreatedByMetadata(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("transaction.state.log.num.partitions", "7"))
	cl := newClient(t, b.Addr())
	ctx := testCtx(t, time.Minute)
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	for _, name := range []string{"__consumer_offsets", "__transaction_state"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	if _, err := req.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	want := map[string]int{"__consumer_offsets": 50, "__transaction_state": 7}
	tds, err := adm.ListTopicsWithInternal(ctx, "__consumer_offsets", "__transaction_state")
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range want {
		td, ok := tds[name]
		if !ok || td.Err != nil || !td.IsInternal || len(td.Partitions) != n {
			t.Fatalf("%s after Metadata: exists %v, err %v, internal %v, %d partitions (want %d)", name, ok, td.Err, td.IsInternal, len(td.Partitions), n)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("__consumer_offsets", nil)
	if err != nil {
		t.Fatal(err)
	}
	compact := false
	for _, c := range rc.Configs {
		compact = compact || c.Key == "cleanup.policy" && c.MaybeValue() == "compact"
	}
	if !compact {
		t.Fatal("__consumer_offsets is not compacted")
	}
	// "scenario" maps to partition 26 of 50: its coordinator answers.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "co", Partition: 0, At: 5, LeaderEpoch: -1})
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "co"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		res, err := adm.CommitOffsets(ctx, "scenario", offs)
		return err == nil && res.Error() == nil
	})
	got, err := adm.FetchOffsets(ctx, "scenario")
	if err != nil || got.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, got.Error())
	}
	if o, ok := got.Lookup("co", 0); !ok || o.At != 5 {
		t.Fatalf("committed offset read back as %+v", o)
	}
}

// TestInternalTopicPartitionCountKept: offsets.topic.num.partitions only
// sizes a new __consumer_offsets. A broker restarted with another value
// keeps mapping groups by the partition count of the existing topic, as
// Kafka's coordinator does, so every committed offset is still found (with
// the new count most groups would be answered NOT_COORDINATOR or map to an
// empty partition).
func TestInternalTopicPartitionCountKept(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("offsets.topic.num.partitions", "3"), sluicetest.Topic("co", 1))
	ctx := testCtx(t, time.Minute)
	commit := func(adm *kadm.Client, group string, at int64) {
		t.Helper()
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "co", Partition: 0, At: at, LeaderEpoch: -1})
		waitFor(t, 30*time.Second, func() bool {
			res, err := adm.CommitOffsets(ctx, group, offs)
			return err == nil && res.Error() == nil
		})
	}
	const groups = 12
	adm := kadm.NewClient(newClient(t, b.Addr()))
	for i := range groups {
		commit(adm, "g"+strconv.Itoa(i), int64(i+1))
	}
	b = b.Restart(sluicetest.Setting("offsets.topic.num.partitions", "7"))
	adm = kadm.NewClient(newClient(t, b.Addr()))
	for i := range groups {
		group := "g" + strconv.Itoa(i)
		var got kadm.OffsetResponses
		waitFor(t, 30*time.Second, func() bool {
			var err error
			got, err = adm.FetchOffsets(ctx, group)
			return err == nil && got.Error() == nil
		})
		if o, ok := got.Lookup("co", 0); !ok || o.At != int64(i+1) {
			t.Fatalf("group %s after the restart: committed offset %+v (found %v), want %d", group, o, ok, i+1)
		}
	}
	tds, err := adm.ListTopicsWithInternal(ctx, "__consumer_offsets")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tds["__consumer_offsets"].Partitions); n != 3 {
		t.Fatalf("__consumer_offsets has %d partitions, want 3", n)
	}
}
