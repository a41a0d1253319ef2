package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/metadata"
	"github.com/sluice-io/sluice/internal/protocol"
	"github.com/sluice-io/sluice/internal/replica"
	"github.com/sluice-io/sluice/internal/txn"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Broker is one Sluice broker: the Kafka listener, the partition logs, the
// metadata quorum member, and the admin HTTP listener.
type Broker struct {
	cfg    Config
	set    settings
	logger *slog.Logger

	meta *metadata.Store
	logs *log.Manager

	ln        net.Listener
	adminLn   net.Listener
	admin     *http.Server
	advertise string

	// clusterCfg is set when the configuration makes this node one of
	// several (Config.clustered); see Broker.clustered.
	clusterCfg bool

	inter interBroker // requests to other brokers (interbroker.go)
	// replicas is the replica manager (internal/replica): leaders and
	// follower fetchers of the partitions this broker is a replica of in
	// a cluster (replication.go).
	replicas *replica.Manager
	// replCl is the inter-broker client of the follower fetchers.
	replCl *kgo.Client
	// events queues metadata events for the event worker in a cluster.
	events   *eventQueue
	parts    *partitionTable
	groups   *groups
	pids     *txn.ProducerIDs
	txns     *txns
	sessions *fetchSessionCache
	sender   protocol.Sender
	stats    protocol.SendStats
	metrics  *metrics

	// ctx is cancelled when the broker stops; connection contexts derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	conns struct {
		sync.Mutex
		m map[*conn]struct{}
	}
	nconns  atomic.Int64
	parked  atomic.Int64 // fetches waiting in the purgatory
	closing atomic.Bool
	// draining is closed when Shutdown starts: parked fetches answer at once.
	draining chan struct{}
	unsub    func()
	wg       sync.WaitGroup // every goroutine the broker starts
	connWG   sync.WaitGroup // connection goroutines
	closeErr error
	once     sync.Once
}

// New opens the data directory (partition logs and the metadata quorum),
// starts listening, and returns a broker ready to Serve.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, set: set, logger: cfg.Logger}
	b.inter.b = b
	b.conns.m = map[*conn]struct{}{}
	b.draining = make(chan struct{})
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.sender = protocol.Sender{ForceCopy: cfg.ForceCopy, Stats: &b.stats}
	b.sessions = newFetchSessionCache(set.fetchSessionSlots, set.fetchSessionEviction)
	b.metrics = newMetrics(b)

	ok := false
	defer func() {
		if !ok {
			b.closeResources()
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	b.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", cfg.Listen, err)
	}
	b.advertise = cfg.Advertise
	if b.advertise == "" {
		b.advertise = advertisedFromListener(cfg.Listen, b.ln.Addr())
	}

	b.logs, err = log.OpenManager(log.ManagerConfig{
		Dir:                    filepath.Join(cfg.DataDir, "logs"),
		Logger:                 b.logger,
		RetentionCheckInterval: set.retentionCheck,
		CleanerBackoff:         set.cleanerBackoff,
		FlushCheckInterval:     set.flushCheck,

		ProducerIDExpiration:              set.producerIDExpiration,
		ProducerIDExpirationCheckInterval: set.producerIDCheck,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: open logs: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	voters, _ := cfg.voters() // validated
	b.clusterCfg = cfg.clustered()
	b.meta, err = metadata.Open(ctx, metadata.Config{
		NodeID:                  cfg.NodeID,
		Dir:                     filepath.Join(cfg.DataDir, "metadata"),
		Addr:                    b.advertise,
		UncleanRestart:          b.recoveredUnclean(),
		Rack:                    set.rack,
		RaftAddr:                cfg.ControllerListen,
		Voters:                  voters,
		ElectionTimeout:         cfg.ElectionTimeout,
		BrokerSessionTimeout:    set.sessionTimeout,
		BrokerHeartbeatInterval: set.heartbeatInterval,
		Logger:                  b.logger.With("component", "metadata"),

		AutoLeaderRebalanceDisable:   !set.autoLeaderRebalance,
		LeaderImbalanceCheckInterval: set.leaderImbalanceCheck,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: open metadata: %w", err)
	}
	if err := b.startReplicas(); err != nil { // replication.go
		return nil, err
	}
	b.parts = newPartitionTable(b)
	b.events = newEventQueue()
	// The coordinators exist before the subscription: leadership events
	// of their internal topics reach them from the first event on. They
	// map keys by the partition count of their topic where it exists.
	b.set.offsetsPartitions = b.internalPartitions(offsetsTopic, b.set.offsetsPartitions)
	b.set.txnPartitions = b.internalPartitions(txnStateTopic, b.set.txnPartitions)
	b.groups = newGroups(b)
	b.pids = txn.NewProducerIDs(b.meta, txn.DefaultBlockSize)
	b.txns = newTxns(b)
	// Subscribe before the initial sync so no change falls between them.
	b.unsub = b.meta.Subscribe(b.parts.onEvent)
	if err := b.parts.syncAll(); err != nil {
		return nil, err
	}
	b.goFunc("metadata-events", b.runEvents) // replication.go
	b.groups.start()
	b.txns.start()

	if cfg.AdminListen != "" {
		b.adminLn, err = net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return nil, fmt.Errorf("broker: admin listen %s: %w", cfg.AdminListen, err)
		}
		b.admin = &http.Server{Handler: b.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		b.goFunc("admin-http", func() {
			if err := b.admin.Serve(b.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.logger.Error("admin listener stopped", "err", err)
			}
		})
	}
	b.logger.Info("broker started", "node-id", cfg.NodeID, "listen", b.ln.Addr().String(),
		"advertise", b.advertise, "controller-listen", cfg.ControllerListen, "clustered", b.clusterCfg, "data-dir", cfg.DataDir, "clean-shutdown", b.logs.WasCleanShutdown())
	ok = true
	return b, nil
}

// Start is New followed by Serve in a goroutine owned by the broker.
func Start(cfg Config) (*Broker, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	b.goFunc("accept", func() {
		if err := b.Serve(); err != nil && !errors.Is(err, ErrServerClosed) {
			b.logger.Error("accept loop stopped", "err", err)
		}
	})
	return b, nil
}

// Addr is the Kafka listener's address.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// AdminAddr is the admin HTTP listener's address, nil if disabled.
func (b *Broker) AdminAddr() net.Addr {
	if b.adminLn == nil {
		return nil
	}
	return b.adminLn.Addr()
}

// SendStats reports how fetch bytes left the broker (sendfile or copy).
func (b *Broker) SendStats() *protocol.SendStats { return &b.stats }

// Serve accepts connections until Shutdown or Close.
func (b *Broker) Serve() error {
	var backoff time.Duration
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if b.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				b.logger.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-b.ctx.Done():
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		if n := b.nconns.Add(1); n > int64(b.set.maxConnections) {
			b.nconns.Add(-1)
			b.metrics.connRejected.Inc()
			b.logger.Warn("connection limit reached; closing new connection", "remote", nc.RemoteAddr().String(), "max.connections", b.set.maxConnections)
			_ = nc.Close()
			continue
		}
		c := newConn(b, nc)
		b.conns.Lock()
		if b.closing.Load() {
			b.conns.Unlock()
			_ = nc.Close()
			b.nconns.Add(-1)
			return ErrServerClosed
		}
		b.conns.m[c] = struct{}{}
		b.connWG.Add(1)
		b.conns.Unlock()
		go func() {
			defer b.connWG.Done()
			pprof.Do(b.ctx, pprof.Labels("sluice", "conn"), func(ctx context.Context) { c.serve(ctx) })
			b.conns.Lock()
			delete(b.conns.m, c)
			b.conns.Unlock()
			b.nconns.Add(-1)
		}()
	}
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes connections, flushes every partition and writes the
// clean-shutdown marker.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.once.Do(func() {
		b.controlledShutdown(ctx)
		b.closing.Store(true)
		close(b.draining)
		_ = b.ln.Close()
		b.conns.Lock()
		for c := range b.conns.m {
			c.stopReading()
		}
		b.conns.Unlock()
		done := make(chan struct{})
		go func() { b.connWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			b.logger.Warn("shutdown deadline passed; closing connections with requests in flight")
		}
		b.cancel()
		b.conns.Lock()
		for c := range b.conns.m {
			c.close()
		}
		b.conns.Unlock()
		<-done
		b.closeErr = b.closeResources()
		b.logger.Info("broker stopped")
	})
	return b.closeErr
}

