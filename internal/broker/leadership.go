package broker

// Partition leadership in a cluster: a broker hosts every partition it is
// a replica of (replication.go), serves clients only for those it leads,
// and answers requests for a partition led elsewhere with
// NOT_LEADER_OR_FOLLOWER and the KIP-951 leader hint.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

// controlledShutdownWait bounds how long Shutdown waits for the controller
// to move leadership away before it stops anyway.
const controlledShutdownWait = 10 * time.Second

// clustered reports whether this broker is one of several: configured so
// (several voters, or a broker-only node), or a lone voter that broker-only
// nodes joined. Partitions then go through the replica manager.
func (b *Broker) clustered() bool {
	return b.clusterCfg || len(b.meta.Brokers()) > 1
}

// liveBrokers lists the registered brokers that are neither fenced nor in
// controlled shutdown, ordered by node id: the brokers Kafka lists in
// Metadata and DescribeCluster.
func (b *Broker) liveBrokers() []metadata.Broker {
	all := b.meta.Brokers()
	out := all[:0:0]
	for _, br := range all {
		if br.Live() {
			out = append(out, br)
		}
	}
	return out
}

// liveBrokerCount is len(liveBrokers()), at least 1 (this broker serves).
func (b *Broker) liveBrokerCount() int16 {
	return int16(max(len(b.liveBrokers()), 1))
}

// leads reports whether this broker serves partition mp: it is its leader.
func (b *Broker) leads(mp metadata.Partition) bool { return mp.Leader == b.cfg.NodeID }

// currentLeader returns a partition's leader and leader epoch from the
// metadata and the leader's broker entry (ok false when the partition or
// its leader is unknown, the leader is -1, or it is not a live broker).
func (b *Broker) currentLeader(topic string, part int32) (leader, epoch int32, br metadata.Broker, ok bool) {
	t, found := b.meta.Topic(topic)
	if !found {
		return -1, -1, metadata.Broker{}, false
	}
	i := slices.IndexFunc(t.Partitions, func(p metadata.Partition) bool { return p.ID == part })
	if i < 0 {
		return -1, -1, metadata.Broker{}, false
	}
	mp := t.Partitions[i]
	if mp.Leader < 0 {
		return -1, mp.LeaderEpoch, metadata.Broker{}, false
	}
	for _, x := range b.meta.Brokers() {
		if x.NodeID == mp.Leader {
			return mp.Leader, mp.LeaderEpoch, x, x.Live()
		}
	}
	return mp.Leader, mp.LeaderEpoch, metadata.Broker{}, false
}

// produceLeaderHint adds KIP-951's CurrentLeader and NodeEndpoints to a
// Produce partition answered NOT_LEADER_OR_FOLLOWER (v10+), so the client
// moves to the new leader without a Metadata round trip.
func (b *Broker) produceLeaderHint(version int16, resp *kmsg.ProduceResponse, sp *kmsg.ProduceResponseTopicPartition, topic string) {
	if version < 10 || sp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	leader, epoch, br, ok := b.currentLeader(topic, sp.Partition)
	if !ok {
		return
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = leader, epoch
	for _, e := range resp.Brokers {
		if e.NodeID == leader {
			return
		}
	}
	e := kmsg.NewProduceResponseBroker()
	e.NodeID, e.Host, e.Port = br.NodeID, br.Host, br.Port
	if br.Rack != "" {
		e.Rack = kmsg.StringPtr(br.Rack)
	}
	resp.Brokers = append(resp.Brokers, e)
}

// fetchLeaderHint is produceLeaderHint for Fetch (CurrentLeader v12+,
// NodeEndpoints v16+).
func (b *Broker) fetchLeaderHint(version int16, resp *kmsg.FetchResponse, rp *kmsg.FetchResponseTopicPartition, topic string) {
	if version < 12 || rp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	leader, epoch, br, ok := b.currentLeader(topic, rp.Partition)
	if !ok {
		return
	}
	rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader, epoch
	if version < 16 {
		return
	}
	for _, e := range resp.Brokers {
		if e.NodeID == leader {
			return
		}
	}
	e := kmsg.NewFetchResponseBroker()
	e.NodeID, e.Host, e.Port = br.NodeID, br.Host, br.Port
	if br.Rack != "" {
		e.Rack = kmsg.StringPtr(br.Rack)
	}
	resp.Brokers = append(resp.Brokers, e)
}

// controlledShutdown asks the controller to move leadership away from this
// broker before it stops (cluster mode only: a single node has nowhere to
// move it). It waits at most controlledShutdownWait or until ctx ends.
func (b *Broker) controlledShutdown(ctx context.Context) {
	if b.meta == nil || ctx.Err() != nil || !b.clustered() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, controlledShutdownWait)
	defer cancel()
	start := time.Now()
	if err := b.meta.ControlledShutdown(ctx); err != nil {
		b.logger.Warn("controlled shutdown did not complete; stopping anyway", "err", err, "waited", time.Since(start).Round(time.Millisecond))
		return
	}
	b.logger.Info("controlled shutdown done", "took", time.Since(start).Round(time.Millisecond))
}

