package group

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is the state of a classic group, as Kafka names them.
//
//	Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//	  ▲                ▲        │ (no member left)                    │ leader's SyncGroup
//	  └────────────────┼────────┘                                     ▼ (assignment durable)
//	                   └──── join (leader / new metadata), leave, expiry ── Stable
//	Empty ──DeleteGroups / offsets expired──▶ Dead (removed)
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s groupState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

// consumerProtocolType is the protocol type of Kafka consumers, whose
// member metadata is a kmsg.ConsumerMemberMetadata.
const consumerProtocolType = "consumer"

// group is one classic consumer group.
type group struct {
	id        string
	state     groupState
	prevState groupState
	stateTime time.Time // when state was entered (Kafka's currentStateTimestamp); zero if unknown

	protocolType string // "" for a group only used to store offsets (a "simple" group)
	protocol     string // selected protocol; "" when none
	generation   int32
	leader       string // "" when none

	members      []*member // in join order
	byID         map[string]*member
	pending      map[string]time.Time // KIP-394: ids handed out with MEMBER_ID_REQUIRED → expiry
	static       map[string]string    // group.instance.id → member id
	supported    map[string]int       // protocol → members supporting it
	awaitingJoin int                  // members with a parked JoinGroup
	pendingSync  map[string]bool      // members yet to send SyncGroup this generation

	newMemberAdded bool // a member joined during the initial rebalance delay
	join           joinTimer
	syncDeadline   time.Time // pending-sync timer; zero when off
	syncGeneration int32     // the generation syncDeadline belongs to

	// subscribed holds the topics the members subscribe to (consumer
	// protocol), nil when unknown.
	subscribed map[string]bool

	offsets        map[string]map[int32]offset
	pendingCommits map[topicPartition]int // commits being written

	armedAt time.Time // deadline of the group's entry in the timer heap
	removed bool      // Dead and dropped from the partition
}

// joinTimer is the deadline of the join phase (PreparingRebalance): the
// rebalance timeout, or a step of the initial rebalance delay (Kafka's
// InitialDelayedJoin), which extends while new members arrive.
type joinTimer struct {
	at        time.Time // zero when off
	initial   bool
	delay     time.Duration
	remaining time.Duration
}

func newGroup(id string, now time.Time) *group {
	return &group{
		id:             id,
		state:          stateEmpty,
		prevState:      stateEmpty,
		stateTime:      now,
		byID:           make(map[string]*member),
		pending:        make(map[string]time.Time),
		static:         make(map[string]string),
		supported:      make(map[string]int),
		pendingSync:    make(map[string]bool),
		offsets:        make(map[string]map[int32]offset),
		pendingCommits: make(map[topicPartition]int),
	}
}

func (g *group) transition(to groupState, now time.Time) {
	g.prevState = g.state
	g.state = to
	g.stateTime = now
}

// canRebalance: the states PreparingRebalance may be entered from.
func (g *group) canRebalance() bool {
	return g.state == stateStable || g.state == stateCompletingRebalance || g.state == stateEmpty
}

func (g *group) hasAllMembersJoined() bool {
	return len(g.members) == g.awaitingJoin && len(g.pending) == 0
}

// rebalanceTimeout is the largest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// add adds a new member; reply is its parked JoinGroup (nil for none).
func (g *group) add(m *member, reply *joinWaiter) {
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.members = append(g.members, m)
	g.byID[m.id] = m
	for _, p := range m.protocols {
		g.supported[p.Name]++
	}
	m.joinReply = reply
	if reply != nil {
		g.awaitingJoin++
	}
	delete(g.pending, m.id)
}

// remove drops a member (or a pending member id). A JoinGroup or SyncGroup
// it still has parked is answered UNKNOWN_MEMBER_ID; callers that want
// another answer give it first.
func (g *group) remove(id string) {
	delete(g.pending, id)
	m := g.byID[id]
	if m == nil {
		return
	}
	g.answerJoin(m, func(r *kmsg.JoinGroupResponse) { r.ErrorCode = kerr.UnknownMemberID.Code })
	g.answerSync(m, kerr.UnknownMemberID.Code, false)
	delete(g.byID, id)
	g.members = slices.DeleteFunc(g.members, func(x *member) bool { return x == m })
	for _, p := range m.protocols {
		g.supported[p.Name]--
		if g.supported[p.Name] <= 0 {
			delete(g.supported, p.Name)
		}
	}
	if m.instanceID != nil && g.static[*m.instanceID] == id {
		delete(g.static, *m.instanceID)
	}
	delete(g.pendingSync, id)
	if g.leader == id {
		g.leader = ""
		if len(g.members) > 0 {
			g.leader = g.members[0].id
		}
	}
}

