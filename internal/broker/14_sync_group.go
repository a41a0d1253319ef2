package broker

// SyncGroup: v0-5
//
// Behavior:
//   - The leader sends the assignment; every member gets its own once the
//     leader's arrives (a deferred response until then).
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

func init() { register(14, 0, 5, (*Broker).handleSyncGroup) }

func (b *Broker) handleSyncGroup(r *request, req *kmsg.SyncGroupRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.SyncGroup(r.groupCtx(ctx), req) })
	return nil
}
