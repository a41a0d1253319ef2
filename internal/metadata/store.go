package metadata

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.etcd.io/bbolt"
)

// Config configures a Store. Zero values mean defaults.
type Config struct {
	NodeID int32  // this node's id (node.id); default 1
	Dir    string // directory for the Raft log, stable store and snapshots (required); raft files go under Dir/raft
	// Addr is the broker's advertised Kafka address (host:port), registered
	// as this node's broker entry. Default "localhost:9092".
	Addr   string
	Rack   string       // broker.rack; optional
	Logger *slog.Logger // nil = discard
	// ClusterID is used when the quorum is bootstrapped for the first time;
	// empty = generate a random one (base64 UUID, as Kafka does). If set and
	// the stored cluster has another id, Open fails.
	ClusterID string
	// SnapshotInterval / SnapshotThreshold tune raft snapshots; defaults are raft's.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries raft keeps after a snapshot;
	// default raft's (10240).
	TrailingLogs uint64
	// RaftAddr is the address (host:port) of the Raft transport. Empty (the
	// default, single node): an in-memory transport, nothing listens. Set
	// (e.g. the controller listener, or "127.0.0.1:0"): a TCP transport
	// bound there, advertised with the resolved address.
	RaftAddr string
}

// Validate checks the config after defaults are applied.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("metadata: Config.Dir is required")
	}
	if c.NodeID < 0 {
		return fmt.Errorf("metadata: invalid node id %d", c.NodeID)
	}
	if _, _, err := splitHostPort(c.Addr); err != nil {
		return fmt.Errorf("metadata: Config.Addr: %w", err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.Addr == "" {
		c.Addr = "localhost:9092"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func splitHostPort(addr string) (string, int32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, int32(port), nil
}

// Single-voter raft timing. raft starts every node as a follower and a lone
// voter elects itself only after a heartbeat timeout (randomized in
// [HeartbeatTimeout, 2*HeartbeatTimeout)), so this bounds Open's latency.
// A larger quorum must raise them (raft.ReloadConfig) to raft's defaults.
const (
	singleHeartbeatTimeout = 20 * time.Millisecond
	singleElectionTimeout  = 20 * time.Millisecond
	singleLeaderLease      = 20 * time.Millisecond
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("metadata: store closed")

// Store is the replicated cluster metadata: a hashicorp/raft quorum (one
// voter for a single node) whose FSM holds brokers, topics, partitions and
// configs. Reads come from the local FSM; writes go through raft.Apply on the
// leader. Errors returned by writes wrap franz-go kerr errors where Kafka has
// a code (kerr.TopicAlreadyExists, kerr.UnknownTopicOrPartition,
// kerr.InvalidConfig, kerr.InvalidPartitions, kerr.InvalidReplicationFactor,
// kerr.InvalidTopicException, kerr.NotController, ...), so the broker can
// answer with errors.As; KafkaMessage gives the message for the response.
type Store struct {
	cfg    Config
	logger *slog.Logger
	fsm    *fsm
	raft   *raft.Raft
	trans  raft.Transport
	bolt   *raftboltdb.BoltStore

	subs struct {
		sync.Mutex
		next int
		fns  map[int]func(Event)
	}

	closeOnce sync.Once
	closeErr  error
}

// Open starts the quorum: bootstraps a one-voter cluster on first start,
// replays the log and snapshot otherwise, waits until this node is leader
// (single node) and registers this broker. ctx bounds the wait.
func Open(ctx context.Context, cfg Config) (_ *Store, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, logger: cfg.Logger}
	s.subs.fns = map[int]func(Event){}
	s.fsm = newFSM(s.publish)
	defer func() {
		if err != nil {
			_ = s.Close() // the open error is the one worth reporting
		}
	}()

	rdir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	s.bolt, err = raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(rdir, "raft.db"),
		// A second process on the same directory fails instead of hanging.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: open raft log %s: %w", rdir, err)
	}
	logs, err := raft.NewLogCache(256, s.bolt)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	hlog := newHCLogAdapter(s.logger, singleVoterRoutine)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(rdir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("metadata: snapshot store: %w", err)
	}

	localID := serverID(cfg.NodeID)
	var localAddr raft.ServerAddress
	if cfg.RaftAddr == "" {
		localAddr, s.trans = raft.NewInmemTransport(raft.ServerAddress("inmem:" + string(localID)))
	} else {
		tcp, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, nil, 3, 5*time.Second, hlog)
		if err != nil {
			return nil, fmt.Errorf("metadata: raft transport on %s: %w", cfg.RaftAddr, err)
		}
		s.trans, localAddr = tcp, tcp.LocalAddr()
	}

	rc := raft.DefaultConfig()
	rc.LocalID = localID
	rc.Logger = hlog
	rc.HeartbeatTimeout = singleHeartbeatTimeout
	rc.ElectionTimeout = singleElectionTimeout
	rc.LeaderLeaseTimeout = singleLeaderLease
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}

	existing, err := raft.HasExistingState(logs, s.bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if !existing {
		voters := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: localID, Address: localAddr}}}
		if err := raft.BootstrapCluster(rc, logs, s.bolt, snaps, s.trans, voters); err != nil {
			return nil, fmt.Errorf("metadata: bootstrap: %w", err)
		}
		s.logger.Info("metadata quorum bootstrapped", "node-id", cfg.NodeID, "dir", rdir)
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.bolt, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("metadata: start raft: %w", err)
	}
	if err := s.waitLeader(ctx); err != nil {
		return nil, err
	}
	// Everything in the log before this point is applied once the barrier
	// returns.
	if err := s.raft.Barrier(timeoutFrom(ctx)).Error(); err != nil {
		return nil, fmt.Errorf("metadata: barrier: %w", err)
	}
	if err := s.fixLocalAddress(localID, localAddr); err != nil {
		return nil, err
	}
	if err := s.initClusterID(ctx); err != nil {
		return nil, err
	}
	if err := s.registerSelf(ctx); err != nil {
		return nil, err
	}
	s.logger.Info("metadata store open", "cluster-id", s.ClusterID(), "node-id", cfg.NodeID,
		"topics", len(s.fsm.topics()), "last-index", s.raft.LastIndex())
	return s, nil
}

