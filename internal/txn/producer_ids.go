package txn

import (
	"context"
	"fmt"
	"sync"
)

// DefaultBlockSize is the number of producer ids reserved per metadata
// command (Kafka's PRODUCER_ID_BLOCK_SIZE).
const DefaultBlockSize = 1000

// Allocator reserves blocks of producer ids durably: each call returns the
// first id of a block [first, first+n) that no call returned before, in
// this process or an earlier one. *metadata.Store implements it.
type Allocator interface {
	AllocateProducerIDs(ctx context.Context, n int) (first int64, err error)
}

// ProducerIDs hands out producer ids from blocks reserved through an
// Allocator. Safe for concurrent use: a mutex guards the current block
// (allocation is rare and short, one metadata command per block).
type ProducerIDs struct {
	alloc     Allocator
	blockSize int

	mu struct {
		sync.Mutex
		next, end int64 // the current block's unused ids: [next, end)
	}
}

// NewProducerIDs returns a manager that reserves blockSize ids at a time
// (<= 0 means DefaultBlockSize).
func NewProducerIDs(alloc Allocator, blockSize int) *ProducerIDs {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	return &ProducerIDs{alloc: alloc, blockSize: blockSize}
}

// Next returns a producer id never returned before. It reserves a new
// block when the current one is used up; an allocation error (no
// controller, shutting down) is returned as is.
func (m *ProducerIDs) Next(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.next >= m.mu.end {
		first, err := m.alloc.AllocateProducerIDs(ctx, m.blockSize)
		if err != nil {
			return -1, fmt.Errorf("txn: allocate producer ids: %w", err)
		}
		if first < 0 {
			return -1, fmt.Errorf("txn: allocator returned block at %d", first)
		}
		m.mu.next, m.mu.end = first, first+int64(m.blockSize)
	}
	id := m.mu.next
	m.mu.next++
	return id, nil
}
