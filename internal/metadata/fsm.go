package metadata

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// fsm is the replicated state machine. Apply is deterministic: no
// goroutines, no clock, no randomness, no I/O (randomness such as topic ids
// and replica placement is decided by the leader and carried in commands).
// Readers take mu.RLock and get copies.
type fsm struct {
	mu struct {
		sync.RWMutex
		st state
	}
	// notify receives the events of each applied command after mu is
	// released. Set before raft starts; never nil.
	notify func([]Event)
	// applied is the Raft index of the last applied command (raft's own
	// AppliedIndex runs ahead of the FSM). Carried in snapshots.
	applied struct {
		sync.Mutex
		index uint64
		ch    chan struct{} // closed and replaced on every change
	}
}

// state is the whole cluster metadata. Methods named ...Locked expect the
// caller to hold fsm.mu (read lock for checks, write lock for mutations).
type state struct {
	clusterID     string
	brokers       map[int32]Broker
	topics        map[string]*Topic
	topicIDs      map[[16]byte]string
	brokerConfigs map[string]string
	// nextProducerID is the first producer id not yet allocated.
	nextProducerID int64
}

func newState() state {
	return state{
		brokers:       map[int32]Broker{},
		topics:        map[string]*Topic{},
		topicIDs:      map[[16]byte]string{},
		brokerConfigs: map[string]string{},
	}
}

func newFSM(notify func([]Event)) *fsm {
	if notify == nil {
		notify = func([]Event) {}
	}
	f := &fsm{notify: notify}
	f.mu.st = newState()
	f.applied.ch = make(chan struct{})
	return f
}

// applyResult is what FSM.Apply returns to the proposer through
// ApplyFuture.Response.
type applyResult struct {
	err error
	// first is the first id of an allocated producer-id block.
	first int64
	// part is a partition's state after alter_partition.
	part *Partition
	// perPart holds one error (nil = success) per item of elect_leaders
	// and alter_reassignments, in request order.
	perPart []error
}

var _ raft.FSM = (*fsm)(nil)

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return applyResult{}
	}
	defer f.setApplied(l.Index)
	body, err := decodeCommand(l.Data)
	if err != nil {
		return applyResult{err: err}
	}
	f.mu.Lock()
	res, events := f.mu.st.applyCommandLocked(l.Index, body)
	f.mu.Unlock()
	if len(events) > 0 {
		f.notify(events)
	}
	return res
}

// applyCommandLocked applies one decoded command and returns the result
// for the proposer and the events for subscribers.
func (st *state) applyCommandLocked(index uint64, body any) (applyResult, []Event) {
	switch c := body.(type) {
	case *allocateProducerIDsCmd:
		first, err := st.allocateProducerIDsLocked(c)
		return applyResult{err: err, first: first}, nil
	case *alterPartitionCmd:
		p, events, err := st.alterPartitionLocked(c)
		if err != nil {
			return applyResult{err: err}, nil
		}
		return applyResult{part: &p}, events
	case *electLeadersCmd:
		per, events := st.electLeadersLocked(c)
		return applyResult{perPart: per}, events
	case *reassignCmd:
		per, events := st.reassignLocked(c)
		return applyResult{perPart: per}, events
	}
	events, err := st.applyLocked(index, body)
	if err != nil {
		return applyResult{err: err}, nil
	}
	return applyResult{}, events
}

// setApplied records the index of the last applied command (after its
// subscribers ran) and wakes waitApplied.
func (f *fsm) setApplied(index uint64) {
	f.applied.Lock()
	if index > f.applied.index {
		f.applied.index = index
	}
	close(f.applied.ch)
	f.applied.ch = make(chan struct{})
	f.applied.Unlock()
}

// appliedIndex is the Raft index of the last command applied here.
func (f *fsm) appliedIndex() uint64 {
	f.applied.Lock()
	defer f.applied.Unlock()
	return f.applied.index
}

// waitApplied blocks until the command at index (or a later one) has been
// applied here and its subscribers called.
func (f *fsm) waitApplied(ctx context.Context, index uint64) error {
	for {
		f.applied.Lock()
		done, ch := f.applied.index >= index, f.applied.ch
		f.applied.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("metadata: waiting for index %d to be applied: %w", index, ctx.Err())
		}
	}
}

