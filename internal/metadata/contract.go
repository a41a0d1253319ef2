package metadata

// CONTRACT STUB. This file fixes the exported API that internal/broker is
// written against. The metadata implementer replaces these stubs with the
// real implementation (store.go, fsm.go, configs.go, ... and deletes this
// file), keeping every exported name and signature below. New exported API
// may be added freely.

import (
	"context"
	"log/slog"
	"time"
)

// Config configures a Store. Zero values mean defaults.
type Config struct {
	NodeID int32  // this node's id (node.id); default 1
	Dir    string // directory for the Raft log, stable store and snapshots (required)
	// Addr is the broker's advertised Kafka address (host:port), registered
	// as this node's broker entry.
	Addr   string
	Rack   string       // broker.rack; optional
	Logger *slog.Logger // nil = discard
	// ClusterID is used when the quorum is bootstrapped for the first time;
	// empty = generate a random one (base64 UUID, as Kafka does).
	ClusterID string
	// SnapshotInterval / SnapshotThreshold tune raft snapshots; defaults are raft's.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
}

// Broker is a registered broker.
type Broker struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   string
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
	Partitions        int32 // > 0
	ReplicationFactor int16 // > 0; must be <= live brokers
	Configs           map[string]string
	Internal          bool
	// Assignment, if non-nil, gives replicas per partition explicitly
	// (CreateTopics' manual assignment).
	Assignment [][]int32
}

// ConfigOp is one IncrementalAlterConfigs operation (or a full replace for
// legacy AlterConfigs).
type ConfigOp struct {
	Name  string
	Op    int8    // 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT (Kafka's codes)
	Value *string // nil for DELETE
}

// Event tells watchers what changed after a command was applied. Exactly one
// field group is set per Kind.
type Event struct {
	Kind  EventKind
	Topic string // topic events
}

// EventKind enumerates Event kinds.
type EventKind int

const (
	TopicCreated EventKind = iota + 1
	TopicDeleted
	PartitionsAdded
	TopicConfigChanged
	BrokerConfigChanged
)

// Store is the replicated cluster metadata: a hashicorp/raft quorum (one
// voter for a single node) whose FSM holds brokers, topics, partitions and
// configs. Reads come from the local FSM; writes go through raft.Apply on the
// leader. Errors returned by writes wrap franz-go kerr errors where Kafka has
// a code (kerr.TopicAlreadyExists, kerr.UnknownTopicOrPartition,
// kerr.InvalidConfig, kerr.InvalidPartitions, kerr.InvalidReplicationFactor,
// kerr.InvalidTopicException, kerr.NotController, ...), so the broker can
// answer with errors.As.
type Store struct{}

// Open starts the quorum: bootstraps a one-voter cluster on first start,
// replays the log and snapshot otherwise, waits until this node is leader
// (single node) and registers this broker.
func Open(ctx context.Context, cfg Config) (*Store, error) { panic("unimplemented") }

// ClusterID is the cluster's id.
func (s *Store) ClusterID() string { panic("unimplemented") }

// ControllerID is the node id of the active controller (raft leader), -1 if none.
func (s *Store) ControllerID() int32 { panic("unimplemented") }

// Brokers lists registered brokers ordered by node id.
func (s *Store) Brokers() []Broker { panic("unimplemented") }

// Topic returns a copy of one topic's metadata.
func (s *Store) Topic(name string) (Topic, bool) { panic("unimplemented") }

// TopicByID returns a topic by its id.
func (s *Store) TopicByID(id [16]byte) (Topic, bool) { panic("unimplemented") }

// Topics returns copies of all topics ordered by name.
func (s *Store) Topics() []Topic { panic("unimplemented") }

// CreateTopic validates (name rules, partitions, replication factor, config
// keys and values through the config table) and creates a topic. With
// validateOnly it checks and returns the would-be topic without applying.
func (s *Store) CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (Topic, error) {
	panic("unimplemented")
}

// DeleteTopic deletes a topic.
func (s *Store) DeleteTopic(ctx context.Context, name string) error { panic("unimplemented") }

// CreatePartitions grows a topic to total partitions.
func (s *Store) CreatePartitions(ctx context.Context, name string, total int32, validateOnly bool) error {
	panic("unimplemented")
}

// AlterTopicConfigs applies operations to a topic's overrides after
// validating them. With replace (legacy AlterConfigs) the ops are the whole
// new set of overrides.
func (s *Store) AlterTopicConfigs(ctx context.Context, topic string, ops []ConfigOp, replace, validateOnly bool) error {
	panic("unimplemented")
}

// BrokerConfigs returns dynamic broker config overrides (may be empty).
func (s *Store) BrokerConfigs() map[string]string { panic("unimplemented") }

// Subscribe registers fn to be called (from the FSM apply goroutine, after
// the change is visible to readers; fn must not block) for every change.
// The returned func unsubscribes.
func (s *Store) Subscribe(fn func(Event)) (cancel func()) { panic("unimplemented") }

// Close shuts the raft node down.
func (s *Store) Close() error { panic("unimplemented") }

// ConfigType is a Kafka config value type.
type ConfigType int8

// Kafka's DescribeConfigs config types.
const (
	TypeBoolean  ConfigType = 1
	TypeString   ConfigType = 2
	TypeInt      ConfigType = 3
	TypeShort    ConfigType = 4
	TypeLong     ConfigType = 5
	TypeDouble   ConfigType = 6
	TypeList     ConfigType = 7
	TypeClass    ConfigType = 8
	TypePassword ConfigType = 9
)

// ConfigDef describes one Kafka config key: the single table of topic
// configs (and the broker keys that supply their defaults).
type ConfigDef struct {
	Name string
	Type ConfigType
	// Default is Kafka's default as a string.
	Default string
	// BrokerKey is the broker setting that supplies the default (e.g.
	// retention.ms <- log.retention.ms), "" if none.
	BrokerKey string
	Doc       string
	Validate  func(value string) error
}

// TopicConfigs is the table of every topic config Sluice knows, in name order.
func TopicConfigs() []ConfigDef { panic("unimplemented") }

// LookupTopicConfig finds a topic config definition by name.
func LookupTopicConfig(name string) (ConfigDef, bool) { panic("unimplemented") }
