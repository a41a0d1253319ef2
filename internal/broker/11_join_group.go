package broker

// JoinGroup: v0-9
//
// Behavior:
//   - Classic rebalance protocol (internal/group): answered when the
//     rebalance completes, so it is a deferred response; the requests behind
//     it on the connection are handled meanwhile.
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

func init() { register(11, 0, 9, (*Broker).handleJoinGroup) }

func (b *Broker) handleJoinGroup(r *request, req *kmsg.JoinGroupRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.JoinGroup(r.groupCtx(ctx), req) })
	return nil
}
