package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/metadata"
)

// Helpers of the controller-backed admin APIs (ElectLeaders,
// AlterPartitionReassignments, ListPartitionReassignments).

// adminCtx bounds an admin request by its TimeoutMillis, the deadline
// Kafka gives the controller. A timeout of 0 or less has already expired.
func adminCtx(ctx context.Context, timeoutMillis int32) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(max(timeoutMillis, 0))*time.Millisecond)
}

// adminErr turns a request-level metadata error into the code Kafka
// answers: REQUEST_TIMED_OUT once the request's own deadline has passed
// (the metadata store reports a lost wait as a context error, or as
// NOT_CONTROLLER when no controller answered in time); others as they are.
func adminErr(actx context.Context, err error, timeoutMillis int32) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(actx.Err(), context.DeadlineExceeded) {
		return kerrorf(kerr.RequestTimedOut, "the request timed out after %d ms", timeoutMillis)
	}
	return err
}

// codeError is a Kafka code with a message for a response's ErrorMessage.
type codeError struct {
	msg  string
	code *kerr.Error
}

func (e *codeError) Error() string { return e.msg }
func (e *codeError) Unwrap() error { return e.code }

func kerrorf(code *kerr.Error, format string, args ...any) error {
	return &codeError{msg: fmt.Sprintf(format, args...), code: code}
}

// kerrIs reports whether err carries the Kafka error code.
func kerrIs(err error, code *kerr.Error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && ke.Code == code.Code
}

// adminMessage is the ErrorMessage for err: the metadata store's message
// without its package prefix, nil for no error.
func adminMessage(err error) *string {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && err == error(ke) {
		return nil // a bare code: clients show the code's own message
	}
	s := metadata.KafkaMessage(err)
	return &s
}
