package log

import (
	"fmt"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// What the cleaner must know about producers and transactions, which Kafka
// takes from its producer-state manager and .txnindex files. The engine
// has neither, so the cleaner derives it from the log itself: one pass
// over every batch header (and the one record of each control batch) from
// the log start to the log end.
//
//   - A transactional data batch of producer P is aborted if the next
//     transaction marker of P after it is an ABORT, committed if it is a
//     COMMIT, and still open if there is no later marker. The first open
//     transaction bounds the cleanable section (Kafka's last stable
//     offset): nothing at or above it enters the offset map, so an open
//     transaction can never make the cleaner drop an older value.
//   - The batch holding a producer's last data offset (or, if the producer
//     has no data batch left, its last marker) is kept, emptied if need be,
//     so that sequence numbers and epochs survive compaction (Kafka keeps
//     the last batch of every active producer). Producers never expire here.

// txnRange is one aborted transaction: producer, first data offset and the
// offset of its abort marker.
type txnRange struct {
	pid         int64
	first, last int64
}

// producerLast is where a producer's state lives in the log.
type producerLast struct {
	lastDataOffset int64 // last offset of its last data batch; -1 if none
	lastEpoch      int16
	markerOffset   int64 // last offset of its last control batch; -1 if none
}

type txnInfo struct {
	aborted       map[int64][]txnRange // by producer, in offset order
	firstUnstable int64                // first offset of the first open transaction; MaxInt64 if none
	producers     map[int64]*producerLast
}

// isAborted reports whether the transactional data batch h is aborted.
func (ti *txnInfo) isAborted(h batch.Header) bool {
	for _, r := range ti.aborted[h.ProducerID] {
		if h.BaseOffset >= r.first && h.LastOffset() <= r.last {
			return true
		}
		if r.first > h.BaseOffset {
			break
		}
	}
	return false
}

// isLastOfProducer reports whether h must be kept (maybe empty) to preserve
// its producer's state.
func (ti *txnInfo) isLastOfProducer(h batch.Header) bool {
	pl := ti.producers[h.ProducerID]
	if pl == nil {
		return false
	}
	if pl.lastDataOffset >= 0 {
		return !h.IsControl() && h.LastOffset() == pl.lastDataOffset
	}
	return h.IsControl() && h.LastOffset() == pl.markerOffset
}

// scanTxnInfo reads every batch header of segs (from the log start) up to
// their committed sizes.
func scanTxnInfo(segs []*segment, logStart int64) (*txnInfo, error) {
	ti := &txnInfo{
		aborted:       make(map[int64][]txnRange),
		firstUnstable: maxOffset,
		producers:     make(map[int64]*producerLast),
	}
	open := make(map[int64]int64) // producer -> first offset of its open transaction
	var dec batch.Decoder
	for _, s := range segs {
		var ferr error
		err := s.scanHeaders(0, s.size.Load(), func(pos int64, h batch.Header) bool {
			if h.LastOffset() < logStart || h.ProducerID < 0 {
				return true
			}
			pl := ti.producers[h.ProducerID]
			if pl == nil {
				pl = &producerLast{lastDataOffset: -1, markerOffset: -1}
				ti.producers[h.ProducerID] = pl
			}
			pl.lastEpoch = h.ProducerEpoch
			if !h.IsControl() {
				pl.lastDataOffset = h.LastOffset()
				if h.IsTransactional() {
					if _, ok := open[h.ProducerID]; !ok {
						open[h.ProducerID] = h.BaseOffset
					}
				}
				return true
			}
			pl.markerOffset = h.LastOffset()
			if h.NumRecords == 0 {
				return true // emptied by an earlier cleaning
			}
			b, err := readBatchAt(s, pos, h)
			if err != nil {
				ferr = err
				return false
			}
			_, recs, err := dec.Decode(b)
			if err != nil || len(recs) == 0 {
				ferr = corruptionf("control batch at offset %d: %v", h.BaseOffset, err)
				return false
			}
			c, err := batch.ParseControl(&recs[0])
			if err != nil || !c.IsTxnMarker() {
				return true // not a transaction marker: nothing to resolve
			}
			if first, ok := open[h.ProducerID]; ok {
				if c.Type == batch.ControlAbort {
					ti.aborted[h.ProducerID] = append(ti.aborted[h.ProducerID], txnRange{h.ProducerID, first, h.LastOffset()})
				}
				delete(open, h.ProducerID)
			}
			return true
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			return nil, fmt.Errorf("scanning transactions: %w", err)
		}
	}
	for _, first := range open {
		ti.firstUnstable = min(ti.firstUnstable, first)
	}
	return ti, nil
}

// txnCleanState follows transactions through one cleaning pass, in offset
// order (Kafka's CleanedTransactionMetadata): a marker can go only once no
// batch of its transaction is left.
type txnCleanState struct {
	info *txnInfo
	// seen holds producers with a transactional data batch since their
	// last marker in this pass.
	seen map[int64]bool
}

// canDiscard reports whether batch h may be discarded: a data batch of an
// aborted transaction, or a marker whose transaction has no batch left.
// For control batches marker is the decoded control record (nil if the
// batch is empty).
func (ts *txnCleanState) canDiscard(h batch.Header, marker *batch.ControlRecord) bool {
	if h.ProducerID < 0 {
		return false
	}
	if !h.IsControl() {
		if !h.IsTransactional() {
			return false
		}
		ts.seen[h.ProducerID] = true
		return ts.info.isAborted(h)
	}
	if marker == nil {
		return true // an empty control batch was already cleaned
	}
	if !marker.IsTxnMarker() {
		return false
	}
	had := ts.seen[h.ProducerID]
	delete(ts.seen, h.ProducerID)
	return !had
}
