package broker

// IncrementalAlterConfigs: v0-1
//
// Behavior:
//   - TOPIC resources: SET, DELETE (back to the default), APPEND and
//     SUBTRACT (list configs such as cleanup.policy) applied to the topic's
//     overrides after validation against the topic config table
//     (INVALID_CONFIG names the key and the reason). Open partitions take
//     the new config at once.
//   - BROKER resources: static in Sluice; INVALID_REQUEST.
//   - ValidateOnly checks without applying.
//
// Version notes:
//   - v1: flexible

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/metadata"
)

func init() { register(44, 0, 1, (*Broker).handleIncrementalAlterConfigs) }

func (b *Broker) handleIncrementalAlterConfigs(r *request, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var ops []metadata.ConfigOp
		for _, c := range rr.Configs {
			ops = append(ops, metadata.ConfigOp{Name: c.Name, Op: int8(c.Op), Value: c.Value})
		}
		err := b.alterConfigs(r, rr.ResourceType, rr.ResourceName, ops, false, req.ValidateOnly)
		res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, res)
	}
	return resp
}
