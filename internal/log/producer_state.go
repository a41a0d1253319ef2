package log

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Producer state (Kafka's ProducerStateManager): for each producer id that
// wrote to the partition, its epoch and the metadata of its last
// maxProducerBatches data batches. Append checks every batch that carries
// a producer id against it, under the append lock and so atomically with
// offset assignment:
//
//   - a batch equal to one of the last five (same epoch, same first and
//     last sequence) is a duplicate: nothing is written and the original
//     offsets are returned (AppendResult.Duplicate);
//   - a lower epoch than the known one: ErrInvalidProducerEpoch, for
//     control batches (transaction markers) too;
//   - a higher epoch must start at sequence 0, else ErrOutOfOrderSequence;
//   - the same epoch must continue at last sequence + 1 (int32 wraps to 0),
//     else ErrOutOfOrderSequence;
//   - an unknown producer (new, expired, or whose batches all fell below
//     the log start) is accepted at any sequence, as Kafka 4 does.
//
// The state is rebuilt on open from the latest producer-state snapshot at
// or below the log end plus a header scan of the batches after it (the
// producer id, epoch, base sequence and last offset delta are all in the
// batch header). See producer_snapshot.go for the file format.

// maxProducerBatches is how many batches per producer are remembered for
// duplicate detection (Kafka's NUM_BATCHES_TO_RETAIN; a client has at most
// five requests in flight per partition).
const maxProducerBatches = 5

// ProducerBatch is the metadata of one data batch of a producer.
type ProducerBatch struct {
	FirstSeq    int32
	LastSeq     int32
	FirstOffset int64
	LastOffset  int64
	Timestamp   int64 // the batch's max timestamp (ms)
}

// ProducerState is one producer's state in a partition.
type ProducerState struct {
	ProducerID int64
	Epoch      int16
	// CoordinatorEpoch and TxnFirstOffset are reserved for transactions
	// (-1 while there are none).
	CoordinatorEpoch int32
	TxnFirstOffset   int64
	// Batches are the last data batches, oldest first (at most five).
	Batches []ProducerBatch
}

// LastSeq is the last sequence written, -1 if none.
func (s *ProducerState) lastSeq() int32 {
	if len(s.Batches) == 0 {
		return -1
	}
	return s.Batches[len(s.Batches)-1].LastSeq
}

// lastOffset is the last offset written, -1 if none.
func (s *ProducerState) lastOffset() int64 {
	if len(s.Batches) == 0 {
		return -1
	}
	return s.Batches[len(s.Batches)-1].LastOffset
}

// lastTimestamp is the timestamp of the last batch, -1 if none.
func (s *ProducerState) lastTimestamp() int64 {
	if len(s.Batches) == 0 {
		return -1
	}
	return s.Batches[len(s.Batches)-1].Timestamp
}

func (s *ProducerState) clone() *ProducerState {
	c := *s
	c.Batches = slices.Clone(s.Batches)
	return &c
}

// findDuplicate returns the remembered batch with exactly this sequence
// range in the current epoch.
func (s *ProducerState) findDuplicate(epoch int16, firstSeq, lastSeq int32) (ProducerBatch, bool) {
	if epoch != s.Epoch {
		return ProducerBatch{}, false
	}
	for _, b := range s.Batches {
		if b.FirstSeq == firstSeq && b.LastSeq == lastSeq {
			return b, true
		}
	}
	return ProducerBatch{}, false
}

// setEpoch moves the producer to epoch; a new epoch forgets the batches.
func (s *ProducerState) setEpoch(epoch int16) {
	if epoch != s.Epoch {
		s.Epoch = epoch
		s.Batches = s.Batches[:0]
	}
}

// apply records an appended batch (h carries its assigned offsets). It
// does no checking: it is the replay step of recovery as well as the
// commit step of Append, so both build the same state.
func (s *ProducerState) apply(h batch.Header) {
	s.setEpoch(h.ProducerEpoch)
	if h.IsControl() {
		s.TxnFirstOffset = -1
		return
	}
	if h.IsTransactional() && s.TxnFirstOffset < 0 {
		s.TxnFirstOffset = h.BaseOffset
	}
	if len(s.Batches) == maxProducerBatches {
		copy(s.Batches, s.Batches[1:])
		s.Batches = s.Batches[:maxProducerBatches-1]
	}
	s.Batches = append(s.Batches, ProducerBatch{
		FirstSeq:    h.BaseSequence,
		LastSeq:     lastSequence(h),
		FirstOffset: h.BaseOffset,
		LastOffset:  h.LastOffset(),
		Timestamp:   h.MaxTimestamp,
	})
}

// lastSequence is the sequence of the batch's last record; sequences wrap
// from MaxInt32 to 0 (Kafka's DefaultRecordBatch.incrementSequence).
func lastSequence(h batch.Header) int32 {
	return seqAdd(h.BaseSequence, h.LastOffsetDelta)
}

func seqAdd(seq, delta int32) int32 {
	if seq > math.MaxInt32-delta {
		return delta - (math.MaxInt32 - seq) - 1
	}
	return seq + delta
}

// inSequence reports whether next directly follows last.
func inSequence(last, next int32) bool {
	return int64(next) == int64(last)+1 || (next == 0 && last == math.MaxInt32)
}

// producerStates maps producer id -> state. Owned by the partition's
// append lock (or by the loader before the partition is published).
type producerStates map[int64]*ProducerState

// replay applies a batch read back from the log.
func (m producerStates) replay(h batch.Header) {
	if h.ProducerID < 0 {
		return
	}
	s := m[h.ProducerID]
	if s == nil {
		s = &ProducerState{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, CoordinatorEpoch: -1, TxnFirstOffset: -1}
		m[h.ProducerID] = s
	}
	s.apply(h)
}

// removeBefore drops producers whose last write is below offset (their
// batches were deleted by retention, DeleteRecords or truncation), as
// Kafka does when the log start offset moves.
func (m producerStates) removeBefore(offset int64) {
	for id, s := range m {
		if s.lastOffset() < offset && s.TxnFirstOffset < 0 {
			delete(m, id)
		}
	}
}

// expire drops producers idle for at least expirationMs (by their last
// batch's timestamp, as Kafka's producer.id.expiration.ms) and returns how
// many it dropped. Producers with an open transaction stay.
func (m producerStates) expire(nowMs, expirationMs int64) int {
	n := 0
	for id, s := range m {
		if s.TxnFirstOffset < 0 && nowMs-s.lastTimestamp() >= expirationMs {
			delete(m, id)
			n++
		}
	}
	return n
}

// sortedIDs returns the producer ids in increasing order.
func (m producerStates) sortedIDs() []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// producerCheck stages the producer-state changes of one Append: batches
// are checked against the committed state plus the batches before them in
// the same call, and commit applies everything once the write succeeded.
type producerCheck struct {
	committed producerStates
	staged    producerStates // copies of touched entries; nil until needed
}

func (c *producerCheck) entry(id int64) *ProducerState {
	if s, ok := c.staged[id]; ok {
		return s
	}
	if s := c.committed[id]; s != nil {
		return s
	}
	return nil
}

// duplicate reports whether h (a data batch with a producer id) repeats a
// remembered batch.
func (c *producerCheck) duplicate(h batch.Header) (ProducerBatch, bool) {
	s := c.entry(h.ProducerID)
	if s == nil {
		return ProducerBatch{}, false
	}
	return s.findDuplicate(h.ProducerEpoch, h.BaseSequence, lastSequence(h))
}

// check applies the epoch and sequence rules to h, a batch with a producer
// id whose offsets are assigned, and stages it.
func (c *producerCheck) check(tp TopicPartition, h batch.Header) error {
	s := c.entry(h.ProducerID)
	if s != nil && h.IsControl() && h.ProducerEpoch < s.Epoch {
		// A stale marker: the producer moved to a later epoch (a fence,
		// or KIP-890's bump at every transaction end) since; writing
		// it would end a transaction of the new epoch.
		return fmt.Errorf("%w: %s: marker of producer %d epoch %d is older than the current epoch %d", ErrInvalidProducerEpoch, tp, h.ProducerID, h.ProducerEpoch, s.Epoch)
	}
	if s != nil && !h.IsControl() {
		switch {
		case h.ProducerEpoch < s.Epoch:
			return fmt.Errorf("%w: %s: producer %d epoch %d is older than the current epoch %d", ErrInvalidProducerEpoch, tp, h.ProducerID, h.ProducerEpoch, s.Epoch)
		case h.ProducerEpoch > s.Epoch:
			if h.BaseSequence != 0 {
				return fmt.Errorf("%w: %s: producer %d: new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, tp, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
			}
		default:
			if !inSequence(s.lastSeq(), h.BaseSequence) {
				return fmt.Errorf("%w: %s: producer %d epoch %d: expected sequence %d, got %d", ErrOutOfOrderSequence, tp, h.ProducerID, h.ProducerEpoch, seqAdd(s.lastSeq(), 1), h.BaseSequence)
			}
		}
	}
	c.stage(h)
	return nil
}

// commit installs the staged entries.
func (c *producerCheck) commit() {
	for id, s := range c.staged {
		c.committed[id] = s
	}
}
