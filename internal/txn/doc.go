// Package txn holds the exactly-once machinery above the storage engine:
// the producer-id manager behind InitProducerId, and the transaction
// coordinator (Coordinator: state in the internal topic
// __transaction_state, markers written through the Markers interface).
//
// Producer ids are durable and never reused. Like Kafka's controller
// (AllocateProducerIds), the metadata quorum hands out blocks of ids
// (Allocator, implemented by *metadata.Store); a ProducerIDs takes one
// block at a time and hands out its ids one by one:
//
//	pids := txn.NewProducerIDs(store, txn.DefaultBlockSize)
//	id, err := pids.Next(ctx)
//
// Ids of a block not handed out before a restart are skipped, never
// reused. The per-partition idempotence state (sequence numbers, epochs,
// duplicate detection) lives in the storage engine (package log), checked
// atomically with offset assignment.
package txn
