package broker

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Incremental fetch sessions (KIP-227). A consumer that fetches many
// partitions registers them once; later requests name only what changed,
// and responses carry only partitions with news (records, an error, or a
// moved high watermark, last stable offset or log start offset).
//
// Session epochs, as in Kafka: 0 asks for a new session (full fetch),
// -1 (final) asks for a full fetch without a session and closes the named
// one, any other value continues a session and must equal the expected
// epoch, which advances by one per request.

const (
	sessionEpochInitial int32 = 0
	sessionEpochFinal   int32 = -1
)

// sessPart is a session's cached state for one partition.
type sessPart struct {
	topic     string
	topicID   [16]byte
	part      int32
	offset    int64
	maxBytes  int32
	leaderEp  int32
	hw        int64
	lso       int64
	logStart  int64
	responded bool // a response has carried this partition since it was added
}

type fetchSession struct {
	id       int32
	mu       sync.Mutex // one request at a time per session
	epoch    int32      // the epoch the next request must carry
	parts    []*sessPart
	idx      map[tpKey]*sessPart
	lastUsed time.Time
}

func (s *fetchSession) upsert(sp sessPart) {
	k := tpKey{sp.topic, sp.part}
	if cur, ok := s.idx[k]; ok {
		cur.offset, cur.maxBytes, cur.leaderEp, cur.topicID = sp.offset, sp.maxBytes, sp.leaderEp, sp.topicID
		return
	}
	p := &sp
	p.hw, p.lso, p.logStart = -1, -1, -1
	s.idx[k] = p
	s.parts = append(s.parts, p)
}

func (s *fetchSession) forget(topic string, part int32) {
	k := tpKey{topic, part}
	if _, ok := s.idx[k]; !ok {
		return
	}
	delete(s.idx, k)
	for i, p := range s.parts {
		if p.topic == topic && p.part == part {
			s.parts = append(s.parts[:i], s.parts[i+1:]...)
			break
		}
	}
}

// fetchSessionCache holds sessions up to a slot limit, evicting the least
// recently used one that has been idle longer than the eviction age.
type fetchSessionCache struct {
	mu       sync.Mutex
	slots    int
	evictAge time.Duration
	m        map[int32]*fetchSession
}

func newFetchSessionCache(slots int, evictAge time.Duration) *fetchSessionCache {
	return &fetchSessionCache{slots: slots, evictAge: evictAge, m: map[int32]*fetchSession{}}
}

// create makes a new session, or returns nil when no slot can be had.
func (c *fetchSessionCache) create(now time.Time) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots <= 0 {
		return nil
	}
	if len(c.m) >= c.slots {
		var oldest *fetchSession
		for _, s := range c.m {
			if oldest == nil || s.lastUsed.Before(oldest.lastUsed) {
				oldest = s
			}
		}
		if oldest == nil || now.Sub(oldest.lastUsed) < c.evictAge {
			return nil
		}
		delete(c.m, oldest.id)
	}
	var id int32
	for id == 0 || c.m[id] != nil {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
		id = int32(binary.BigEndian.Uint32(b[:]) & 0x7fffffff)
	}
	s := &fetchSession{id: id, epoch: 1, idx: map[tpKey]*sessPart{}, lastUsed: now}
	c.m[id] = s
	return s
}

// lookup finds a session and checks the request's epoch.
func (c *fetchSessionCache) lookup(id, epoch int32, now time.Time) (*fetchSession, error) {
	c.mu.Lock()
	s, ok := c.m[id]
	c.mu.Unlock()
	if !ok {
		return nil, kerr.FetchSessionIDNotFound
	}
	s.mu.Lock()
	if s.epoch != epoch {
		s.mu.Unlock()
		return nil, kerr.InvalidFetchSessionEpoch
	}
	s.lastUsed = now
	return s, nil // locked; the caller unlocks
}

func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

func (c *fetchSessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
