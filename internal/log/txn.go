package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Transactions in the storage engine (Kafka's ProducerStateManager ongoing
// transactions, LastStableOffset and TransactionIndex):
//
//   - A producer's transaction is ongoing from its first transactional data
//     batch (ProducerState.TxnFirstOffset) until its next control batch
//     (a commit or abort marker). The state is part of the producer state,
//     so it is replayed and snapshotted with it.
//   - The last stable offset is the first offset of the earliest ongoing
//     transaction, or the log end if there is none (Partition.LastStableOffset).
//   - Every abort marker adds an AbortedTxn (producer, first offset, marker
//     offset, last stable offset at the abort) to the partition's list,
//     which read_committed fetches use (Partition.AbortedTransactions). The
//     list is kept in memory (copy on write, sorted by marker offset) and
//     on disk as one "<base>.txnindex" per segment holding the entries
//     whose marker lies in the segment.
//
// Publication order: an append stores the aborted list, then
// firstUnstable, then logEnd; readers load logEnd, then firstUnstable, then
// the aborted list, so a reader that sees a batch below the LSO also sees
// the abort entry covering it.
//
// Durability: the flusher rewrites the .txnindex files of dirty segments
// (atomic write) before it syncs data and writes producer-state snapshots,
// so a snapshot at offset X implies the .txnindex files of the segments
// below X are on disk. On open (rebuildProducerState) the files of the
// segments below the snapshot are read and the abort markers after it are
// found again by the replay (which reads each control batch's record).
// A .txnindex file that does not validate forces a full replay.

// AbortedTxn is one aborted transaction of a partition.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64 // first offset of the transaction's data
	LastOffset       int64 // offset of the abort marker
	LastStableOffset int64 // the partition's LSO once the abort was written
}

// .txnindex file format. Frozen: a new format gets a new version or magic.
//
//	header: | magic "SLTN" (4B) | version (1B) = 1 | zero (3B) | base offset (8B) |
//	entry:  | producer id (8B) | first offset (8B) | last offset (8B) | last stable offset (8B) |
const (
	txnIndexSuffix    = ".txnindex"
	txnIndexMagic     = "SLTN"
	txnIndexEntrySize = 32
)

func encodeTxnIndex(base int64, es []AbortedTxn) []byte {
	b := appendIndexHeader(make([]byte, 0, indexHeaderSize+len(es)*txnIndexEntrySize), txnIndexMagic, base)
	for _, e := range es {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(e.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastStableOffset))
	}
	return b
}

func decodeTxnIndex(b []byte, base int64) ([]AbortedTxn, error) {
	if len(b) < indexHeaderSize || string(b[:4]) != txnIndexMagic || b[4] != indexVersion {
		return nil, corruptionf("txn index: bad header")
	}
	if got := int64(binary.BigEndian.Uint64(b[8:16])); got != base {
		return nil, corruptionf("txn index: base %d, want %d", got, base)
	}
	b = b[indexHeaderSize:]
	if len(b)%txnIndexEntrySize != 0 {
		return nil, corruptionf("txn index: %d trailing bytes", len(b)%txnIndexEntrySize)
	}
	es := make([]AbortedTxn, 0, len(b)/txnIndexEntrySize)
	prev := int64(math.MinInt64)
	for ; len(b) > 0; b = b[txnIndexEntrySize:] {
		e := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b)),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[8:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[16:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[24:])),
		}
		if e.LastOffset < base || e.FirstOffset > e.LastOffset || e.LastOffset < prev {
			return nil, corruptionf("txn index: entry %+v out of order or range", e)
		}
		prev = e.LastOffset
		es = append(es, e)
	}
	return es, nil
}