// Close stops the broker immediately (Shutdown with an expired context).
func (b *Broker) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return b.Shutdown(ctx)
}

func (b *Broker) closeResources() error {
	b.closing.Store(true)
	b.cancel()
	if b.unsub != nil {
		b.unsub()
	}
	var errs []error
	if b.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		errs = append(errs, b.admin.Shutdown(ctx))
		cancel()
	} else if b.adminLn != nil {
		errs = append(errs, b.adminLn.Close())
	}
	if b.ln != nil {
		if err := b.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if b.txns != nil {
		b.txns.close() // before groups: markers go through the group coordinator
	}
	if b.groups != nil {
		b.groups.close()
	}
	b.inter.close()
	if b.replicas != nil {
		b.replicas.Close() // before the logs: fetchers append to them
	}
	if b.replCl != nil {
		b.replCl.Close()
	}
	b.wg.Wait()
	if b.parts != nil {
		b.parts.close()
	}
	if b.meta != nil {
		errs = append(errs, b.meta.Close())
	}
	if b.logs != nil {
		errs = append(errs, b.logs.Close())
	}
	return errors.Join(errs...)
}

// goFunc runs fn in a goroutine the broker waits for on close.
func (b *Broker) goFunc(name string, fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		pprof.Do(b.ctx, pprof.Labels("sluice", name), func(context.Context) { fn() })
	}()
}

// advertisedFromListener picks the address to advertise: the listen host
// (or localhost for a wildcard) with the actual port.
func advertisedFromListener(listen string, actual net.Addr) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	_, port, _ := net.SplitHostPort(actual.String())
	return net.JoinHostPort(host, port)
}

func splitHostPort(addr string) (string, int32) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return host, int32(n)
}

// CreateTopic creates a topic with this broker's defaults for anything not
// given (default.replication.factor capped by the live brokers); for tests and tools.
func (b *Broker) CreateTopic(ctx context.Context, name string, partitions int32, configs map[string]string) error {
	rf := min(b.set.replicationFactor, b.liveBrokerCount())
	_, err := b.meta.CreateTopic(ctx, metadata.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: rf, Configs: configs}, false)
	return err
}

// FetchesParked is the number of fetches waiting in the purgatory for data.
func (b *Broker) FetchesParked() int64 { return b.parked.Load() }
