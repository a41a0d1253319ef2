package group

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// memLog is an in-memory Log: it validates each batch, assigns offsets
// and keeps the batches per partition.
type memLog struct {
	mu      sync.Mutex
	parts   map[int32][][]byte
	next    map[int32]int64
	failErr error         // if set, every Append fails with it
	gate    chan struct{} // if set, Append waits for a receive before appending
	appends int
}

func newMemLog() *memLog {
	return &memLog{parts: make(map[int32][][]byte), next: make(map[int32]int64)}
}

func (l *memLog) Append(ctx context.Context, p int32, b []byte) error {
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failErr != nil {
		return l.failErr
	}
	l.appends++
	for len(b) > 0 {
		h, err := batch.Validate(b)
		if err != nil {
			return err
		}
		one := bytes.Clone(b[:h.Size()])
		batch.SetBaseOffset(one, l.next[p])
		l.next[p] += int64(h.LastOffsetDelta) + 1
		l.parts[p] = append(l.parts[p], one)
		b = b[h.Size():]
	}
	return nil
}

func (l *memLog) Read(p int32, fn func([]byte) error) error {
	l.mu.Lock()
	bs := append([][]byte(nil), l.parts[p]...)
	l.mu.Unlock()
	for _, b := range bs {
		if err := fn(bytes.Clone(b)); err != nil {
			return err
		}
	}
	return nil
}

