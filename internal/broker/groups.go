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
	internalLoader
	coord *group.Coordinator
}

func newGroups(b *Broker) *groups {
	g := &groups{}
	g.internalLoader = internalLoader{b: b, topic: offsetsTopic, what: "consumer groups", load: g.load}
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

func (g *groups) load(ctx context.Context) error {
	return g.b.loadInternal(ctx, offsetsTopic, g.b.set.offsetsPartitions, g.b.set.offsetsReplication, g.coord.Load, g.coord.Unload)
}

func (g *groups) close() { g.coord.Close() }

// internalLoader creates an internal topic on first use and loads its
// coordinator in the background: ensure answers COORDINATOR_NOT_AVAILABLE
// until every partition is loaded, and a failed load is retried on the next
// request.
type internalLoader struct {
	b     *Broker
	topic string
	what  string // for logs: "consumer groups", "transaction state"
	load  func(ctx context.Context) error

	mu      sync.Mutex
	ready   bool          // topic exists and every partition this broker leads is loaded
	loading chan struct{} // closed when the current load attempt ends; nil if none
	again   bool          // leadership changed during the current load: load once more
}

// start loads the coordinator if its topic already exists (a restart), in
// the background so the listener opens at once.
func (l *internalLoader) start() {
	if _, ok := l.b.meta.Topic(l.topic); ok {
		l.ensure(false) //nolint:errcheck // COORDINATOR_NOT_AVAILABLE while loading: nothing to report
	}
}

// ensure makes sure the topic exists (creating it if create is set) and
// that loading has started. It returns nil once every partition is loaded,
// or COORDINATOR_NOT_AVAILABLE while the topic is created or loaded.
func (l *internalLoader) ensure(create bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready {
		return nil
	}
	if l.loading != nil {
		return kerr.CoordinatorNotAvailable
	}
	if _, ok := l.b.meta.Topic(l.topic); !ok && !create {
		return kerr.CoordinatorNotAvailable
	}
	if l.b.closing.Load() {
		return kerr.CoordinatorNotAvailable
	}
	done := make(chan struct{})
	l.loading = done
	l.again = false
	l.b.goFunc(l.topic+"-load", func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(l.b.ctx, 5*time.Minute)
			err := l.load(ctx)
			cancel()
			l.mu.Lock()
			if l.again && l.b.ctx.Err() == nil {
				l.again = false
				l.mu.Unlock()
				continue
			}
			defer l.mu.Unlock()
			l.loading = nil
			if err != nil {
				l.b.logger.Error("loading "+l.what+" failed; will retry on the next request", "err", err)
				return
			}
			l.ready = true
			return
		}
	})
	return kerr.CoordinatorNotAvailable
}

// leadershipChanged is called (from the metadata apply goroutine, so it
// must not block) when the topic or the leadership of one of its
// partitions changed: load the partitions this broker now leads and
// unload those it lost, in the background.
func (l *internalLoader) leadershipChanged() {
	l.mu.Lock()
	l.ready = false
	loading := l.loading != nil
	if loading {
		l.again = true
	}
	l.mu.Unlock()
	if !loading {
		l.ensure(false) //nolint:errcheck // COORDINATOR_NOT_AVAILABLE while loading: nothing to report
	}
}

// state reports whether the coordinator is loaded or loading.
func (l *internalLoader) state() (ready, loading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready, l.loading != nil
}

// loadInternal creates (if needed) an internal topic and loads each of
// its partitions this broker leads with load (every partition on a single
// node); unload, if set, is called for the partitions it does not lead.
func (b *Broker) loadInternal(ctx context.Context, name string, partitions int32, rf int16, load func(context.Context, int32) error, unload func(int32)) error {
	t, err := b.internalTopic(ctx, name, partitions, rf)
	if err != nil {
		return err
	}
	if n := int32(len(t.Partitions)); n != partitions {
		// Created elsewhere meanwhile, by a broker configured otherwise:
		// this broker's coordinator maps keys by its own count until it
		// restarts (internalPartitions).
		b.logger.Error("internal topic partition count differs from the one this broker's coordinator maps keys by; restart the broker",
			"topic", name, "partitions", n, "coordinator", partitions)
	}
	start := time.Now()
	var errs []error
	loaded := 0
	for _, p := range t.Partitions {
		if !b.leads(p) {
			if unload != nil {
				unload(p.ID)
			}
			continue
		}
		if err := load(ctx, p.ID); err != nil {
			errs = append(errs, fmt.Errorf("load %s/%d: %w", name, p.ID, err))
			continue
		}
		loaded++
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.logger.Info("loaded internal topic", "topic", name, "partitions", loaded, "of", len(t.Partitions), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// internalPartitions is the partition count a coordinator maps keys by:
// that of its internal topic if the topic exists (as Kafka reads it at
// start-up: offsets.topic.num.partitions and
// transaction.state.log.num.partitions only size a new topic), else the
// configured one.
func (b *Broker) internalPartitions(name string, configured int32) int32 {
	n, ok := b.meta.PartitionCount(name)
	if !ok || n == configured {
		return configured
	}
	b.logger.Warn("internal topic exists with another partition count than configured; its coordinator uses the topic's",
		"topic", name, "partitions", n, "configured", configured)
	return n
}

// autoCreateInternal creates __consumer_offsets or __transaction_state
// when a Metadata request asks for it before the first FindCoordinator did
// (sarama does so while the coordinator is not available): with its
// internal settings, as Kafka's AutoTopicCreationManager does, never with
// the defaults of an ordinary auto-created topic. The coordinator maps a
// group to offsets.topic.num.partitions partitions, so a one-partition
// __consumer_offsets left every group but those of partition 0 answered
// NOT_COORDINATOR for good. ok is false for any other name.
func (b *Broker) autoCreateInternal(ctx context.Context, name string) (t metadata.Topic, ok bool, err error) {
	switch name {
	case offsetsTopic:
		t, err = b.internalTopic(ctx, name, b.set.offsetsPartitions, b.set.offsetsReplication)
	case txnStateTopic:
		t, err = b.internalTopic(ctx, name, b.set.txnPartitions, b.set.txnReplication)
	default:
		return metadata.Topic{}, false, nil
	}
	return t, true, err
}

// internalTopic returns an internal topic (__consumer_offsets,
// __transaction_state), creating it compacted on first use with the
// replication factor capped by the live brokers, as Kafka does.
func (b *Broker) internalTopic(ctx context.Context, name string, partitions int32, rf int16) (metadata.Topic, error) {
	if t, ok := b.meta.Topic(name); ok {
		return t, nil
	}
	rf = min(rf, b.liveBrokerCount())
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
