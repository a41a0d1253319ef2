// Package replica is partition leadership and data replication, Kafka's ISR
// design: the leader tracks each follower's fetch position, computes the
// high watermark as the minimum log end over the in-sync replicas, shrinks
// and expands the ISR through the controller (AlterPartition), and
// completes acks=all produces once the high watermark covers them;
// followers run one fetcher goroutine per leader broker that truncates by
// leader epoch (KIP-101/279, KIP-320 diverging epochs), appends the
// leader's batches as they are and follows the leader's high watermark and
// log start.
//
// # Leader
//
// A Leader exists while this broker leads a partition at one leader epoch:
//
//	l, err := replica.NewLeader(cfg, replica.LeaderConfig{State: st, Log: p, Proposer: controller, ...})
//	err = l.CheckAppend(acks)                  // NOT_ENOUGH_REPLICAS when the ISR is below min.insync.replicas
//	res, err := p.Append(records); l.OnAppend()
//	err = l.WaitCommitted(ctx, res.LastOffset) // acks=all purgatory
//	ans := l.OnFollowerFetch(replica.FollowerFetch{...})  // Fetch with replica id >= 0
//	eo, err := l.OffsetForLeaderEpoch(current, epoch)     // OffsetForLeaderEpoch (API 23)
//	l.MaybeShrinkISR()                         // every replica.lag.time.max.ms / 2
//	l.Close()
//
// With durable logs (the default), the leader counts its own durable offset
// toward the high watermark, and followers fetch offset N only after their
// log is durable below N, so every offset the high watermark covers is on
// disk on every in-sync replica.
//
// # Follower
//
// A Fetcher fetches every partition this broker follows from one leader
// broker through a LeaderClient (NewKgoClient over franz-go for the
// network; tests answer in-process). Manager ties both together: it owns
// the leaders, one fetcher per leader broker and the ISR expiration loop,
// and is what the broker calls on metadata changes.
//
// Errors returned to the broker are franz-go kerr values (or wrap them), so
// the broker maps them to Kafka codes with errors.As.
//
// See DESIGN.md for the state machines, the goroutines, the lock order and
// the broker wiring.
package replica
