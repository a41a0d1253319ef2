package log

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Config holds the per-topic settings of one partition log. Kafka's topic
// config names are given; unless Explicit is set, the zero value of every
// field means "use the default" (Kafka's default unless noted).
type Config struct {
	// Explicit says every field is as resolved by the caller (the broker,
	// from the topic's configs and the broker defaults): zero means zero,
	// as Kafka allows for retention.ms, retention.bytes,
	// delete.retention.ms, index.interval.bytes and file.delete.delay.ms
	// (retention.ms=0 empties a topic; file.delete.delay.ms=0 removes
	// deleted files at once).
	Explicit bool

	SegmentBytes           int64   // segment.bytes; default 1 GiB; at most 2 GiB-1 (index positions are 32-bit)
	SegmentMs              int64   // segment.ms; default 7 days
	SegmentIndexBytes      int32   // segment.index.bytes; default 10 MiB (an index this full rolls the segment)
	IndexIntervalBytes     int32   // index.interval.bytes; default 4096
	MaxMessageBytes        int32   // max.message.bytes; default 1048588
	RetentionMs            int64   // retention.ms; default 7 days; -1 = unlimited
	RetentionBytes         int64   // retention.bytes; default -1 = unlimited
	CleanupPolicy          string  // cleanup.policy: "delete" (default), "compact", "compact,delete"
	DeleteRetentionMs      int64   // delete.retention.ms; default 1 day
	MinCompactionLagMs     int64   // min.compaction.lag.ms; default 0
	MaxCompactionLagMs     int64   // max.compaction.lag.ms; default MaxInt64
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio; default 0.5
	MessageTimestampType   string  // message.timestamp.type: "CreateTime" (default) or "LogAppendTime"
	// WriteCaching selects Kafka's page-cache model: appends are not fsynced
	// by the group-commit flusher; instead FlushMessages / FlushMs apply.
	// false (default) = durable mode: a background flusher fsyncs promptly
	// after appends, coalescing, and WaitDurable returns once covered.
	WriteCaching  bool
	FlushMessages int64 // flush.messages (page-cache model); default MaxInt64 = never by count
	FlushMs       int64 // flush.ms (page-cache model); default MaxInt64 = never by time
	// FileDeleteDelayMs is file.delete.delay.ms: how long a deleted segment's
	// files stay open (so Regions already handed out stay readable); default 60000.
	FileDeleteDelayMs int64
}

// Defaults.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentMs          = 7 * 24 * 60 * 60 * 1000
	DefaultSegmentIndexBytes  = 10 << 20
	DefaultIndexIntervalBytes = 4096
	DefaultMaxMessageBytes    = 1048588
	DefaultRetentionMs        = 7 * 24 * 60 * 60 * 1000
	DefaultDeleteRetentionMs  = 24 * 60 * 60 * 1000
	DefaultMinCleanableRatio  = 0.5
	DefaultFileDeleteDelayMs  = 60000

	// Config string values.
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
	TimestampCreateTime  = "CreateTime"
	TimestampLogAppend   = "LogAppendTime"

	// minSegmentBytes guards against segments too small to hold a header.
	minSegmentBytes = 14
)

// WithDefaults returns c with every zero field replaced by its default;
// an Explicit config is returned as it is.
func (c Config) WithDefaults() Config {
	if c.Explicit {
		return c
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentMs == 0 {
		c.SegmentMs = DefaultSegmentMs
	}
	if c.SegmentIndexBytes == 0 {
		c.SegmentIndexBytes = DefaultSegmentIndexBytes
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.RetentionMs == 0 {
		c.RetentionMs = DefaultRetentionMs
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = -1
	}
	if c.CleanupPolicy == "" {
		c.CleanupPolicy = CleanupDelete
	}
	if c.DeleteRetentionMs == 0 {
		c.DeleteRetentionMs = DefaultDeleteRetentionMs
	}
	if c.MaxCompactionLagMs == 0 {
		c.MaxCompactionLagMs = math.MaxInt64
	}
	if c.MinCleanableDirtyRatio == 0 {
		c.MinCleanableDirtyRatio = DefaultMinCleanableRatio
	}
	if c.MessageTimestampType == "" {
		c.MessageTimestampType = TimestampCreateTime
	}
	if c.FlushMessages == 0 {
		c.FlushMessages = math.MaxInt64
	}
	if c.FlushMs == 0 {
		c.FlushMs = math.MaxInt64
	}
	if c.FileDeleteDelayMs == 0 {
		c.FileDeleteDelayMs = DefaultFileDeleteDelayMs
	}
	return c
}

// Validate reports the first out-of-range field of c (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(name string, v any) error {
		return fmt.Errorf("%w: %s = %v", ErrInvalidConfig, name, v)
	}
	switch {
	case c.SegmentBytes < minSegmentBytes || c.SegmentBytes > math.MaxInt32:
		return bad("segment.bytes", c.SegmentBytes)
	case c.SegmentMs < 1:
		return bad("segment.ms", c.SegmentMs)
	case c.SegmentIndexBytes < 4*offsetEntrySize:
		return bad("segment.index.bytes", c.SegmentIndexBytes)
	case c.IndexIntervalBytes < 0:
		return bad("index.interval.bytes", c.IndexIntervalBytes)
	case c.MaxMessageBytes < 0:
		return bad("max.message.bytes", c.MaxMessageBytes)
	case c.RetentionMs < -1:
		return bad("retention.ms", c.RetentionMs)
	case c.RetentionBytes < -1:
		return bad("retention.bytes", c.RetentionBytes)
	case c.DeleteRetentionMs < 0:
		return bad("delete.retention.ms", c.DeleteRetentionMs)
	case c.MinCompactionLagMs < 0:
		return bad("min.compaction.lag.ms", c.MinCompactionLagMs)
	case c.MaxCompactionLagMs < 1:
		return bad("max.compaction.lag.ms", c.MaxCompactionLagMs)
	case c.MinCleanableDirtyRatio < 0 || c.MinCleanableDirtyRatio > 1:
		return bad("min.cleanable.dirty.ratio", c.MinCleanableDirtyRatio)
	case c.FlushMessages < 1:
		return bad("flush.messages", c.FlushMessages)
	case c.FlushMs < 0:
		return bad("flush.ms", c.FlushMs)
	case c.FileDeleteDelayMs < 0:
		return bad("file.delete.delay.ms", c.FileDeleteDelayMs)
	}
	switch c.CleanupPolicy {
	case CleanupDelete, CleanupCompact, CleanupCompactDelete, "delete,compact":
	default:
		return bad("cleanup.policy", c.CleanupPolicy)
	}
	switch c.MessageTimestampType {
	case TimestampCreateTime, TimestampLogAppend:
	default:
		return bad("message.timestamp.type", c.MessageTimestampType)
	}
	return nil
}

