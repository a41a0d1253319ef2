package broker

// DescribeConfigs: v0-4
//
// Behavior:
//   - TOPIC resources: every topic config from the one config table with its
//     effective value and source: the topic override (DYNAMIC_TOPIC_CONFIG),
//     the broker setting that supplies its default (STATIC_BROKER_CONFIG),
//     or Kafka's default (DEFAULT_CONFIG). Synonyms (v1+) list each level
//     that has a value; documentation (v3+) and types (v3+) come from the table.
//   - BROKER resources: the broker settings table for this node's id (or
//     the empty name, the cluster default).
//   - ConfigNames restricts the answer; unknown names are left out.
//   - Errors per resource: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST for a
//     broker id that is not this broker or an unsupported resource type.
//
// Version notes:
//   - v1: sources and synonyms; v3: types and documentation; v4: flexible

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(32, 0, 4, (*Broker).handleDescribeConfigs) }

func (b *Broker) handleDescribeConfigs(r *request, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := b.meta.Topic(rr.ResourceName)
			if !ok {
				err = kerr.UnknownTopicOrPartition
				break
			}
			for _, e := range b.topicConfigEntries(t.Configs, rr.ConfigNames) {
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value = e.name, kmsg.StringPtr(e.value)
				c.Source = kmsg.ConfigSource(e.source)
				c.IsDefault = e.source == sourceDefault
				c.ConfigType = kmsg.ConfigType(e.def.Type)
				if req.IncludeDocumentation {
					c.Documentation = kmsg.StringPtr(e.def.Doc)
				}
				if req.IncludeSynonyms {
					c.ConfigSynonyms = b.topicSynonyms(t.Configs, e)
				}
				res.Configs = append(res.Configs, c)
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.NodeID)) {
				err = fmt.Errorf("%w: broker %q is not this broker (%d)", kerr.InvalidRequest, rr.ResourceName, b.cfg.NodeID)
				break
			}
			res.Configs = b.brokerConfigEntries(rr.ConfigNames, req.IncludeSynonyms, req.IncludeDocumentation)
		default:
			err = fmt.Errorf("%w: resource type %d is not supported", kerr.InvalidRequest, rr.ResourceType)
		}
		if err != nil {
			res.ErrorCode = errCode(err)
			res.ErrorMessage = errMessage(err)
			res.Configs = nil
		}
		resp.Resources = append(resp.Resources, res)
	}
	return resp
}

func (b *Broker) topicSynonyms(overrides map[string]string, e configEntry) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(name, value string, src configSource) {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Value, s.Source = name, kmsg.StringPtr(value), kmsg.ConfigSource(src)
		out = append(out, s)
	}
	if v, ok := overrides[e.name]; ok {
		add(e.name, v, sourceTopic)
	}
	if v, ok := b.set.topicDefaults[e.name]; ok {
		add(e.def.BrokerKey, v, sourceStaticBroker)
	}
	if e.def.BrokerKey != "" {
		add(e.def.BrokerKey, e.def.Default, sourceDefault)
	}
	return out
}

func (b *Broker) brokerConfigEntries(names []string, synonyms, docs bool) []kmsg.DescribeConfigsResponseResourceConfig {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, d := range BrokerSettings() {
		if names != nil && !want[d.Name] {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = d.Name
		v, set := b.cfg.Settings[d.Name]
		if !set {
			v = d.Default
		}
		c.Value = kmsg.StringPtr(v)
		c.ReadOnly = true
		c.Source = kmsg.ConfigSource(sourceDefault)
		if set {
			c.Source = kmsg.ConfigSource(sourceStaticBroker)
		}
		c.IsDefault = !set
		c.ConfigType = kmsg.ConfigType(d.Type)
		if docs {
			c.Documentation = kmsg.StringPtr(d.Doc)
		}
		if synonyms {
			s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			s.Name, s.Value, s.Source = d.Name, c.Value, c.Source
			c.ConfigSynonyms = append(c.ConfigSynonyms, s)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
