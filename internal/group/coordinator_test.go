package group

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testCoordinator is a Coordinator on a memLog with every partition
// loaded, a manual clock and no real timers.
func testCoordinator(t *testing.T, log *memLog, clock *fakeClock) *Coordinator {
	t.Helper()
	cfg := testConfig()
	cfg.Partitions = 4
	cfg.InitialRebalanceDelay = NoInitialRebalanceDelay
	cfg.Now = clock.Now
	c := newCoordinator(cfg, log, true)
	t.Cleanup(c.Close)
	for p := range int32(4) {
		if err := c.Load(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *Coordinator) advance(clock *fakeClock, d time.Duration) {
	clock.add(d)
	c.tick()
}

// joinAsync runs JoinGroup in a goroutine.
func joinAsync(ctx context.Context, c *Coordinator, req *kmsg.JoinGroupRequest) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- c.JoinGroup(ctx, req) }()
	return ch
}

func TestCoordinatorGroupLifecycle(t *testing.T) {
	log := newMemLog()
	clock := &fakeClock{now: t0}
	c := testCoordinator(t, log, clock)
	ctx := WithClient(context.Background(), Client{ID: "cli", Host: "/10.0.0.1"})

	// Member 1: KIP-394 then a generation alone (no initial delay).
	r := c.JoinGroup(ctx, joinReq("grp", ""))
	wantCode(t, "first join", r.ErrorCode, kerr.MemberIDRequired.Code)
	id1 := r.MemberID
	j1 := c.JoinGroup(ctx, joinReq("grp", id1))
	if j1.ErrorCode != 0 || j1.Generation != 1 || j1.LeaderID != id1 {
		t.Fatalf("join 1: %+v", j1)
	}
	s1 := c.SyncGroup(ctx, syncReq("grp", id1, 1, map[string][]byte{id1: []byte("all")}))
	if string(s1.MemberAssignment) != "all" {
		t.Fatalf("sync 1: %+v", s1)
	}

	// Member 2 joins: JoinGroup blocks until member 1 rejoins.
	r = c.JoinGroup(ctx, joinReq("grp", ""))
	id2 := r.MemberID
	ch2 := joinAsync(ctx, c, joinReq("grp", id2))
	for {
		hb := kmsg.NewHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = "grp", id1, 1
		if c.Heartbeat(ctx, &hb).ErrorCode == kerr.RebalanceInProgress.Code {
			break
		}
		select {
		case r := <-ch2:
			t.Fatalf("join answered early: %+v", r)
		default:
		}
	}
	j1 = c.JoinGroup(ctx, joinReq("grp", id1))
	j2 := <-ch2
	if j1.Generation != 2 || j2.Generation != 2 || len(j1.Members) != 2 {
		t.Fatalf("generation 2: %+v %+v", j1, j2)
	}
	sch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { sch <- c.SyncGroup(ctx, syncReq("grp", id2, 2, nil)) }()
	c.SyncGroup(ctx, syncReq("grp", id1, 2, map[string][]byte{id1: []byte("a"), id2: []byte("b")}))
	if s := <-sch; string(s.MemberAssignment) != "b" {
		t.Fatalf("sync 2: %+v", s)
	}

	// Commit (v9 and v1), fetch (v1, v5 and batched v8).
	for _, v := range []int16{9, 1} {
		req := commitReq("grp", id1, 2, "t", map[int32]int64{0: 40 + int64(v)})
		req.Version = v
		for _, code := range commitCodes(c.OffsetCommit(ctx, req)) {
			wantCode(t, "commit", code, 0)
		}
	}
	for _, v := range []int16{1, 5} {
		f := kmsg.NewOffsetFetchRequest()
		f.Version = v
		f.Group = "grp"
		f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
		fr := c.OffsetFetch(ctx, &f)
		if fr.ErrorCode != 0 || len(fr.Topics) != 1 || fr.Topics[0].Partitions[0].Offset != 41 || fr.Topics[0].Partitions[1].Offset != -1 {
			t.Fatalf("fetch v%d: %+v", v, fr)
		}
	}
	f8 := kmsg.NewOffsetFetchRequest()
	f8.Version = 8
	f8.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "grp"}, {Group: "missing", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
	fr := c.OffsetFetch(ctx, &f8)
	if len(fr.Groups) != 2 || fr.Groups[0].Topics[0].Partitions[0].Offset != 41 || fr.Groups[1].ErrorCode != 0 || fr.Groups[1].Topics[0].Partitions[0].Offset != -1 {
		t.Fatalf("fetch v8: %+v", fr)
	}

	// Describe, list.
	dr := c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"grp", "missing"}})
	if d := dr.Groups[0]; d.State != "Stable" || len(d.Members) != 2 || d.Members[0].ClientID != "cli" || d.Members[0].ClientHost != "/10.0.0.1" {
		t.Fatalf("describe: %+v", dr)
	}
	if dr.Groups[1].State != "Dead" {
		t.Fatalf("describe missing: %+v", dr.Groups[1])
	}
	c.OffsetCommit(ctx, commitReq("simple", "", -1, "t", map[int32]int64{0: 1}))
	lr := c.ListGroups(ctx, &kmsg.ListGroupsRequest{Version: 5})
	if len(lr.Groups) != 2 {
		t.Fatalf("list: %+v", lr)
	}
	lr = c.ListGroups(ctx, &kmsg.ListGroupsRequest{Version: 5, StatesFilter: []string{"stable"}, TypesFilter: []string{"Classic"}})
	if len(lr.Groups) != 1 || lr.Groups[0].Group != "grp" || lr.Groups[0].GroupState != "Stable" || lr.Groups[0].ProtocolType != "consumer" {
		t.Fatalf("list filtered: %+v", lr)
	}

	// Member 2 crashes (no heartbeats): removed at its session timeout.
	for range 3 {
		c.advance(clock, 4*time.Second)
		hb := kmsg.NewHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = "grp", id1, 2
		c.Heartbeat(ctx, &hb)
	}
	dr = c.DescribeGroups(ctx, &kmsg.DescribeGroupsRequest{Groups: []string{"grp"}})
	if len(dr.Groups[0].Members) != 1 || dr.Groups[0].State != "PreparingRebalance" {
		t.Fatalf("after member 2's session: %+v", dr.Groups[0])
	}

	// Leave, delete.
	lv := kmsg.NewLeaveGroupRequest()
	lv.Version = 3
	lv.Group = "grp"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: id1}}
	if r := c.LeaveGroup(ctx, &lv); r.ErrorCode != 0 || r.Members[0].ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	del := c.DeleteGroups(ctx, &kmsg.DeleteGroupsRequest{Groups: []string{"simple", "nope"}})
	if del.Groups[0].ErrorCode != 0 || del.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("delete: %+v", del)
	}

	// A new coordinator on the same log has the offsets.
	c.Close()
	c2 := testCoordinator(t, log, clock)
	f := kmsg.NewOffsetFetchRequest()
	f.Version = 7
	f.Group = "grp"
	fr = c2.OffsetFetch(ctx, &f) // null topics: everything
	if len(fr.Topics) != 1 || fr.Topics[0].Partitions[0].Offset != 41 || *fr.Topics[0].Partitions[0].Metadata != "md-0" {
		t.Fatalf("fetch after reload: %+v", fr)
	}
	if lr := c2.ListGroups(ctx, &kmsg.ListGroupsRequest{}); len(lr.Groups) != 1 || lr.Groups[0].Group != "grp" {
		t.Fatalf("list after reload: %+v", lr)
	}
}

