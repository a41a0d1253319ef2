package metadata

import (
	"cmp"
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
	return f
}

// applyResult is what FSM.Apply returns to the proposer through
// ApplyFuture.Response.
type applyResult struct {
	err error
	// first is the first id of an allocated producer-id block.
	first int64
}

var _ raft.FSM = (*fsm)(nil)

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return applyResult{}
	}
	body, err := decodeCommand(l.Data)
	if err != nil {
		return applyResult{err: err}
	}
	f.mu.Lock()
	if c, ok := body.(*allocateProducerIDsCmd); ok {
		first, err := f.mu.st.allocateProducerIDsLocked(c)
		f.mu.Unlock()
		return applyResult{err: err, first: first}
	}
	events, err := f.mu.st.applyLocked(l.Index, body)
	f.mu.Unlock()
	if err == nil && len(events) > 0 {
		f.notify(events)
	}
	return applyResult{err: err}
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
		st.brokers[c.NodeID] = Broker{NodeID: c.NodeID, Host: c.Host, Port: c.Port, Rack: c.Rack, Epoch: int64(index)}
		return []Event{{Kind: BrokerRegistered, NodeID: c.NodeID}}, nil

	case *createTopicCmd:
		if err := st.checkCreateTopicLocked(c); err != nil {
			return nil, err
		}
		t := &Topic{Name: c.Name, ID: c.ID, Internal: c.Internal, Configs: maps.Clone(c.Configs)}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		t.Partitions = newPartitions(0, c.Replicas)
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
		t.Partitions = append(t.Partitions, newPartitions(int32(len(t.Partitions)), c.Replicas)...)
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

	case *allocateProducerIDsCmd:
		_, err := st.allocateProducerIDsLocked(c)
		return nil, err

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

func newPartitions(first int32, replicas [][]int32) []Partition {
	ps := make([]Partition, len(replicas))
	for i, r := range replicas {
		ps[i] = Partition{
			ID:       first + int32(i),
			Leader:   r[0],
			Replicas: slices.Clone(r),
			ISR:      slices.Clone(r),
		}
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
}

type topicRec struct {
	Name       string            `json:"name"`
	ID         uuid              `json:"id"`
	Internal   bool              `json:"internal,omitempty"`
	Partitions []partitionRec    `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type partitionRec struct {
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
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
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR),
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
				ID: int32(i), Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR,
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
	return &fsmSnapshot{data: f.mu.st.dataLocked()}, nil
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
	return nil
}

// diffStates lists the events that turn a into b, in a deterministic order.
func diffStates(a, b *state) []Event {
	var ev []Event
	for _, id := range b.sortedBrokerIDsLocked() {
		if old, ok := a.brokers[id]; !ok || old != b.brokers[id] {
			ev = append(ev, Event{Kind: BrokerRegistered, NodeID: id})
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