// applyLocked validates and applies one decoded command. On error the state
// is unchanged.
func (st *state) applyLocked(index uint64, body any) ([]Event, error) {
	switch c := body.(type) {
	case *initClusterCmd:
		if st.clusterID == "" {
			st.clusterID = c.ClusterID
		}
		return nil, nil

	case *registerBrokerCmd:
		if c.NodeID < 0 {
			return nil, kerrorf(kerr.InvalidRequest, "invalid node id %d", c.NodeID)
		}
		st.brokers[c.NodeID] = Broker{NodeID: c.NodeID, Host: c.Host, Port: c.Port, Rack: c.Rack, Epoch: int64(index), UncleanRestart: c.Unclean}
		events := []Event{{Kind: BrokerRegistered, NodeID: c.NodeID}}
		if c.Unclean {
			events = append(events, st.brokerUncleanLocked(c.NodeID)...)
		}
		return append(events, st.brokerLiveLocked(c.NodeID)...), nil

	case *fenceBrokerCmd:
		b, err := st.brokerEpochLocked(c.NodeID, c.Epoch)
		if err != nil || b.Fenced {
			return nil, err
		}
		b.Fenced = true
		st.brokers[c.NodeID] = b
		events := []Event{{Kind: BrokerFenced, NodeID: c.NodeID}}
		return append(events, st.brokerGoneLocked(c.NodeID)...), nil

	case *unfenceBrokerCmd:
		b, err := st.brokerEpochLocked(c.NodeID, c.Epoch)
		if err != nil || !b.Fenced {
			return nil, err
		}
		b.Fenced = false
		st.brokers[c.NodeID] = b
		events := []Event{{Kind: BrokerUnfenced, NodeID: c.NodeID}}
		return append(events, st.brokerLiveLocked(c.NodeID)...), nil

	case *controlledShutdownCmd:
		b, err := st.brokerEpochLocked(c.NodeID, c.Epoch)
		if err != nil || b.InControlledShutdown {
			return nil, err
		}
		b.InControlledShutdown = true
		st.brokers[c.NodeID] = b
		events := []Event{{Kind: BrokerControlledShutdown, NodeID: c.NodeID}}
		return append(events, st.brokerGoneLocked(c.NodeID)...), nil

	case *createTopicCmd:
		if err := st.checkCreateTopicLocked(c); err != nil {
			return nil, err
		}
		t := &Topic{Name: c.Name, ID: c.ID, Internal: c.Internal, Configs: maps.Clone(c.Configs)}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		t.Partitions = newPartitions(0, c.Replicas, st.liveLocked)
		st.topics[c.Name] = t
		st.topicIDs[c.ID] = c.Name
		return []Event{{Kind: TopicCreated, Topic: c.Name}}, nil

	case *deleteTopicCmd:
		t, err := st.topicLocked(c.Name, c.ID)
		if err != nil {
			return nil, err
		}
		delete(st.topics, t.Name)
		delete(st.topicIDs, t.ID)
		return []Event{{Kind: TopicDeleted, Topic: t.Name}}, nil

	case *createPartitionsCmd:
		t, err := st.topicLocked(c.Name, c.ID)
		if err != nil {
			return nil, err
		}
		if err := st.checkCreatePartitionsLocked(t, c); err != nil {
			return nil, err
		}
		t.Partitions = append(t.Partitions, newPartitions(int32(len(t.Partitions)), c.Replicas, st.liveLocked)...)
		return []Event{{Kind: PartitionsAdded, Topic: t.Name}}, nil

	case *alterTopicConfigsCmd:
		t, err := st.topicLocked(c.Name, [16]byte{})
		if err != nil {
			return nil, err
		}
		next, err := applyConfigOps(t.Configs, fromConfigOps(c.Ops), c.Replace)
		if err != nil {
			return nil, err
		}
		if maps.Equal(next, t.Configs) {
			return nil, nil
		}
		t.Configs = next
		return []Event{{Kind: TopicConfigChanged, Topic: t.Name}}, nil

	case *setBrokerConfigsCmd:
		next, err := applyBrokerConfigOps(st.brokerConfigs, fromConfigOps(c.Ops), c.Replace)
		if err != nil {
			return nil, err
		}
		if maps.Equal(next, st.brokerConfigs) {
			return nil, nil
		}
		st.brokerConfigs = next
		return []Event{{Kind: BrokerConfigChanged}}, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownCommand, body)
}

