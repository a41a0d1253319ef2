package log

import (
	"errors"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// filterResult is what filterBatch decided for one batch.
type filterResult struct {
	out            []byte // the batch to write (original or rebuilt); nil to drop it
	horizon        int64  // delete horizon of out if it keeps tombstones or a discardable marker; else -1
	tombstonesGone int
}

// filterBatch applies Kafka's retention rules (LogCleaner.cleanInto and
// MemoryRecords.filterTo) to one batch. out and kept are scratch buffers.
func filterBatch(b []byte, h batch.Header, dec *batch.Decoder, om *offsetMap, txs *txnCleanState,
	nowMs, deleteRetentionMs int64, out *[]byte, kept *[]batch.Record) (filterResult, error) {
	res := filterResult{horizon: -1}
	_, recs, derr := dec.Decode(b)
	if derr != nil {
		if errors.Is(derr, batch.ErrCorrupt) {
			return res, derr
		}
		// Valid but unreadable here (too large to inflate): keep it.
		res.out = b
		return res, nil
	}
	var marker *batch.ControlRecord
	if h.IsControl() && len(recs) > 0 {
		if c, err := batch.ParseControl(&recs[0]); err == nil {
			marker = &c
		} else {
			c := batch.ControlRecord{Type: -1}
			marker = &c // unknown control record: never discarded
		}
	}
	canDiscard := txs.canDiscard(h, marker)
	horizonPassed := h.HasDeleteHorizon() && nowMs >= h.BaseTimestamp
	discardRecords := canDiscard
	if h.IsControl() {
		discardRecords = canDiscard && horizonPassed
	}
	retainEmpty := h.ProducerID >= 0 && txs.info.isLastOfProducer(h)
	if discardRecords && !retainEmpty {
		return res, nil // the whole batch goes
	}
	markerForEmptyTxn := canDiscard && h.IsControl()

	*kept = (*kept)[:0]
	tombstones := false
	for i := range recs {
		r := &recs[i]
		keep := false
		switch {
		case discardRecords:
		case h.IsControl():
			keep = true
		case r.Offset >= om.end:
			keep = true
		case r.Key == nil:
			// A record without a key has no place in a compacted topic.
		case r.Offset >= om.get(r.Key):
			keep = r.Value != nil || !horizonPassed
			if !keep {
				res.tombstonesGone++
			}
		}
		if keep {
			*kept = append(*kept, *r)
			if r.Value == nil && !h.IsControl() {
				tombstones = true
			}
		}
	}
	needHorizon := (tombstones || markerForEmptyTxn) && !h.HasDeleteHorizon()
	if len(*kept) == 0 && !retainEmpty {
		return res, nil
	}
	if (tombstones || markerForEmptyTxn) && len(*kept) > 0 {
		if needHorizon {
			res.horizon = nowMs + deleteRetentionMs
		} else {
			res.horizon = h.BaseTimestamp
		}
	}
	if len(*kept) == len(recs) && !needHorizon {
		res.out = b
		return res, nil
	}
	nh := h
	if needHorizon && len(*kept) > 0 {
		nh.Attributes |= batch.AttrDeleteHorizon
		nh.BaseTimestamp = res.horizon
	}
	var err error
	*out, err = batch.AppendBatch((*out)[:0], nh, *kept, h.Compression())
	if err != nil {
		return res, err
	}
	res.out = *out
	return res, nil
}
