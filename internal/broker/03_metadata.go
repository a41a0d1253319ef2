package broker

// Metadata: v0-13
//
// Behavior:
//   - Lists the live (registered, unfenced, not shutting down) brokers and
//     the controller (the metadata quorum's leader), as Kafka does.
//   - Partitions show leader, leader epoch, replicas and ISR from the
//     metadata; a partition without a leader answers LEADER_NOT_AVAILABLE;
//     replicas on brokers that are not live are OfflineReplicas.
//   - Null topics (v1+) lists every topic; an empty list lists none.
//   - A missing topic is created when AllowAutoTopicCreation (v4+; always for
//     v0-3) and auto.create.topics.enable are both set, with num.partitions
//     and default.replication.factor; otherwise UNKNOWN_TOPIC_OR_PARTITION.
//     A topic name that is not legal answers INVALID_TOPIC_EXCEPTION.
//     __consumer_offsets and __transaction_state are created as internal
//     topics with their own settings (offsets.topic.num.partitions, ...),
//     as Kafka's AutoTopicCreationManager does.
//   - Topics by ID (v10+): an unknown ID answers UNKNOWN_TOPIC_ID.
//
// Version notes:
//   - v1: ControllerID, IsInternal, Rack; v2: ClusterID; v4: AllowAutoTopicCreation
//   - v5: OfflineReplicas; v7: LeaderEpoch; v8: authorized operations
//   - v9: flexible; v10: TopicID; v13: top-level ErrorCode

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(3, 0, 13, (*Broker).handleMetadata) }

func (b *Broker) handleMetadata(r *request, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	live := map[int32]bool{}
	for _, br := range b.liveBrokers() {
		live[br.NodeID] = true
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			mb.Rack = kmsg.StringPtr(br.Rack)
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ClusterID = kmsg.StringPtr(b.meta.ClusterID())
	resp.ControllerID = b.meta.ControllerID()
	if req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = allClusterOps
	}

	addTopic := func(t metadata.Topic) {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = kmsg.StringPtr(t.Name)
		mt.TopicID = t.ID
		mt.IsInternal = t.Internal
		if req.IncludeTopicAuthorizedOperations {
			mt.AuthorizedOperations = allTopicOps
		}
		for _, p := range t.Partitions {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = p.ID
			mp.Leader = p.Leader
			mp.LeaderEpoch = p.LeaderEpoch
			mp.Replicas = append([]int32{}, p.Replicas...)
			mp.ISR = append([]int32{}, p.ISR...)
			mp.OfflineReplicas = []int32{}
			for _, id := range p.Replicas {
				if !live[id] {
					mp.OfflineReplicas = append(mp.OfflineReplicas, id)
				}
			}
			if p.Leader < 0 {
				mp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	errTopic := func(name *string, id [16]byte, err error) {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID, mt.ErrorCode = name, id, errCode(err)
		mt.Partitions = []kmsg.MetadataResponseTopicPartition{}
		resp.Topics = append(resp.Topics, mt)
	}

	if req.Topics == nil && req.Version >= 1 || req.Version == 0 && len(req.Topics) == 0 {
		for _, t := range b.meta.Topics() {
			addTopic(t)
		}
		return resp
	}
	autoCreate := b.set.autoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	seen := map[string]bool{}
	for _, rt := range req.Topics {
		if rt.TopicID != ([16]byte{}) && req.Version >= 10 {
			t, ok := b.meta.TopicByID(rt.TopicID)
			if !ok {
				errTopic(nil, rt.TopicID, kerr.UnknownTopicID)
				continue
			}
			if !seen[t.Name] {
				seen[t.Name] = true
				addTopic(t)
			}
			continue
		}
		if rt.Topic == nil || seen[*rt.Topic] {
			continue
		}
		name := *rt.Topic
		seen[name] = true
		t, ok := b.meta.Topic(name)
		if !ok && autoCreate {
			var err error
			t, err = b.autoCreateTopic(r, name)
			if err != nil {
				errTopic(rt.Topic, [16]byte{}, err)
				continue
			}
			ok = true
		}
		if !ok {
			errTopic(rt.Topic, [16]byte{}, kerr.UnknownTopicOrPartition)
			continue
		}
		addTopic(t)
	}
	return resp
}

// autoCreateTopic creates a topic with the broker's defaults. A concurrent
// creation of the same name counts as success.
func (b *Broker) autoCreateTopic(r *request, name string) (metadata.Topic, error) {
	if t, ok, err := b.autoCreateInternal(r.ctx, name); ok {
		return t, err
	}
	rf := min(b.set.replicationFactor, b.liveBrokerCount())
	t, err := b.meta.CreateTopic(r.ctx, metadata.TopicSpec{Name: name, Partitions: b.set.numPartitions, ReplicationFactor: rf}, false)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		if t, ok := b.meta.Topic(name); ok {
			return t, nil
		}
	}
	if err != nil {
		return metadata.Topic{}, err
	}
	b.logger.Info("auto-created topic", "topic", name, "partitions", b.set.numPartitions, "replication-factor", rf)
	return t, nil
}

// Authorized-operations bit sets for a broker without ACLs: everything is
// allowed (Kafka's encoding: bit i set for AclOperation i).
const (
	allTopicOps   int32 = 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11
	allClusterOps int32 = 1<<4 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12
)
