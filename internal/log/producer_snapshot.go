package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Producer-state snapshots: "<20-digit offset>.snapshot" holds the producer
// state of the partition after every batch below offset. One is taken at
// each segment roll (written by the flusher once the rolled segment is
// synced) and one at a clean close (at the log end). The format (big
// endian, frozen):
//
//	header: | magic "SLPS" (4B) | version (1B) = 1 | zero (3B) | CRC-32C of everything after it (4B) |
//	        | offset (8B) | producer count (4B) |
//	entry:  | producer id (8B) | epoch (2B) | coordinator epoch (4B) | txn first offset (8B) |
//	        | batch count (1B) | batch count × (first seq (4B) | last seq (4B) | first offset (8B) |
//	        |                                  last offset (8B) | max timestamp (8B)) |
//
// Entries are sorted by producer id. A snapshot that fails any check is
// ignored (and removed): the state is then rebuilt from an older snapshot
// or from the start of the log.
const (
	snapshotSuffix        = ".snapshot"
	producerSnapMagic     = "SLPS"
	producerSnapVersion   = 1
	producerSnapHeader    = 24
	producerSnapEntryMin  = 23
	producerSnapBatchSize = 32
)

func snapshotPath(dir string, offset int64) string {
	return segmentPath(dir, offset, snapshotSuffix)
}

// encodeProducerSnapshot encodes the state as of offset.
func encodeProducerSnapshot(m producerStates, offset int64) []byte {
	b := make([]byte, 0, producerSnapHeader+len(m)*(producerSnapEntryMin+2*producerSnapBatchSize))
	b = append(b, producerSnapMagic...)
	b = append(b, producerSnapVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 0) // CRC, set below
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
	for _, id := range m.sortedIDs() {
		s := m[id]
		b = binary.BigEndian.AppendUint64(b, uint64(s.ProducerID))
		b = binary.BigEndian.AppendUint16(b, uint16(s.Epoch))
		b = binary.BigEndian.AppendUint32(b, uint32(s.CoordinatorEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(s.TxnFirstOffset))
		b = append(b, byte(len(s.Batches)))
		for _, pb := range s.Batches {
			b = binary.BigEndian.AppendUint32(b, uint32(pb.FirstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.LastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.FirstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.LastOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.Timestamp))
		}
	}
	binary.BigEndian.PutUint32(b[8:], batch.ChecksumBytes(b[12:]))
	return b
}

// parseProducerSnapshot decodes a snapshot. Every count is checked against
// the bytes present before anything is allocated.
func parseProducerSnapshot(b []byte) (producerStates, int64, error) {
	if len(b) < producerSnapHeader {
		return nil, 0, corruptionf("producer snapshot: %d bytes is too short", len(b))
	}
	if string(b[:4]) != producerSnapMagic || b[4] != producerSnapVersion || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return nil, 0, corruptionf("producer snapshot: bad magic or version %q", b[:8])
	}
	if crc := binary.BigEndian.Uint32(b[8:]); crc != batch.ChecksumBytes(b[12:]) {
		return nil, 0, corruptionf("producer snapshot: crc mismatch")
	}
	offset := int64(binary.BigEndian.Uint64(b[12:]))
	n := binary.BigEndian.Uint32(b[20:])
	rest := b[producerSnapHeader:]
	if offset < 0 || uint64(n) > uint64(len(rest)/producerSnapEntryMin) {
		return nil, 0, corruptionf("producer snapshot: offset %d, %d producers in %d bytes", offset, n, len(rest))
	}
	m := make(producerStates, n)
	prev := int64(-1)
	for range n {
		if len(rest) < producerSnapEntryMin {
			return nil, 0, corruptionf("producer snapshot: truncated entry")
		}
		s := &ProducerState{
			ProducerID:       int64(binary.BigEndian.Uint64(rest)),
			Epoch:            int16(binary.BigEndian.Uint16(rest[8:])),
			CoordinatorEpoch: int32(binary.BigEndian.Uint32(rest[10:])),
			TxnFirstOffset:   int64(binary.BigEndian.Uint64(rest[14:])),
		}
		nb := int(rest[22])
		rest = rest[producerSnapEntryMin:]
		if s.ProducerID <= prev || nb > maxProducerBatches || len(rest) < nb*producerSnapBatchSize {
			return nil, 0, corruptionf("producer snapshot: producer %d after %d with %d batches", s.ProducerID, prev, nb)
		}
		prev = s.ProducerID
		s.Batches = make([]ProducerBatch, nb)
		for i := range s.Batches {
			pb := ProducerBatch{
				FirstSeq:    int32(binary.BigEndian.Uint32(rest)),
				LastSeq:     int32(binary.BigEndian.Uint32(rest[4:])),
				FirstOffset: int64(binary.BigEndian.Uint64(rest[8:])),
				LastOffset:  int64(binary.BigEndian.Uint64(rest[16:])),
				Timestamp:   int64(binary.BigEndian.Uint64(rest[24:])),
			}
			rest = rest[producerSnapBatchSize:]
			if pb.FirstOffset < 0 || pb.LastOffset < pb.FirstOffset || pb.LastOffset >= offset {
				return nil, 0, corruptionf("producer snapshot: producer %d batch offsets [%d, %d] at snapshot offset %d", s.ProducerID, pb.FirstOffset, pb.LastOffset, offset)
			}
			s.Batches[i] = pb
		}
		m[s.ProducerID] = s
	}
	if len(rest) != 0 {
		return nil, 0, corruptionf("producer snapshot: %d trailing bytes", len(rest))
	}
	return m, offset, nil
}

// listProducerSnapshots returns the offsets of the snapshot files in dir,
// ascending.
func listProducerSnapshots(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		if off, ok := parseSegmentName(e.Name(), snapshotSuffix); ok {
			out = append(out, off)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// readProducerSnapshot reads and checks the snapshot file at offset.
func readProducerSnapshot(dir string, offset int64) (producerStates, error) {
	path := snapshotPath(dir, offset)
	b, err := readCheckpointFile(path)
	if err != nil {
		return nil, err
	}
	m, off, err := parseProducerSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if off != offset {
		return nil, corruptionf("%s: holds offset %d", path, off)
	}
	return m, nil
}

// writeProducerSnapshot writes a snapshot file atomically.
func writeProducerSnapshot(dir string, offset int64, data []byte) error {
	return writeFileAtomic(snapshotPath(dir, offset), data)
}

// removeProducerSnapshots removes the snapshot files whose offset
// satisfies drop.
func removeProducerSnapshots(dir string, drop func(int64) bool) error {
	offs, err := listProducerSnapshots(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, off := range offs {
		if drop(off) {
			if err := os.Remove(snapshotPath(dir, off)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
