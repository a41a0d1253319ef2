package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/sluice-io/sluice/internal/metadata"
)

// Config configures a Broker. The zero value of every field means "use the
// default"; Settings carries every Kafka-named broker setting.
type Config struct {
	// NodeID is node.id; default 1.
	NodeID int32
	// Listen is the Kafka listener address; default "localhost:9092".
	// Use "127.0.0.1:0" for a random port.
	Listen string
	// Advertise is the host:port clients are told to connect to; default
	// the listener's actual address.
	Advertise string
	// AdminListen is the admin HTTP listener (Prometheus metrics, /healthz,
	// pprof); "" disables it.
	AdminListen string
	// DataDir holds partition logs and the metadata quorum; default "./sluice-data".
	DataDir string
	// Settings holds Kafka-named broker settings (num.partitions,
	// auto.create.topics.enable, log.retention.ms, message.max.bytes, ...).
	// Unknown keys are errors; see BrokerSettings for the table.
	Settings map[string]string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ForceCopy disables sendfile for fetch responses (the copy path used
	// for TLS); for benchmarks and tests.
	ForceCopy bool
	// ControllerListen is the controller listener (--controller-listen):
	// the metadata quorum's Raft transport and write forwarding. Empty with
	// no ControllerVoters: a single node on an in-memory transport.
	ControllerListen string
	// ControllerVoters is controller.quorum.voters (--controller-voters),
	// "1@host:9093,2@host:9193,...". A node in the list is a voter; a node
	// not in it joins as a broker-only node. Empty: a single node.
	ControllerVoters string
	// ElectionTimeout is the metadata quorum's Raft heartbeat/election
	// timeout with several voters; zero = raft's default (1 s).
	ElectionTimeout time.Duration
}

// settings is the typed view of Config.Settings.
type settings struct {
	numPartitions        int32
	replicationFactor    int16
	autoCreateTopics     bool
	maxRequestSize       int32
	maxConnections       int
	idleTimeout          time.Duration
	retentionCheck       time.Duration
	cleanerBackoff       time.Duration
	flushCheck           time.Duration
	fetchSessionSlots    int
	fetchSessionEviction time.Duration
	fetchMaxBytes        int32
	deleteTopicEnable    bool
	producerIDExpiration time.Duration
	producerIDCheck      time.Duration

	offsetsPartitions     int32
	offsetsReplication    int16
	groupMinSession       time.Duration
	groupMaxSession       time.Duration
	groupInitialDelay     time.Duration
	groupMaxSize          int
	offsetsRetention      time.Duration
	offsetsRetentionCheck time.Duration
	offsetMetadataMax     int

	txnPartitions    int32
	txnReplication   int16
	txnMaxTimeout    time.Duration
	txnAbortInterval time.Duration
	txnVersion       int16         // transaction.version: the finalized feature level (KIP-890)
	txnIDExpiration  time.Duration // transactional.id.expiration.ms

	rack              string        // broker.rack
	sessionTimeout    time.Duration // broker.session.timeout.ms
	heartbeatInterval time.Duration // broker.heartbeat.interval.ms

	autoLeaderRebalance  bool          // auto.leader.rebalance.enable
	leaderImbalanceCheck time.Duration // leader.imbalance.check.interval.seconds

	replicaLagTimeMax   time.Duration // replica.lag.time.max.ms
	replicaFetchWait    time.Duration // replica.fetch.wait.max.ms
	replicaFetchBackoff time.Duration // replica.fetch.backoff.ms
	// topicDefaults maps topic config name -> broker-level default value,
	// for topic configs whose BrokerKey is set in Settings.
	topicDefaults map[string]string
}

// SettingDef is one broker setting of the table.
type SettingDef struct {
	Name     string
	Type     metadata.ConfigType
	Default  string
	Doc      string
	Validate func(string) error
	// Topic names the topic config this setting supplies the default for.
	Topic string
}

// brokerOnlySettings are broker settings that are not defaults of a topic
// config (those come from metadata.TopicConfigs' BrokerKey).
var brokerOnlySettings = []SettingDef{
	{Name: "num.partitions", Type: metadata.TypeInt, Default: "1", Doc: "Partitions of an auto-created topic or a CreateTopics request with -1.", Validate: intRange(1, 1<<20)},
	{Name: "default.replication.factor", Type: metadata.TypeInt, Default: "1", Doc: "Replication factor of auto-created topics and CreateTopics requests with -1.", Validate: intRange(1, 32767)},
	{Name: "auto.create.topics.enable", Type: metadata.TypeBoolean, Default: "true", Doc: "Create a topic when a producer or Metadata request names one that does not exist.", Validate: isBool},
	{Name: "delete.topic.enable", Type: metadata.TypeBoolean, Default: "true", Doc: "Allow DeleteTopics.", Validate: isBool},
	{Name: "socket.request.max.bytes", Type: metadata.TypeInt, Default: strconv.Itoa(100 << 20), Doc: "Largest request frame accepted; larger ones close the connection before any allocation.", Validate: intRange(1024, 1<<31-1)},
	{Name: "max.connections", Type: metadata.TypeInt, Default: "100000", Doc: "Connections accepted at once; more are closed on accept.", Validate: intRange(1, 1<<31-1)},
	{Name: "connections.max.idle.ms", Type: metadata.TypeLong, Default: "600000", Doc: "Idle connections are closed after this long.", Validate: intRange(1, 1<<62)},
	{Name: "log.retention.check.interval.ms", Type: metadata.TypeLong, Default: "300000", Doc: "How often retention is enforced.", Validate: intRange(1, 1<<62)},
	{Name: "log.cleaner.backoff.ms", Type: metadata.TypeLong, Default: "15000", Doc: "Sleep of the log cleaner when there is nothing to clean.", Validate: intRange(0, 1<<62)},
	{Name: "log.flush.scheduler.interval.ms", Type: metadata.TypeLong, Default: "1000", Doc: "How often flush.ms is checked for page-cache topics.", Validate: intRange(1, 1<<62)},
	{Name: "max.incremental.fetch.session.cache.slots", Type: metadata.TypeInt, Default: "1000", Doc: "Incremental fetch sessions kept (KIP-227).", Validate: intRange(0, 1<<31-1)},
	{Name: "offsets.topic.num.partitions", Type: metadata.TypeInt, Default: "50", Doc: "Partitions of __consumer_offsets (fixed once the topic exists).", Validate: intRange(1, 10000)},
	{Name: "offsets.topic.replication.factor", Type: metadata.TypeShort, Default: "3", Doc: "Replication factor of __consumer_offsets (capped by the brokers available at creation).", Validate: intRange(1, 32767)},
	{Name: "group.min.session.timeout.ms", Type: metadata.TypeInt, Default: "6000", Doc: "Smallest session.timeout.ms a consumer may ask for.", Validate: intRange(0, 1<<31-1)},
	{Name: "group.max.session.timeout.ms", Type: metadata.TypeInt, Default: "1800000", Doc: "Largest session.timeout.ms a consumer may ask for.", Validate: intRange(0, 1<<31-1)},
	{Name: "group.initial.rebalance.delay.ms", Type: metadata.TypeInt, Default: "3000", Doc: "How long an empty group waits for more members before its first rebalance.", Validate: intRange(0, 1<<31-1)},
	{Name: "group.max.size", Type: metadata.TypeInt, Default: "2147483647", Doc: "Members a group may have.", Validate: intRange(1, 1<<31-1)},
	{Name: "offsets.retention.minutes", Type: metadata.TypeInt, Default: "10080", Doc: "How long committed offsets of an empty group are kept.", Validate: intRange(1, 1<<31-1)},
	{Name: "offsets.retention.check.interval.ms", Type: metadata.TypeLong, Default: "600000", Doc: "How often expired offsets are removed.", Validate: intRange(1, 1<<62)},
	{Name: "offset.metadata.max.bytes", Type: metadata.TypeInt, Default: "4096", Doc: "Largest metadata string of a committed offset.", Validate: intRange(0, 1<<31-1)},
	{Name: "transaction.state.log.num.partitions", Type: metadata.TypeInt, Default: "50", Doc: "Partitions of __transaction_state (fixed once the topic exists).", Validate: intRange(1, 10000)},
	{Name: "transaction.state.log.replication.factor", Type: metadata.TypeShort, Default: "3", Doc: "Replication factor of __transaction_state (capped by the brokers available at creation).", Validate: intRange(1, 32767)},
	{Name: "transaction.max.timeout.ms", Type: metadata.TypeInt, Default: "900000", Doc: "Largest transaction.timeout.ms a transactional producer may ask for (INVALID_TRANSACTION_TIMEOUT above).", Validate: intRange(1, 1<<31-1)},
	{Name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", Type: metadata.TypeInt, Default: "10000", Doc: "How often transactions older than their timeout are aborted.", Validate: intRange(1, 1<<31-1)},
	{Name: "transaction.version", Type: metadata.TypeShort, Default: "2", Doc: "Finalized transaction.version feature level advertised in ApiVersions: 2 enables KIP-890 part 2 (epoch bump per transaction, implicit partition adds); 0 or 1 keeps the classic protocol.", Validate: intRange(0, 2)},
	{Name: "transactional.id.expiration.ms", Type: metadata.TypeInt, Default: "604800000", Doc: "A transactional id with no transaction for this long is removed from __transaction_state.", Validate: intRange(1, 1<<31-1)},
	{Name: "producer.id.expiration.ms", Type: metadata.TypeInt, Default: "86400000", Doc: "A partition forgets an idempotent producer with no append for this long (its next batch is accepted at any sequence).", Validate: intRange(1, 1<<31-1)},
	{Name: "producer.id.expiration.check.interval.ms", Type: metadata.TypeInt, Default: "600000", Doc: "How often expired producer ids are removed.", Validate: intRange(1, 1<<31-1)},
	{Name: "broker.rack", Type: metadata.TypeString, Default: "", Doc: "Rack of this broker, for rack-aware replica placement."},
	{Name: "broker.session.timeout.ms", Type: metadata.TypeInt, Default: "9000", Doc: "The active controller fences a broker whose last heartbeat is older than this.", Validate: intRange(100, 1<<31-1)},
	{Name: "broker.heartbeat.interval.ms", Type: metadata.TypeInt, Default: "2000", Doc: "How often this broker heartbeats to the active controller.", Validate: intRange(10, 1<<31-1)},
	{Name: "auto.leader.rebalance.enable", Type: metadata.TypeBoolean, Default: "true", Doc: "The active controller moves leaderships back to preferred replicas (the first of each replica list) by itself.", Validate: isBool},
	{Name: "leader.imbalance.check.interval.seconds", Type: metadata.TypeLong, Default: "300", Doc: "How often the active controller checks the leader imbalance.", Validate: intRange(1, 1<<31-1)},
	{Name: "leader.imbalance.per.broker.percentage", Type: metadata.TypeInt, Default: "10", Doc: "Accepted and validated but not used, as in Kafka 4's KRaft controller: every partition led by another broker than its preferred replica is moved back when that replica may lead.", Validate: intRange(0, 1<<31-1)},
	{Name: "replica.lag.time.max.ms", Type: metadata.TypeInt, Default: "30000", Doc: "A follower that has not caught up with the leader's log end for this long leaves the ISR.", Validate: intRange(1, 1<<31-1)},
	{Name: "replica.fetch.wait.max.ms", Type: metadata.TypeInt, Default: "500", Doc: "Longest time a follower's fetch waits at the leader for data.", Validate: intRange(0, 1<<31-1)},
	{Name: "replica.fetch.backoff.ms", Type: metadata.TypeInt, Default: "1000", Doc: "First delay after a failed follower fetch (doubles up to 10x).", Validate: intRange(1, 1<<31-1)},
	{Name: "fetch.max.bytes", Type: metadata.TypeInt, Default: strconv.Itoa(55 << 20), Doc: "Upper bound on the bytes of one fetch response.", Validate: intRange(1024, 1<<31-1)},
}

// BrokerSettings is the table of every broker setting Sluice accepts:
// broker-only settings plus the broker defaults of topic configs.
func BrokerSettings() []SettingDef {
	defs := append([]SettingDef(nil), brokerOnlySettings...)
	for _, td := range metadata.TopicConfigs() {
		if td.BrokerKey == "" {
			continue
		}
		defs = append(defs, SettingDef{Name: td.BrokerKey, Type: td.Type, Default: td.Default, Doc: td.Doc, Validate: td.Validate, Topic: td.Name})
	}
	return defs
}

// withDefaults returns a copy of cfg with defaults filled in.
func (cfg Config) withDefaults() Config {
	if cfg.NodeID == 0 {
		cfg.NodeID = 1
	}
	if cfg.Listen == "" {
		cfg.Listen = "localhost:9092"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "sluice-data"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Validate checks the config, including every setting against the table.
func (cfg Config) Validate() error {
	_, err := cfg.withDefaults().settings()
	if err != nil {
		return err
	}
	if cfg.NodeID < 0 {
		return fmt.Errorf("broker: node.id %d must not be negative", cfg.NodeID)
	}
	if cfg.Advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
			return fmt.Errorf("broker: advertise %q: %w", cfg.Advertise, err)
		}
	}
	if _, err := cfg.voters(); err != nil {
		return err
	}
	return nil
}

// voters parses ControllerVoters.
func (cfg Config) voters() ([]metadata.Voter, error) {
	if cfg.ControllerVoters == "" {
		return nil, nil
	}
	v, err := metadata.ParseVoters(cfg.ControllerVoters)
	if err != nil {
		return nil, fmt.Errorf("broker: controller voters: %w", err)
	}
	return v, nil
}

// clustered reports whether the node is part of a cluster of several
// nodes: several voters, or a broker-only node following other voters.
// A lone voter (no voters, or only this node) is the single-node mode.
func (cfg Config) clustered() bool {
	v, _ := cfg.voters()
	switch {
	case len(v) == 0:
		return false
	case len(v) == 1:
		return v[0].NodeID != cfg.withDefaults().NodeID
	}
	return true
}

// settings parses Settings through the table.
func (cfg Config) settings() (settings, error) {
	defs := map[string]SettingDef{}
	for _, d := range BrokerSettings() {
		defs[d.Name] = d
	}
	// Kafka accepts log.retention.hours/minutes and log.roll.hours as
	// coarser spellings; translate them to the ms keys.
	raw := map[string]string{}
	for k, v := range cfg.Settings {
		raw[k] = v
	}
	for _, alias := range []struct {
		from, to string
		mult     int64
	}{
		{"log.retention.hours", "log.retention.ms", 3600_000},
		{"log.retention.minutes", "log.retention.ms", 60_000},
		{"log.roll.hours", "log.roll.ms", 3600_000},
	} {
		v, ok := raw[alias.from]
		if !ok {
			continue
		}
		delete(raw, alias.from)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return settings{}, fmt.Errorf("broker: setting %s=%q: not an integer", alias.from, v)
		}
		if _, set := raw[alias.to]; !set {
			if n > 0 {
				n *= alias.mult
			}
			raw[alias.to] = strconv.FormatInt(n, 10)
		}
	}
	var errs []error
	for k, v := range raw {
		d, ok := defs[k]
		if !ok {
			errs = append(errs, fmt.Errorf("broker: unknown setting %q", k))
			continue
		}
		if d.Validate != nil {
			if err := d.Validate(v); err != nil {
				errs = append(errs, fmt.Errorf("broker: setting %s=%q: %w", k, v, err))
			}
		}
	}
	if len(errs) > 0 {
		return settings{}, errors.Join(errs...)
	}
	get := func(name string) string {
		if v, ok := raw[name]; ok {
			return v
		}
		return defs[name].Default
	}
	i64 := func(name string) int64 {
		n, _ := strconv.ParseInt(get(name), 10, 64) // validated above
		return n
	}
	ms := func(name string) time.Duration { return time.Duration(i64(name)) * time.Millisecond }
	s := settings{
		numPartitions:        int32(i64("num.partitions")),
		replicationFactor:    int16(i64("default.replication.factor")),
		autoCreateTopics:     get("auto.create.topics.enable") == "true",
		deleteTopicEnable:    get("delete.topic.enable") == "true",
		maxRequestSize:       int32(i64("socket.request.max.bytes")),
		maxConnections:       int(i64("max.connections")),
		idleTimeout:          ms("connections.max.idle.ms"),
		retentionCheck:       ms("log.retention.check.interval.ms"),
		cleanerBackoff:       ms("log.cleaner.backoff.ms"),
		flushCheck:           ms("log.flush.scheduler.interval.ms"),
		fetchSessionSlots:    int(i64("max.incremental.fetch.session.cache.slots")),
		fetchSessionEviction: 2 * time.Minute,
		fetchMaxBytes:        int32(i64("fetch.max.bytes")),
		producerIDExpiration: ms("producer.id.expiration.ms"),
		producerIDCheck:      ms("producer.id.expiration.check.interval.ms"),
		topicDefaults:        map[string]string{},

		offsetsPartitions:     int32(i64("offsets.topic.num.partitions")),
		offsetsReplication:    int16(i64("offsets.topic.replication.factor")),
		groupMinSession:       ms("group.min.session.timeout.ms"),
		groupMaxSession:       ms("group.max.session.timeout.ms"),
		groupInitialDelay:     ms("group.initial.rebalance.delay.ms"),
		groupMaxSize:          int(i64("group.max.size")),
		offsetsRetention:      time.Duration(i64("offsets.retention.minutes")) * time.Minute,
		offsetsRetentionCheck: ms("offsets.retention.check.interval.ms"),
		offsetMetadataMax:     int(i64("offset.metadata.max.bytes")),

		txnPartitions:    int32(i64("transaction.state.log.num.partitions")),
		txnReplication:   int16(i64("transaction.state.log.replication.factor")),
		txnMaxTimeout:    ms("transaction.max.timeout.ms"),
		txnAbortInterval: ms("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
		txnVersion:       int16(i64("transaction.version")),
		txnIDExpiration:  ms("transactional.id.expiration.ms"),

		rack:              get("broker.rack"),
		sessionTimeout:    ms("broker.session.timeout.ms"),
		heartbeatInterval: ms("broker.heartbeat.interval.ms"),

		autoLeaderRebalance:  get("auto.leader.rebalance.enable") == "true",
		leaderImbalanceCheck: time.Duration(i64("leader.imbalance.check.interval.seconds")) * time.Second,

		replicaLagTimeMax:   ms("replica.lag.time.max.ms"),
		replicaFetchWait:    ms("replica.fetch.wait.max.ms"),
		replicaFetchBackoff: ms("replica.fetch.backoff.ms"),
	}
	for _, d := range BrokerSettings() {
		if d.Topic == "" {
			continue
		}
		if v, ok := raw[d.Name]; ok {
			s.topicDefaults[d.Topic] = v
		}
	}
	return s, nil
}

func isBool(v string) error {
	if v != "true" && v != "false" {
		return errors.New("must be true or false")
	}
	return nil
}

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errors.New("not an integer")
		}
		if n < lo || n > hi {
			return fmt.Errorf("must be in [%d, %d]", lo, hi)
		}
		return nil
	}
}
