package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestJoinSyncEager(t *testing.T) {
	m := newMachine(t, testConfig())
	id1, j1 := m.joinNew("g", nil)
	id2, j2 := m.joinNew("g", func(r *kmsg.JoinGroupRequest) {
		// Prefers roundrobin, also speaks range: range wins the vote
		// (member 1 supports only range).
		r.Protocols = []kmsg.JoinGroupRequestProtocol{proto("roundrobin", "t"), proto("range", "t")}
	})
	if j1.done() || j2.done() {
		t.Fatal("join answered during the initial rebalance delay")
	}
	if g := m.group("g"); g.state != statePreparingRebalance {
		t.Fatalf("state %v, want PreparingRebalance", g.state)
	}
	m.advance(3 * time.Second) // the delay, extended once for member 2
	if j1.done() {
		t.Fatal("join answered before the extended delay")
	}
	m.advance(3 * time.Second)
	r1, r2 := j1.get(t), j2.get(t)
	for _, r := range []*kmsg.JoinGroupResponse{r1, r2} {
		if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != id1 || *r.Protocol != "range" || *r.ProtocolType != "consumer" {
			t.Fatalf("join response %+v", r)
		}
	}
	if len(r1.Members) != 2 || len(r2.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d; want 2 and 0", len(r1.Members), len(r2.Members))
	}
	if g := m.group("g"); g.state != stateCompletingRebalance {
		t.Fatalf("state %v, want CompletingRebalance", g.state)
	}
	wantCode(t, "heartbeat while completing", m.heartbeat("g", id2, 1, nil), 0)

	s2 := m.sync(syncReq("g", id2, 1, nil))
	if s2.done() {
		t.Fatal("follower sync answered before the leader's")
	}
	s1 := m.sync(syncReq("g", id1, 1, map[string][]byte{id1: []byte("a1"), id2: []byte("a2")}))
	if a := s1.get(t).MemberAssignment; string(a) != "a1" {
		t.Fatalf("leader assignment %q", a)
	}
	if a := s2.get(t).MemberAssignment; string(a) != "a2" {
		t.Fatalf("follower assignment %q", a)
	}
	if g := m.group("g"); g.state != stateStable {
		t.Fatalf("state %v, want Stable", g.state)
	}
	wantCode(t, "heartbeat when stable", m.heartbeat("g", id1, 1, nil), 0)

	// The group metadata was written with the assignment.
	l := newLoader()
	if err := m.log.Read(0, l.batch); err != nil {
		t.Fatal(err)
	}
	v := l.groups["g"]
	if v == nil || v.Generation != 1 || len(v.Members) != 2 || *v.Protocol != "range" || *v.Leader != id1 {
		t.Fatalf("stored group %+v", v)
	}

	d := m.describe("g")
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 2 || string(d.Members[1].MemberAssignment) != "a2" || d.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe %+v", d)
	}
}

func TestMemberIDRequired(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = NoInitialRebalanceDelay
	m := newMachine(t, cfg)

	r := m.join(joinReq("g", "")).get(t)
	wantCode(t, "v9 join without member id", r.ErrorCode, kerr.MemberIDRequired.Code)
	if r.MemberID == "" || r.Generation != -1 {
		t.Fatalf("response %+v", r)
	}
	id := r.MemberID
	if _, ok := m.group("g").pending[id]; !ok {
		t.Fatal("member id not pending")
	}
	// A pending id expires after the session timeout.
	m.advance(11 * time.Second)
	if m.group("g") != nil && len(m.group("g").pending) != 0 {
		t.Fatal("pending member did not expire")
	}
	again := joinReq("g", id)
	wantCode(t, "join with an expired pending id", m.join(again).get(t).ErrorCode, kerr.UnknownMemberID.Code)

	// v3 joins at once.
	old := joinReq("g", "")
	old.Version = 3
	jr := m.join(old).get(t)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != jr.MemberID {
		t.Fatalf("v3 join: %+v", jr)
	}
}