// updateMember takes a rejoining member's new protocols and timeouts and
// parks its JoinGroup (reply may be nil, to unpark).
func (g *group) updateMember(m *member, protocols []kmsg.JoinGroupRequestProtocol, rebalance, session time.Duration, reply *joinWaiter) {
	for _, p := range m.protocols {
		g.supported[p.Name]--
		if g.supported[p.Name] <= 0 {
			delete(g.supported, p.Name)
		}
	}
	m.protocols = protocols
	for _, p := range m.protocols {
		g.supported[p.Name]++
	}
	m.rebalanceTimeout, m.sessionTimeout = rebalance, session
	if old := m.joinReply; old != nil && reply != nil {
		// A retried JoinGroup replaces one whose connection is gone;
		// answer the old one so nothing waits on it.
		m.joinReply = nil
		g.awaitingJoin--
		r := &kmsg.JoinGroupResponse{Version: old.version}
		r.Default()
		r.ErrorCode = kerr.RebalanceInProgress.Code
		r.MemberID = m.id
		old.reply(r)
	}
	switch {
	case reply != nil && m.joinReply == nil:
		g.awaitingJoin++
	case reply == nil && m.joinReply != nil:
		g.awaitingJoin--
	}
	m.joinReply = reply
}

// replaceStaticMember gives a static member a new member id (KIP-345): the
// old id is fenced, the new member keeps the old one's protocols,
// assignment, leadership and place.
func (g *group) replaceStaticMember(instance, oldID, newID string) *member {
	old := g.byID[oldID]
	g.answerJoin(old, func(r *kmsg.JoinGroupResponse) {
		r.ErrorCode = kerr.FencedInstanceID.Code
		r.MemberID = oldID
	})
	g.answerSync(old, kerr.FencedInstanceID.Code, false)
	m := &member{
		id:               newID,
		instanceID:       old.instanceID,
		clientID:         old.clientID,
		clientHost:       old.clientHost,
		protocolType:     old.protocolType,
		protocols:        old.protocols,
		sessionTimeout:   old.sessionTimeout,
		rebalanceTimeout: old.rebalanceTimeout,
		assignment:       old.assignment,
	}
	delete(g.byID, oldID)
	g.byID[newID] = m
	g.members[slices.Index(g.members, old)] = m
	if g.leader == oldID {
		g.leader = newID
	}
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = true
	}
	g.static[instance] = newID
	return m
}

