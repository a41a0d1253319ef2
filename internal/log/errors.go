package log

import (
	"errors"
	"fmt"
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
	// ErrOutOfOrderSequence: an idempotent producer's batch does not
	// continue its sequence (a gap, or a new epoch not starting at 0).
	ErrOutOfOrderSequence = errors.New("log: out of order sequence number") // OUT_OF_ORDER_SEQUENCE_NUMBER
	// ErrInvalidProducerEpoch: a batch from an older epoch of a producer
	// than the partition has seen (a fenced or zombie producer).
	ErrInvalidProducerEpoch = errors.New("log: invalid producer epoch") // INVALID_PRODUCER_EPOCH
	// ErrUnexpectedAppendOffset: a follower append whose first batch does
	// not start at the log end offset (or whose batches overlap); Kafka's
	// UnexpectedAppendOffsetException. The fetcher asked for the wrong
	// offset or the log diverged: truncate (OffsetForLeaderEpoch) and refetch.
	ErrUnexpectedAppendOffset = errors.New("log: unexpected append offset")
	// ErrInvalidConfig: a Config or ManagerConfig field is out of range.
	ErrInvalidConfig = errors.New("log: invalid config")
)

// corruptionf returns an error that wraps ErrCorruption.
func corruptionf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruption, fmt.Sprintf(format, args...))
}

// IsCorruption reports whether err marks damage found on disk.
func IsCorruption(err error) bool { return errors.Is(err, ErrCorruption) }