// coordinatorNode returns the broker serving key's partition of an
// internal topic (the partition's leader) for FindCoordinator, or
// COORDINATOR_NOT_AVAILABLE while it has no live leader.
func (b *Broker) coordinatorNode(topic string, part int32) (metadata.Broker, error) {
	leader, _, br, ok := b.currentLeader(topic, part)
	if !ok {
		return metadata.Broker{}, fmt.Errorf("%w: %s partition %d has no live leader (leader %d)", kerr.CoordinatorNotAvailable, topic, part, leader)
	}
	return br, nil
}

// drop stops serving a partition this broker no longer leads: it leaves
// the table (requests answer NOT_LEADER_OR_FOLLOWER) and its parked
// fetches wake to find that out. The log stays open in the log manager
// and on disk (a follower's fetcher writes it), and is served again when
// leadership comes back.
func (t *partitionTable) drop(key tpKey) {
	t.mu.Lock()
	p, ok := t.m[key]
	delete(t.m, key)
	delete(t.failed, key)
	t.mu.Unlock()
	if ok {
		t.b.logger.Info("no longer leader; partition not served here", "topic", key.topic, "partition", key.part)
		p.wake()
	}
}

// topicEvent runs after the partition table applied a topic event, on the
// metadata apply goroutine (nothing here blocks on other brokers):
//   - a deleted topic's partitions this broker holds but no longer served
//     (dropped when their leadership left) are removed from disk too, so
//     a topic re-created with the same name starts empty;
//   - a change of __consumer_offsets or __transaction_state (creation,
//     leadership) goes to its coordinator, which loads the partitions this
//     broker now leads in the background.
func (b *Broker) topicEvent(ev metadata.Event) {
	if b.closing.Load() {
		return
	}
	if ev.Kind == metadata.TopicDeleted && b.clustered() {
		b.removeDropped(ev.Topic)
	}
	if ev.Kind != metadata.TopicCreated && ev.Kind != metadata.PartitionChanged {
		return
	}
	switch ev.Topic {
	case offsetsTopic:
		b.groups.leadershipChanged()
	case txnStateTopic:
		b.txns.leadershipChanged()
	}
}

// removeDropped removes the partition directories of a deleted topic that
// are not in the partition table (removeTopic took care of those).
func (b *Broker) removeDropped(topic string) {
	if _, exists := b.meta.Topic(topic); exists {
		return // re-created meanwhile: syncTopic handles it
	}
	onDisk, err := b.logs.OnDisk()
	if err != nil {
		b.logger.Error("list partition directories", "err", err)
		return
	}
	for _, tp := range onDisk {
		if tp.Topic != topic {
			continue
		}
		if _, hosted := b.parts.get(tp.Topic, tp.Partition); hosted {
			continue
		}
		b.logger.Info("removing partition of a deleted topic", "topic", tp.Topic, "partition", tp.Partition)
		if err := b.logs.Remove(tp.Topic, tp.Partition); err != nil {
			b.logger.Error("remove partition", "topic", tp.Topic, "partition", tp.Partition, "err", err)
		}
	}
}
