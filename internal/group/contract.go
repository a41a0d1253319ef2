package group

// CONTRACT STUB. This file fixes the exported API that internal/broker is
// written against. The group implementer replaces these stubs with the real
// implementation (coordinator.go, group.go, offsets.go, storage.go, ... and
// deletes this file), keeping every exported name and signature below. New
// exported API may be added freely.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrNotLoaded is returned while a coordinator partition is still loading.
var ErrNotLoaded = errors.New("group: coordinator partition is loading")

// Log is what the coordinator needs of the __consumer_offsets topic; the
// broker implements it over ordinary partition logs (the same append path as
// user data).
type Log interface {
	// Append appends raw record batches (magic v2, built by the coordinator,
	// offsets to be assigned by the log) to partition p of
	// __consumer_offsets and returns once they are durable (or ctx ends).
	Append(ctx context.Context, p int32, batches []byte) error
	// Read calls fn with the raw bytes of every batch of partition p, in
	// offset order, from the log start to the current end.
	Read(p int32, fn func(batch []byte) error) error
}

// Config configures a Coordinator. Zero values mean Kafka's defaults.
type Config struct {
	NodeID int32 // this broker (the coordinator of every group on a single node)
	// Partitions is offsets.topic.num.partitions (default 50).
	Partitions int32
	// MinSessionTimeout / MaxSessionTimeout: group.min.session.timeout.ms
	// (6 s) and group.max.session.timeout.ms (30 min).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay: group.initial.rebalance.delay.ms (3 s).
	InitialRebalanceDelay time.Duration
	// MaxGroupSize: group.max.size (default unlimited).
	MaxGroupSize int
	// OffsetsRetention: offsets.retention.minutes (7 days) for empty groups;
	// OffsetsRetentionCheck: offsets.retention.check.interval.ms (10 min).
	OffsetsRetention, OffsetsRetentionCheck time.Duration
	// MaxMetadataSize: offset.metadata.max.bytes (4096).
	MaxMetadataSize int
	// TopicExists reports whether a topic partition exists, for
	// OffsetCommit's UNKNOWN_TOPIC_OR_PARTITION; nil accepts every one.
	TopicExists func(topic string, partition int32) bool
	Logger      *slog.Logger     // nil = discard
	Now         func() time.Time // nil = time.Now
}

// Coordinator is the consumer-group coordinator for every group whose
// __consumer_offsets partition this broker leads.
type Coordinator struct{}

// New returns a coordinator; call Load for each partition it should serve.
func New(cfg Config, log Log) *Coordinator { panic("unimplemented") }

// PartitionFor is the __consumer_offsets partition of a group: Kafka's
// abs(javaStringHashCode(groupID)) % Partitions.
func (c *Coordinator) PartitionFor(group string) int32 { panic("unimplemented") }

// Load replays partition p of __consumer_offsets (groups, members of
// static/stable groups, committed offsets) and starts serving its groups.
// Requests for groups of a partition not loaded yet answer
// COORDINATOR_LOAD_IN_PROGRESS (while loading) or NOT_COORDINATOR.
func (c *Coordinator) Load(ctx context.Context, p int32) error { panic("unimplemented") }

// Close stops timers and background work.
func (c *Coordinator) Close() { panic("unimplemented") }

// The request handlers below take the decoded request and return the
// response at the request's version (req.ResponseKind()). Those that wait
// (JoinGroup until the rebalance completes, SyncGroup until the leader's
// assignment, commits until durable) block; the broker calls them from a
// deferred response goroutine. ctx ends when the connection or broker goes.

func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	panic("unimplemented")
}
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	panic("unimplemented")
}
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	panic("unimplemented")
}
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	panic("unimplemented")
}
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	panic("unimplemented")
}
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	panic("unimplemented")
}
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	panic("unimplemented")
}
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	panic("unimplemented")
}
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	panic("unimplemented")
}
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	panic("unimplemented")
}