// MaxProducerIDBlock bounds one producer-id allocation.
const MaxProducerIDBlock = 1 << 20

// allocateProducerIDsLocked reserves c.Count ids and returns the first.
func (st *state) allocateProducerIDsLocked(c *allocateProducerIDsCmd) (int64, error) {
	if c.Count <= 0 || c.Count > MaxProducerIDBlock {
		return -1, kerrorf(kerr.InvalidRequest, "producer id block of %d ids", c.Count)
	}
	if st.nextProducerID > math.MaxInt64-int64(c.Count) {
		return -1, kerrorf(kerr.UnknownServerError, "producer ids exhausted")
	}
	first := st.nextProducerID
	st.nextProducerID += int64(c.Count)
	return first, nil
}

// newPartitions builds new partitions: the ISR is the live replicas, the
// leader the first of them. With no live replica the ISR is every replica
// and there is no leader until one returns.
func newPartitions(first int32, replicas [][]int32, live func(int32) bool) []Partition {
	ps := make([]Partition, len(replicas))
	for i, r := range replicas {
		p := Partition{ID: first + int32(i), Leader: -1, Replicas: slices.Clone(r)}
		for _, b := range r {
			if live(b) {
				p.ISR = append(p.ISR, b)
			}
		}
		if len(p.ISR) > 0 {
			p.Leader = p.ISR[0]
		} else {
			p.ISR = slices.Clone(r)
		}
		ps[i] = p
	}
	return ps
}

// topicLocked finds a topic by name; a non-zero id must match too.
func (st *state) topicLocked(name string, id [16]byte) (*Topic, error) {
	t, ok := st.topics[name]
	if !ok || (id != [16]byte{} && t.ID != id) {
		return nil, kerrorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	return t, nil
}

func (st *state) checkCreateTopicLocked(c *createTopicCmd) error {
	if err := validateTopicName(c.Name); err != nil {
		return err
	}
	if _, ok := st.topics[c.Name]; ok {
		return kerrorf(kerr.TopicAlreadyExists, "topic %q already exists", c.Name)
	}
	if other, ok := st.collidingTopicLocked(c.Name); ok {
		return kerrorf(kerr.InvalidTopicException, "topic %q collides with existing topic %q ('.' and '_' collide in metric names)", c.Name, other)
	}
	if c.ID == [16]byte{} {
		return kerrorf(kerr.InvalidRequest, "topic %q: zero topic id", c.Name)
	}
	if _, ok := st.topicIDs[c.ID]; ok {
		return kerrorf(kerr.TopicAlreadyExists, "topic id %s already in use", FormatTopicID(c.ID))
	}
	if len(c.Replicas) == 0 {
		return kerrorf(kerr.InvalidPartitions, "topic %q: number of partitions must be larger than 0", c.Name)
	}
	if len(c.Replicas) > MaxPartitions {
		return kerrorf(kerr.InvalidPartitions, "topic %q: %d partitions exceed the limit of %d", c.Name, len(c.Replicas), MaxPartitions)
	}
	if err := st.checkReplicasLocked(c.Replicas, len(c.Replicas[0])); err != nil {
		return err
	}
	return ValidateTopicConfigs(c.Configs)
}

func (st *state) checkCreatePartitionsLocked(t *Topic, c *createPartitionsCmd) error {
	cur := int32(len(t.Partitions))
	if c.Total <= cur {
		return kerrorf(kerr.InvalidPartitions, "topic %q currently has %d partitions, %d would not be an increase", t.Name, cur, c.Total)
	}
	if c.Total > MaxPartitions {
		return kerrorf(kerr.InvalidPartitions, "topic %q: %d partitions exceed the limit of %d", t.Name, c.Total, MaxPartitions)
	}
	if int(c.Total-cur) != len(c.Replicas) {
		return kerrorf(kerr.InvalidReplicaAssignment, "topic %q: %d new partitions but %d assignments", t.Name, c.Total-cur, len(c.Replicas))
	}
	return st.checkReplicasLocked(c.Replicas, len(t.Partitions[0].Replicas))
}

// checkReplicasLocked checks a replica assignment: rf replicas per
// partition, no duplicates, every broker registered.
func (st *state) checkReplicasLocked(replicas [][]int32, rf int) error {
	for p, rs := range replicas {
		if len(rs) == 0 {
			return kerrorf(kerr.InvalidReplicaAssignment, "partition %d has no replicas", p)
		}
		if len(rs) != rf {
			return kerrorf(kerr.InvalidReplicaAssignment, "partition %d has %d replicas, all partitions need %d", p, len(rs), rf)
		}
		for i, b := range rs {
			if slices.Contains(rs[:i], b) {
				return kerrorf(kerr.InvalidReplicaAssignment, "partition %d lists broker %d twice", p, b)
			}
			if _, ok := st.brokers[b]; !ok {
				return kerrorf(kerr.InvalidReplicaAssignment, "partition %d: broker %d is not registered", p, b)
			}
		}
	}
	return nil
}

// collidingTopicLocked reports an existing topic whose name differs from
// name but is equal once '.' is replaced by '_' (Kafka's rule).
func (st *state) collidingTopicLocked(name string) (string, bool) {
	if !strings.ContainsAny(name, "._") {
		return "", false
	}
	key := strings.ReplaceAll(name, ".", "_")
	for other := range st.topics {
		if other != name && strings.ReplaceAll(other, ".", "_") == key {
			return other, true
		}
	}
	return "", false
}

func (st *state) sortedBrokerIDsLocked() []int32 {
	ids := slices.Collect(maps.Keys(st.brokers))
	slices.Sort(ids)
	return ids
}

// ---- reads ----

func (f *fsm) clusterID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.clusterID
}

