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
	"github.com/sluice-io/sluice/internal/replica"
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
	// leader is this broker's leadership in a cluster (replication.go);
	// nil on a single node, where the log is served directly.
	leader atomic.Pointer[replica.Leader]

	waitMu  sync.Mutex
	waiters map[*fetchWaiter]struct{}
	// nWaiters is len(waiters), readable without waitMu: an append with
	// no parked fetch (the common case) wakes nobody without locking.
	nWaiters atomic.Int32
}

// highWatermark is the offset below which records are visible to consumers:
// the log's high watermark, which a replica.Leader keeps at the minimum
// over the ISR (a log without a Leader reports its log end).
func (p *partition) highWatermark() int64 { return p.log.HighWatermark() }

// lastStableOffset bounds read_committed reads: the log's last stable
// offset (first offset of the earliest open transaction), at most the
// high watermark.
func (p *partition) lastStableOffset() int64 {
	_, lso := p.log.FetchBounds()
	return lso
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
// the metadata store by its events: m the partitions it leads (served to
// clients), followed those it is a follower replica of (their logs are
// written by the replica fetchers only).
type partitionTable struct {
	b        *Broker
	mu       sync.RWMutex
	m        map[tpKey]*partition
	followed map[tpKey]*partition
	// failed remembers partitions whose log could not be opened, so that
	// requests for them get KAFKA_STORAGE_ERROR instead of a retry loop.
	failed map[tpKey]error
}

func newPartitionTable(b *Broker) *partitionTable {
	return &partitionTable{b: b, m: map[tpKey]*partition{}, followed: map[tpKey]*partition{}, failed: map[tpKey]error{}}
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
		t.syncPartition(topic, mp, cfg)
	}
	return nil
}

// syncPartition applies one partition's metadata: this broker leads it
// (served, through a replica.Leader in a cluster), follows it (a replica
// fetcher writes it), or is not a replica (on a single node: not the
// leader) and stops hosting it.
func (t *partitionTable) syncPartition(topic metadata.Topic, mp metadata.Partition, cfg log.Config) {
	key := tpKey{topic.Name, mp.ID}
	b := t.b
	lead := b.leads(mp)
	isReplica := lead || (b.replicated() && hostsReplica(mp, b.cfg.NodeID))
	if !isReplica {
		if b.replicated() {
			b.replicas.Stop(topic.Name, mp.ID) // before the log goes away
		}
		t.drop(key)
		t.unfollow(key, mp)
		return
	}
	t.mu.RLock()
	p, open := t.m[key]
	if !open {
		p, open = t.followed[key]
	}
	t.mu.RUnlock()
	if open && p.topicID != topic.ID {
		// A topic was deleted and re-created with the same name while we
		// missed the deletion.
		t.removeTopic(topic.Name)
		open = false
	}
	if open {
		p.log.SetConfig(cfg)
	} else {
		lp, err := b.logs.Open(topic.Name, mp.ID, cfg)
		if err != nil {
			b.logger.Error("open partition log", "topic", topic.Name, "partition", mp.ID, "err", err)
			t.mu.Lock()
			t.failed[key] = err
			t.mu.Unlock()
			return
		}
		p = &partition{topic: topic.Name, id: mp.ID, topicID: topic.ID, log: lp}
	}
	p.writeCaching.Store(cfg.WriteCaching)
	p.compacted.Store(cfg.Compact())
	p.leaderEpoch.Store(mp.LeaderEpoch)
	if !lead {
		// A follower: out of the served table first (parked fetches wake
		// and answer NOT_LEADER_OR_FOLLOWER), then the fetcher takes over.
		t.drop(key)
		p.leader.Store(nil)
		b.becomeFollower(topic, mp, p.log, cfg)
		t.mu.Lock()
		delete(t.failed, key)
		t.followed[key] = p
		t.mu.Unlock()
		return
	}
	if b.replicated() {
		l, err := b.becomeLeader(topic, mp, p.log, cfg, p)
		if err != nil {
			b.logger.Error("become leader", "topic", topic.Name, "partition", mp.ID, "err", err)
			t.drop(key)
			t.mu.Lock()
			t.failed[key] = err
			t.mu.Unlock()
			return
		}
		p.leader.Store(l)
	}
	t.mu.Lock()
	delete(t.failed, key)
	delete(t.followed, key)
	t.m[key] = p
	t.mu.Unlock()
}

// unfollow forgets a partition this broker followed and is no longer a
// replica of (a completed reassignment): its log is removed.
func (t *partitionTable) unfollow(key tpKey, mp metadata.Partition) {
	t.mu.Lock()
	p, ok := t.followed[key]
	delete(t.followed, key)
	t.mu.Unlock()
	if !ok || !t.b.replicated() {
		return
	}
	t.b.logger.Info("no longer a replica; removing partition", "topic", key.topic, "partition", key.part)
	if err := t.b.logs.Remove(p.topic, p.id); err != nil {
		t.b.logger.Error("remove partition", "topic", p.topic, "partition", p.id, "err", err)
	}
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
	for k, p := range t.followed {
		if k.topic == name {
			gone = append(gone, p)
			delete(t.followed, k)
		}
	}
	for k := range t.failed {
		if k.topic == name {
			delete(t.failed, k)
		}
	}
	t.mu.Unlock()
	for _, p := range gone {
		if t.b.replicas != nil {
			t.b.replicas.Stop(p.topic, p.id) // the fetcher or leader lets go of the log first
		}
		p.wake() // parked fetches re-check and answer UNKNOWN_TOPIC_OR_PARTITION
		if err := t.b.logs.Remove(p.topic, p.id); err != nil {
			t.b.logger.Error("remove partition", "topic", p.topic, "partition", p.id, "err", err)
		}
	}
}

// onEvent applies a metadata change. It runs on the metadata apply
// goroutine; on a single node opening logs is quick (recovery ran at
// startup), so it is done inline to make a created topic usable as soon as
// CreateTopics returns. In a cluster it is queued for the event worker.
func (t *partitionTable) onEvent(ev metadata.Event) {
	if t.b.replicated() {
		// In a cluster the replica manager's transitions may wait for a
		// leader's in-flight AlterPartition, which waits for this very
		// apply goroutine: they run on the event worker (replication.go).
		t.b.events.push(ev)
		return
	}
	t.apply(ev)
}

// apply is onEvent's work: inline on a single node, on the event worker in
// a cluster.
func (t *partitionTable) apply(ev metadata.Event) {
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
		Explicit:               true, // every field below is resolved: zero means zero
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
	if len(errs) > 0 {
		return log.Config{}, errors.Join(errs...)
	}
	return cfg, nil
}
