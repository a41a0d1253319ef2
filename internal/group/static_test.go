package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func staticMembers(i int, r *kmsg.JoinGroupRequest) {
	r.InstanceID = kmsg.StringPtr([]string{"i0", "i1", "i2"}[i])
}

func TestStaticMemberRestartWithoutRebalance(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 3, staticMembers)
	g := m.group("g")
	leader := ids[0]
	follower := ids[1]
	inst := *g.byID[follower].instanceID

	// The follower restarts within its session: a new JoinGroup with no
	// member id and the same instance id and metadata.
	m.advance(5 * time.Second)
	req := joinReq("g", "")
	req.InstanceID = kmsg.StringPtr(inst)
	r := m.join(req).get(t)
	if r.ErrorCode != 0 || r.Generation != gen || r.MemberID == follower || r.MemberID == "" || r.LeaderID != leader || len(r.Members) != 0 || r.SkipAssignment {
		t.Fatalf("static rejoin: %+v", r)
	}
	if g.state != stateStable || g.generation != gen {
		t.Fatalf("state %v generation %d: the group rebalanced", g.state, g.generation)
	}
	newID := r.MemberID
	s := m.sync(syncReq("g", newID, gen, nil)).get(t)
	if s.ErrorCode != 0 || string(s.MemberAssignment) != follower {
		t.Fatalf("sync after restart: %+v (want the old assignment %q)", s, follower)
	}
	// The others see nothing.
	wantCode(t, "leader heartbeat", m.heartbeat("g", leader, gen, g.byID[leader].instanceID), 0)
	wantCode(t, "new id heartbeat", m.heartbeat("g", newID, gen, kmsg.StringPtr(inst)), 0)
	// The old incarnation is fenced.
	wantCode(t, "old id heartbeat", m.heartbeat("g", follower, gen, kmsg.StringPtr(inst)), kerr.FencedInstanceID.Code)
	wantCode(t, "old id sync", m.sync(&kmsg.SyncGroupRequest{Version: 3, Group: "g", MemberID: follower, Generation: gen, InstanceID: kmsg.StringPtr(inst)}).get(t).ErrorCode, kerr.FencedInstanceID.Code)
	oc := commitReq("g", follower, gen, "t", map[int32]int64{0: 1})
	oc.InstanceID = kmsg.StringPtr(inst)
	wantCode(t, "old id commit", commitCodes(m.commit(oc).get(t))[0], kerr.FencedInstanceID.Code)
	stale := joinReq("g", follower)
	stale.InstanceID = kmsg.StringPtr(inst)
	wantCode(t, "old id join", m.join(stale).get(t).ErrorCode, kerr.FencedInstanceID.Code)

	// The new member id is durable.
	l := newLoader()
	if err := m.log.Read(0, l.batch); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, vm := range l.groups["g"].Members {
		found = found || vm.MemberID == newID && string(vm.Assignment) == follower
	}
	if !found || l.groups["g"].Generation != gen {
		t.Fatalf("stored group does not hold the new member: %+v", l.groups["g"])
	}

	// The leader restarts, v9: it learns it leads, with the members,
	// and is told to skip the assignment (KIP-814).
	lreq := joinReq("g", "")
	lreq.InstanceID = g.byID[leader].instanceID
	lr := m.join(lreq).get(t)
	if lr.ErrorCode != 0 || lr.Generation != gen || lr.LeaderID != lr.MemberID || !lr.SkipAssignment || len(lr.Members) != 3 {
		t.Fatalf("leader static rejoin v9: %+v", lr)
	}
	// Before v9 it is told the old leader id, so it does not assign.
	lreq.Version = 8
	lr2 := m.join(lreq).get(t)
	if lr2.ErrorCode != 0 || lr2.LeaderID != lr.MemberID || lr2.MemberID == lr.MemberID || len(lr2.Members) != 0 {
		t.Fatalf("leader static rejoin v8: %+v", lr2)
	}
	if g.state != stateStable || g.generation != gen {
		t.Fatal("the group rebalanced")
	}
}

func TestStaticMemberProtocolChangeRebalances(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 2, staticMembers)
	g := m.group("g")
	// Restart speaking only a protocol the other member lacks... which
	// the group cannot accept; a protocol both speak that wins the vote
	// changes the selected protocol: a rebalance.
	req := joinReq("g", ids[0])
	req.InstanceID = g.byID[ids[0]].instanceID
	req.Protocols = []kmsg.JoinGroupRequestProtocol{proto("range", "t"), proto("sticky", "t")}
	m.join(req) // leader rejoin: a rebalance (generation +1)
	other := joinReq("g", ids[1])
	other.InstanceID = g.byID[ids[1]].instanceID
	other.Protocols = []kmsg.JoinGroupRequestProtocol{proto("sticky", "t"), proto("range", "t")}
	j2 := m.join(other)
	if r := j2.get(t); r.Generation != gen+1 || *r.Protocol != "range" {
		t.Fatalf("rebalance: %+v", r)
	}
	m.sync(syncReq("g", ids[1], gen+1, nil))
	m.sync(syncReq("g", ids[0], gen+1, map[string][]byte{ids[0]: []byte("a"), ids[1]: []byte("b")}))
	if g.state != stateStable {
		t.Fatal("not stable")
	}
	// Now member 0 restarts preferring sticky: sticky then has 2 votes,
	// so the selected protocol would change: a rebalance.
	restart := joinReq("g", "")
	restart.InstanceID = g.byID[ids[0]].instanceID
	restart.Protocols = []kmsg.JoinGroupRequestProtocol{proto("sticky", "t"), proto("range", "t")}
	j := m.join(restart)
	if j.done() || g.state != statePreparingRebalance {
		t.Fatalf("static member changing the protocol: state %v answered %v", g.state, j.done())
	}
}

func TestStaticMemberSessionExpiry(t *testing.T) {
	m := newMachine(t, testConfig())
	ids, gen := m.stableGroup("g", 2, func(i int, r *kmsg.JoinGroupRequest) {
		staticMembers(i, r)
		r.RebalanceTimeoutMillis = 5_000
	})
	g := m.group("g")
	// Static members are not removed by a rebalance they miss (only by
	// their session timeout, or by not syncing the generation).
	j0 := m.join(&kmsg.JoinGroupRequest{Version: 9, Group: "g", MemberID: ids[0], InstanceID: g.byID[ids[0]].instanceID,
		SessionTimeoutMillis: 10_000, RebalanceTimeoutMillis: 5_000, ProtocolType: "consumer",
		Protocols: []kmsg.JoinGroupRequestProtocol{proto("range", "t")}})
	m.advance(6 * time.Second) // rebalance timeout passes; member 1 is static: kept
	r := j0.get(t)
	if r.Generation != gen+1 || len(r.Members) != 2 {
		t.Fatalf("join: %+v", r)
	}
	if g.byID[ids[1]] == nil {
		t.Fatal("static member removed by the rebalance timeout")
	}
	m.advance(5 * time.Second) // it never synced generation gen+1
	if g.byID[ids[1]] != nil || g.static["i1"] != "" {
		t.Fatal("static member not removed")
	}
}