func (f *fsm) brokers() []Broker {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := slices.Collect(maps.Values(f.mu.st.brokers))
	slices.SortFunc(out, func(a, b Broker) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

func (f *fsm) broker(id int32) (Broker, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, ok := f.mu.st.brokers[id]
	return b, ok
}

// leaderships counts the partitions broker id leads.
func (f *fsm) leaderships(id int32) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, t := range f.mu.st.topics {
		for _, p := range t.Partitions {
			if p.Leader == id {
				n++
			}
		}
	}
	return n
}

func (f *fsm) topic(name string) (Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.mu.st.topics[name]
	if !ok {
		return Topic{}, false
	}
	return t.Clone(), true
}

func (f *fsm) partitionCount(name string) (int32, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.mu.st.topics[name]
	if !ok {
		return 0, false
	}
	return int32(len(t.Partitions)), true
}

func (f *fsm) topicByID(id [16]byte) (Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	name, ok := f.mu.st.topicIDs[id]
	if !ok {
		return Topic{}, false
	}
	return f.mu.st.topics[name].Clone(), true
}

// topicNameByID is topicByID without the copy: the name alone (the
// lookup of every Fetch and Produce by topic id).
func (f *fsm) topicNameByID(id [16]byte) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	name, ok := f.mu.st.topicIDs[id]
	return name, ok
}

func (f *fsm) topics() []Topic {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Topic, 0, len(f.mu.st.topics))
	for _, t := range f.mu.st.topics {
		out = append(out, t.Clone())
	}
	slices.SortFunc(out, func(a, b Topic) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// topicsLocked returns the topics ordered by name, not copied: the caller
// holds mu and must not keep or change them.
func (f *fsm) topicsLocked() []*Topic {
	out := slices.Collect(maps.Values(f.mu.st.topics))
	slices.SortFunc(out, func(a, b *Topic) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fsm) brokerConfigs() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.mu.st.brokerConfigs)
}

// ---- snapshots ----

// snapshotVersion is the version of the snapshot encoding (JSON).
const snapshotVersion = 1

