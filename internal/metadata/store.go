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
	"strings"
	"sync"
	"sync/atomic"
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
	// RaftAddr is the address (host:port) the controller listener binds
	// (--controller-listen). Empty with no Voters (the default, single
	// node): an in-memory transport, nothing listens. Set (e.g.
	// "127.0.0.1:0"): a TCP listener carrying both the Raft transport and
	// write forwarding (see forward.go). With Voters it defaults to this
	// node's voter address.
	RaftAddr string
	// RaftListener, if set, is used instead of binding RaftAddr (tests bind
	// 127.0.0.1:0 first to learn the addresses for Voters). The Store
	// closes it.
	RaftListener net.Listener
	// Voters is the controller quorum (controller.quorum.voters,
	// --controller-voters), see ParseVoters. Empty: this node alone is the
	// voter. A node listed in Voters is a voter and bootstraps the quorum
	// with the whole list on first start; a node not listed is a
	// broker-only node: it asks the active controller to add it as a Raft
	// non-voter and follows the metadata. Changing the quorum later is
	// AddVoter / RemoveVoter, not this list.
	Voters []Voter
	// ElectionTimeout is raft's heartbeat and election timeout for a
	// quorum of more than one voter; default raft's (1 s). A lone voter
	// always runs with 20 ms timeouts so that it elects itself at once.
	ElectionTimeout time.Duration
	// BrokerSessionTimeout is broker.session.timeout.ms: the active
	// controller fences a broker whose last heartbeat is older. Default 9 s.
	BrokerSessionTimeout time.Duration
	// BrokerHeartbeatInterval is broker.heartbeat.interval.ms: how often
	// this node's broker heartbeats to the active controller. Default 2 s.
	BrokerHeartbeatInterval time.Duration
	// AutoLeaderRebalanceDisable is auto.leader.rebalance.enable=false:
	// the active controller does not move leaderships back to preferred
	// replicas by itself (see rebalance.go). Default false (enabled).
	AutoLeaderRebalanceDisable bool
	// LeaderImbalanceCheckInterval is
	// leader.imbalance.check.interval.seconds: how often the active
	// controller checks the leader imbalance. Default 300 s.
	LeaderImbalanceCheckInterval time.Duration
	// Now is the controller's clock for broker sessions; default time.Now.
	Now func() time.Time
	// UncleanRestart tells the controller, in this node's first
	// registration, that the broker restarted without a clean shutdown
	// (the log manager recovered some log unclean). The registration then
	// takes it out of every ISR where another member remains and sets
	// Broker.UncleanRestart (KIP-966); Open registers anew even if the
	// stored registration looks current. Later re-registrations of the same
	// process (Register, a heartbeat answered STALE_BROKER_EPOCH) are clean.
	UncleanRestart bool
}

// Voter is one member of Config.Voters.
type Voter struct {
	NodeID int32
	Addr   string // host:port of its controller listener
}

// ParseVoters parses Kafka's controller.quorum.voters syntax,
// "1@host1:9093,2@host2:9093,3@host3:9093".
func ParseVoters(s string) ([]Voter, error) {
	var out []Voter
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "@")
		n, err := strconv.ParseInt(id, 10, 32)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("metadata: voter %q: want id@host:port", part)
		}
		if _, _, err := splitHostPort(addr); err != nil {
			return nil, fmt.Errorf("metadata: voter %q: %w", part, err)
		}
		out = append(out, Voter{NodeID: int32(n), Addr: addr})
	}
	if len(out) == 0 {
		return nil, errors.New("metadata: empty voter list")
	}
	return out, nil
}

// IsVoter reports whether this node is a voter: listed in Voters, or the
// lone voter when Voters is empty.
func (c *Config) IsVoter() bool {
	if len(c.Voters) == 0 {
		return true
	}
	_, ok := c.voterAddr(c.NodeID)
	return ok
}

func (c *Config) voterAddr(id int32) (string, bool) {
	for _, v := range c.Voters {
		if v.NodeID == id {
			return v.Addr, true
		}
	}
	return "", false
}

