package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/log/batch"
	"github.com/sluice-io/sluice/internal/txn"
)

// txnStateTopic is Kafka's internal topic of transaction states.
const txnStateTopic = "__transaction_state"

// txns owns the transaction coordinator and the lazy creation and loading
// of __transaction_state, as groups does for __consumer_offsets.
type txns struct {
	internalLoader
	coord *txn.Coordinator
	// guards serialize a transactional append that needed verification
	// (or found the transaction ongoing) with the markers of the same
	// partition and producer (Kafka's verification guard): a marker
	// written between the coordinator's answer and the append bumps the
	// stripe's generation, and the append verifies again. Striped by
	// hash(topic, partition, producer id); a collision costs a second
	// verification, never a wrong answer.
	guards [64]txnGuard
}

// txnGuard is one stripe of txns.guards.
type txnGuard struct {
	mu  sync.Mutex
	gen uint64 // markers written under this stripe
}

func (t *txns) guard(topic string, part int32, pid int64) *txnGuard {
	h := fnv.New32a()
	h.Write([]byte(topic))
	var b [12]byte
	binary.BigEndian.PutUint32(b[:4], uint32(part))
	binary.BigEndian.PutUint64(b[4:], uint64(pid))
	h.Write(b[:])
	return &t.guards[h.Sum32()%uint32(len(t.guards))]
}

// version is the finalized transaction.version (KIP-890): 2 enables part
// 2 (epoch bump per transaction, implicit partition adds).
func (t *txns) version() int16 { return t.b.set.txnVersion }

func newTxns(b *Broker) *txns {
	t := &txns{}
	t.internalLoader = internalLoader{b: b, topic: txnStateTopic, what: "transaction state", load: t.load}
	t.coord = txn.New(txn.Config{
		Partitions:    b.set.txnPartitions,
		MaxTimeout:    b.set.txnMaxTimeout,
		AbortInterval: b.set.txnAbortInterval,
		IDExpiration:  b.set.txnIDExpiration,
		GroupPartition: func(group string) txn.Partition {
			return txn.Partition{Topic: offsetsTopic, Partition: b.groups.coord.PartitionFor(group)}
		},
		Logger: b.logger.With("component", "txn"),
	}, internalLog{b, txnStateTopic}, txnMarkers{b}, b.pids)
	return t
}

// errNoTxnState: __transaction_state does not exist, so no transactional
// id was ever used (the admin reads answer "none").
var errNoTxnState = errors.New("broker: no " + txnStateTopic)

// readErr says whether the coordinator can answer the admin reads
// (DescribeTransactions, ListTransactions): nil once loaded,
// errNoTxnState when the topic does not exist, COORDINATOR_NOT_AVAILABLE
// while it loads (a load is started if the topic exists but is not
// loaded, e.g. after a failed load).
func (t *txns) readErr() error {
	ready, loading := t.state()
	switch {
	case ready:
		return nil
	case loading:
		return kerr.CoordinatorNotAvailable
	}
	if _, ok := t.b.meta.Topic(txnStateTopic); !ok {
		return errNoTxnState
	}
	return t.ensure(false)
}

func (t *txns) load(ctx context.Context) error {
	// Markers for AddOffsetsToTxn go through the group coordinator.
	if err := t.b.groups.ensure(true); err != nil && !errors.Is(err, kerr.CoordinatorNotAvailable) {
		return err
	}
	return t.b.loadInternal(ctx, txnStateTopic, t.b.set.txnPartitions, t.b.set.txnReplication, t.coord.Load, t.coord.Unload)
}

func (t *txns) close() { t.coord.Close() }

// txnMarkers implements txn.Markers: commit/abort control batches appended
// to data partitions through the ordinary append path, and to
// __consumer_offsets through the group coordinator (which makes the
// transaction's offsets visible).
type txnMarkers struct{ b *Broker }

func (m txnMarkers) WriteMarker(ctx context.Context, tp txn.Partition, pid int64, epoch int16, commit bool) error {
	// In a cluster, a partition led by another broker gets its marker
	// through WriteTxnMarkers (interbroker.go).
	if node, remote := m.b.markerLeader(tp); remote {
		return m.b.remoteMarker(ctx, node, tp, pid, epoch, commit)
	}
	if tp.Topic == offsetsTopic {
		return m.b.groups.coord.CompleteTxn(ctx, tp.Partition, pid, epoch, commit)
	}
	part, ok := m.b.parts.get(tp.Topic, tp.Partition)
	if !ok {
		if _, exists := m.b.meta.Topic(tp.Topic); !exists {
			return nil // deleted: nothing to mark (Kafka skips it too)
		}
		return fmt.Errorf("%w: %s/%d is not hosted here", kerr.NotLeaderForPartition, tp.Topic, tp.Partition)
	}
	typ := batch.ControlAbort
	if commit {
		typ = batch.ControlCommit
	}
	b, err := batch.ControlBatch(0, pid, epoch, batch.ControlRecord{Type: typ}, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	g := m.b.txns.guard(tp.Topic, tp.Partition, pid)
	g.mu.Lock()
	g.gen++
	res, err := part.log.Append(b)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	part.wake()
	return part.waitCommitted(ctx, res.LastOffset)
}

// internalLog implements group.Log and txn.Log over the broker's partition
// logs of an internal topic: the same append path (validation, offsets,
// group-commit fsync; in a cluster the ISR, as acks=all) as user data.
type internalLog struct {
	b     *Broker
	topic string
}

func (l internalLog) partition(p int32) (*partition, error) {
	part, ok := l.b.parts.get(l.topic, p)
	if !ok {
		return nil, fmt.Errorf("%w: %s/%d is not hosted here", kerr.NotCoordinator, l.topic, p)
	}
	return part, nil
}

func (l internalLog) Append(ctx context.Context, p int32, batches []byte) error {
	part, err := l.partition(p)
	if err != nil {
		return err
	}
	res, err := part.log.Append(batches)
	if err != nil {
		return err
	}
	part.wake()
	return part.waitCommitted(ctx, res.LastOffset)
}

func (l internalLog) Read(p int32, fn func(batch []byte) error) error {
	part, err := l.partition(p)
	if err != nil {
		return err
	}
	off := part.log.LogStartOffset()
	end := part.log.LogEndOffset()
	for off < end {
		res, err := part.log.Read(off, 1<<20, end, true)
		if err != nil {
			return err
		}
		if len(res.Regions) == 0 {
			return nil
		}
		for _, rg := range res.Regions {
			buf := make([]byte, rg.Len) // fresh: the coordinator may keep slices of it
			if _, err := rg.File.ReadAt(buf, rg.Pos); err != nil {
				return fmt.Errorf("read %s/%d at %d: %w", l.topic, p, off, err)
			}
			it := batch.NewIter(buf)
			for it.Next() {
				if err := fn(it.Batch()); err != nil {
					return err
				}
				off = it.Header().LastOffset() + 1
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("read %s/%d at %d: %w", l.topic, p, off, err)
			}
		}
	}
	return nil
}
