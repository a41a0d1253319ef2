package broker

// OffsetCommit: v0-9
//
// Behavior:
//   - Commits are appended to __consumer_offsets through the ordinary log
//     path and answered once durable (group-commit fsync).
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

func init() { register(8, 0, 9, (*Broker).handleOffsetCommit) }

func (b *Broker) handleOffsetCommit(r *request, req *kmsg.OffsetCommitRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.OffsetCommit(r.groupCtx(ctx), req) })
	return nil
}