// records decodes every record of partition p: (key, value) pairs.
func (l *memLog) records(t *testing.T, p int32) []record {
	t.Helper()
	var out []record
	if err := l.Read(p, func(b []byte) error {
		_, recs, err := batch.DecodeRecords(b)
		for _, r := range recs {
			out = append(out, record{key: r.Key, value: r.Value})
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// machine drives a partitionState directly: synchronous, deterministic
// member ids, a manual clock, and writes appended to a memLog at once
// (unless held).
type machine struct {
	t    *testing.T
	s    *partitionState
	log  *memLog
	now  time.Time
	ids  int
	hold bool // leave writes pending until flush is called with hold off
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testConfig() Config {
	return Config{
		Partitions:            1,
		MinSessionTimeout:     time.Second,
		MaxSessionTimeout:     time.Hour,
		InitialRebalanceDelay: 3 * time.Second,
		OffsetsRetention:      24 * time.Hour,
		OffsetsRetentionCheck: time.Minute,
	}
}

func newMachine(t *testing.T, cfg Config) *machine {
	t.Helper()
	return newMachineOn(t, cfg, newMemLog(), t0)
}

// newMachineOn replays log (as Load does) into a new state machine.
func newMachineOn(t *testing.T, cfg Config, log *memLog, now time.Time) *machine {
	t.Helper()
	cfg = cfg.withDefaults()
	m := &machine{t: t, log: log, now: now}
	l := newLoader()
	if err := log.Read(0, l.batch); err != nil {
		t.Fatal(err)
	}
	m.s = newPartitionState(0, cfg, now)
	l.install(m.s)
	m.s.newMemberID = func(clientID string, inst *string) string {
		m.ids++
		if inst != nil {
			return fmt.Sprintf("%s-%d", *inst, m.ids)
		}
		return fmt.Sprintf("%s-%d", clientID, m.ids)
	}
	return m
}

func (m *machine) step(ev event) {
	m.t.Helper()
	m.s.Step(ev)
	m.flush()
}

func (m *machine) flush() {
	m.t.Helper()
	if m.hold {
		return
	}
	for {
		ws := m.s.TakeWrites()
		if len(ws) == 0 {
			return
		}
		for _, w := range ws {
			b, err := buildWrite(nil, w, m.now)
			if err != nil {
				m.t.Fatal(err)
			}
			m.s.Step(appendDone{id: w.id, err: m.log.Append(context.Background(), 0, b)})
		}
	}
}

func (m *machine) advance(d time.Duration) {
	m.t.Helper()
	m.now = m.now.Add(d)
	m.s.Tick(m.now)
	m.flush()
}

func (m *machine) group(id string) *group { return m.s.groups[id] }

// result is the slot a request's answer lands in.
type result[T any] struct{ r *T }

func (r *result[T]) done() bool { return r.r != nil }

func (r *result[T]) get(t *testing.T) *T {
	t.Helper()
	if r.r == nil {
		t.Fatal("request not answered yet")
	}
	return r.r
}

// proto is a consumer-protocol protocol with its subscription.
func proto(name string, topics ...string) kmsg.JoinGroupRequestProtocol {
	md := kmsg.ConsumerMemberMetadata{Version: 0, Topics: topics}
	return kmsg.JoinGroupRequestProtocol{Name: name, Metadata: md.AppendTo(nil)}
}

func joinReq(group, memberID string) *kmsg.JoinGroupRequest {
	r := kmsg.NewJoinGroupRequest()
	r.Version = 9
	r.Group = group
	r.MemberID = memberID
	r.SessionTimeoutMillis = 10_000
	r.RebalanceTimeoutMillis = 30_000
	r.ProtocolType = "consumer"
	r.Protocols = []kmsg.JoinGroupRequestProtocol{proto("range", "t")}
	return &r
}

func (m *machine) join(req *kmsg.JoinGroupRequest) *result[kmsg.JoinGroupResponse] {
	m.t.Helper()
	res := new(result[kmsg.JoinGroupResponse])
	m.step(&joinEvent{req: req, client: Client{ID: "client", Host: "/127.0.0.1"}, reply: func(r *kmsg.JoinGroupResponse) {
		if res.r != nil {
			m.t.Errorf("JoinGroup answered twice")
		}
		res.r = r
	}})
	return res
}

// joinNew joins a new dynamic member the KIP-394 way (MEMBER_ID_REQUIRED,
// then again with the id) and returns its id and the parked second join.
func (m *machine) joinNew(group string, mod func(*kmsg.JoinGroupRequest)) (string, *result[kmsg.JoinGroupResponse]) {
	m.t.Helper()
	req := joinReq(group, "")
	if mod != nil {
		mod(req)
	}
	first := m.join(req)
	if req.InstanceID != nil {
		// Static members need no second join; the id comes with the
		// answer.
		return "", first
	}
	r := first.get(m.t)
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		m.t.Fatalf("first join: error %d member %q, want MEMBER_ID_REQUIRED with an id", r.ErrorCode, r.MemberID)
	}
	again := *req
	again.MemberID = r.MemberID
	return r.MemberID, m.join(&again)
}

func syncReq(group, member string, gen int32, assign map[string][]byte) *kmsg.SyncGroupRequest {
	r := kmsg.NewSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = group, member, gen
	for id, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return &r
}

func (m *machine) sync(req *kmsg.SyncGroupRequest) *result[kmsg.SyncGroupResponse] {
	m.t.Helper()
	res := new(result[kmsg.SyncGroupResponse])
	m.step(&syncEvent{req: req, reply: func(r *kmsg.SyncGroupResponse) { res.r = r }})
	return res
}

func (m *machine) heartbeat(group, member string, gen int32, instance *string) int16 {
	m.t.Helper()
	r := kmsg.NewHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation, r.InstanceID = group, member, gen, instance
	res := new(result[kmsg.HeartbeatResponse])
	m.step(&heartbeatEvent{req: &r, reply: func(r *kmsg.HeartbeatResponse) { res.r = r }})
	return res.get(m.t).ErrorCode
}

func (m *machine) leave(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	m.t.Helper()
	res := new(result[kmsg.LeaveGroupResponse])
	m.step(&leaveEvent{req: req, reply: func(r *kmsg.LeaveGroupResponse) { res.r = r }})
	return res.get(m.t)
}

func commitReq(group, member string, gen int32, topic string, offsets map[int32]int64) *kmsg.OffsetCommitRequest {
	r := kmsg.NewOffsetCommitRequest()
	r.Version = 9
	r.Group, r.MemberID, r.Generation = group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, o, 7
		rp.Metadata = kmsg.StringPtr(fmt.Sprintf("md-%d", p))
		rt.Partitions = append(rt.Partitions, rp)
	}
	r.Topics = append(r.Topics, rt)
	return &r
}

func (m *machine) commit(req *kmsg.OffsetCommitRequest) *result[kmsg.OffsetCommitResponse] {
	m.t.Helper()
	res := new(result[kmsg.OffsetCommitResponse])
	m.step(&commitEvent{req: req, reply: func(r *kmsg.OffsetCommitResponse) { res.r = r }})
	return res
}

// commitCodes returns the error code of every partition of a commit.
func commitCodes(r *kmsg.OffsetCommitResponse) []int16 {
	var out []int16
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

// fetchOffset fetches one committed offset.
func (m *machine) fetchOffset(group, topic string, p int32) kmsg.OffsetFetchResponseGroupTopicPartition {
	m.t.Helper()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{p}}}
	var out kmsg.OffsetFetchResponseGroup
	m.step(&fetchEvent{group: rg, reply: func(r kmsg.OffsetFetchResponseGroup) { out = r }})
	if out.ErrorCode != 0 || len(out.Topics) != 1 || len(out.Topics[0].Partitions) != 1 {
		m.t.Fatalf("fetch %s %s/%d: %+v", group, topic, p, out)
	}
	return out.Topics[0].Partitions[0]
}

func (m *machine) describe(id string) kmsg.DescribeGroupsResponseGroup {
	var out []kmsg.DescribeGroupsResponseGroup
	m.step(&describeEvent{groups: []string{id}, reply: func(r []kmsg.DescribeGroupsResponseGroup) { out = r }})
	return out[0]
}

func (m *machine) deleteGroups(ids ...string) []kmsg.DeleteGroupsResponseGroup {
	var out []kmsg.DeleteGroupsResponseGroup
	m.step(&deleteGroupsEvent{groups: ids, reply: func(r []kmsg.DeleteGroupsResponseGroup) { out = r }})
	return out
}

// stableGroup forms a Stable group of n members, joining together during
// the initial rebalance delay, and returns their ids (the leader first) and
// the generation. Each member is assigned its own id as bytes.
func (m *machine) stableGroup(group string, n int, mod func(i int, r *kmsg.JoinGroupRequest)) ([]string, int32) {
	m.t.Helper()
	ids := make([]string, n)
	joins := make([]*result[kmsg.JoinGroupResponse], n)
	for i := range n {
		ids[i], joins[i] = m.joinNew(group, func(r *kmsg.JoinGroupRequest) {
			if mod != nil {
				mod(i, r)
			}
		})
	}
	for step := 0; ; step++ {
		all := true
		for _, j := range joins {
			all = all && j.done()
		}
		if all {
			break
		}
		if step > 100 {
			m.t.Fatal("rebalance does not complete")
		}
		m.advance(time.Second)
	}
	gen := joins[0].get(m.t).Generation
	leader := joins[0].get(m.t).LeaderID
	assign := make(map[string][]byte)
	for i := range n {
		r := joins[i].get(m.t)
		if r.ErrorCode != 0 || r.Generation != gen || r.LeaderID != leader {
			m.t.Fatalf("member %d: join error %d generation %d leader %s, want generation %d leader %s", i, r.ErrorCode, r.Generation, r.LeaderID, gen, leader)
		}
		ids[i] = r.MemberID
		assign[ids[i]] = []byte(ids[i])
	}
	syncs := make([]*result[kmsg.SyncGroupResponse], n)
	for i := range n {
		if ids[i] != leader {
			syncs[i] = m.sync(syncReq(group, ids[i], gen, nil))
		}
	}
	for i := range n {
		if ids[i] == leader {
			syncs[i] = m.sync(syncReq(group, ids[i], gen, assign))
		}
	}
	for i := range n {
		r := syncs[i].get(m.t)
		if r.ErrorCode != 0 || string(r.MemberAssignment) != ids[i] {
			m.t.Fatalf("member %d sync: error %d assignment %q", i, r.ErrorCode, r.MemberAssignment)
		}
	}
	if g := m.group(group); g.state != stateStable {
		m.t.Fatalf("group state %v, want Stable", g.state)
	}
	for i, id := range ids {
		if id == leader {
			ids[0], ids[i] = ids[i], ids[0]
		}
	}
	return ids, gen
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Errorf("%s: error %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
	}
}