func TestCoordinatorRequestChecks(t *testing.T) {
	c := testCoordinator(t, newMemLog(), &fakeClock{now: t0})
	ctx := context.Background()
	r := joinReq("g", "")
	r.SessionTimeoutMillis = 10
	wantCode(t, "session too short", c.JoinGroup(ctx, r).ErrorCode, kerr.InvalidSessionTimeout.Code)
	r.SessionTimeoutMillis = 2 * 3_600_000
	wantCode(t, "session too long", c.JoinGroup(ctx, r).ErrorCode, kerr.InvalidSessionTimeout.Code)
	wantCode(t, "empty group id", c.JoinGroup(ctx, joinReq("", "")).ErrorCode, kerr.InvalidGroupID.Code)
	wantCode(t, "offset delete empty group id", c.OffsetDelete(ctx, &kmsg.OffsetDeleteRequest{}).ErrorCode, kerr.InvalidGroupID.Code)

	// TopicExists refuses unknown partitions; the rest is committed.
	c.cfg.TopicExists = func(topic string, p int32) bool { return p < 2 }
	codes := commitCodes(c.OffsetCommit(ctx, commitReq("s", "", -1, "t", map[int32]int64{1: 1, 5: 1})))
	if len(codes) != 2 || (codes[0] == 0) == (codes[1] == 0) {
		t.Fatalf("commit codes %v", codes)
	}
}

