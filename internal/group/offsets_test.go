package group

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestOffsetFetchMissingGroup(t *testing.T) {
	m := newMachine(t, testConfig())
	p := m.fetchOffset("nope", "t", 3)
	if p.ErrorCode != 0 || p.Offset != -1 || p.LeaderEpoch != -1 || *p.Metadata != "" {
		t.Fatalf("fetch from a missing group: %+v", p)
	}
	var all kmsg.OffsetFetchResponseGroup
	m.step(&fetchEvent{group: kmsg.OffsetFetchRequestGroup{Group: "nope"}, reply: func(r kmsg.OffsetFetchResponseGroup) { all = r }})
	if all.ErrorCode != 0 || len(all.Topics) != 0 {
		t.Fatalf("fetch all from a missing group: %+v", all)
	}
	if m.group("nope") != nil {
		t.Fatal("fetch created a group")
	}
}

func TestSimpleCommitAndFetch(t *testing.T) {
	m := newMachine(t, testConfig())
	r := m.commit(commitReq("simple", "", -1, "t", map[int32]int64{0: 10, 1: 20})).get(t)
	for _, c := range commitCodes(r) {
		wantCode(t, "simple commit", c, 0)
	}
	p := m.fetchOffset("simple", "t", 1)
	if p.Offset != 20 || p.LeaderEpoch != 7 || *p.Metadata != "md-1" {
		t.Fatalf("fetched %+v", p)
	}
	if g := m.group("simple"); g == nil || g.state != stateEmpty || g.protocolType != "" {
		t.Fatal("simple commit did not create an Empty group")
	}
	d := m.describe("simple")
	if d.State != "Empty" || d.ProtocolType != "" {
		t.Fatalf("describe %+v", d)
	}
	if d := m.describe("nope"); d.State != "Dead" || d.ErrorCode != 0 {
		t.Fatalf("describe missing %+v", d)
	}
}

func TestCommitAnsweredOnlyWhenDurable(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 1, nil)
	m.hold = true
	res := m.commit(commitReq("g", ids[0], gen, "t", map[int32]int64{0: 5}))
	if res.done() {
		t.Fatal("commit answered before its append")
	}
	if p := m.fetchOffset("g", "t", 0); p.Offset != -1 {
		t.Fatalf("uncommitted offset visible: %+v", p)
	}
	m.hold = false
	m.flush()
	wantCode(t, "commit", commitCodes(res.get(t))[0], 0)
	if p := m.fetchOffset("g", "t", 0); p.Offset != 5 {
		t.Fatalf("committed offset not visible: %+v", p)
	}

	// A failed append answers an error and stores nothing.
	m.log.failErr = errors.New("disk on fire")
	res = m.commit(commitReq("g", ids[0], gen, "t", map[int32]int64{0: 6}))
	wantCode(t, "failed commit", commitCodes(res.get(t))[0], kerr.NotCoordinator.Code)
	if p := m.fetchOffset("g", "t", 0); p.Offset != 5 {
		t.Fatalf("failed commit visible: %+v", p)
	}
}

