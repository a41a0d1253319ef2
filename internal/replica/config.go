package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Clock tells the time. Tests drive the leader's lag rules with a fake one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config holds the broker-level replication settings (Kafka's names). The
// zero value of every field means its default.
type Config struct {
	// NodeID is this broker's id: the replica id of its fetches.
	NodeID int32
	// BrokerEpoch returns this broker's current epoch (metadata
	// registration), sent in Fetch v15+ ReplicaState; nil = -1.
	BrokerEpoch func() int64
	// ReplicaLagTimeMax is replica.lag.time.max.ms: a follower that has
	// not caught up to the leader's log end for this long leaves the ISR;
	// default 30 s.
	ReplicaLagTimeMax time.Duration
	// FetchMaxWait is replica.fetch.wait.max.ms; default 500 ms.
	FetchMaxWait time.Duration
	// FetchMinBytes is replica.fetch.min.bytes; default 1.
	FetchMinBytes int32
	// FetchMaxBytes is replica.fetch.response.max.bytes; default 10 MiB.
	FetchMaxBytes int32
	// FetchPartitionMaxBytes is replica.fetch.max.bytes; default 1 MiB.
	FetchPartitionMaxBytes int32
	// FetchBackoff is replica.fetch.backoff.ms, the first delay after a
	// failed fetch; it doubles per failure up to FetchBackoffMax; default
	// 1 s.
	FetchBackoff time.Duration
	// FetchBackoffMax bounds the backoff; default 10 × FetchBackoff.
	FetchBackoffMax time.Duration
	// AlterPartitionBackoff is the delay before an AlterPartition that
	// failed with a retriable error is sent again; default 100 ms.
	AlterPartitionBackoff time.Duration
	// AlterPartitionTimeout bounds one AlterPartition call; default 10 s.
	AlterPartitionTimeout time.Duration
	// Clock is the time source; nil = the system clock.
	Clock Clock
	// Logger receives state changes (leadership, ISR, truncation); nil =
	// discard.
	Logger *slog.Logger
	// OnISRChange, if set, is called once for each ISR change this broker
	// proposed as leader and the controller committed (Kafka's
	// IsrShrinksPerSec and IsrExpandsPerSec count these), with the ISR
	// before and after, as soon as the answer or the metadata shows it.
	// It runs outside the Leader's lock and must not block.
	OnISRChange func(topic string, partition int32, oldISR, newISR []int32)
}

// Defaults (Kafka's).
const (
	DefaultReplicaLagTimeMax      = 30 * time.Second
	DefaultFetchMaxWait           = 500 * time.Millisecond
	DefaultFetchMinBytes          = 1
	DefaultFetchMaxBytes          = 10 << 20
	DefaultFetchPartitionMaxBytes = 1 << 20
	DefaultFetchBackoff           = time.Second
	DefaultAlterPartitionBackoff  = 100 * time.Millisecond
	DefaultAlterPartitionTimeout  = 10 * time.Second
)

// ErrInvalidConfig is returned by Config.Validate.
var ErrInvalidConfig = errors.New("replica: invalid config")

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.ReplicaLagTimeMax == 0 {
		c.ReplicaLagTimeMax = DefaultReplicaLagTimeMax
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.FetchMinBytes == 0 {
		c.FetchMinBytes = DefaultFetchMinBytes
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.FetchPartitionMaxBytes == 0 {
		c.FetchPartitionMaxBytes = DefaultFetchPartitionMaxBytes
	}
	if c.FetchBackoff == 0 {
		c.FetchBackoff = DefaultFetchBackoff
	}
	if c.FetchBackoffMax == 0 {
		c.FetchBackoffMax = 10 * c.FetchBackoff
	}
	if c.AlterPartitionBackoff == 0 {
		c.AlterPartitionBackoff = DefaultAlterPartitionBackoff
	}
	if c.AlterPartitionTimeout == 0 {
		c.AlterPartitionTimeout = DefaultAlterPartitionTimeout
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.BrokerEpoch == nil {
		c.BrokerEpoch = func() int64 { return -1 }
	}
	return c
}

// Validate reports the first invalid field (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("%w: node id %d", ErrInvalidConfig, c.NodeID)
	case c.ReplicaLagTimeMax < 0, c.FetchMaxWait < 0, c.FetchBackoff < 0, c.AlterPartitionBackoff < 0, c.AlterPartitionTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case c.FetchBackoffMax < c.FetchBackoff:
		return fmt.Errorf("%w: replica fetch backoff max %v below backoff %v", ErrInvalidConfig, c.FetchBackoffMax, c.FetchBackoff)
	case c.FetchMinBytes < 0, c.FetchMaxBytes < 0, c.FetchPartitionMaxBytes < 0:
		return fmt.Errorf("%w: negative byte limit", ErrInvalidConfig)
	}
	return nil
}
