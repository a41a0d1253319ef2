package broker

// OffsetFetch: v0-9
//
// Behavior:
//   - A group that does not exist answers offset -1 with no error; v8+
//     batches groups.
//   - v7+ require_stable: a partition with a transactional offset commit
//     whose transaction is not decided yet answers UNSTABLE_OFFSET_COMMIT
//     (offset -1), which clients retry, as Kafka does; without it such a
//     partition shows its last committed offset.
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

func init() { register(9, 0, 9, (*Broker).handleOffsetFetch) }

func (b *Broker) handleOffsetFetch(r *request, req *kmsg.OffsetFetchRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.OffsetFetch(r.groupCtx(ctx), req) })
	return nil
}
