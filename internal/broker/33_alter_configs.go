package broker

// AlterConfigs: v0-2
//
// Behavior:
//   - TOPIC resources: the given configs become the topic's whole set of
//     overrides (Kafka's legacy replace semantics); every key and value is
//     validated against the topic config table first (INVALID_CONFIG).
//     Open partitions take the new config at once.
//   - BROKER resources: broker settings are static in Sluice (set by flag,
//     file or environment); altering them answers INVALID_REQUEST.
//   - ValidateOnly checks without applying.
//
// Version notes:
//   - v2: flexible

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(33, 0, 2, (*Broker).handleAlterConfigs) }

func (b *Broker) handleAlterConfigs(r *request, req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var ops []metadata.ConfigOp
		for _, c := range rr.Configs {
			ops = append(ops, metadata.ConfigOp{Name: c.Name, Op: 0, Value: c.Value})
		}
		err := b.alterConfigs(r, rr.ResourceType, rr.ResourceName, ops, true, req.ValidateOnly)
		res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, res)
	}
	return resp
}

func (b *Broker) alterConfigs(r *request, typ kmsg.ConfigResourceType, name string, ops []metadata.ConfigOp, replace, validateOnly bool) error {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if err := b.meta.AlterTopicConfigs(r.ctx, name, ops, replace, validateOnly); err != nil {
			return err
		}
		if !validateOnly {
			b.logger.Info("altered topic configs", "topic", name, "changes", len(ops))
		}
		return nil
	case kmsg.ConfigResourceTypeBroker:
		return fmt.Errorf("%w: broker settings are static in Sluice; set them by flag, config file or SLUICE_* environment and restart", kerr.InvalidRequest)
	default:
		return fmt.Errorf("%w: resource type %d is not supported", kerr.InvalidRequest, typ)
	}
}
