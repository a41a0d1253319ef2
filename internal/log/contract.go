package log

// CONTRACT STUB. This file fixes the exported API that internal/broker is
// written against. The storage-engine implementer replaces these stubs with
// the real implementation (split into segment.go, partition.go, ... and
// delete this file), keeping every exported name and signature below. New
// exported API may be added freely; changing one listed here must be agreed
// with the broker author.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"
)

// Errors returned by the engine. Callers match them with errors.Is; the
// broker maps them to Kafka error codes.
var (
	// ErrOffsetOutOfRange: a read below the log start offset or above the log end offset.
	ErrOffsetOutOfRange = errors.New("log: offset out of range") // OFFSET_OUT_OF_RANGE
	// ErrCorruptBatch: bad magic, length, or CRC in an appended batch.
	ErrCorruptBatch = errors.New("log: corrupt record batch") // CORRUPT_MESSAGE
	// ErrInvalidRecord: a batch that is well formed but not acceptable
	// (record count does not match the offset delta, bad timestamps, ...).
	ErrInvalidRecord = errors.New("log: invalid record") // INVALID_RECORD
	// ErrMessageTooLarge: a batch larger than max.message.bytes.
	ErrMessageTooLarge = errors.New("log: record batch too large") // MESSAGE_TOO_LARGE
	// ErrClosed: the partition or manager was closed.
	ErrClosed = errors.New("log: closed")
	// ErrCorruption marks damage found on disk (recovery); test with errors.Is.
	ErrCorruption = errors.New("log: corruption")
	// ErrWriteFailed: a previous write or fsync failed; the partition refuses
	// appends until it is reopened (sticky). Wraps the original error.
	ErrWriteFailed = errors.New("log: partition is failed after a write error") // KAFKA_STORAGE_ERROR
)