// Compact reports whether cleanup.policy includes compact.
func (c Config) Compact() bool { return strings.Contains(c.CleanupPolicy, CleanupCompact) }

// Delete reports whether cleanup.policy includes delete (time and size
// retention apply).
func (c Config) Delete() bool {
	return c.CleanupPolicy == "" || strings.Contains(c.CleanupPolicy, CleanupDelete)
}

// ManagerConfig configures a Manager. Zero values mean defaults.
type ManagerConfig struct {
	Dir    string       // data directory, created if missing (required)
	Logger *slog.Logger // nil = discard
	// RetentionCheckInterval: log.retention.check.interval.ms; default 5 minutes.
	RetentionCheckInterval time.Duration
	// CleanerBackoff: log.cleaner.backoff.ms; default 15 s.
	CleanerBackoff time.Duration
	// FlushCheckInterval: log.flush.scheduler.interval.ms for flush.ms; default 1 s.
	FlushCheckInterval time.Duration
	// CheckpointInterval: log.flush.offset.checkpoint.interval.ms, how often
	// the recovery-point and log-start-offset checkpoints are written;
	// default 60 s.
	CheckpointInterval time.Duration
	// HighWatermarkCheckpointInterval:
	// replica.high.watermark.checkpoint.interval.ms, how often the high
	// watermarks set by replication are checkpointed (only when one
	// changed); default 5 s.
	HighWatermarkCheckpointInterval time.Duration
	// ProducerIDExpiration is producer.id.expiration.ms: a producer with no
	// append for this long is forgotten by every partition (its next batch
	// is accepted at any sequence); default 1 day.
	ProducerIDExpiration time.Duration
	// ProducerIDExpirationCheckInterval is
	// producer.id.expiration.check.interval.ms; default 10 minutes.
	ProducerIDExpirationCheckInterval time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time

	// hooks inject faults in tests.
	hooks *faultHooks
}

// Manager defaults.
const (
	DefaultRetentionCheckInterval = 5 * time.Minute
	DefaultCleanerBackoff         = 15 * time.Second
	DefaultFlushCheckInterval     = time.Second
	DefaultCheckpointInterval     = 60 * time.Second

	DefaultHighWatermarkCheckpointInterval = 5 * time.Second

	DefaultProducerIDExpiration              = 24 * time.Hour
	DefaultProducerIDExpirationCheckInterval = 10 * time.Minute
)

func (c ManagerConfig) withDefaults() ManagerConfig {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RetentionCheckInterval <= 0 {
		c.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if c.CleanerBackoff <= 0 {
		c.CleanerBackoff = DefaultCleanerBackoff
	}
	if c.FlushCheckInterval <= 0 {
		c.FlushCheckInterval = DefaultFlushCheckInterval
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.HighWatermarkCheckpointInterval <= 0 {
		c.HighWatermarkCheckpointInterval = DefaultHighWatermarkCheckpointInterval
	}
	if c.ProducerIDExpiration <= 0 {
		c.ProducerIDExpiration = DefaultProducerIDExpiration
	}
	if c.ProducerIDExpirationCheckInterval <= 0 {
		c.ProducerIDExpirationCheckInterval = DefaultProducerIDExpirationCheckInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a missing or out-of-range field.
func (c ManagerConfig) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrInvalidConfig)
	}
	return nil
}

// faultHooks lets tests fail writes and syncs. nil hooks inject nothing.
type faultHooks struct {
	write func(path string) error // before each segment write
	sync  func(path string) error // before each fsync of a segment
}

func (h *faultHooks) beforeWrite(s *segment) error {
	if h == nil || h.write == nil {
		return nil
	}
	return h.write(s.logPath())
}

func (h *faultHooks) beforeSync(s *segment) error {
	if h == nil || h.sync == nil {
		return nil
	}
	return h.sync(s.logPath())
}
