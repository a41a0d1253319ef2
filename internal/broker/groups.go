package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/group"
	"github.com/sluice-io/sluice/internal/metadata"
)

// offsetsTopic is Kafka's internal topic of committed offsets and group
// metadata.
const offsetsTopic = "__consumer_offsets"

// groups owns the consumer-group coordinator and the lazy creation and
// loading of __consumer_offsets, as Kafka does on the first FindCoordinator.
type groups struct {
	b     *Broker
	coord *group.Coordinator

	mu      sync.Mutex
	ready   bool          // topic exists and every partition is loaded
	loading chan struct{} // closed when the current load attempt ends; nil if none
}

func newGroups(b *Broker) *groups {
	g := &groups{b: b}
	delay := b.set.groupInitialDelay
	if delay == 0 {
		delay = group.NoInitialRebalanceDelay // 0 means "none" in Kafka, "default" in group.Config
	}
	g.coord = group.New(group.Config{
		NodeID:                b.cfg.NodeID,
		Partitions:            b.set.offsetsPartitions,
		MinSessionTimeout:     b.set.groupMinSession,
		MaxSessionTimeout:     b.set.groupMaxSession,
		InitialRebalanceDelay: delay,
		MaxGroupSize:          b.set.groupMaxSize,
		OffsetsRetention:      b.set.offsetsRetention,
		OffsetsRetentionCheck: b.set.offsetsRetentionCheck,
		MaxMetadataSize:       b.set.offsetMetadataMax,
		TopicExists: func(topic string, p int32) bool {
			n, ok := b.meta.PartitionCount(topic)
			return ok && p >= 0 && p < n
		},
		Logger: b.logger.With("component", "group"),
	}, internalLog{b, offsetsTopic})
	return g
}

// start loads the coordinator if __consumer_offsets already exists (a
// restart), in the background so the listener opens at once.
func (g *groups) start() {
	if _, ok := g.b.meta.Topic(offsetsTopic); ok {
		g.ensure(false)
	}
}

// ensure makes sure __consumer_offsets exists (creating it if create is set)
// and that loading has started. It returns nil once every partition is
// loaded, or an error for the client: COORDINATOR_NOT_AVAILABLE while the
// topic is being created or loaded.
func (g *groups) ensure(create bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ready {
		return nil
	}
	if g.loading != nil {
		return kerr.CoordinatorNotAvailable
	}
	if _, ok := g.b.meta.Topic(offsetsTopic); !ok && !create {
		return kerr.CoordinatorNotAvailable
	}
	done := make(chan struct{})
	g.loading = done
	g.b.goFunc("group-load", func() {
		defer close(done)
		err := g.load()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.loading = nil
		if err != nil {
			g.b.logger.Error("loading consumer groups failed; will retry on the next request", "err", err)
			return
		}
		g.ready = true
	})
	return kerr.CoordinatorNotAvailable
}

func (g *groups) load() error {
	ctx, cancel := context.WithTimeout(g.b.ctx, 5*time.Minute)
	defer cancel()
	t, err := g.b.internalTopic(ctx, offsetsTopic, g.b.set.offsetsPartitions, g.b.set.offsetsReplication)
	if err != nil {
		return err
	}
	start := time.Now()
	for _, p := range t.Partitions {
		if err := g.coord.Load(ctx, p.ID); err != nil {
			return fmt.Errorf("load %s/%d: %w", offsetsTopic, p.ID, err)
		}
	}
	g.b.logger.Info("consumer groups loaded", "partitions", len(t.Partitions), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (g *groups) close() { g.coord.Close() }

// internalTopic returns an internal topic (__consumer_offsets,
// __transaction_state), creating it compacted on first use with the
// replication factor capped by the brokers available, as Kafka does.
func (b *Broker) internalTopic(ctx context.Context, name string, partitions int32, rf int16) (metadata.Topic, error) {
	if t, ok := b.meta.Topic(name); ok {
		return t, nil
	}
	if n := int16(len(b.meta.Brokers())); rf > n {
		rf = n
	}
	t, err := b.meta.CreateTopic(ctx, metadata.TopicSpec{
		Name:              name,
		Partitions:        partitions,
		ReplicationFactor: rf,
		Internal:          true,
		Configs: map[string]string{
			"cleanup.policy":   "compact",
			"segment.bytes":    "104857600",
			"compression.type": "producer",
		},
	}, false)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		if t, ok := b.meta.Topic(name); ok {
			return t, nil
		}
	}
	if err != nil {
		return metadata.Topic{}, fmt.Errorf("create %s: %w", name, err)
	}
	b.logger.Info("created internal topic", "topic", name, "partitions", len(t.Partitions))
	return t, nil
}

// groupCtx tells the coordinator who is asking: the client id and host
// that Kafka shows in DescribeGroups and uses in member ids.
func (r *request) groupCtx(ctx context.Context) context.Context {
	c := group.Client{Host: "/" + r.c.remoteIP()}
	if r.hdr.ClientID != nil {
		c.ID = *r.hdr.ClientID
	}
	return group.WithClient(ctx, c)
}
