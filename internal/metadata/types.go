package metadata

import (
	"maps"
	"slices"
)

// Broker is a registered broker.
type Broker struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   string
	// Epoch is the broker epoch: the Raft log index of its latest
	// registration (Kafka uses the registration record's offset).
	Epoch int64
	// Fenced is set by the active controller when the broker missed
	// heartbeats for the session timeout (or asked to be fenced); a fenced
	// broker is in no ISR (except as the last member, see Partition), leads
	// nothing and gets no new replicas. A heartbeat or a re-registration
	// unfences it.
	Fenced bool `json:",omitempty"`
	// InControlledShutdown is set when the broker asked to shut down: it
	// leads nothing and is in no ISR, like a fenced broker, until it
	// registers again.
	InControlledShutdown bool `json:",omitempty"`
	// UncleanRestart is set when the broker's latest registration said it
	// restarted without a clean shutdown (KIP-966's unclean shutdown: some
	// log was recovered unclean, so records it had fetched may be gone).
	// The registration removed it from every ISR where another member
	// remains; partition leaders keep it out (replica.Leader.MarkUnclean)
	// until it has caught up and they add it back through AlterPartition.
	// It stays set for this broker epoch; a clean registration clears it.
	UncleanRestart bool `json:",omitempty"`
}

// Live reports whether the broker may lead, be in an ISR and receive new
// replicas: neither fenced nor shutting down.
func (b Broker) Live() bool { return !b.Fenced && !b.InControlledShutdown }

// Partition is one partition's replica placement and leadership.
//
// LeaderEpoch is bumped on every change of Leader (including to and from
// -1); PartitionEpoch on every change at all (leader, ISR, replicas,
// reassignment state). AlterPartition requests carry both, as Kafka's do.
// When the last ISR member is fenced it stays in the ISR (Leader is -1), so
// that a clean election can bring it back when it returns.
type Partition struct {
	ID             int32
	Leader         int32 // -1 when none
	LeaderEpoch    int32
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
	// AddingReplicas and RemovingReplicas are set while a reassignment is
	// in progress (Replicas is then the target followed by the replicas
	// being removed); both are empty otherwise.
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// Topic is a topic's metadata. Configs holds only the topic-level overrides
// (raw string values, keys validated against the config table).
type Topic struct {
	Name       string
	ID         [16]byte // topic id (UUID), never reused
	Internal   bool     // __consumer_offsets, __transaction_state
	Partitions []Partition
	Configs    map[string]string
}

// TopicSpec is a request to create a topic.
type TopicSpec struct {
	Name              string
	Partitions        int32 // > 0; the broker resolves -1 to num.partitions
	ReplicationFactor int16 // > 0; must be <= registered brokers; the broker resolves -1
	Configs           map[string]string
	Internal          bool
	// Assignment, if non-nil, gives replicas per partition explicitly
	// (CreateTopics' manual assignment). Partitions and ReplicationFactor
	// must then be <= 0 or agree with it.
	Assignment [][]int32
}

// ConfigOp is one IncrementalAlterConfigs operation (or a full replace for
// legacy AlterConfigs).
type ConfigOp struct {
	Name  string
	Op    int8    // OpSet, OpDelete, OpAppend, OpSubtract (Kafka's codes)
	Value *string // nil for DELETE
}

// Event tells watchers what changed after a command was applied. Exactly one
// field group is set per Kind.
type Event struct {
	Kind  EventKind
	Topic string // topic events
	// Partition is set for PartitionChanged.
	Partition int32
	// NodeID is set for the Broker... kinds.
	NodeID int32
}

// EventKind enumerates Event kinds.
type EventKind int

// Event kinds.
const (
	TopicCreated EventKind = iota + 1
	TopicDeleted
	PartitionsAdded
	TopicConfigChanged
	BrokerConfigChanged
	BrokerRegistered
	// PartitionChanged: a partition's leader, epochs, ISR or replicas
	// changed (Topic, Partition). Brokers become leader or follower from it.
	PartitionChanged
	// BrokerFenced / BrokerUnfenced: a broker's liveness changed (NodeID).
	BrokerFenced
	BrokerUnfenced
	// BrokerControlledShutdown: a broker entered controlled shutdown (NodeID).
	BrokerControlledShutdown
)

func (k EventKind) String() string {
	switch k {
	case TopicCreated:
		return "TopicCreated"
	case TopicDeleted:
		return "TopicDeleted"
	case PartitionsAdded:
		return "PartitionsAdded"
	case TopicConfigChanged:
		return "TopicConfigChanged"
	case BrokerConfigChanged:
		return "BrokerConfigChanged"
	case BrokerRegistered:
		return "BrokerRegistered"
	case PartitionChanged:
		return "PartitionChanged"
	case BrokerFenced:
		return "BrokerFenced"
	case BrokerUnfenced:
		return "BrokerUnfenced"
	case BrokerControlledShutdown:
		return "BrokerControlledShutdown"
	}
	return "EventKind(?)"
}

// Clone returns a deep copy of t.
func (t Topic) Clone() Topic {
	c := t
	c.Partitions = make([]Partition, len(t.Partitions))
	for i, p := range t.Partitions {
		c.Partitions[i] = p.Clone()
	}
	c.Configs = maps.Clone(t.Configs)
	if c.Configs == nil {
		c.Configs = map[string]string{}
	}
	return c
}

// Clone returns a deep copy of p.
func (p Partition) Clone() Partition {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	p.AddingReplicas = slices.Clone(p.AddingReplicas)
	p.RemovingReplicas = slices.Clone(p.RemovingReplicas)
	return p
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// AlterPartitionRequest is a partition leader's request to change the ISR
// (Kafka's AlterPartition). LeaderEpoch and PartitionEpoch are the values
// the leader last saw; the controller rejects stale ones.
type AlterPartitionRequest struct {
	BrokerID       int32    // the leader sending the request
	BrokerEpoch    int64    // its broker epoch; -1 skips the check
	Topic          string   // by name...
	TopicID        [16]byte // ...and, if non-zero, id
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32 // the new ISR; must contain the leader
}

// ElectionType is ElectLeaders' election type (Kafka's codes).
type ElectionType int8

// Election types.
const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

// Reassignment is one partition of AlterPartitionReassignments. Replicas
// nil cancels the partition's reassignment in progress.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
	// KeepReplicationFactor refuses a target whose length differs from the
	// replica set the partition is headed for, with
	// INVALID_REPLICATION_FACTOR (KIP-860: AllowReplicationFactorChange
	// false in AlterPartitionReassignments v1).
	KeepReplicationFactor bool
}
