// Package group is the consumer-group coordinator: Kafka's classic
// rebalance protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with
// KIP-394 required member ids and KIP-345 static membership, and the
// committed offsets of every group (OffsetCommit, OffsetFetch,
// OffsetDelete), kept durable in the internal compacted topic
// __consumer_offsets in Kafka's own record format. ListGroups,
// DescribeGroups and DeleteGroups complete the admin side.
//
// # Usage
//
// The broker creates one Coordinator with New, giving it a Log: the two
// operations it needs on __consumer_offsets (append durably, read back).
// For each partition of __consumer_offsets it leads, the broker calls
// Load, which replays the partition and then serves the groups that hash
// to it (PartitionFor: Kafka's abs(hashCode(group)) % partitions). Until
// then requests for those groups answer NOT_COORDINATOR, or
// COORDINATOR_LOAD_IN_PROGRESS while the partition loads. Unload stops
// serving a partition; Close stops everything.
//
// Each request method takes the decoded kmsg request and returns the
// response at the request's version. JoinGroup blocks until the rebalance
// completes, SyncGroup until the leader's assignment is stored, and every
// write (commits, group metadata, deletions) until it is durable, so the
// broker calls them off its connection reader. The broker passes the
// client id and address of a request in ctx with WithClient.
//
// # Design
//
// Each loaded partition is a shard with one owner goroutine running an
// event loop over a state machine (partitionState) that has no goroutines,
// no clock and no I/O: Step(event) and Tick(now), with the records it
// wants appended taken by the driver and their outcome fed back as an
// event. Tests drive the state machine directly, or the Coordinator with a
// manual clock. See DESIGN.md for the states, the file map, the goroutine
// map and the record format.
package group
