package broker

// CreateTopics: v0-7
//
// Behavior:
//   - Creates topics through the metadata quorum; the call returns once the
//     topic is committed and the partitions this broker leads are open.
//   - NumPartitions / ReplicationFactor of -1 (v4+) take num.partitions and
//     default.replication.factor. A manual ReplicaAssignment is honoured.
//   - Configs are validated against the topic config table: an unknown key
//     or bad value answers INVALID_CONFIG with a message naming it.
//   - Errors per topic: TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION,
//     INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_CONFIG,
//     INVALID_REQUEST (a topic named twice in one request).
//   - ValidateOnly (v1+) checks without creating.
//   - In a cluster (several nodes) a replication factor above 1 answers
//     INVALID_REPLICATION_FACTOR with a message: replication between brokers
//     is not implemented yet, and a partition must not look replicated.
//   - v5+ returns the topic's effective configs, partitions and replication
//     factor; v7+ its topic id.
//
// Version notes:
//   - v1: ValidateOnly, ErrorMessage; v2: throttle; v4: -1 defaults
//   - v5: flexible, configs in the response; v7: topic id

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(19, 0, 7, (*Broker).handleCreateTopics) }

func (b *Broker) handleCreateTopics(r *request, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(err error) {
			st.ErrorCode = errCode(err)
			st.ErrorMessage = errMessage(err)
			resp.Topics = append(resp.Topics, st)
		}
		if count[rt.Topic] > 1 {
			fail(kerr.InvalidRequest)
			continue
		}
		spec := metadata.TopicSpec{Name: rt.Topic, Partitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor, Configs: map[string]string{}}
		if len(rt.ReplicaAssignment) > 0 {
			if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
				fail(kerr.InvalidRequest)
				continue
			}
			asg := make([][]int32, len(rt.ReplicaAssignment))
			for _, a := range rt.ReplicaAssignment {
				if a.Partition < 0 || int(a.Partition) >= len(asg) || asg[a.Partition] != nil {
					asg = nil
					break
				}
				asg[a.Partition] = a.Replicas
			}
			if asg == nil {
				fail(kerr.InvalidReplicaAssignment)
				continue
			}
			spec.Assignment = asg
			spec.Partitions = int32(len(asg))
			spec.ReplicationFactor = int16(len(asg[0]))
		}
		if spec.Partitions == -1 {
			spec.Partitions = b.set.numPartitions
		}
		if spec.ReplicationFactor == -1 {
			spec.ReplicationFactor = b.set.replicationFactor
		}
		for _, c := range rt.Configs {
			if c.Value == nil {
				continue // a null value means "use the default"
			}
			spec.Configs[c.Name] = *c.Value
		}
		t, err := b.meta.CreateTopic(r.ctx, spec, req.ValidateOnly)
		if err != nil {
			fail(err)
			continue
		}
		if !req.ValidateOnly {
			b.logger.Info("created topic", "topic", t.Name, "partitions", len(t.Partitions), "replication-factor", spec.ReplicationFactor)
		}
		st.TopicID = t.ID
		st.NumPartitions = int32(len(t.Partitions))
		st.ReplicationFactor = spec.ReplicationFactor
		if req.Version >= 5 {
			for _, e := range b.topicConfigEntries(t.Configs, nil) {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name, c.Value, c.ReadOnly, c.Source, c.IsSensitive = e.name, kmsg.StringPtr(e.value), false, int8(e.source), false
				st.Configs = append(st.Configs, c)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// configEntry is one effective topic config.
type configEntry struct {
	name   string
	value  string
	source configSource
	def    metadata.ConfigDef
}

// topicConfigEntries lists a topic's effective configs (only names, if
// non-nil), sorted by name.
func (b *Broker) topicConfigEntries(overrides map[string]string, names []string) []configEntry {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []configEntry
	for _, def := range metadata.TopicConfigs() {
		if names != nil && !want[def.Name] {
			continue
		}
		v, src := b.topicConfigValue(overrides, def)
		out = append(out, configEntry{name: def.Name, value: v, source: src, def: def})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