func TestCommitsSurviveReload(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 2, staticMembers)
	m.commit(commitReq("g", ids[0], gen, "t", map[int32]int64{0: 100, 1: 101}))
	m.commit(commitReq("g", ids[1], gen, "t", map[int32]int64{1: 111})) // last wins
	m.commit(commitReq("simple", "", -1, "u", map[int32]int64{0: 7}))
	m.commit(commitReq("gone", "", -1, "u", map[int32]int64{0: 1}))
	if r := m.deleteGroups("gone"); r[0].ErrorCode != 0 {
		t.Fatal(r)
	}

	m2 := newMachineOn(t, testConfig(), m.log, m.now.Add(time.Second))
	for _, tc := range []struct {
		group, topic string
		p            int32
		want         int64
	}{{"g", "t", 0, 100}, {"g", "t", 1, 111}, {"simple", "u", 0, 7}, {"gone", "u", 0, -1}} {
		p := m2.fetchOffset(tc.group, tc.topic, tc.p)
		if p.Offset != tc.want {
			t.Errorf("%s %s/%d after reload: %d, want %d", tc.group, tc.topic, tc.p, p.Offset, tc.want)
		}
		if tc.want >= 0 && (p.LeaderEpoch != 7 || *p.Metadata == "") {
			t.Errorf("leader epoch / metadata lost: %+v", p)
		}
	}
	g := m2.group("g")
	if g == nil || g.state != stateStable || g.generation != gen || len(g.members) != 2 || g.leader != ids[0] || g.protocol != "range" {
		t.Fatalf("group after reload: %+v", g)
	}
	if m2.group("gone") != nil {
		t.Fatal("deleted group came back")
	}
	// The static member restarts against the reloaded coordinator and
	// gets its assignment back with no rebalance.
	req := joinReq("g", "")
	req.InstanceID = g.byID[ids[1]].instanceID
	r := m2.join(req).get(t)
	if r.ErrorCode != 0 || r.Generation != gen {
		t.Fatalf("static rejoin after reload: %+v", r)
	}
	s := m2.sync(syncReq("g", r.MemberID, gen, nil)).get(t)
	if string(s.MemberAssignment) != ids[1] || g.state != stateStable {
		t.Fatalf("sync after reload: %+v", s)
	}
	// Members that never come back expire.
	m2.advance(6 * time.Second)
	wantCode(t, "heartbeat", m2.heartbeat("g", r.MemberID, gen, req.InstanceID), 0)
	m2.advance(5 * time.Second)
	if len(g.members) != 1 {
		t.Fatalf("%d members after the session timeout, want 1", len(g.members))
	}
}

// longSession keeps a member alive across hours of test time when
// heartbeated every half hour.
func longSession(_ int, r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 3_600_000 }

func (m *machine) heartbeatFor(d time.Duration, group, member string, gen int32) {
	m.t.Helper()
	for end := m.now.Add(d); m.now.Before(end); {
		m.advance(30 * time.Minute)
		wantCode(m.t, "heartbeat", m.heartbeat(group, member, gen, nil), 0)
	}
}

func TestRetention(t *testing.T) {
	cfg := testConfig() // retention 24 h, checked every minute
	m := newMachine(t, cfg)

	// A simple group: retention counts from each commit.
	m.commit(commitReq("simple", "", -1, "t", map[int32]int64{0: 1}))
	// A consumer group that empties: retention counts from then.
	ids, gen := m.stableGroup("cg", 1, longSession)
	m.commit(commitReq("cg", ids[0], gen, "t", map[int32]int64{0: 3}))
	m.heartbeatFor(12*time.Hour, "cg", ids[0], gen)
	m.commit(commitReq("simple", "", -1, "t", map[int32]int64{1: 2}))
	m.heartbeatFor(time.Hour, "cg", ids[0], gen)
	leave := kmsg.NewLeaveGroupRequest()
	leave.Version = 0
	leave.Group, leave.MemberID = "cg", ids[0]
	wantCode(t, "leave", m.leave(&leave).ErrorCode, 0) // t=13h
	if g := m.group("cg"); g.state != stateEmpty {
		t.Fatalf("state %v, want Empty", g.state)
	}

	m.advance(17 * time.Hour) // t=30h
	if p := m.fetchOffset("simple", "t", 0); p.Offset != -1 {
		t.Errorf("simple offset committed 30 h ago not expired: %+v", p)
	}
	if p := m.fetchOffset("simple", "t", 1); p.Offset != 2 {
		t.Errorf("simple offset committed 18 h ago expired: %+v", p)
	}
	if p := m.fetchOffset("cg", "t", 0); p.Offset != 3 {
		t.Errorf("consumer group offset (committed 30 h ago) expired 17 h after the group emptied: %+v", p)
	}
	m.advance(8 * time.Hour) // t=38h: empty for 25 h
	if p := m.fetchOffset("cg", "t", 0); p.Offset != -1 {
		t.Errorf("consumer group offset not expired 25 h after the group emptied: %+v", p)
	}
	if m.group("cg") != nil || m.group("simple") != nil {
		t.Error("groups with every offset expired were not removed")
	}
	// The tombstones are in the log: a reload has nothing.
	m2 := newMachineOn(t, cfg, m.log, m.now)
	if len(m2.s.groups) != 0 {
		t.Fatalf("after reload: %d groups", len(m2.s.groups))
	}
	tombstones := 0
	for _, r := range m.log.records(t, 0) {
		if r.value == nil {
			tombstones++
		}
	}
	if tombstones < 5 { // 3 offsets, 2 groups
		t.Fatalf("%d tombstones", tombstones)
	}
}