// lone reports a one-voter quorum made of this node (fast raft timeouts).
func (c *Config) lone() bool {
	return len(c.Voters) == 0 || (len(c.Voters) == 1 && c.Voters[0].NodeID == c.NodeID)
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
	ids, addrs := map[int32]bool{}, map[string]bool{}
	for _, v := range c.Voters {
		if ids[v.NodeID] || addrs[v.Addr] {
			return fmt.Errorf("metadata: voter %d@%s listed twice", v.NodeID, v.Addr)
		}
		if _, _, err := splitHostPort(v.Addr); err != nil {
			return fmt.Errorf("metadata: voter %d: %w", v.NodeID, err)
		}
		ids[v.NodeID], addrs[v.Addr] = true, true
	}
	if len(c.Voters) > 0 && c.RaftAddr == "" && c.RaftListener == nil {
		return errors.New("metadata: a node that is not a voter needs a controller listener (RaftAddr)")
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
	if a, ok := c.voterAddr(c.NodeID); ok && c.RaftAddr == "" && c.RaftListener == nil {
		c.RaftAddr = a
	}
	if c.BrokerSessionTimeout <= 0 {
		c.BrokerSessionTimeout = 9 * time.Second
	}
	if c.BrokerHeartbeatInterval <= 0 {
		c.BrokerHeartbeatInterval = 2 * time.Second
	}
	if c.LeaderImbalanceCheckInterval <= 0 {
		c.LeaderImbalanceCheckInterval = 300 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
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
// leader (the active controller), forwarded there from any other node.
// Errors returned by writes wrap franz-go kerr errors where Kafka has a code
// (kerr.TopicAlreadyExists, kerr.UnknownTopicOrPartition, kerr.InvalidConfig,
// kerr.InvalidPartitions, kerr.InvalidReplicationFactor,
// kerr.InvalidTopicException, kerr.NotController, ...), so the broker can
// answer with errors.As; KafkaMessage gives the message for the response.
type Store struct {
	cfg    Config
	logger *slog.Logger
	fsm    *fsm
	raft   *raft.Raft
	trans  raft.Transport
	bolt   *raftboltdb.BoltStore
	// fast: a lone voter running with single-voter timeouts.
	fast bool
	// mux is the controller listener (nil with the in-memory transport);
	// localAddr is this node's advertised Raft address.
	mux       *muxLayer
	localAddr raft.ServerAddress

	subs struct {
		sync.Mutex
		next int
		fns  map[int]func(Event)
	}

	// fwd is the client side of write forwarding (forward.go).
	fwd struct {
		sync.Mutex
		clients map[string]*fwdClient // by controller address
	}
	// ctrl is the active controller's view of broker sessions (liveness.go).
	ctrl struct {
		sync.Mutex
		leader bool
		seen   map[int32]session
	}
	wantShutdown atomic.Bool
	// unclean is Config.UncleanRestart until a registration carrying it
	// has been applied.
	unclean atomic.Bool

	// ctx is cancelled by Close; it stops the goroutines in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open starts this node's member of the quorum and registers its broker.
//
// A lone voter (no Voters, or only itself) bootstraps itself on first
// start, waits until it leads and applies the log. In a larger quorum every
// voter bootstraps with the full voter list on first start (raft ignores
// it once there is state); a node not in Voters bootstraps nothing and asks
// the active controller to add it as a non-voter. Either way Open then
// waits for *a* leader and for the local FSM to apply everything the leader
// had applied (not for its own leadership), proposes the cluster id if
// there is none, and registers this broker (forwarded to the leader). The
// broker heartbeat loop and the controller's session checker run until
// Close. ctx bounds the wait.
func Open(ctx context.Context, cfg Config) (_ *Store, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		if cfg.RaftListener != nil {
			_ = cfg.RaftListener.Close() // the Store owns it
		}
		return nil, err
	}
	s := &Store{cfg: cfg, logger: cfg.Logger, fast: cfg.lone() && cfg.IsVoter()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.unclean.Store(cfg.UncleanRestart)
	s.subs.fns = map[int]func(Event){}
	s.fsm = newFSM(s.publish)
	defer func() {
		if err != nil {
			_ = s.Close() // the open error is the one worth reporting
		}
	}()
	ln := cfg.RaftListener
	if ln == nil && cfg.RaftAddr != "" {
		if ln, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			return nil, fmt.Errorf("metadata: controller listener on %s: %w", cfg.RaftAddr, err)
		}
	}

	routine := clusterRoutine
	if s.fast {
		routine = singleVoterRoutine
	}
	hlog := newHCLogAdapter(s.logger, routine)
	localID := serverID(cfg.NodeID)
	if ln == nil {
		s.localAddr, s.trans = raft.NewInmemTransport(raft.ServerAddress("inmem:" + string(localID)))
	} else {
		adv := ln.Addr().String()
		if a, ok := cfg.voterAddr(cfg.NodeID); ok {
			adv = a
		}
		s.mux = newMuxLayer(ln, adv, s.serveForward)
		s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: s.mux, MaxPool: 3, Timeout: 5 * time.Second, Logger: hlog,
		})
		s.localAddr = raft.ServerAddress(adv)
	}

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
	snaps, err := raft.NewFileSnapshotStoreWithLogger(rdir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("metadata: snapshot store: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = localID
	rc.Logger = hlog
	switch {
	case s.fast:
		rc.HeartbeatTimeout = singleHeartbeatTimeout
		rc.ElectionTimeout = singleElectionTimeout
		rc.LeaderLeaseTimeout = singleLeaderLease
	case cfg.ElectionTimeout > 0:
		rc.HeartbeatTimeout = cfg.ElectionTimeout
		rc.ElectionTimeout = cfg.ElectionTimeout
		rc.LeaderLeaseTimeout = cfg.ElectionTimeout / 2
	}
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
	if !existing && cfg.IsVoter() {
		voters := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: localID, Address: s.localAddr}}}
		if len(cfg.Voters) > 0 {
			voters.Servers = nil
			for _, v := range cfg.Voters {
				voters.Servers = append(voters.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(v.NodeID), Address: raft.ServerAddress(v.Addr)})
			}
		}
		if err := raft.BootstrapCluster(rc, logs, s.bolt, snaps, s.trans, voters); err != nil {
			return nil, fmt.Errorf("metadata: bootstrap: %w", err)
		}
		s.logger.Info("metadata quorum bootstrapped", "node-id", cfg.NodeID, "dir", rdir, "voters", len(voters.Servers))
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, logs, s.bolt, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("metadata: start raft: %w", err)
	}
	if s.mux != nil {
		s.mux.start()
	}
	if s.fast {
		if err := s.waitLeader(ctx); err != nil {
			return nil, err
		}
		// Everything in the log before this point is applied once the
		// barrier returns.
		if err := s.raft.Barrier(timeoutFrom(ctx)).Error(); err != nil {
			return nil, fmt.Errorf("metadata: barrier: %w", err)
		}
		if err := s.fixLocalAddress(localID, s.localAddr); err != nil {
			return nil, err
		}
	} else if err := s.join(ctx); err != nil {
		return nil, err
	}
	if err := s.initClusterID(ctx); err != nil {
		return nil, err
	}
	if err := s.registerSelf(ctx, false); err != nil {
		return nil, err
	}
	s.wg.Add(3)
	go s.controllerLoop()
	go s.heartbeatLoop()
	go s.rebalanceLoop() // rebalance.go
	s.logger.Info("metadata store open", "cluster-id", s.ClusterID(), "node-id", cfg.NodeID,
		"voter", cfg.IsVoter(), "controller", s.ControllerID(),
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
	if err := s.propose(ctx, &initClusterCmd{ClusterID: id}); err != nil {
		return err
	}
	// Another member may have initialized it first.
	if cur := s.fsm.clusterID(); s.cfg.ClusterID != "" && cur != s.cfg.ClusterID {
		return fmt.Errorf("metadata: configured cluster id %q does not match cluster id %q", s.cfg.ClusterID, cur)
	}
	return nil
}

