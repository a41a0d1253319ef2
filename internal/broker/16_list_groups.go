package broker

// ListGroups: v0-5
//
// Behavior:
//   - Every group this broker coordinates (v4+: filtered by state, v5+: by type).
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

func init() { register(16, 0, 5, (*Broker).handleListGroups) }

func (b *Broker) handleListGroups(r *request, req *kmsg.ListGroupsRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.ListGroups(r.groupCtx(ctx), req) })
	return nil
}