func TestInitialRebalanceDelay(t *testing.T) {
	m := newMachine(t, testConfig()) // delay 3 s
	mod := func(r *kmsg.JoinGroupRequest) { r.RebalanceTimeoutMillis = 7000 }
	_, j1 := m.joinNew("g", mod) // t=0: done at 3 s unless someone joins
	m.advance(time.Second)
	_, j2 := m.joinNew("g", mod) // t=1: extends to 6 s (4 s of the 7 left)
	m.advance(1900 * time.Millisecond)
	if j1.done() {
		t.Fatal("done before the first delay")
	}
	m.advance(100 * time.Millisecond) // t=3: extended
	if j1.done() {
		t.Fatal("done at 3 s although a member joined during the delay")
	}
	m.advance(2 * time.Second)
	_, j3 := m.joinNew("g", mod) // t=5: extends again, by the 1 s left
	m.advance(time.Second)       // t=6
	if j1.done() {
		t.Fatal("done at 6 s although a member joined")
	}
	_, j4 := m.joinNew("g", mod) // t=6: but the rebalance timeout bounds the delay
	m.advance(999 * time.Millisecond)
	if j1.done() {
		t.Fatal("done before the rebalance timeout")
	}
	m.advance(time.Millisecond) // t=7
	for i, j := range []*result[kmsg.JoinGroupResponse]{j1, j2, j3, j4} {
		if r := j.get(t); r.ErrorCode != 0 || r.Generation != 1 {
			t.Fatalf("member %d: %+v", i, r)
		}
	}
}

func TestCooperativeRejoin(t *testing.T) {
	m := newMachine(t, testConfig())
	coop := func(_ int, r *kmsg.JoinGroupRequest) {
		r.Protocols = []kmsg.JoinGroupRequestProtocol{proto("cooperative-sticky", "t")}
	}
	ids, gen := m.stableGroup("g", 2, coop)

	// A third member joins: a rebalance; the others learn it from their
	// heartbeats and rejoin, keeping (and reporting) what they own.
	id3, j3 := m.joinNew("g", func(r *kmsg.JoinGroupRequest) { coop(2, r) })
	wantCode(t, "heartbeat", m.heartbeat("g", ids[1], gen, nil), kerr.RebalanceInProgress.Code)
	rejoin := func(id string, owned string) *result[kmsg.JoinGroupResponse] {
		r := joinReq("g", id)
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "cooperative-sticky", Metadata: []byte(owned)}}
		return m.join(r)
	}
	j1 := rejoin(ids[0], "owns-1")
	if j3.done() {
		t.Fatal("rebalance completed before every member rejoined")
	}
	j2 := rejoin(ids[1], "owns-2")
	gen2 := j1.get(t).Generation
	if gen2 != gen+1 || j2.get(t).Generation != gen2 || j3.get(t).Generation != gen2 {
		t.Fatalf("generations %d %d %d, want %d", j1.get(t).Generation, j2.get(t).Generation, j3.get(t).Generation, gen+1)
	}
	// The leader sees each member's metadata as sent: the coordinator
	// only relays.
	seen := map[string]string{}
	for _, mm := range j1.get(t).Members {
		seen[mm.MemberID] = string(mm.ProtocolMetadata)
	}
	if seen[ids[1]] != "owns-2" {
		t.Fatalf("leader sees %q for member 2", seen[ids[1]])
	}
	// Cooperative: the leader revokes p1 from member 2, assigning it to
	// nobody yet; member 2 then rejoins to trigger the follow-up.
	s2 := m.sync(syncReq("g", ids[1], gen2, nil))
	s3 := m.sync(syncReq("g", id3, gen2, nil))
	m.sync(syncReq("g", ids[0], gen2, map[string][]byte{ids[0]: []byte("p0"), ids[1]: []byte("-"), id3: []byte("")}))
	if string(s2.get(t).MemberAssignment) != "-" || s3.get(t).ErrorCode != 0 {
		t.Fatalf("syncs: %+v %+v", s2.get(t), s3.get(t))
	}
	j2 = rejoin(ids[1], "owns-none")
	j1 = rejoin(ids[0], "owns-1")
	j3 = rejoin(id3, "")
	for _, j := range []*result[kmsg.JoinGroupResponse]{j1, j2, j3} {
		if r := j.get(t); r.Generation != gen2+1 {
			t.Fatalf("follow-up rebalance: %+v", r)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 2, nil)
	for range 2 {
		m.advance(4 * time.Second)
		wantCode(t, "heartbeat", m.heartbeat("g", ids[0], gen, nil), 0)
	}
	m.advance(4 * time.Second)
	// Member 2 stayed silent for 12 s > its 10 s session.
	g := m.group("g")
	if g.byID[ids[1]] != nil || g.state != statePreparingRebalance {
		t.Fatalf("after expiry: member still there=%v state %v", g.byID[ids[1]] != nil, g.state)
	}
	wantCode(t, "heartbeat", m.heartbeat("g", ids[0], gen, nil), kerr.RebalanceInProgress.Code)
	wantCode(t, "expired member heartbeat", m.heartbeat("g", ids[1], gen, nil), kerr.UnknownMemberID.Code)
	j := m.join(joinReq("g", ids[0])).get(t)
	if j.Generation != gen+1 || len(j.Members) != 1 {
		t.Fatalf("rejoin: %+v", j)
	}
}