func serverID(node int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(node))) }

// timeoutFrom turns ctx's deadline into a raft timeout (0 = none).
func timeoutFrom(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Nanosecond
	}
	return 0
}

// waitLeader blocks until this node leads (the single-voter case).
func (s *Store) waitLeader(ctx context.Context) error {
	ch := make(chan raft.Observation, 4)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation:
			return true
		}
		return false
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	// Observations are dropped when ch is full; the ticker is a backstop.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.raft.State() != raft.Leader {
		select {
		case <-ctx.Done():
			return fmt.Errorf("metadata: waiting for raft leadership: %w", ctx.Err())
		case <-ch:
		case <-tick.C:
		}
	}
	return nil
}

// fixLocalAddress updates this voter's address in the raft configuration
// when it changed since the last start (e.g. an ephemeral TCP port).
func (s *Store) fixLocalAddress(id raft.ServerID, addr raft.ServerAddress) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("metadata: raft configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == id && srv.Address != addr {
			if err := s.raft.AddVoter(id, addr, 0, 0).Error(); err != nil {
				return fmt.Errorf("metadata: update own raft address: %w", err)
			}
		}
	}
	return nil
}

func (s *Store) initClusterID(ctx context.Context) error {
	if cur := s.fsm.clusterID(); cur != "" {
		if s.cfg.ClusterID != "" && s.cfg.ClusterID != cur {
			return fmt.Errorf("metadata: configured cluster id %q does not match stored cluster id %q", s.cfg.ClusterID, cur)
		}
		return nil
	}
	id := s.cfg.ClusterID
	if id == "" {
		id = randomClusterID()
	}
	return s.propose(ctx, &initClusterCmd{ClusterID: id})
}

func randomClusterID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Store) registerSelf(ctx context.Context) error {
	host, port, err := splitHostPort(s.cfg.Addr)
	if err != nil {
		return err
	}
	c := &registerBrokerCmd{NodeID: s.cfg.NodeID, Host: host, Port: port, Rack: s.cfg.Rack}
	for _, b := range s.fsm.brokers() {
		if b.NodeID == c.NodeID && b.Host == c.Host && b.Port == c.Port && b.Rack == c.Rack {
			return nil
		}
	}
	return s.propose(ctx, c)
}

