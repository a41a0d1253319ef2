package broker

// DeleteGroups: v0-2
//
// Behavior:
//   - Deletes empty groups and their offsets (tombstones); NON_EMPTY_GROUP,
//     GROUP_ID_NOT_FOUND otherwise.
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

func init() { register(42, 0, 2, (*Broker).handleDeleteGroups) }

func (b *Broker) handleDeleteGroups(r *request, req *kmsg.DeleteGroupsRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.DeleteGroups(r.groupCtx(ctx), req) })
	return nil
}
