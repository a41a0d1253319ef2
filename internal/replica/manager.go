package replica

import (
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by a closed Manager.
var ErrClosed = errors.New("replica: manager closed")

// Manager is the broker's replica manager: the partitions this broker
// leads (Leader) and follows (one Fetcher per leader broker), and the ISR
// expiration loop. The broker calls BecomeLeader / BecomeFollower / Stop
// from its metadata event handler.
type Manager struct {
	cfg  Config
	dial func(leaderID int32) LeaderClient

	stop chan struct{}
	wg   sync.WaitGroup

	mu struct {
		sync.Mutex
		leaders  map[tpKey]*Leader
		fetchers map[int32]*Fetcher
		follows  map[tpKey]int32 // partition -> leader broker it is fetched from
		closed   bool
	}
}

// NewManager starts a manager; dial returns the LeaderClient for a leader
// broker (NewKgoClient in the broker).
func NewManager(cfg Config, dial func(leaderID int32) LeaderClient) (*Manager, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, dial: dial, stop: make(chan struct{})}
	m.mu.leaders = map[tpKey]*Leader{}
	m.mu.fetchers = map[int32]*Fetcher{}
	m.mu.follows = map[tpKey]int32{}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.isrExpiration()
	}()
	return m, nil
}

// isrExpiration runs MaybeShrinkISR on every leader every
// ReplicaLagTimeMax/2 (Kafka's isr-expiration task).
func (m *Manager) isrExpiration() {
	t := time.NewTicker(max(m.cfg.ReplicaLagTimeMax/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		ls := make([]*Leader, 0, len(m.mu.leaders))
		for _, l := range m.mu.leaders {
			ls = append(ls, l)
		}
		m.mu.Unlock()
		for _, l := range ls {
			l.MaybeShrinkISR()
		}
	}
}

// BecomeLeader makes this broker the leader of lc.State's partition: it
// stops following it, and either updates the current Leader (same leader
// epoch, or re-elected) or replaces it.
func (m *Manager) BecomeLeader(lc LeaderConfig) (*Leader, error) {
	k := tpKey{lc.State.Topic, lc.State.Partition}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	m.unfollowLocked(k)
	if l := m.mu.leaders[k]; l != nil {
		if lc.State.LeaderEpoch < l.LeaderEpoch() {
			return l, nil // a stale state
		}
		if l.IsLeader() {
			l.Update(lc.State)
			return l, nil
		}
		l.Close()
		delete(m.mu.leaders, k)
	}
	l, err := NewLeader(m.cfg, lc)
	if err != nil {
		return nil, err
	}
	m.mu.leaders[k] = l
	return l, nil
}

// BecomeFollower makes this broker a follower of fp's partition, fetched
// from leaderID: it closes the Leader if there was one and (re)adds the
// partition to that leader's fetcher.
func (m *Manager) BecomeFollower(fp FollowerPartition, leaderID int32) {
	k := tpKey{fp.Topic, fp.Partition}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return
	}
	if l := m.mu.leaders[k]; l != nil {
		l.Close()
		delete(m.mu.leaders, k)
	}
	if id, ok := m.mu.follows[k]; ok && id == leaderID {
		m.mu.fetchers[id].Add(fp) // same leader: a new epoch restarts, the same one is kept
		return
	}
	m.unfollowLocked(k)
	f := m.mu.fetchers[leaderID]
	if f == nil {
		f = NewFetcher(m.cfg, leaderID, m.dial(leaderID))
		m.mu.fetchers[leaderID] = f
	}
	f.Add(fp)
	m.mu.follows[k] = leaderID
}

// Stop ends this broker's role for a partition (no longer a replica, or
// the partition is being deleted). When it returns, nothing in the manager
// touches the partition's log.
func (m *Manager) Stop(topic string, partition int32) {
	k := tpKey{topic, partition}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.mu.leaders[k]; l != nil {
		l.Close()
		delete(m.mu.leaders, k)
	}
	m.unfollowLocked(k)
}

func (m *Manager) unfollowLocked(k tpKey) {
	id, ok := m.mu.follows[k]
	if !ok {
		return
	}
	delete(m.mu.follows, k)
	if f := m.mu.fetchers[id]; f != nil {
		f.Remove(k.topic, k.part)
		if f.Len() == 0 {
			f.Close()
			delete(m.mu.fetchers, id)
		}
	}
}

// Leader returns the partition's Leader if this broker leads it.
func (m *Manager) Leader(topic string, partition int32) (*Leader, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.mu.leaders[tpKey{topic, partition}]
	return l, ok
}

// Following returns the leader broker a partition is fetched from.
func (m *Manager) Following(topic string, partition int32) (leaderID int32, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.mu.follows[tpKey{topic, partition}]
	return id, ok
}

// Close stops every fetcher and leader and the expiration loop.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return
	}
	m.mu.closed = true
	for k, l := range m.mu.leaders {
		l.Close()
		delete(m.mu.leaders, k)
	}
	for id, f := range m.mu.fetchers {
		f.Close()
		delete(m.mu.fetchers, id)
	}
	m.mu.follows = map[tpKey]int32{}
	m.mu.Unlock()
	close(m.stop)
	m.wg.Wait()
}
