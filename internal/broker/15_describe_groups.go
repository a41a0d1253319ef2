package broker

// DescribeGroups: v0-5
//
// Behavior:
//   - State, protocol and members (with metadata and assignment) of each group.
//
//   - Like every coordinator request it is serial on its connection: the
//     next request is read only once this one is answered, as Kafka mutes a
//     connection per request, so group operations take effect in order.
//
// Version notes: see the kmsg type; the group coordinator
// (internal/group) answers at the request's version.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(15, 0, 5, (*Broker).handleDescribeGroups) }

func (b *Broker) handleDescribeGroups(r *request, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.DescribeGroups(r.groupCtx(ctx), req) })
	return nil
}