func TestRebalanceTimeoutRemovesMembers(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 3, nil)
	// The leader rejoins (e.g. new partitions): a rebalance. Member 2
	// rejoins, member 3 keeps heartbeating but never rejoins.
	j1 := m.join(joinReq("g", ids[0]))
	j2 := m.join(joinReq("g", ids[1]))
	for range 8 {
		m.advance(4 * time.Second)
		if j1.done() {
			break
		}
		wantCode(t, "heartbeat", m.heartbeat("g", ids[2], gen, nil), kerr.RebalanceInProgress.Code)
	}
	r := j1.get(t) // after the 30 s rebalance timeout
	if r.Generation != gen+1 || len(r.Members) != 2 || j2.get(t).Generation != gen+1 {
		t.Fatalf("join after timeout: %+v", r)
	}
	if m.group("g").byID[ids[2]] != nil {
		t.Fatal("member that did not rejoin is still in the group")
	}
	wantCode(t, "removed member heartbeat", m.heartbeat("g", ids[2], gen, nil), kerr.UnknownMemberID.Code)

	// A member that gets its join response but never syncs is removed
	// after the rebalance timeout too (pending sync).
	s1 := m.sync(syncReq("g", ids[0], gen+1, map[string][]byte{ids[0]: []byte("x")}))
	if s1.get(t).ErrorCode != 0 || m.group("g").state != stateStable {
		t.Fatal("leader sync")
	}
	for range 7 {
		m.advance(5 * time.Second)
		m.heartbeat("g", ids[0], gen+1, nil)
	}
	g := m.group("g")
	if g.byID[ids[1]] != nil || g.state != statePreparingRebalance {
		t.Fatalf("unsynced member kept: state %v", g.state)
	}
}

func TestLeaveBatched(t *testing.T) {
	m := newMachine(t, testConfig())
	inst := func(i int, r *kmsg.JoinGroupRequest) {
		if i > 0 {
			r.InstanceID = kmsg.StringPtr([]string{"", "i1", "i2", "i3"}[i])
		}
	}
	ids, _ := m.stableGroup("g", 4, inst)
	g := m.group("g")
	byInst := func(s string) string { return g.static[s] }

	req := kmsg.NewLeaveGroupRequest()
	req.Version = 5
	req.Group = "g"
	req.Members = []kmsg.LeaveGroupRequestMember{
		{MemberID: ids[0]},                                    // the leader, dynamic
		{InstanceID: kmsg.StringPtr("i1")},                    // by instance id only (admin)
		{MemberID: "nobody"},                                  // unknown
		{MemberID: "stale", InstanceID: kmsg.StringPtr("i2")}, // fenced
		{InstanceID: kmsg.StringPtr("i9")},                    // unknown instance
	}
	i3 := byInst("i3")
	r := m.leave(&req)
	want := []int16{0, 0, kerr.UnknownMemberID.Code, kerr.FencedInstanceID.Code, kerr.UnknownMemberID.Code}
	if r.ErrorCode != 0 || len(r.Members) != len(want) {
		t.Fatalf("leave response %+v", r)
	}
	for i, w := range want {
		wantCode(t, "member "+r.Members[i].MemberID, r.Members[i].ErrorCode, w)
	}
	if len(g.members) != 2 || g.byID[ids[0]] != nil || byInst("i1") != "" || byInst("i2") == "" || byInst("i3") != i3 {
		t.Fatalf("members left: %d", len(g.members))
	}
	if g.state != statePreparingRebalance {
		t.Fatalf("state %v, want PreparingRebalance", g.state)
	}

	// v0: one member, error at the top level.
	old := kmsg.NewLeaveGroupRequest()
	old.Version = 0
	old.Group, old.MemberID = "g", "nobody"
	wantCode(t, "v0 unknown member", m.leave(&old).ErrorCode, kerr.UnknownMemberID.Code)
	old.MemberID = i3
	wantCode(t, "v0 known member", m.leave(&old).ErrorCode, 0)

	// Unknown group: UNKNOWN_MEMBER_ID at the top (Kafka 4).
	req.Group = "nope"
	if r := m.leave(&req); r.ErrorCode != kerr.UnknownMemberID.Code || len(r.Members) != 0 {
		t.Fatalf("unknown group: %+v", r)
	}
}

