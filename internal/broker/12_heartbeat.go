package broker

// Heartbeat: v0-4
//
// Behavior:
//   - Keeps a member alive; REBALANCE_IN_PROGRESS tells it to rejoin.
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

func init() { register(12, 0, 4, (*Broker).handleHeartbeat) }

func (b *Broker) handleHeartbeat(r *request, req *kmsg.HeartbeatRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.Heartbeat(r.groupCtx(ctx), req) })
	return nil
}