// propose encodes a command, replicates it and returns the FSM's verdict.
// It waits for the entry to be applied; ctx bounds only the enqueue (an
// entry handed to raft may still commit after ctx ends).
func (s *Store) propose(ctx context.Context, body any) error {
	_, err := s.proposeResult(ctx, body)
	return err
}

// AllocateProducerIDs reserves n producer ids (1 <= n <= MaxProducerIDBlock)
// through the quorum and returns the first; the block is [first, first+n).
// An id is never handed out twice, across restarts too.
func (s *Store) AllocateProducerIDs(ctx context.Context, n int) (first int64, err error) {
	if n <= 0 || n > MaxProducerIDBlock {
		return -1, kerrorf(kerr.InvalidRequest, "producer id block of %d ids", n)
	}
	res, err := s.proposeResult(ctx, &allocateProducerIDsCmd{Count: int32(n)})
	if err != nil {
		return -1, err
	}
	return res.first, nil
}

// proposeResult is propose returning the FSM's whole result.
func (s *Store) proposeResult(ctx context.Context, body any) (applyResult, error) {
	if err := ctx.Err(); err != nil {
		return applyResult{}, err
	}
	data, err := encodeCommand(body)
	if err != nil {
		return applyResult{}, err
	}
	f := s.raft.Apply(data, timeoutFrom(ctx))
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return applyResult{}, fmt.Errorf("metadata: %v: %w", err, kerr.NotController)
		case errors.Is(err, raft.ErrRaftShutdown):
			return applyResult{}, fmt.Errorf("%w: %w", ErrClosed, kerr.NotController)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return applyResult{}, fmt.Errorf("metadata: %v: %w", err, kerr.RequestTimedOut)
		}
		return applyResult{}, fmt.Errorf("metadata: apply: %w", err)
	}
	res, ok := f.Response().(applyResult)
	if !ok {
		return applyResult{}, fmt.Errorf("metadata: unexpected apply response %T", f.Response())
	}
	return res, res.err
}

// ClusterID is the cluster's id.
func (s *Store) ClusterID() string { return s.fsm.clusterID() }

// ControllerID is the node id of the active controller (raft leader), -1 if none.
func (s *Store) ControllerID() int32 {
	_, id := s.raft.LeaderWithID()
	n, err := strconv.ParseInt(string(id), 10, 32)
	if id == "" || err != nil {
		return -1
	}
	return int32(n)
}

// Brokers lists registered brokers ordered by node id.
func (s *Store) Brokers() []Broker { return s.fsm.brokers() }

// Topic returns a copy of one topic's metadata.
func (s *Store) Topic(name string) (Topic, bool) { return s.fsm.topic(name) }

// PartitionCount returns a topic's number of partitions without copying
// its metadata (for per-partition checks on hot paths).
func (s *Store) PartitionCount(name string) (int32, bool) { return s.fsm.partitionCount(name) }

// TopicByID returns a topic by its id.
func (s *Store) TopicByID(id [16]byte) (Topic, bool) { return s.fsm.topicByID(id) }

// Topics returns copies of all topics ordered by name.
func (s *Store) Topics() []Topic { return s.fsm.topics() }

// BrokerConfigs returns dynamic broker config overrides (may be empty).
func (s *Store) BrokerConfigs() map[string]string { return s.fsm.brokerConfigs() }

// CreateTopic validates (name rules, partitions, replication factor, config
// keys and values through the config table) and creates a topic. With
// validateOnly it checks and returns the would-be topic without applying.
//
// The topic id and the replica placement are chosen here, on the leader,
// and travel in the command; the FSM validates again at apply time, so two
// racing creations of one name yield one TopicAlreadyExists.
func (s *Store) CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (Topic, error) {
	c, err := s.planCreateTopic(spec)
	if err != nil {
		return Topic{}, err
	}
	if !validateOnly {
		if err := s.propose(ctx, c); err != nil {
			return Topic{}, err
		}
		if t, ok := s.fsm.topicByID(c.ID); ok {
			return t, nil
		}
		// Deleted between apply and this read: describe what was created.
	}
	t := Topic{Name: c.Name, ID: c.ID, Internal: c.Internal, Partitions: newPartitions(0, c.Replicas), Configs: c.Configs}
	return t.Clone(), nil
}