// validateMember is Kafka's ClassicGroup.validateMember.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		known, ok := g.static[*instanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if known != memberID {
			return kerr.FencedInstanceID.Code
		}
	}
	if g.byID[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

// supportsProtocols: can a member with these protocols join? An Empty
// group takes any non-empty set; otherwise the type must match and one of
// the protocols must be supported by every member.
func (g *group) supportsProtocols(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if g.state == stateEmpty {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supported[p.Name] == len(g.members) {
			return true
		}
	}
	return false
}

// selectProtocol is Kafka's: among the protocols every member supports,
// each member votes for its most preferred; the most votes win. Kafka
// breaks ties arbitrarily (a hash map); we pick the candidate that comes
// first in the members' preference lists, in join order, so the choice is
// deterministic.
func (g *group) selectProtocol() string {
	candidates := make(map[string]bool)
	for p, n := range g.supported {
		if n == len(g.members) {
			candidates[p] = true
		}
	}
	votes := make(map[string]int)
	var order []string
	for _, m := range g.members {
		v := m.vote(candidates)
		if v == "" {
			continue
		}
		if votes[v] == 0 {
			order = append(order, v)
		}
		votes[v]++
	}
	best := ""
	for _, p := range order {
		if votes[p] > votes[best] {
			best = p
		}
	}
	return best
}

// maybeElectNewJoinedLeader keeps the leader if it rejoined, else picks a
// member that did; false if nobody rejoined.
func (g *group) maybeElectNewJoinedLeader() bool {
	if g.leader == "" {
		return false
	}
	if l := g.byID[g.leader]; l != nil && l.awaitingJoin() {
		return true
	}
	for _, m := range g.members {
		if m.awaitingJoin() {
			g.leader = m.id
			return true
		}
	}
	return false
}

// initNextGeneration bumps the generation and selects the protocol.
func (g *group) initNextGeneration(now time.Time) {
	g.generation++
	if len(g.members) > 0 {
		g.protocol = g.selectProtocol()
		g.subscribed = g.computeSubscribedTopics()
		g.transition(stateCompletingRebalance, now)
	} else {
		g.protocol = ""
		g.subscribed = g.computeSubscribedTopics()
		g.transition(stateEmpty, now)
	}
	clear(g.pendingSync)
}

// computeSubscribedTopics parses the consumer-protocol subscriptions of
// the members; nil (unknown) for other protocol types or when one does
// not parse.
func (g *group) computeSubscribedTopics() map[string]bool {
	if g.protocolType != consumerProtocolType {
		return nil
	}
	topics := make(map[string]bool)
	if len(g.members) == 0 {
		return topics
	}
	if g.protocol == "" {
		return nil
	}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return nil
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	}
	return topics
}

// isSubscribedToTopic: an unknown subscription counts as not subscribed,
// as in Kafka.
func (g *group) isSubscribedToTopic(topic string) bool {
	return g.subscribed != nil && g.subscribed[topic]
}

// nextDeadline is the group's earliest timer.
func (g *group) nextDeadline() time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	earlier(g.join.at)
	earlier(g.syncDeadline)
	for _, t := range g.pending {
		earlier(t)
	}
	for _, m := range g.members {
		earlier(m.deadline)
	}
	return next
}

// answerJoin answers the member's parked JoinGroup, if any, with a
// response filled by fill.
func (g *group) answerJoin(m *member, fill func(*kmsg.JoinGroupResponse)) {
	w := m.joinReply
	if w == nil {
		return
	}
	m.joinReply = nil
	g.awaitingJoin--
	r := &kmsg.JoinGroupResponse{Version: w.version}
	r.Default()
	fill(r)
	w.reply(r)
}

// fillJoin fills a successful join response for member id.
func (g *group) fillJoin(r *kmsg.JoinGroupResponse, id, leader string, withMembers bool) {
	r.MemberID = id
	r.Generation = g.generation
	r.ProtocolType = optString(g.protocolType)
	r.Protocol = optString(g.protocol)
	r.LeaderID = leader
	if withMembers {
		r.Members = g.joinMembers()
	}
}

// joinMembers is what the leader needs to assign: every member's metadata
// for the selected protocol.
func (g *group) joinMembers() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.members))
	for _, m := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = m.instanceID
		jm.ProtocolMetadata = m.metadataFor(g.protocol)
		out = append(out, jm)
	}
	return out
}

// answerSync answers the member's parked SyncGroup, if any. With ok the
// response carries the protocol and the member's assignment.
func (g *group) answerSync(m *member, code int16, ok bool) bool {
	w := m.syncReply
	if w == nil {
		return false
	}
	m.syncReply = nil
	r := &kmsg.SyncGroupResponse{Version: w.version}
	r.Default()
	r.ErrorCode = code
	if ok {
		r.ProtocolType = optString(g.protocolType)
		r.Protocol = optString(g.protocol)
		r.MemberAssignment = m.assignment
	}
	w.reply(r)
	return true
}

// optString is nil for "" (Kafka's empty Optional).
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// isEmptyShell reports a group that holds nothing: no members, no pending
// ids, no offsets, nothing being written. Such a group, created by a
// request that then failed, is dropped again.
func (g *group) isEmptyShell() bool {
	return g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 &&
		len(g.offsets) == 0 && len(g.pendingCommits) == 0 && g.generation == 0
}
