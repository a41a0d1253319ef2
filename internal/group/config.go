package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrNotLoaded is returned while a coordinator partition is still loading.
	ErrNotLoaded = errors.New("group: coordinator partition is loading")
	// ErrClosed is returned by Load after Close.
	ErrClosed = errors.New("group: coordinator closed")
	// ErrCorrupt marks __consumer_offsets bytes that do not decode.
	ErrCorrupt = errors.New("group: corrupt __consumer_offsets data")
)

// Log is what the coordinator needs of the __consumer_offsets topic; the
// broker implements it over ordinary partition logs (the same append path as
// user data).
type Log interface {
	// Append appends raw record batches (magic v2, built by the coordinator,
	// offsets to be assigned by the log) to partition p of
	// __consumer_offsets and returns once they are durable (or ctx ends).
	// Batches of one call must land contiguously and in order; the
	// coordinator never calls Append for one partition concurrently.
	Append(ctx context.Context, p int32, batches []byte) error
	// Read calls fn with the raw bytes of every batch of partition p, in
	// offset order, from the log start to the current end. The coordinator
	// copies what it keeps, so fn's argument may be reused.
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
	// InitialRebalanceDelay: group.initial.rebalance.delay.ms (3 s). Use
	// NoInitialRebalanceDelay for none (the zero value means the default).
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
	// It is called from coordinator goroutines and must not block.
	TopicExists func(topic string, partition int32) bool
	Logger      *slog.Logger     // nil = discard
	Now         func() time.Time // nil = time.Now
}

// NoInitialRebalanceDelay, as Config.InitialRebalanceDelay, turns the
// initial rebalance delay off (group.initial.rebalance.delay.ms=0).
const NoInitialRebalanceDelay time.Duration = -1

// Kafka's defaults.
const (
	DefaultPartitions            = 50
	DefaultMinSessionTimeout     = 6 * time.Second
	DefaultMaxSessionTimeout     = 30 * time.Minute
	DefaultInitialRebalanceDelay = 3 * time.Second
	DefaultOffsetsRetention      = 7 * 24 * time.Hour
	DefaultRetentionCheck        = 10 * time.Minute
	DefaultMaxMetadataSize       = 4096

	// newMemberJoinTimeout is Kafka's group.classic.new.member.join.timeout
	// (5 minutes): a new member parked in JoinGroup is dropped after it.
	newMemberJoinTimeout = 5 * time.Minute
)

// withDefaults returns cfg with zero values replaced by the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Partitions <= 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	switch {
	case cfg.InitialRebalanceDelay == 0:
		cfg.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	case cfg.InitialRebalanceDelay < 0:
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.MaxGroupSize <= 0 {
		cfg.MaxGroupSize = int(^uint32(0) >> 1)
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = DefaultOffsetsRetention
	}
	if cfg.OffsetsRetentionCheck <= 0 {
		cfg.OffsetsRetentionCheck = DefaultRetentionCheck
	}
	if cfg.MaxMetadataSize <= 0 {
		cfg.MaxMetadataSize = DefaultMaxMetadataSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// Validate reports settings that contradict each other.
func (cfg Config) Validate() error {
	c := cfg.withDefaults()
	if c.MinSessionTimeout > c.MaxSessionTimeout {
		return fmt.Errorf("group: group.min.session.timeout.ms (%v) is above group.max.session.timeout.ms (%v)", c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	return nil
}