func TestErrorTable(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 2, nil)
	instance := func(i int, r *kmsg.JoinGroupRequest) { r.InstanceID = kmsg.StringPtr("s") }
	sids, sgen := m.stableGroup("static", 1, instance)

	hb := func(group, member string, g int32) func() int16 {
		return func() int16 { return m.heartbeat(group, member, g, nil) }
	}
	sync := func(group, member string, g int32) func() int16 {
		return func() int16 { return m.sync(syncReq(group, member, g, nil)).get(t).ErrorCode }
	}
	join := func(mod func(*kmsg.JoinGroupRequest)) func() int16 {
		return func() int16 {
			r := joinReq("g", ids[1])
			mod(r)
			return m.join(r).get(t).ErrorCode
		}
	}
	commit := func(version int16, group, member string, g int32) func() int16 {
		return func() int16 {
			r := commitReq(group, member, g, "t", map[int32]int64{0: 1})
			r.Version = version
			return commitCodes(m.commit(r).get(t))[0]
		}
	}
	for _, tc := range []struct {
		name string
		do   func() int16
		want int16
	}{
		{"heartbeat wrong generation", hb("g", ids[0], gen+5), kerr.IllegalGeneration.Code},
		{"heartbeat unknown member", hb("g", "who", gen), kerr.UnknownMemberID.Code},
		{"heartbeat unknown group", hb("nope", "who", 1), kerr.UnknownMemberID.Code},
		{"sync unknown group", sync("nope", "who", 1), kerr.UnknownMemberID.Code},
		{"sync wrong generation", sync("g", ids[0], gen+1), kerr.IllegalGeneration.Code},
		{"sync unknown member", sync("g", "who", gen), kerr.UnknownMemberID.Code},
		{"join unknown member id", join(func(r *kmsg.JoinGroupRequest) { r.MemberID = "who" }), kerr.UnknownMemberID.Code},
		{"join other protocol type", join(func(r *kmsg.JoinGroupRequest) { r.ProtocolType = "connect" }), kerr.InconsistentGroupProtocol.Code},
		{"join no common protocol", join(func(r *kmsg.JoinGroupRequest) {
			r.Protocols = []kmsg.JoinGroupRequestProtocol{proto("sticky", "t")}
		}), kerr.InconsistentGroupProtocol.Code},
		{"join new member no protocol type", func() int16 {
			r := joinReq("fresh", "")
			r.ProtocolType = ""
			return m.join(r).get(t).ErrorCode
		}, kerr.InconsistentGroupProtocol.Code},
		{"join unknown group with member id", func() int16 { return m.join(joinReq("nope", "x")).get(t).ErrorCode }, kerr.UnknownMemberID.Code},
		{"static heartbeat stale member", func() int16 { return m.heartbeat("static", "stale", sgen, kmsg.StringPtr("s")) }, kerr.FencedInstanceID.Code},
		{"static heartbeat unknown instance", func() int16 { return m.heartbeat("static", sids[0], sgen, kmsg.StringPtr("t")) }, kerr.UnknownMemberID.Code},
		{"commit wrong generation", commit(9, "g", ids[0], gen+1), kerr.IllegalGeneration.Code},
		{"commit unknown member", commit(9, "g", "who", gen), kerr.UnknownMemberID.Code},
		{"simple commit to a non-empty group", commit(9, "g", "", -1), kerr.UnknownMemberID.Code},
		{"commit v9 missing group", commit(9, "nope", "m", 1), kerr.GroupIDNotFound.Code},
		{"commit v8 missing group", commit(8, "nope", "m", 1), kerr.IllegalGeneration.Code},
		{"delete missing group", func() int16 { return m.deleteGroups("nope")[0].ErrorCode }, kerr.GroupIDNotFound.Code},
		{"delete non-empty group", func() int16 { return m.deleteGroups("g")[0].ErrorCode }, kerr.NonEmptyGroup.Code},
	} {
		wantCode(t, tc.name, tc.do(), tc.want)
	}
	if m.group("nope") != nil || m.group("fresh") != nil {
		t.Error("a failed request left a group behind")
	}

	// During a rebalance.
	m.join(joinReq("g", ids[0])) // the leader rejoins
	wantCode(t, "heartbeat in rebalance", m.heartbeat("g", ids[1], gen, nil), kerr.RebalanceInProgress.Code)
	wantCode(t, "sync in rebalance", m.sync(syncReq("g", ids[1], gen, nil)).get(t).ErrorCode, kerr.RebalanceInProgress.Code)
	wantCode(t, "commit in PreparingRebalance", commit(9, "g", ids[1], gen)(), 0)
	m.join(joinReq("g", ids[1]))
	wantCode(t, "commit in CompletingRebalance", commit(9, "g", ids[1], gen+1)(), kerr.RebalanceInProgress.Code)

	// Metadata too large fails only that partition.
	big := commitReq("static", sids[0], sgen, "t", map[int32]int64{0: 1})
	big.Topics[0].Partitions[0].Metadata = kmsg.StringPtr(string(make([]byte, 5000)))
	wantCode(t, "metadata too large", commitCodes(m.commit(big).get(t))[0], kerr.OffsetMetadataTooLarge.Code)
}