func randomClusterID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Store) registerSelf(ctx context.Context, force bool) error {
	host, port, err := splitHostPort(s.cfg.Addr)
	if err != nil {
		return err
	}
	c := &registerBrokerCmd{NodeID: s.cfg.NodeID, Host: host, Port: port, Rack: s.cfg.Rack, Unclean: s.unclean.Load()}
	if b, ok := s.fsm.broker(c.NodeID); ok && !force && !c.Unclean && b.Host == c.Host && b.Port == c.Port && b.Rack == c.Rack && b.Live() && !b.UncleanRestart {
		return nil
	}
	if err := s.propose(ctx, c); err != nil {
		return err
	}
	if c.Unclean {
		s.unclean.Store(false)
		s.logger.Info("registered after an unclean shutdown: out of the ISRs until caught up", "node-id", c.NodeID)
	}
	return nil
}

// Register registers this node's broker again (Config.Addr, Config.Rack),
// which gives it a new broker epoch and clears a fence or a controlled
// shutdown. Open registers it already (keeping the stored epoch when
// nothing changed); call Register when the broker starts a new incarnation
// that must not be confused with the previous one.
func (s *Store) Register(ctx context.Context) error {
	s.wantShutdown.Store(false)
	return s.registerSelf(ctx, true)
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

// proposeResult is propose returning the FSM's whole result. On the
// leader it applies the command; elsewhere it forwards it to the leader
// and waits until the local FSM has applied it too.
func (s *Store) proposeResult(ctx context.Context, body any) (applyResult, error) {
	if err := ctx.Err(); err != nil {
		return applyResult{}, err
	}
	data, err := encodeCommand(body)
	if err != nil {
		return applyResult{}, err
	}
	if s.raft.State() == raft.Leader {
		res, _, retry, err := s.applyLocal(ctx, data)
		if !retry {
			if err != nil {
				return applyResult{}, err
			}
			return res, res.err
		}
		// Lost the leadership before the entry was accepted: forward.
	}
	resp, err := s.call(ctx, &fwdRequest{Op: opApply, Cmd: data})
	if err != nil {
		return applyResult{}, err
	}
	if err := s.fsm.waitApplied(ctx, resp.Index); err != nil {
		return applyResult{}, err
	}
	res := resp.result()
	return res, res.err
}

// applyLocal applies an encoded command through raft on this node (the
// leader). retry is set when raft refused it before accepting it (not
// the leader), so another node may be asked.
func (s *Store) applyLocal(ctx context.Context, data []byte) (res applyResult, index uint64, retry bool, err error) {
	f := s.raft.Apply(data, timeoutFrom(ctx))
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return applyResult{}, 0, true, fmt.Errorf("metadata: %v: %w", err, kerr.NotController)
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return applyResult{}, 0, false, fmt.Errorf("metadata: %v: %w", err, kerr.NotController)
		case errors.Is(err, raft.ErrRaftShutdown):
			return applyResult{}, 0, false, fmt.Errorf("%w: %w", ErrClosed, kerr.NotController)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return applyResult{}, 0, false, fmt.Errorf("metadata: %v: %w", err, kerr.RequestTimedOut)
		}
		return applyResult{}, 0, false, fmt.Errorf("metadata: apply: %w", err)
	}
	res, ok := f.Response().(applyResult)
	if !ok {
		return applyResult{}, 0, false, fmt.Errorf("metadata: unexpected apply response %T", f.Response())
	}
	return res, f.Index(), false, nil
}

