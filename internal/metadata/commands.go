package metadata

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Commands are the entries of the Raft log. The encoding is part of the
// on-disk format: JSON, one envelope per entry with a version and a type,
// bodies decoded by type. Add fields with omitempty and new types freely;
// never change the meaning of an existing field. Bump commandVersion only
// for an incompatible change, and keep decoding the old version.
const commandVersion = 1

// Command types (frozen: they are stored in the Raft log).
const (
	cmdInitCluster       = "init_cluster"
	cmdRegisterBroker    = "register_broker"
	cmdCreateTopic       = "create_topic"
	cmdDeleteTopic       = "delete_topic"
	cmdCreatePartitions  = "create_partitions"
	cmdAlterTopicConfigs = "alter_topic_configs"
	cmdSetBrokerConfigs  = "set_broker_configs"
	cmdAllocateProducers = "allocate_producer_ids"
	cmdFenceBroker       = "fence_broker"
	cmdUnfenceBroker     = "unfence_broker"
	cmdControlledShutdn  = "controlled_shutdown"
	cmdAlterPartition    = "alter_partition"
	cmdElectLeaders      = "elect_leaders"
	cmdReassign          = "alter_reassignments"
)

// ErrUnknownCommand marks a log entry this version cannot decode. The FSM
// leaves its state unchanged for such an entry (every node of the same
// version does the same); mixed-version clusters need a feature level first.
var ErrUnknownCommand = errors.New("metadata: unknown command")

type envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

// initClusterCmd sets the cluster id once; later ones are ignored.
type initClusterCmd struct {
	ClusterID string `json:"cluster_id"`
}

// registerBrokerCmd adds or updates a broker. Its epoch becomes the log
// index of the entry (Kafka's broker epoch is its registration offset).
type registerBrokerCmd struct {
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
	// Unclean: the broker restarted without a clean shutdown (KIP-966);
	// it leaves every ISR where another member remains.
	Unclean bool `json:"unclean,omitempty"`
}

// createTopicCmd carries everything decided outside the FSM: the random
// topic id and the replica placement.
type createTopicCmd struct {
	Name     string            `json:"name"`
	ID       uuid              `json:"id"`
	Internal bool              `json:"internal,omitempty"`
	Replicas [][]int32         `json:"replicas"`
	Configs  map[string]string `json:"configs,omitempty"`
}

type deleteTopicCmd struct {
	Name string `json:"name"`
	ID   uuid   `json:"id"` // guards against deleting a topic re-created meanwhile
}

// createPartitionsCmd appends partitions; Replicas are the new ones only.
type createPartitionsCmd struct {
	Name     string    `json:"name"`
	ID       uuid      `json:"id"`
	Total    int32     `json:"total"`
	Replicas [][]int32 `json:"replicas"`
}

// alterTopicConfigsCmd carries the operations, not the result, so that two
// concurrent alterations compose; the FSM validates the result.
type alterTopicConfigsCmd struct {
	Name    string     `json:"name"`
	Ops     []configOp `json:"ops"`
	Replace bool       `json:"replace,omitempty"`
}

type setBrokerConfigsCmd struct {
	Ops     []configOp `json:"ops"`
	Replace bool       `json:"replace,omitempty"`
}

// allocateProducerIDsCmd reserves Count producer ids: the block starts at
// the FSM's next producer id, which moves past it (Kafka's
// AllocateProducerIds). Ids are never handed out twice.
type allocateProducerIDsCmd struct {
	Count int32 `json:"count"`
}

// fenceBrokerCmd fences a broker (the controller saw no heartbeat for the
// session timeout, or the broker asked). Epoch must be the broker's current
// epoch, so a decision about an old incarnation is dropped.
type fenceBrokerCmd struct {
	NodeID int32 `json:"node_id"`
	Epoch  int64 `json:"epoch"`
}

// unfenceBrokerCmd unfences a broker after a heartbeat.
type unfenceBrokerCmd struct {
	NodeID int32 `json:"node_id"`
	Epoch  int64 `json:"epoch"`
}

// controlledShutdownCmd moves leadership and ISR membership away from a
// broker that asked to shut down.
type controlledShutdownCmd struct {
	NodeID int32 `json:"node_id"`
	Epoch  int64 `json:"epoch"`
}

// alterPartitionCmd is a partition leader's ISR change (AlterPartition).
type alterPartitionCmd struct {
	BrokerID       int32   `json:"broker_id"`
	BrokerEpoch    int64   `json:"broker_epoch"`
	Topic          string  `json:"topic"`
	TopicID        uuid    `json:"topic_id"`
	Partition      int32   `json:"partition"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	ISR            []int32 `json:"isr"`
}

type partitionRef struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// electLeadersCmd is ElectLeaders: type 0 preferred, 1 unclean.
type electLeadersCmd struct {
	Type       int8           `json:"type"`
	Partitions []partitionRef `json:"partitions"`
}

type reassignItem struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas,omitempty"`
	Cancel    bool    `json:"cancel,omitempty"`
	// KeepRF refuses a change of replication factor (KIP-860).
	KeepRF bool `json:"keep_rf,omitempty"`
}

