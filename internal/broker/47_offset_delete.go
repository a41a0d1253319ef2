package broker

// OffsetDelete: v0-0
//
// Behavior:
//   - Deletes committed offsets of partitions no member is subscribed to
//     (GROUP_SUBSCRIBED_TO_TOPIC otherwise).
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

func init() { register(47, 0, 0, (*Broker).handleOffsetDelete) }

func (b *Broker) handleOffsetDelete(r *request, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.OffsetDelete(r.groupCtx(ctx), req) })
	return nil
}
