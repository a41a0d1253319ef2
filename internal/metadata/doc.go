// Package metadata is Sluice's replicated cluster metadata: brokers, topics
// (ids, partitions, replica placement, leaders, ISR, leader epochs), topic
// config overrides and dynamic broker configs, held by a deterministic state
// machine behind a hashicorp/raft quorum.
//
// A single node runs a one-voter quorum, so one node and a cluster share one
// code path. Open bootstraps the voter on first start, replays the snapshot
// and log otherwise, waits until it leads, and registers the local broker:
//
//	s, err := metadata.Open(ctx, metadata.Config{NodeID: 1, Dir: dir, Addr: "localhost:9092"})
//	defer s.Close()
//	cancel := s.Subscribe(onEvent) // subscribe first, then read
//	for _, t := range s.Topics() { ... }
//	_, err = s.CreateTopic(ctx, metadata.TopicSpec{Name: "orders", Partitions: 8, ReplicationFactor: 1}, false)
//
// # Clusters
//
// In a cluster every node gets the voter list and a controller listener
// that carries Raft and write forwarding:
//
//	voters, err := metadata.ParseVoters("1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293")
//	s, err := metadata.Open(ctx, metadata.Config{NodeID: 2, Dir: dir, Addr: "127.0.0.1:9192",
//		RaftAddr: "127.0.0.1:9193", Voters: voters})
//
// Nodes in the list are voters (combined mode); a node not in it is a
// broker-only node that joins as a Raft non-voter. Open waits for a leader
// (the active controller) and for the local state to catch up. Writes work
// on every node (they are forwarded to the controller); the Store sends
// this broker's heartbeats, and the controller fences brokers that stop
// (broker.session.timeout.ms), moving their partition leaderships within
// the ISR. AlterPartition, ElectLeaders, AlterPartitionReassignments,
// ControlledShutdown, AddVoter and RemoveVoter complete the controller API;
// DESIGN.md lists what the broker calls.
// # Reads and writes
//
// Reads (Topic, Topics, Brokers, ...) come from the local state machine and
// return copies. Writes validate on the leader (so validateOnly needs no
// log entry), decide everything random there (topic ids, replica placement),
// and propose a command; the state machine validates again when it applies
// it, so racing writes resolve deterministically. A write returns after its
// command is applied locally and every subscriber has been called for it.
//
// # Errors
//
// Write errors wrap franz-go kerr errors: errors.Is(err, kerr.InvalidConfig)
// and errors.As(err, &kerrErr) work, and KafkaMessage(err) gives the text
// for a response's error message. Validation follows Kafka's rules: topic
// names ([a-zA-Z0-9._-], at most 249 bytes, not "." or "..", no '.'/'_'
// collision with an existing topic: InvalidTopicException), TopicAlreadyExists,
// InvalidPartitions, InvalidReplicationFactor, InvalidReplicaAssignment,
// InvalidConfig (naming key and reason), UnknownTopicOrPartition, the
// partition-state errors (FencedLeaderEpoch, InvalidUpdateVersion,
// IneligibleReplica, StaleBrokerEpoch, ...), and NotController when no
// active controller could be reached.
//
// # Topic configs
//
// TopicConfigs is the one table of topic configs: name, Kafka type, Kafka
// 4.x default, the broker key that supplies the default, doc and validator.
// The store keeps raw string overrides; the broker turns effective values
// into typed settings. write.caching is Sluice's own (Redpanda's name):
// false (default) = durable group-commit fsync, true = Kafka's page-cache
// model governed by flush.messages and flush.ms.
//
// # On-disk format
//
// Under Config.Dir/raft: raft.db (raft-boltdb: the Raft log and stable
// store, including the Raft configuration of voters and non-voters) and
// snapshots/ (raft's FileSnapshotStore). Log entries are JSON
// envelopes {"v":1,"type":...,"body":...}; snapshots are one JSON document
// with "v":1. Both are frozen formats: add fields, never change one.
package metadata
