package broker

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/metadata"
)

// partition is the broker's view of one partition it hosts: the log plus
// the waiters of the fetch purgatory.
type partition struct {
	topic   string
	id      int32
	topicID [16]byte
	log     *log.Partition
	// writeCaching mirrors the log's config: acks=all does not wait for
	// fsync on page-cache topics.
	writeCaching atomic.Bool
	// compacted mirrors cleanup.policy containing compact: produce then
	// refuses records without keys.
	compacted atomic.Bool
	// leaderEpoch is the partition's current leader epoch from metadata.
	leaderEpoch atomic.Int32

	waitMu  sync.Mutex
	waiters map[*fetchWaiter]struct{}
	// nWaiters is len(waiters), readable without waitMu: an append with
	// no parked fetch (the common case) wakes nobody without locking.
	nWaiters atomic.Int32
}

// highWatermark is the offset below which records are visible to consumers.
// A single replica's high watermark is its log end offset.
func (p *partition) highWatermark() int64 { return p.log.LogEndOffset() }

// lastStableOffset bounds read_committed reads: the log's last stable
// offset (first offset of the earliest open transaction), at most the
// high watermark.
func (p *partition) lastStableOffset() int64 {
	hw := p.highWatermark()
	return min(p.log.LastStableOffset(), hw)
}

// addWaiter registers w to be woken by appends.
func (p *partition) addWaiter(w *fetchWaiter) {
	p.waitMu.Lock()
	if p.waiters == nil {
		p.waiters = map[*fetchWaiter]struct{}{}
	}
	p.waiters[w] = struct{}{}
	p.nWaiters.Store(int32(len(p.waiters)))
	p.waitMu.Unlock()
}

func (p *partition) removeWaiter(w *fetchWaiter) {
	p.waitMu.Lock()
	delete(p.waiters, w)
	p.nWaiters.Store(int32(len(p.waiters)))
	p.waitMu.Unlock()
}

// wake tells every parked fetch on this partition that data arrived. It
// runs after every append; without parked fetches it is one atomic load.
// A fetch registers (addWaiter) and then re-reads, and an append
// publishes its data before calling wake, so one of the two sees the
// other: either the re-read finds the data or wake finds the waiter.
func (p *partition) wake() {
	if p.nWaiters.Load() == 0 {
		return
	}
	p.waitMu.Lock()
	for w := range p.waiters {
		w.wake()
	}
	p.waitMu.Unlock()
}

type tpKey struct {
	topic string
	part  int32
}

// partitionTable holds the partitions this broker hosts, kept in step with
// the metadata store by its events.
type partitionTable struct {
	b  *Broker
	mu sync.RWMutex
	m  map[tpKey]*partition
	// failed remembers partitions whose log could not be opened, so that
	// requests for them get KAFKA_STORAGE_ERROR instead of a retry loop.
	failed map[tpKey]error
}

func newPartitionTable(b *Broker) *partitionTable {
	return &partitionTable{b: b, m: map[tpKey]*partition{}, failed: map[tpKey]error{}}
}

func (t *partitionTable) get(topic string, part int32) (*partition, bool) {
	t.mu.RLock()
	p, ok := t.m[tpKey{topic, part}]
	t.mu.RUnlock()
	return p, ok
}

func (t *partitionTable) openErr(topic string, part int32) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.failed[tpKey{topic, part}]
}

// all returns every hosted partition.
func (t *partitionTable) all() []*partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*partition, 0, len(t.m))
	for _, p := range t.m {
		out = append(out, p)
	}
	return out
}

// syncAll opens every partition the metadata names and removes partition
// directories of topics that no longer exist.
func (t *partitionTable) syncAll() error {
	want := map[tpKey]bool{}
	for _, topic := range t.b.meta.Topics() {
		for _, p := range topic.Partitions {
			want[tpKey{topic.Name, p.ID}] = true
		}
		if err := t.syncTopic(topic.Name); err != nil {
			return err
		}
	}
	onDisk, err := t.b.logs.OnDisk()
	if err != nil {
		return fmt.Errorf("broker: list partition directories: %w", err)
	}
	for _, tp := range onDisk {
		if want[tpKey{tp.Topic, tp.Partition}] {
			continue
		}
		t.b.logger.Info("removing partition of a deleted topic", "topic", tp.Topic, "partition", tp.Partition)
		if err := t.b.logs.Remove(tp.Topic, tp.Partition); err != nil {
			t.b.logger.Error("remove stale partition", "topic", tp.Topic, "partition", tp.Partition, "err", err)
		}
	}
	return nil
}

// syncTopic opens the partitions of topic (and applies its config to
// those already open), or removes them if the topic is gone.
func (t *partitionTable) syncTopic(name string) error {
	topic, ok := t.b.meta.Topic(name)
	if !ok {
		t.removeTopic(name)
		return nil
	}
	cfg, err := t.b.logConfig(topic.Configs)
	if err != nil {
		return fmt.Errorf("broker: topic %s config: %w", name, err)
	}
	for _, mp := range topic.Partitions {
		if !t.b.leads(mp) {
			t.drop(tpKey{name, mp.ID}) // hosted on its leader only (leadership.go)
			continue
		}
		key := tpKey{name, mp.ID}
		t.mu.RLock()
		p, open := t.m[key]
		t.mu.RUnlock()
		if open {
			if p.topicID == topic.ID {
				p.log.SetConfig(cfg)
				p.writeCaching.Store(cfg.WriteCaching)
				p.compacted.Store(cfg.Compact())
				p.leaderEpoch.Store(mp.LeaderEpoch)
				continue
			}
			// A topic was deleted and re-created with the same name
			// while we missed the deletion.
			t.removeTopic(name)
		}
		lp, err := t.b.logs.Open(name, mp.ID, cfg)
		if err != nil {
			t.b.logger.Error("open partition log", "topic", name, "partition", mp.ID, "err", err)
			t.mu.Lock()
			t.failed[key] = err
			t.mu.Unlock()
			continue
		}
		t.mu.Lock()
		delete(t.failed, key)
		np := &partition{topic: name, id: mp.ID, topicID: topic.ID, log: lp}
		np.writeCaching.Store(cfg.WriteCaching)
		np.compacted.Store(cfg.Compact())
		np.leaderEpoch.Store(mp.LeaderEpoch)
		t.m[key] = np
		t.mu.Unlock()
	}
	return nil
}