func TestGroupMaxSize(t *testing.T) {
	cfg := testConfig()
	cfg.MaxGroupSize = 2
	m := newMachine(t, cfg)
	m.stableGroup("g", 2, nil)
	r := m.join(joinReq("g", "")).get(t)
	wantCode(t, "third member", r.ErrorCode, kerr.GroupMaxSizeReached.Code)
	if len(m.group("g").pending) != 0 {
		t.Fatal("rejected member left pending")
	}
}

func TestSelectProtocol(t *testing.T) {
	g := newGroup("g", t0)
	add := func(id string, names ...string) {
		var ps []kmsg.JoinGroupRequestProtocol
		for _, n := range names {
			ps = append(ps, kmsg.JoinGroupRequestProtocol{Name: n})
		}
		g.add(&member{id: id, protocols: ps, protocolType: "consumer"}, nil)
	}
	add("a", "range", "roundrobin", "sticky")
	add("b", "sticky", "roundrobin")
	add("c", "roundrobin", "sticky")
	g.state = stateStable
	// Candidates: roundrobin, sticky. Votes: a→roundrobin, b→sticky,
	// c→roundrobin.
	if p := g.selectProtocol(); p != "roundrobin" {
		t.Fatalf("selected %q", p)
	}
	if !g.supportsProtocols("consumer", []kmsg.JoinGroupRequestProtocol{{Name: "sticky"}}) ||
		g.supportsProtocols("consumer", []kmsg.JoinGroupRequestProtocol{{Name: "range"}}) {
		t.Fatal("supportsProtocols")
	}
}

func TestPartitionFor(t *testing.T) {
	for _, tc := range []struct {
		group string
		want  int32
	}{
		{"", 0},
		{"a", 97 % 50},
		{"hello", 99162322 % 50},
		{"polygenelubricants", 0}, // hashCode is Integer.MIN_VALUE: Utils.abs gives 0
		{"ü", 252 % 50},
	} {
		if got := partitionFor(tc.group, 50); got != tc.want {
			t.Errorf("partitionFor(%q) = %d, want %d", tc.group, got, tc.want)
		}
	}
}
