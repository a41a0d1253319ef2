package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// epochCache is the leader-epoch cache of one partition (Kafka's
// LeaderEpochFileCache): epoch -> start offset, in increasing order of both,
// persisted in leader-epoch-checkpoint on every change.
type epochCache struct {
	path string
	mu   sync.Mutex
	es   []epochEntry
}

// loadEpochCache reads the checkpoint; a missing file is an empty cache. A
// damaged one is reported (wrapping ErrCorruption) with an empty cache.
func loadEpochCache(dir string) (*epochCache, error) {
	c := &epochCache{path: filepath.Join(dir, leaderEpochFile)}
	b, err := readCheckpointFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	es, err := parseEpochCheckpoint(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", c.path, err)
	}
	c.es = es
	return c, nil
}

func (c *epochCache) persistLocked() error {
	return writeFileAtomic(c.path, encodeEpochCheckpoint(c.es))
}

// latest returns the latest epoch; ok is false if the cache is empty.
func (c *epochCache) latest() (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.es) == 0 {
		return -1, false
	}
	return c.es[len(c.es)-1].Epoch, true
}

// assign records that epoch starts at offset. Entries that conflict (an
// epoch >= epoch, or a start offset >= offset) are removed first, as Kafka
// does. An assignment that changes nothing writes nothing.
func (c *epochCache) assign(epoch int32, offset int64) error {
	if epoch < 0 || offset < 0 {
		return fmt.Errorf("%w: epoch %d at offset %d", ErrInvalidRecord, epoch, offset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.es); n > 0 && c.es[n-1].Epoch == epoch && c.es[n-1].StartOffset <= offset {
		return nil // same epoch: its start offset stays
	}
	keep := c.es[:0:0]
	for _, e := range c.es {
		if e.Epoch < epoch && e.StartOffset < offset {
			keep = append(keep, e)
		}
	}
	c.es = append(keep, epochEntry{Epoch: epoch, StartOffset: offset})
	return c.persistLocked()
}

// endOffsetFor answers OffsetForLeaderEpoch like Kafka's
// LeaderEpochFileCache.endOffsetFor.
func (c *epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.es)
	if epoch < 0 || n == 0 {
		return -1, -1
	}
	if c.es[n-1].Epoch == epoch {
		return epoch, logEnd
	}
	// higher: first entry with Epoch > epoch.
	hi := -1
	for i, e := range c.es {
		if e.Epoch > epoch {
			hi = i
			break
		}
	}
	if hi < 0 {
		return -1, -1 // larger than any known epoch
	}
	if hi == 0 {
		return epoch, c.es[0].StartOffset // smaller than any known epoch
	}
	return c.es[hi-1].Epoch, c.es[hi].StartOffset
}

// truncateFromEnd removes entries starting at or after offset (log
// truncation).
func (c *epochCache) truncateFromEnd(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.es)
	for n > 0 && c.es[n-1].StartOffset >= offset {
		n--
	}
	if n == len(c.es) {
		return nil
	}
	c.es = c.es[:n:n]
	return c.persistLocked()
}

// truncateFromStart drops entries wholly below offset (the new log start):
// the latest entry starting below it is kept and moved up to offset.
func (c *epochCache) truncateFromStart(offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for i < len(c.es) && c.es[i].StartOffset < offset {
		i++
	}
	if i == 0 {
		return nil
	}
	if i < len(c.es) && c.es[i].StartOffset == offset {
		c.es = append([]epochEntry(nil), c.es[i:]...)
	} else {
		last := c.es[i-1]
		last.StartOffset = offset
		c.es = append([]epochEntry{last}, c.es[i:]...)
	}
	return c.persistLocked()
}

// clear removes every entry (TruncateFullyAndStartAt; Kafka's clearAndFlush).
func (c *epochCache) clear() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.es) == 0 {
		return nil
	}
	c.es = nil
	return c.persistLocked()
}

func (c *epochCache) entries() []epochEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]epochEntry(nil), c.es...)
}
