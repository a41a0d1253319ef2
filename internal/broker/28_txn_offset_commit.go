package broker

// TxnOffsetCommit: v0-3
//
// Behavior:
//   - The group coordinator (internal/group) appends the offsets to the
//     group's __consumer_offsets partition as a transactional batch of the
//     producer and holds them pending: they become visible to OffsetFetch
//     when the transaction's commit marker is written (EndTxn), and are
//     dropped by an abort marker. Replay after a restart honours the
//     markers; offsets of a transaction still open come back pending.
//   - v3 with a generation: a generation other than the group's is
//     ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID.
//   - An older producer epoch than the partition has seen for the
//     producer: INVALID_PRODUCER_EPOCH.
//   - Not checked against the transaction coordinator (as Kafka before
//     KIP-890): the client must have called AddOffsetsToTxn.
//   - require_stable in OffsetFetch is not honoured yet (pending offsets
//     are simply not shown).
//   - Serial on its connection.
//
// Version notes:
//   - v2: commited leader epoch; v3: flexible, generation, member id,
//     instance id (KIP-447)

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(28, 0, 3, (*Broker).handleTxnOffsetCommit) }

func (b *Broker) handleTxnOffsetCommit(r *request, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	r.serial(func(ctx context.Context) kmsg.Response { return b.groups.coord.TxnOffsetCommit(ctx, req) })
	return nil
}