// ClusterID is the cluster's id.
func (s *Store) ClusterID() string { return s.fsm.clusterID() }

// ControllerID is the node id of the active controller (raft leader), -1
// if none is known. Every member knows it, voter or not.
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

// TopicNameByID returns the name of the topic with this id, without
// copying its metadata (for request handlers that only resolve ids).
func (s *Store) TopicNameByID(id [16]byte) (string, bool) { return s.fsm.topicNameByID(id) }

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
	if err := s.syncForPlanning(ctx, validateOnly); err != nil {
		return Topic{}, err
	}
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
	s.fsm.mu.RLock()
	parts := newPartitions(0, c.Replicas, s.fsm.mu.st.liveLocked)
	s.fsm.mu.RUnlock()
	t := Topic{Name: c.Name, ID: c.ID, Internal: c.Internal, Partitions: parts, Configs: c.Configs}
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
		brokers := st.liveBrokersLocked()
		if spec.ReplicationFactor <= 0 {
			return nil, kerrorf(kerr.InvalidReplicationFactor, "topic %q: replication factor must be larger than 0, got %d", spec.Name, spec.ReplicationFactor)
		}
		if int(spec.ReplicationFactor) > len(brokers) {
			return nil, kerrorf(kerr.InvalidReplicationFactor, "topic %q: replication factor %d is larger than the %d available brokers", spec.Name, spec.ReplicationFactor, len(brokers))
		}
		n := len(brokers)
		c.Replicas = placeReplicas(brokers, int(spec.Partitions), int(spec.ReplicationFactor), rand.IntN(n), rand.IntN(n), 0)
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

// syncForPlanning brings a follower's FSM up to the leader's before it
// plans a creation (replica placement must see the brokers the controller
// sees as live). The leader plans on its own state; validateOnly needs no
// sync.
func (s *Store) syncForPlanning(ctx context.Context, validateOnly bool) error {
	if validateOnly || s.IsController() {
		return nil
	}
	resp, err := s.call(ctx, &fwdRequest{Op: opSync})
	if err != nil {
		return err
	}
	return s.fsm.waitApplied(ctx, resp.Index)
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
	if err := s.syncForPlanning(ctx, validateOnly); err != nil {
		return err
	}
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
	brokers := st.liveBrokersLocked()
	rf := len(t.Partitions[0].Replicas)
	if rf > len(brokers) {
		return nil, kerrorf(kerr.InvalidReplicationFactor, "topic %q: replication factor %d is larger than the %d available brokers", name, rf, len(brokers))
	}
	start := max(slices.IndexFunc(brokers, func(b placementBroker) bool { return b.id == t.Partitions[0].Replicas[0] }), 0)
	c.Replicas = placeReplicas(brokers, int(total-cur), rf, start, start, int(cur))
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

// Close stops the heartbeat and controller loops and shuts the raft node
// down (without a controlled shutdown: call ControlledShutdown first to
// move leadership away). It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		var errs []error
		if s.raft != nil {
			errs = append(errs, s.raft.Shutdown().Error())
		}
		if c, ok := s.trans.(io.Closer); ok {
			errs = append(errs, c.Close())
		} else if s.mux != nil {
			errs = append(errs, s.mux.Close())
		}
		if s.mux != nil {
			s.mux.wait()
		}
		s.closeForwardClients()
		if s.bolt != nil {
			errs = append(errs, s.bolt.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