func (s *Store) planCreateTopic(spec TopicSpec) (*createTopicCmd, error) {
	if err := validateTopicName(spec.Name); err != nil {
		return nil, err
	}
	f := s.fsm
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := &f.mu.st
	c := &createTopicCmd{Name: spec.Name, Internal: spec.Internal, Configs: cloneConfigs(spec.Configs)}
	if spec.Assignment != nil {
		if spec.Partitions > 0 && int(spec.Partitions) != len(spec.Assignment) {
			return nil, kerrorf(kerr.InvalidRequest, "topic %q: manual assignment has %d partitions but %d were requested", spec.Name, len(spec.Assignment), spec.Partitions)
		}
		if len(spec.Assignment) == 0 {
			return nil, kerrorf(kerr.InvalidPartitions, "topic %q: number of partitions must be larger than 0", spec.Name)
		}
		for _, rs := range spec.Assignment {
			if spec.ReplicationFactor > 0 && int(spec.ReplicationFactor) != len(rs) {
				return nil, kerrorf(kerr.InvalidRequest, "topic %q: manual assignment has %d replicas per partition but replication factor %d was requested", spec.Name, len(rs), spec.ReplicationFactor)
			}
			c.Replicas = append(c.Replicas, slices.Clone(rs))
		}
	} else {
		if spec.Partitions <= 0 {
			return nil, kerrorf(kerr.InvalidPartitions, "topic %q: number of partitions must be larger than 0, got %d", spec.Name, spec.Partitions)
		}
		if spec.Partitions > MaxPartitions {
			return nil, kerrorf(kerr.InvalidPartitions, "topic %q: %d partitions exceed the limit of %d", spec.Name, spec.Partitions, MaxPartitions)
		}
		brokers := st.sortedBrokerIDsLocked()
		if spec.ReplicationFactor <= 0 {
			return nil, kerrorf(kerr.InvalidReplicationFactor, "topic %q: replication factor must be larger than 0, got %d", spec.Name, spec.ReplicationFactor)
		}
		if int(spec.ReplicationFactor) > len(brokers) {
			return nil, kerrorf(kerr.InvalidReplicationFactor, "topic %q: replication factor %d is larger than the %d available brokers", spec.Name, spec.ReplicationFactor, len(brokers))
		}
		n := len(brokers)
		c.Replicas = assignReplicas(brokers, int(spec.Partitions), int(spec.ReplicationFactor), rand.IntN(n), rand.IntN(n), 0)
	}
	for {
		c.ID = randomTopicID()
		if _, taken := st.topicIDs[c.ID]; !taken {
			break
		}
	}
	if err := st.checkCreateTopicLocked(c); err != nil {
		return nil, err
	}
	return c, nil
}