// Config holds the per-topic settings of one partition log. Kafka's topic
// config names are given; the zero value of every field means "use the
// default" (Kafka's default unless noted).
type Config struct {
	SegmentBytes           int64   // segment.bytes; default 1 GiB
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

// Region is a byte range of a segment file holding whole record batches:
// what a zero-copy sender hands to sendfile. The file stays open for at least
// FileDeleteDelayMs after the segment is deleted, so a region handed out
// stays valid for the duration of one fetch.
type Region struct {
	File *os.File
	Pos  int64
	Len  int64
}

// AppendResult describes a successful append.
type AppendResult struct {
	FirstOffset    int64 // base offset assigned to the first batch
	LastOffset     int64 // last offset of the last batch
	LogAppendTime  int64 // ms; -1 unless message.timestamp.type=LogAppendTime
	LogStartOffset int64
	NumBatches     int
	NumRecords     int64
	Bytes          int
}

// ReadResult is the answer to Read.
type ReadResult struct {
	Regions        []Region // whole batches, in offset order, possibly empty
	Bytes          int64    // sum of region lengths
	LogStartOffset int64
	LogEndOffset   int64
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
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Manager owns every partition log under one data directory: opening and
// recovery, the clean-shutdown marker, background retention, compaction and
// flushing.
type Manager struct{}

// OpenManager opens (creating if needed) the data directory. It does not
// open partitions; the broker opens those it owns with Open.
func OpenManager(cfg ManagerConfig) (*Manager, error) { panic("unimplemented") }

// WasCleanShutdown reports whether the previous process left the
// clean-shutdown marker (and so whether partitions were opened without a scan).
func (m *Manager) WasCleanShutdown() bool { panic("unimplemented") }

// OnDisk lists the partition directories present in the data directory.
func (m *Manager) OnDisk() ([]TopicPartition, error) { panic("unimplemented") }

// Open opens or creates the log of one partition, recovering it if the
// last shutdown was unclean. Opening an already-open partition returns it.
func (m *Manager) Open(topic string, partition int32, cfg Config) (*Partition, error) {
	panic("unimplemented")
}

// Partition returns an open partition log.
func (m *Manager) Partition(topic string, partition int32) (*Partition, bool) {
	panic("unimplemented")
}

// Remove closes a partition and deletes its directory.
func (m *Manager) Remove(topic string, partition int32) error { panic("unimplemented") }

// Close flushes and closes every partition, stops background work, and
// writes the clean-shutdown marker.
func (m *Manager) Close() error { panic("unimplemented") }

// Partition is one partition's log. All methods are safe for concurrent use:
// one appender at a time (Append serializes internally) beside many readers
// that never block it.
type Partition struct{}

// Append validates raw record-batch bytes (one or many v2 batches), assigns
// offsets by rewriting each batch's baseOffset in place (and maxTimestamp for
// LogAppendTime, recomputing the CRC), and writes them with one write. A bad
// batch fails the whole call and nothing is written. It never decompresses.
func (p *Partition) Append(batches []byte) (AppendResult, error) { panic("unimplemented") }

// WaitDurable blocks until every offset <= offset is fsynced (group commit:
// one fdatasync covers all appends made meanwhile), ctx ends, or the
// partition fails (ErrWriteFailed).
func (p *Partition) WaitDurable(ctx context.Context, offset int64) error { panic("unimplemented") }

// Read returns whole batches starting with the one containing offset, up to
// maxBytes, never including a batch whose last offset is >= maxOffset (the
// high watermark or last stable offset). If minOne is set, the first batch is
// returned even when larger than maxBytes (KIP-74). Reading at exactly the
// log end offset returns no regions and no error; outside
// [LogStartOffset, LogEndOffset] returns ErrOffsetOutOfRange.
func (p *Partition) Read(offset int64, maxBytes int64, maxOffset int64, minOne bool) (ReadResult, error) {
	panic("unimplemented")
}

// LogStartOffset is the first readable offset.
func (p *Partition) LogStartOffset() int64 { panic("unimplemented") }

// LogEndOffset is the offset the next appended record will get.
func (p *Partition) LogEndOffset() int64 { panic("unimplemented") }

// DurableOffset is the offset up to which (exclusive) data is fsynced.
func (p *Partition) DurableOffset() int64 { panic("unimplemented") }

// OffsetForTimestamp finds the first record with timestamp >= ts (record
// precision: it may decode one batch). ok is false if there is none.
func (p *Partition) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, ok bool, err error) {
	panic("unimplemented")
}

// MaxTimestamp returns the largest timestamp in the log and the offset of
// the record that has it (KIP-734); ok is false for an empty log.
func (p *Partition) MaxTimestamp() (ts int64, offset int64, ok bool, err error) {
	panic("unimplemented")
}

// DeleteRecordsBefore advances the log start offset to offset (DeleteRecords);
// offset must be <= LogEndOffset. Whole segments below it are deleted.
func (p *Partition) DeleteRecordsBefore(offset int64) (logStart int64, err error) {
	panic("unimplemented")
}

// TruncateTo removes every record at or above offset (follower truncation).
func (p *Partition) TruncateTo(offset int64) error { panic("unimplemented") }

// AssignEpochStart records that leader epoch epoch starts at offset
// (leader-epoch checkpoint).
func (p *Partition) AssignEpochStart(epoch int32, offset int64) error { panic("unimplemented") }

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= epoch
// and the end offset of that epoch; (-1, -1) if unknown.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) { panic("unimplemented") }

// SetConfig changes the partition's config (AlterConfigs) without reopening.
func (p *Partition) SetConfig(cfg Config) { panic("unimplemented") }

// Size is the total bytes of all segments.
func (p *Partition) Size() int64 { panic("unimplemented") }

// Flush fsyncs everything appended so far.
func (p *Partition) Flush() error { panic("unimplemented") }

// Close flushes and closes the partition.
func (p *Partition) Close() error { panic("unimplemented") }