func TestRetentionStableConsumerGroup(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 1, longSession) // subscribed to "t"
	m.commit(commitReq("g", ids[0], gen, "t", map[int32]int64{0: 1}))
	m.commit(commitReq("g", ids[0], gen, "old", map[int32]int64{0: 1}))
	m.heartbeatFor(25*time.Hour, "g", ids[0], gen)
	if p := m.fetchOffset("g", "old", 0); p.Offset != -1 {
		t.Errorf("offset of an unsubscribed topic not expired: %+v", p)
	}
	if p := m.fetchOffset("g", "t", 0); p.Offset != 1 {
		t.Errorf("offset of a subscribed topic expired: %+v", p)
	}
}

func TestDeleteGroupsAndOffsets(t *testing.T) {
	m := newMachine(t, testConfig())
	m.commit(commitReq("a", "", -1, "t", map[int32]int64{0: 1, 1: 2}))
	ids, gen := m.stableGroup("b", 1, nil)
	m.commit(commitReq("b", ids[0], gen, "t", map[int32]int64{0: 1}))
	m.commit(commitReq("b", ids[0], gen, "u", map[int32]int64{0: 1}))

	out := m.deleteGroups("a", "b", "c")
	want := []int16{0, kerr.NonEmptyGroup.Code, kerr.GroupIDNotFound.Code}
	for i, w := range want {
		wantCode(t, "delete "+out[i].Group, out[i].ErrorCode, w)
	}
	if m.group("a") != nil {
		t.Fatal("deleted group still there")
	}

	// OffsetDelete: subscribed topics are refused while members consume.
	od := &kmsg.OffsetDeleteRequest{Group: "b", Topics: []kmsg.OffsetDeleteRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}, {Partition: 9}}},
	}}
	var r *kmsg.OffsetDeleteResponse
	m.step(&offsetDeleteEvent{req: od, reply: func(x *kmsg.OffsetDeleteResponse) { r = x }})
	if r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code ||
		r.Topics[1].Partitions[0].ErrorCode != 0 || r.Topics[1].Partitions[1].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", r)
	}
	if p := m.fetchOffset("b", "u", 0); p.Offset != -1 {
		t.Fatal("deleted offset still there")
	}
	od.Group = "nope"
	m.step(&offsetDeleteEvent{req: od, reply: func(x *kmsg.OffsetDeleteResponse) { r = x }})
	wantCode(t, "offset delete, missing group", r.ErrorCode, kerr.GroupIDNotFound.Code)

	m2 := newMachineOn(t, testConfig(), m.log, m.now)
	if m2.group("a") != nil {
		t.Fatal("deleted group back after reload")
	}
	if p := m2.fetchOffset("b", "u", 0); p.Offset != -1 {
		t.Fatal("deleted offset back after reload")
	}
	if p := m2.fetchOffset("b", "t", 0); p.Offset != 1 {
		t.Fatal("kept offset lost after reload")
	}
}

func TestOffsetCommitRetentionTimeV2(t *testing.T) {
	m := newMachine(t, testConfig())
	req := commitReq("old", "", -1, "t", map[int32]int64{0: 1})
	req.Version = 2
	req.RetentionTimeMillis = int64(time.Hour / time.Millisecond)
	m.commit(req)
	m.advance(61 * time.Minute)
	if p := m.fetchOffset("old", "t", 0); p.Offset != -1 {
		t.Fatalf("offset with a 1 h retention time still there: %+v", p)
	}
}