func cloneConfigs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// randomTopicID returns a random (version 4) UUID, never the zero UUID.
func randomTopicID() uuid {
	var id uuid
	_, _ = crand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// assignReplicas is Kafka's rack-unaware placement
// (AdminUtils.assignReplicasToBrokersRackUnaware): partition p's first
// replica is brokers[(p+start)%n]; followers follow at a shift that grows
// every n partitions, so leaders and followers spread evenly.
func assignReplicas(brokers []int32, partitions, rf, start, shift, firstPartition int) [][]int32 {
	n := len(brokers)
	out := make([][]int32, 0, partitions)
	p := firstPartition
	for range partitions {
		if p > 0 && p%n == 0 {
			shift++
		}
		first := (p + start) % n
		rs := []int32{brokers[first]}
		for j := range rf - 1 {
			off := 1 + (shift+j)%(n-1)
			rs = append(rs, brokers[(first+off)%n])
		}
		out = append(out, rs)
		p++
	}
	return out
}

// DeleteTopic deletes a topic.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	t, ok := s.fsm.topic(name)
	if !ok {
		return kerrorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	return s.propose(ctx, &deleteTopicCmd{Name: name, ID: t.ID})
}

// CreatePartitions grows a topic to total partitions. New partitions are
// placed like Kafka's (continuing the round robin from partition 0's first
// replica) with the topic's replication factor.
func (s *Store) CreatePartitions(ctx context.Context, name string, total int32, validateOnly bool) error {
	c, err := s.planCreatePartitions(name, total)
	if err != nil || validateOnly {
		return err
	}
	return s.propose(ctx, c)
}

func (s *Store) planCreatePartitions(name string, total int32) (*createPartitionsCmd, error) {
	f := s.fsm
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := &f.mu.st
	t, err := st.topicLocked(name, [16]byte{})
	if err != nil {
		return nil, err
	}
	cur := int32(len(t.Partitions))
	c := &createPartitionsCmd{Name: name, ID: t.ID, Total: total}
	if total <= cur || total > MaxPartitions {
		// Let the shared check produce the error.
		return nil, st.checkCreatePartitionsLocked(t, c)
	}
	brokers := st.sortedBrokerIDsLocked()
	rf := len(t.Partitions[0].Replicas)
	if rf > len(brokers) {
		return nil, kerrorf(kerr.InvalidReplicationFactor, "topic %q: replication factor %d is larger than the %d available brokers", name, rf, len(brokers))
	}
	start := max(slices.Index(brokers, t.Partitions[0].Replicas[0]), 0)
	c.Replicas = assignReplicas(brokers, int(total-cur), rf, start, start, int(cur))
	if err := st.checkCreatePartitionsLocked(t, c); err != nil {
		return nil, err
	}
	return c, nil
}

// AlterTopicConfigs applies operations to a topic's overrides after
// validating them. With replace (legacy AlterConfigs) the ops are the whole
// new set of overrides.
func (s *Store) AlterTopicConfigs(ctx context.Context, topic string, ops []ConfigOp, replace, validateOnly bool) error {
	t, ok := s.fsm.topic(topic)
	if !ok {
		return kerrorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", topic)
	}
	if _, err := applyConfigOps(t.Configs, ops, replace); err != nil || validateOnly {
		return err
	}
	return s.propose(ctx, &alterTopicConfigsCmd{Name: topic, Ops: toConfigOps(ops), Replace: replace})
}

// AlterBrokerConfigs changes the cluster-wide dynamic broker configs
// (Kafka's default broker resource, name ""). Only SET and DELETE are
// supported. Keys that supply topic defaults (log.retention.ms, ...) are
// validated through the topic config table; the caller validates every
// other key against its broker config table before calling.
func (s *Store) AlterBrokerConfigs(ctx context.Context, ops []ConfigOp, replace, validateOnly bool) error {
	if _, err := applyBrokerConfigOps(s.fsm.brokerConfigs(), ops, replace); err != nil || validateOnly {
		return err
	}
	return s.propose(ctx, &setBrokerConfigsCmd{Ops: toConfigOps(ops), Replace: replace})
}

// Subscribe registers fn to be called for every change, after the change
// is visible to readers. fn runs on raft's FSM apply goroutine, so it must
// not block or call the Store's write methods (that would deadlock); hand
// the event to your own goroutine if there is real work. To see every
// change, Subscribe first and then read the state. The returned func
// unsubscribes.
func (s *Store) Subscribe(fn func(Event)) (cancel func()) {
	s.subs.Lock()
	id := s.subs.next
	s.subs.next++
	s.subs.fns[id] = fn
	s.subs.Unlock()
	return func() {
		s.subs.Lock()
		delete(s.subs.fns, id)
		s.subs.Unlock()
	}
}

// publish delivers events to subscribers, in subscription order.
func (s *Store) publish(events []Event) {
	s.subs.Lock()
	ids := make([]int, 0, len(s.subs.fns))
	for id := range s.subs.fns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fns := make([]func(Event), len(ids))
	for i, id := range ids {
		fns[i] = s.subs.fns[id]
	}
	s.subs.Unlock()
	for _, ev := range events {
		for _, fn := range fns {
			fn(ev)
		}
	}
}

// Close shuts the raft node down. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.raft != nil {
			errs = append(errs, s.raft.Shutdown().Error())
		}
		if c, ok := s.trans.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
		if s.bolt != nil {
			errs = append(errs, s.bolt.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
