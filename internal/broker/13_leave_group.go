package broker

// LeaveGroup: v0-5
//
// Behavior:
//   - Removes members (v3+: batched, by member or group instance id) and
//     rebalances the rest.
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

func init() { register(13, 0, 5, (*Broker).handleLeaveGroup) }

func (b *Broker) handleLeaveGroup(r *request, req *kmsg.LeaveGroupRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.LeaveGroup(r.groupCtx(ctx), req) })
	return nil
}
