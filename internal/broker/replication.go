package broker

// Replication wiring (internal/replica/DESIGN.md "Broker wiring"): in a
// cluster every partition is hosted by each of its replicas; the leader
// serves clients through a replica.Leader (follower positions, the high
// watermark over the ISR, acks=all), the followers fetch from it with a
// replica.Fetcher. A single node (not clustered) keeps the plain local
// path: no Leader, the high watermark is the log end.

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/metadata"
	"github.com/sluice-io/sluice/internal/replica"
)

// waitCommitted waits until the partition's records up to last are
// committed: replicated to the ISR (as acks=all) in a cluster, durable
// locally on a single node. Coordinator writes (offsets, transaction
// state, markers) go through it.
func (p *partition) waitCommitted(ctx context.Context, last int64) error {
	if l := p.leader.Load(); l != nil {
		l.OnAppend()
		return l.WaitCommitted(ctx, last)
	}
	return p.log.WaitDurable(ctx, last)
}

// recoveredUnclean reports whether this broker restarts without a
// clean-shutdown marker while holding partition data: metadata then
// registers it as unclean (KIP-966), and it stays out of ISRs until its
// leaders see it caught up.
func (b *Broker) recoveredUnclean() bool {
	if b.logs.WasCleanShutdown() {
		return false
	}
	onDisk, err := b.logs.OnDisk()
	return err != nil || len(onDisk) > 0
}

// startReplicas creates the follower fetchers' client and the replica
// manager.
func (b *Broker) startReplicas() error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.advertise),
		kgo.ClientID("sluice-replica-"+strconv.Itoa(int(b.cfg.NodeID))),
		kgo.DialTimeout(5*time.Second),
		replica.MinVersions(),
	)
	if err != nil {
		return err
	}
	b.replCl = cl
	b.replicas, err = replica.NewManager(replica.Config{
		NodeID: b.cfg.NodeID,
		BrokerEpoch: func() int64 {
			for _, br := range b.meta.Brokers() {
				if br.NodeID == b.cfg.NodeID {
					return br.Epoch
				}
			}
			return -1
		},
		ReplicaLagTimeMax: b.set.replicaLagTimeMax,
		FetchMaxWait:      b.set.replicaFetchWait,
		FetchBackoff:      b.set.replicaFetchBackoff,
		Logger:            b.logger.With("component", "replica"),
		OnISRChange:       b.metrics.onISRChange, // metrics.go
	}, func(id int32) replica.LeaderClient { return replica.NewKgoClient(cl, id) })
	return err
}

// brokerLive reports whether broker id is registered and live (the ISR
// eligibility rule).
func (b *Broker) brokerLive(id int32) bool {
	for _, br := range b.meta.Brokers() {
		if br.NodeID == id {
			return br.Live()
		}
	}
	return false
}

// minInsync is a topic's effective min.insync.replicas.
func (b *Broker) minInsync(overrides map[string]string) int {
	for _, def := range metadata.TopicConfigs() {
		if def.Name == "min.insync.replicas" {
			v, _ := b.topicConfigValue(overrides, def)
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return 1
			}
			return n
		}
	}
	return 1
}

// replicated reports whether partitions go through the replica manager:
// in a cluster. A single node serves its logs directly.
func (b *Broker) replicated() bool { return b.clustered() }

// becomeLeader makes this broker the leader of mp through the replica
// manager and returns the Leader to store in the partition.
func (b *Broker) becomeLeader(topic metadata.Topic, mp metadata.Partition, lp *log.Partition, cfg log.Config, p *partition) (*replica.Leader, error) {
	l, err := b.replicas.BecomeLeader(replica.LeaderConfig{
		State:             replica.StateFromMetadata(topic.Name, topic.ID, mp),
		Log:               lp,
		Proposer:          replica.StoreProposer(b.meta),
		MinInsyncReplicas: b.minInsync(topic.Configs),
		WriteCaching:      cfg.WriteCaching,
		Eligible:          b.brokerLive,
		OnHighWatermark:   func(int64) { p.wake() },
	})
	if err != nil {
		return nil, err
	}
	for _, r := range mp.Replicas {
		if r == b.cfg.NodeID {
			continue
		}
		for _, br := range b.meta.Brokers() {
			if br.NodeID == r && br.UncleanRestart && !containsID(mp.ISR, r) {
				l.MarkUnclean(r)
			}
		}
	}
	return l, nil
}

// becomeFollower makes this broker a follower of mp (fetching from its
// leader), or only stops its role while the partition has no leader.
func (b *Broker) becomeFollower(topic metadata.Topic, mp metadata.Partition, lp *log.Partition, cfg log.Config) {
	if mp.Leader < 0 {
		b.replicas.Stop(topic.Name, mp.ID)
		return
	}
	b.replicas.BecomeFollower(replica.FollowerPartition{
		Topic:        topic.Name,
		TopicID:      topic.ID,
		Partition:    mp.ID,
		LeaderEpoch:  mp.LeaderEpoch,
		Log:          lp,
		WriteCaching: cfg.WriteCaching,
	}, mp.Leader)
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// eventQueue hands metadata events from the metadata apply goroutine to
// the event worker, in order, without ever blocking the pusher: a
// replica.Leader being closed waits for its in-flight AlterPartition,
// whose raft future completes only once the apply goroutine (running the
// subscribers) returns.
type eventQueue struct {
	mu   sync.Mutex
	q    []metadata.Event
	kick chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{kick: make(chan struct{}, 1)} }

func (e *eventQueue) push(ev metadata.Event) {
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *eventQueue) take() []metadata.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

// runEvents applies queued metadata events in order until the broker
// stops.
func (b *Broker) runEvents() {
	for {
		for _, ev := range b.events.take() {
			if b.closing.Load() {
				return
			}
			b.parts.apply(ev)
		}
		select {
		case <-b.ctx.Done():
			return
		case <-b.events.kick:
		}
	}
}
