package broker

// DescribeCluster: v0-1
//
// Behavior:
//   - The cluster id, the controller (the metadata quorum's leader) and
//     the live brokers (registered, unfenced, not shutting down), as Kafka.
//   - EndpointType (v1+) 1 = brokers is answered; 2 = controllers answers
//     UNSUPPORTED_ENDPOINT_TYPE, as a broker listener does in Kafka.
//
// Version notes:
//   - v1: EndpointType

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(60, 0, 1, (*Broker).handleDescribeCluster) }

func (b *Broker) handleDescribeCluster(r *request, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = 1
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.EndpointType = req.EndpointType
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp
	}
	resp.ClusterID = b.meta.ClusterID()
	resp.ControllerID = b.meta.ControllerID()
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = allClusterOps
	} else {
		resp.ClusterAuthorizedOperations = -2147483648
	}
	for _, br := range b.liveBrokers() {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			rb.Rack = kmsg.StringPtr(br.Rack)
		}
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp
}