type snapshotData struct {
	V             int               `json:"v"`
	ClusterID     string            `json:"cluster_id"`
	Brokers       []Broker          `json:"brokers"`
	Topics        []topicRec        `json:"topics"`
	BrokerConfigs map[string]string `json:"broker_configs,omitempty"`
	// NextProducerID is the first producer id not yet allocated.
	NextProducerID int64 `json:"next_producer_id,omitempty"`
	// Applied is the Raft index of the last command in the snapshot.
	Applied uint64 `json:"applied,omitempty"`
}

type topicRec struct {
	Name       string            `json:"name"`
	ID         uuid              `json:"id"`
	Internal   bool              `json:"internal,omitempty"`
	Partitions []partitionRec    `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type partitionRec struct {
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch,omitempty"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	Adding         []int32 `json:"adding,omitempty"`
	Removing       []int32 `json:"removing,omitempty"`
}

// dataLocked captures the state as its snapshot form (deep copy, sorted).
func (st *state) dataLocked() snapshotData {
	d := snapshotData{V: snapshotVersion, ClusterID: st.clusterID, BrokerConfigs: maps.Clone(st.brokerConfigs), NextProducerID: st.nextProducerID}
	for _, id := range st.sortedBrokerIDsLocked() {
		d.Brokers = append(d.Brokers, st.brokers[id])
	}
	names := slices.Sorted(maps.Keys(st.topics))
	for _, n := range names {
		t := st.topics[n]
		r := topicRec{Name: t.Name, ID: t.ID, Internal: t.Internal, Configs: maps.Clone(t.Configs)}
		for _, p := range t.Partitions {
			r.Partitions = append(r.Partitions, partitionRec{
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR),
				Adding: slices.Clone(p.AddingReplicas), Removing: slices.Clone(p.RemovingReplicas),
			})
		}
		d.Topics = append(d.Topics, r)
	}
	return d
}

func stateFromData(d snapshotData) (state, error) {
	if d.V != snapshotVersion {
		return state{}, fmt.Errorf("metadata: unsupported snapshot version %d", d.V)
	}
	st := newState()
	st.clusterID = d.ClusterID
	if d.NextProducerID < 0 {
		return state{}, fmt.Errorf("metadata: snapshot next producer id %d", d.NextProducerID)
	}
	st.nextProducerID = d.NextProducerID
	for _, b := range d.Brokers {
		st.brokers[b.NodeID] = b
	}
	for _, r := range d.Topics {
		t := &Topic{Name: r.Name, ID: r.ID, Internal: r.Internal, Configs: r.Configs}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		for i, p := range r.Partitions {
			t.Partitions = append(t.Partitions, Partition{
				ID: int32(i), Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				Replicas: p.Replicas, ISR: p.ISR, AddingReplicas: p.Adding, RemovingReplicas: p.Removing,
			})
		}
		st.topics[t.Name] = t
		st.topicIDs[t.ID] = t.Name
	}
	if d.BrokerConfigs != nil {
		st.brokerConfigs = d.BrokerConfigs
	}
	return st, nil
}

// Snapshot implements raft.FSM: it captures a deep copy under the read
// lock; Persist does the I/O later, off the apply path.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := f.mu.st.dataLocked()
	d.Applied = f.appliedIndex()
	return &fsmSnapshot{data: d}, nil
}

// Restore implements raft.FSM: it replaces the whole state and tells
// subscribers what differs from the state it replaced.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("metadata: decode snapshot: %w", err)
	}
	st, err := stateFromData(d)
	if err != nil {
		return err
	}
	f.mu.Lock()
	events := diffStates(&f.mu.st, &st)
	f.mu.st = st
	f.mu.Unlock()
	if len(events) > 0 {
		f.notify(events)
	}
	f.setApplied(d.Applied)
	return nil
}

// diffStates lists the events that turn a into b, in a deterministic order.
func diffStates(a, b *state) []Event {
	var ev []Event
	for _, id := range b.sortedBrokerIDsLocked() {
		old, ok := a.brokers[id]
		nb := b.brokers[id]
		if !ok || old.Epoch != nb.Epoch || old.Host != nb.Host || old.Port != nb.Port || old.Rack != nb.Rack {
			ev = append(ev, Event{Kind: BrokerRegistered, NodeID: id})
		}
		switch {
		case nb.Fenced && (!ok || !old.Fenced):
			ev = append(ev, Event{Kind: BrokerFenced, NodeID: id})
		case !nb.Fenced && ok && old.Fenced:
			ev = append(ev, Event{Kind: BrokerUnfenced, NodeID: id})
		}
		if nb.InControlledShutdown && (!ok || !old.InControlledShutdown) {
			ev = append(ev, Event{Kind: BrokerControlledShutdown, NodeID: id})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(a.topics)) {
		if nt, ok := b.topics[n]; !ok || nt.ID != a.topics[n].ID {
			ev = append(ev, Event{Kind: TopicDeleted, Topic: n})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(b.topics)) {
		nt := b.topics[n]
		ot, ok := a.topics[n]
		switch {
		case !ok || ot.ID != nt.ID:
			ev = append(ev, Event{Kind: TopicCreated, Topic: n})
		default:
			for i := range min(len(ot.Partitions), len(nt.Partitions)) {
				if op, np := ot.Partitions[i], nt.Partitions[i]; !samePartition(op, np) ||
					op.LeaderEpoch != np.LeaderEpoch || op.PartitionEpoch != np.PartitionEpoch {
					ev = append(ev, Event{Kind: PartitionChanged, Topic: n, Partition: int32(i)})
				}
			}
			if len(nt.Partitions) > len(ot.Partitions) {
				ev = append(ev, Event{Kind: PartitionsAdded, Topic: n})
			}
			if !maps.Equal(ot.Configs, nt.Configs) {
				ev = append(ev, Event{Kind: TopicConfigChanged, Topic: n})
			}
		}
	}
	if !maps.Equal(a.brokerConfigs, b.brokerConfigs) {
		ev = append(ev, Event{Kind: BrokerConfigChanged})
	}
	return ev
}

type fsmSnapshot struct{ data snapshotData }

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.data); err != nil {
		_ = sink.Cancel() // the encode error is the one worth reporting
		return fmt.Errorf("metadata: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// ---- validation shared by the leader's pre-check and Apply ----

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// MaxPartitions bounds the partitions of one topic, so that a request can't
// make the controller allocate without limit.
const MaxPartitions = 100_000

// validateTopicName applies Kafka's topic name rules.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return kerrorf(kerr.InvalidTopicException, "topic name is illegal, it can't be empty")
	case name == "." || name == "..":
		return kerrorf(kerr.InvalidTopicException, "topic name cannot be \".\" or \"..\"")
	case len(name) > MaxTopicNameLength:
		return kerrorf(kerr.InvalidTopicException, "topic name is illegal, it can't be longer than %d characters, topic name: %.40s...", MaxTopicNameLength, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return kerrorf(kerr.InvalidTopicException, "topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
		}
	}
	return nil
}

// applyBrokerConfigOps applies SET/DELETE operations to the dynamic broker
// configs. Keys that supply a topic default are validated by the topic
// config's validator; other keys are the broker's to validate before
// proposing.
func applyBrokerConfigOps(cur map[string]string, ops []ConfigOp, replace bool) (map[string]string, error) {
	next := map[string]string{}
	if !replace {
		maps.Copy(next, cur)
	}
	for _, op := range ops {
		if op.Name == "" {
			return nil, invalidConfig("empty broker config name")
		}
		switch op.Op {
		case OpSet:
			if op.Value == nil {
				return nil, invalidConfig("null value for broker config %q", op.Name)
			}
			if d, ok := LookupTopicConfigByBrokerKey(op.Name); ok {
				if err := d.Validate(*op.Value); err != nil {
					return nil, invalidConfig("broker config %s: %s", op.Name, KafkaMessage(err))
				}
			}
			next[op.Name] = *op.Value
		case OpDelete:
			delete(next, op.Name)
		default:
			return nil, kerrorf(kerr.InvalidRequest, "operation %d not supported for broker config %q", op.Op, op.Name)
		}
	}
	return next, nil
}