// gatedReadLog blocks Read until released, to observe a partition while
// it loads.
type gatedReadLog struct {
	*memLog
	gate chan struct{}
}

func (l gatedReadLog) Read(p int32, fn func([]byte) error) error {
	<-l.gate
	return l.memLog.Read(p, fn)
}

func TestCoordinatorNotCoordinatorAndLoading(t *testing.T) {
	gl := gatedReadLog{newMemLog(), make(chan struct{})}
	cfg := testConfig()
	cfg.Partitions = 2
	c := newCoordinator(cfg, gl, true)
	defer c.Close()
	ctx := context.Background()
	g := "some-group"
	p := c.PartitionFor(g)

	hb := kmsg.NewHeartbeatRequest()
	hb.Group = g
	wantCode(t, "not loaded", c.Heartbeat(ctx, &hb).ErrorCode, kerr.NotCoordinator.Code)
	done := make(chan error)
	go func() { done <- c.Load(ctx, p) }()
	for {
		if code := c.Heartbeat(ctx, &hb).ErrorCode; code == kerr.CoordinatorLoadInProgress.Code {
			break
		}
	}
	wantCode(t, "list while loading", c.ListGroups(ctx, &kmsg.ListGroupsRequest{}).ErrorCode, kerr.CoordinatorLoadInProgress.Code)
	f := kmsg.NewOffsetFetchRequest()
	f.Version = 1
	f.Group = g
	f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if fr := c.OffsetFetch(ctx, &f); fr.Topics[0].Partitions[0].ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("v1 fetch while loading: %+v", fr)
	}
	close(gl.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantCode(t, "loaded, unknown group", c.Heartbeat(ctx, &hb).ErrorCode, kerr.UnknownMemberID.Code)
	c.Unload(p)
	wantCode(t, "unloaded", c.Heartbeat(ctx, &hb).ErrorCode, kerr.NotCoordinator.Code)
}

func TestCoordinatorCloseAnswersParkedJoin(t *testing.T) {
	cfg := testConfig() // 3 s initial delay: the join parks
	cfg.Partitions = 1
	c := newCoordinator(cfg, newMemLog(), true)
	if err := c.Load(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	req := joinReq("g", "")
	req.Version = 3
	ch := joinAsync(context.Background(), c, req)
	for {
		d := c.DescribeGroups(context.Background(), &kmsg.DescribeGroupsRequest{Groups: []string{"g"}})
		if len(d.Groups[0].Members) == 1 {
			break
		}
	}
	c.Close()
	wantCode(t, "parked join at close", (<-ch).ErrorCode, kerr.NotCoordinator.Code)
	if err := c.Load(context.Background(), 0); err != ErrClosed {
		t.Fatalf("Load after Close: %v", err)
	}
}

func TestCoordinatorRealTimers(t *testing.T) {
	// The default driver arms real timers: a short initial delay
	// completes the join on its own.
	cfg := testConfig()
	cfg.Partitions = 1
	cfg.InitialRebalanceDelay = 20 * time.Millisecond
	c := New(cfg, newMemLog())
	defer c.Close()
	if err := c.Load(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	req := joinReq("g", "")
	req.Version = 3
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := c.JoinGroup(ctx, req); r.ErrorCode != 0 || r.Generation != 1 {
		t.Fatalf("join: %+v", r)
	}
}
