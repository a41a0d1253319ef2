package log

import "hash/maphash"

// offsetMap maps a key to the offset of its latest record in the dirty
// section: Kafka's SkimpyOffsetMap. Keys are stored as a 128-bit hash (two
// independent maphash values with per-pass random seeds), so memory per
// key is fixed and a collision, which could drop a live record, needs two
// 64-bit hashes to collide at once.
type offsetMap struct {
	seed1, seed2 maphash.Seed
	m            map[[2]uint64]int64
	maxEntries   int
	// end is the offset after the last batch whose keys went into the map.
	// Records at or beyond it are not judged by the map (Kafka's
	// "offset > map.latestOffset").
	end int64
}

// defaultOffsetMapEntries bounds the offset map of one cleaning pass
// (about 40 bytes per entry in a Go map, so ~80 MiB at most; Kafka's
// log.cleaner.dedupe.buffer.size defaults to 128 MiB). A dirty section
// with more distinct keys is cleaned over several passes.
const defaultOffsetMapEntries = 2 << 20

func newOffsetMap(maxEntries int, start int64) *offsetMap {
	return &offsetMap{
		seed1:      maphash.MakeSeed(),
		seed2:      maphash.MakeSeed(),
		m:          make(map[[2]uint64]int64),
		maxEntries: maxEntries,
		end:        start,
	}
}

func (om *offsetMap) hash(key []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(om.seed1, key), maphash.Bytes(om.seed2, key)}
}

func (om *offsetMap) put(key []byte, offset int64) { om.m[om.hash(key)] = offset }

// get returns the latest offset of key, or -1.
func (om *offsetMap) get(key []byte) int64 {
	if o, ok := om.m[om.hash(key)]; ok {
		return o
	}
	return -1
}

// room reports whether n more keys surely fit.
func (om *offsetMap) room(n int) bool { return len(om.m)+n <= om.maxEntries }