// readTxnIndex reads the .txnindex of the segment at base; a missing file
// means no aborted transaction.
func readTxnIndex(dir string, base int64) ([]AbortedTxn, error) {
	b, err := os.ReadFile(segmentPath(dir, base, txnIndexSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeTxnIndex(b, base)
}

// LastStableOffset is the offset below which every transaction is decided
// (Kafka's LSO): the first offset of the earliest ongoing transaction, or
// the log end offset. read_committed readers stop there.
func (p *Partition) LastStableOffset() int64 {
	leo := p.logEnd.Load() // before firstUnstable: see the publication order
	lso := min(p.firstUnstable.Load(), leo)
	return max(lso, min(p.logStart.Load(), leo))
}

// AbortedTransactions returns the aborted transactions that may cover
// records in [from, to): those whose marker is at or after from and whose
// first offset is below to, in marker order (a Fetch's
// AbortedTransactions).
func (p *Partition) AbortedTransactions(from, to int64) []AbortedTxn {
	es := p.abortedList()
	i := sort.Search(len(es), func(i int) bool { return es[i].LastOffset >= from })
	var out []AbortedTxn
	for _, e := range es[i:] {
		if e.FirstOffset < to {
			out = append(out, e)
		}
	}
	return out
}

// OngoingTransactions returns the first offset of every ongoing transaction
// by producer id.
func (p *Partition) OngoingTransactions() map[int64]int64 {
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	out := map[int64]int64{}
	for id, s := range p.producers {
		if s.TxnFirstOffset >= 0 {
			out[id] = s.TxnFirstOffset
		}
	}
	return out
}

func (p *Partition) abortedList() []AbortedTxn {
	if es := p.aborted.Load(); es != nil {
		return *es
	}
	return nil
}

// addAbortedLocked publishes new aborted transactions. Caller holds
// appendMu; the new slice shares no element a reader can see changing
// (appending past a published length is invisible to holders of it).
func (p *Partition) addAbortedLocked(es []AbortedTxn) {
	cur := p.abortedList()
	next := append(cur, es...)
	p.aborted.Store(&next)
}

// setAbortedLocked replaces the list (rebuild, retention).
func (p *Partition) setAbortedLocked(es []AbortedTxn) {
	es = append([]AbortedTxn(nil), es...)
	p.aborted.Store(&es)
}

// pruneAbortedLocked drops the entries whose marker is below offset.
func (p *Partition) pruneAbortedLocked(offset int64) {
	es := p.abortedList()
	i := sort.Search(len(es), func(i int) bool { return es[i].LastOffset >= offset })
	if i > 0 {
		p.setAbortedLocked(es[i:])
	}
}

// firstUnstable is the first offset of the earliest ongoing transaction,
// MaxInt64 if there is none. exclude is a producer to leave out (-1: none).
func (m producerStates) firstUnstable(staged producerStates, exclude int64) int64 {
	fu := int64(math.MaxInt64)
	for id, s := range m {
		if _, ok := staged[id]; ok || id == exclude {
			continue
		}
		if s.TxnFirstOffset >= 0 {
			fu = min(fu, s.TxnFirstOffset)
		}
	}
	for id, s := range staged {
		if id != exclude && s.TxnFirstOffset >= 0 {
			fu = min(fu, s.TxnFirstOffset)
		}
	}
	return fu
}

// controlType decodes the control record of control batch b.
func controlType(dec *batch.Decoder, b []byte) (batch.ControlRecord, error) {
	_, recs, err := dec.Decode(b)
	if err != nil {
		return batch.ControlRecord{}, err
	}
	if len(recs) == 0 {
		return batch.ControlRecord{}, fmt.Errorf("%w: empty control batch", batch.ErrControl)
	}
	return batch.ParseControl(&recs[0])
}

// writeTxnIndexesLocked rewrites the .txnindex files of the segments whose
// aborted transactions changed (removing the file when none is left).
// Caller holds flushMu.
func (p *Partition) writeTxnIndexesLocked(segs []*segment) error {
	var es []AbortedTxn
	for i, s := range segs {
		if !s.txnDirty.CompareAndSwap(true, false) {
			continue
		}
		if es == nil {
			es = p.abortedList()
		}
		upper := int64(math.MaxInt64)
		if i+1 < len(segs) {
			upper = segs[i+1].base
		}
		lo := sort.Search(len(es), func(i int) bool { return es[i].LastOffset >= s.base })
		hi := sort.Search(len(es), func(i int) bool { return es[i].LastOffset >= upper })
		path := segmentPath(s.dir, s.base, txnIndexSuffix)
		var err error
		if lo == hi {
			if err = os.Remove(path); errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		} else {
			err = writeFileAtomic(path, encodeTxnIndex(s.base, es[lo:hi]))
		}
		if err != nil {
			s.txnDirty.Store(true)
			return err
		}
	}
	return nil
}
