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
}

// Partition is one partition's replica placement and leadership.
type Partition struct {
	ID          int32
	Leader      int32 // -1 when none
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
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
	// NodeID is set for BrokerRegistered.
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
	return p
}