// reassignCmd is AlterPartitionReassignments.
type reassignCmd struct {
	Items []reassignItem `json:"items"`
}

type configOp struct {
	Name  string  `json:"name"`
	Op    int8    `json:"op"`
	Value *string `json:"value,omitempty"`
}

func toConfigOps(ops []ConfigOp) []configOp {
	out := make([]configOp, len(ops))
	for i, o := range ops {
		out[i] = configOp(o)
	}
	return out
}

func fromConfigOps(ops []configOp) []ConfigOp {
	out := make([]ConfigOp, len(ops))
	for i, o := range ops {
		out[i] = ConfigOp(o)
	}
	return out
}

func commandType(body any) string {
	switch body.(type) {
	case *initClusterCmd:
		return cmdInitCluster
	case *registerBrokerCmd:
		return cmdRegisterBroker
	case *createTopicCmd:
		return cmdCreateTopic
	case *deleteTopicCmd:
		return cmdDeleteTopic
	case *createPartitionsCmd:
		return cmdCreatePartitions
	case *alterTopicConfigsCmd:
		return cmdAlterTopicConfigs
	case *setBrokerConfigsCmd:
		return cmdSetBrokerConfigs
	case *allocateProducerIDsCmd:
		return cmdAllocateProducers
	case *fenceBrokerCmd:
		return cmdFenceBroker
	case *unfenceBrokerCmd:
		return cmdUnfenceBroker
	case *controlledShutdownCmd:
		return cmdControlledShutdn
	case *alterPartitionCmd:
		return cmdAlterPartition
	case *electLeadersCmd:
		return cmdElectLeaders
	case *reassignCmd:
		return cmdReassign
	}
	panic(fmt.Sprintf("metadata: no command type for %T", body))
}

// encodeCommand encodes one command body (a pointer to a *Cmd struct).
func encodeCommand(body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("metadata: encode %T: %w", body, err)
	}
	return json.Marshal(envelope{V: commandVersion, Type: commandType(body), Body: b})
}

// decodeCommand returns a pointer to the decoded body.
func decodeCommand(data []byte) (any, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownCommand, err)
	}
	if env.V != commandVersion {
		return nil, fmt.Errorf("%w: version %d", ErrUnknownCommand, env.V)
	}
	var body any
	switch env.Type {
	case cmdInitCluster:
		body = new(initClusterCmd)
	case cmdRegisterBroker:
		body = new(registerBrokerCmd)
	case cmdCreateTopic:
		body = new(createTopicCmd)
	case cmdDeleteTopic:
		body = new(deleteTopicCmd)
	case cmdCreatePartitions:
		body = new(createPartitionsCmd)
	case cmdAlterTopicConfigs:
		body = new(alterTopicConfigsCmd)
	case cmdSetBrokerConfigs:
		body = new(setBrokerConfigsCmd)
	case cmdAllocateProducers:
		body = new(allocateProducerIDsCmd)
	case cmdFenceBroker:
		body = new(fenceBrokerCmd)
	case cmdUnfenceBroker:
		body = new(unfenceBrokerCmd)
	case cmdControlledShutdn:
		body = new(controlledShutdownCmd)
	case cmdAlterPartition:
		body = new(alterPartitionCmd)
	case cmdElectLeaders:
		body = new(electLeadersCmd)
	case cmdReassign:
		body = new(reassignCmd)
	default:
		return nil, fmt.Errorf("%w: type %q", ErrUnknownCommand, env.Type)
	}
	if err := json.Unmarshal(env.Body, body); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnknownCommand, env.Type, err)
	}
	return body, nil
}

// uuid is a topic id in the log and snapshots, encoded as Kafka prints
// topic ids: URL-safe base64 without padding.
type uuid [16]byte

func (u uuid) MarshalText() ([]byte, error) {
	return []byte(base64.RawURLEncoding.EncodeToString(u[:])), nil
}

func (u *uuid) UnmarshalText(b []byte) error {
	if base64.RawURLEncoding.DecodedLen(len(b)) != len(u) {
		return fmt.Errorf("metadata: bad uuid %q", b)
	}
	n, err := base64.RawURLEncoding.Decode(u[:], b)
	if err != nil {
		return fmt.Errorf("metadata: bad uuid %q: %w", b, err)
	}
	if n != len(u) {
		return fmt.Errorf("metadata: bad uuid %q: %d bytes", b, n)
	}
	return nil
}

// FormatTopicID renders a topic id as Kafka does (URL-safe base64, no
// padding), e.g. for logs and the admin CLI.
func FormatTopicID(id [16]byte) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}