func hostsReplica(p metadata.Partition, node int32) bool {
	for _, r := range p.Replicas {
		if r == node {
			return true
		}
	}
	return false
}

func (t *partitionTable) removeTopic(name string) {
	t.mu.Lock()
	var gone []*partition
	for k, p := range t.m {
		if k.topic == name {
			gone = append(gone, p)
			delete(t.m, k)
		}
	}
	for k := range t.failed {
		if k.topic == name {
			delete(t.failed, k)
		}
	}
	t.mu.Unlock()
	for _, p := range gone {
		p.wake() // parked fetches re-check and answer UNKNOWN_TOPIC_OR_PARTITION
		if err := t.b.logs.Remove(p.topic, p.id); err != nil {
			t.b.logger.Error("remove partition", "topic", p.topic, "partition", p.id, "err", err)
		}
	}
}

// onEvent applies a metadata change. It runs on the metadata apply
// goroutine; opening logs is quick (recovery ran at startup), so it is done
// inline to make a created topic usable as soon as CreateTopics returns.
func (t *partitionTable) onEvent(ev metadata.Event) {
	switch ev.Kind {
	case metadata.TopicCreated, metadata.PartitionsAdded, metadata.TopicConfigChanged, metadata.TopicDeleted, metadata.PartitionChanged:
		if err := t.syncTopic(ev.Topic); err != nil {
			t.b.logger.Error("apply topic change", "topic", ev.Topic, "err", err)
		}
		t.b.topicEvent(ev) // leadership.go
	case metadata.BrokerConfigChanged:
	}
}

func (t *partitionTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.m {
		p.wake()
	}
}

// topicConfigValue returns a topic config's effective value and its source:
// the topic override, the broker setting, or Kafka's default.
func (b *Broker) topicConfigValue(overrides map[string]string, def metadata.ConfigDef) (string, configSource) {
	if v, ok := overrides[def.Name]; ok {
		return v, sourceTopic
	}
	if v, ok := b.set.topicDefaults[def.Name]; ok {
		return v, sourceStaticBroker
	}
	return def.Default, sourceDefault
}

type configSource int8

// Kafka's DescribeConfigs source codes.
const (
	sourceTopic        configSource = 1
	sourceStaticBroker configSource = 4
	sourceDefault      configSource = 5
)

// logConfig turns a topic's raw overrides, the broker defaults and Kafka's
// defaults into the storage engine's typed config.
func (b *Broker) logConfig(overrides map[string]string) (log.Config, error) {
	vals := map[string]string{}
	for _, def := range metadata.TopicConfigs() {
		v, _ := b.topicConfigValue(overrides, def)
		vals[def.Name] = v
	}
	var errs []error
	i64 := func(name string) int64 {
		v := vals[name]
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
		return n
	}
	i32 := func(name string) int32 {
		n := i64(name)
		if n > math.MaxInt32 {
			n = math.MaxInt32
		}
		return int32(n)
	}
	f64 := func(name string) float64 {
		f, err := strconv.ParseFloat(vals[name], 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, vals[name], err))
		}
		return f
	}
	cfg := log.Config{
		SegmentBytes:           i64("segment.bytes"),
		SegmentMs:              i64("segment.ms"),
		SegmentIndexBytes:      i32("segment.index.bytes"),
		IndexIntervalBytes:     i32("index.interval.bytes"),
		MaxMessageBytes:        i32("max.message.bytes"),
		RetentionMs:            i64("retention.ms"),
		RetentionBytes:         i64("retention.bytes"),
		CleanupPolicy:          strings.ReplaceAll(vals["cleanup.policy"], " ", ""),
		DeleteRetentionMs:      i64("delete.retention.ms"),
		MinCompactionLagMs:     i64("min.compaction.lag.ms"),
		MaxCompactionLagMs:     i64("max.compaction.lag.ms"),
		MinCleanableDirtyRatio: f64("min.cleanable.dirty.ratio"),
		MessageTimestampType:   vals["message.timestamp.type"],
		WriteCaching:           vals["write.caching"] == "true",
		FlushMessages:          i64("flush.messages"),
		FlushMs:                i64("flush.ms"),
		FileDeleteDelayMs:      i64("file.delete.delay.ms"),
	}
	// Setting flush.messages or flush.ms on a topic asks for Kafka's
	// page-cache model with those thresholds.
	if _, ok := overrides["flush.messages"]; ok {
		cfg.WriteCaching = true
	}
	if _, ok := overrides["flush.ms"]; ok {
		cfg.WriteCaching = true
	}
	// In log.Config zero means "default"; Kafka's retention.ms=0 and
	// retention.bytes=0 mean "keep nothing but the active segment", which
	// 1 expresses exactly.
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = 1
	}
	if cfg.RetentionBytes == 0 {
		cfg.RetentionBytes = 1
	}
	if len(errs) > 0 {
		return log.Config{}, errors.Join(errs...)
	}
	return cfg, nil
}
