package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/log"
)

// storageErrCode maps the storage engine's errors to Kafka codes.
func storageErrCode(err error) (int16, bool) {
	switch {
	case errors.Is(err, log.ErrCorruptBatch):
		return kerr.CorruptMessage.Code, true
	case errors.Is(err, log.ErrInvalidRecord):
		return kerr.InvalidRecord.Code, true
	case errors.Is(err, log.ErrMessageTooLarge):
		return kerr.MessageTooLarge.Code, true
	case errors.Is(err, log.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code, true
	case errors.Is(err, log.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code, true
	case errors.Is(err, log.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code, true
	case errors.Is(err, log.ErrWriteFailed), errors.Is(err, log.ErrCorruption):
		return kerr.KafkaStorageError.Code, true
	case errors.Is(err, log.ErrClosed):
		// The partition is being deleted or the broker is stopping.
		return kerr.NotLeaderForPartition.Code, true
	}
	return 0, false
}
