package broker

// Inter-broker requests of the transaction protocol in a cluster: a
// partition leader verifies a transactional batch with (or, KIP-890 part
// 2, adds its partition to) the transaction coordinator of another broker
// with AddPartitionsToTxn v4+, and a transaction coordinator writes
// markers to partitions led by other brokers with WriteTxnMarkers, as
// Kafka's AddPartitionsToTxnManager and TransactionMarkerChannelManager
// do. On a single node, and whenever this broker is the one, the calls
// stay in-process.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/txn"
)

// interBroker is a Kafka client of the other brokers, created on first
// use and closed with the broker. It finds brokers by their id through
// Metadata from this broker.
type interBroker struct {
	b  *Broker
	mu sync.Mutex
	cl *kgo.Client
	// closed is set by close: no client is created afterwards.
	closed bool
}

func (ib *interBroker) client() (*kgo.Client, error) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.closed {
		return nil, fmt.Errorf("%w: broker is stopping", kerr.NotCoordinator)
	}
	if ib.cl != nil {
		return ib.cl, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(ib.b.advertise),
		kgo.ClientID("sluice-broker-"+strconv.Itoa(int(ib.b.cfg.NodeID))),
		kgo.DialTimeout(5*time.Second),
	)
	if err != nil {
		return nil, err
	}
	ib.cl = cl
	return cl, nil
}

// request sends req to broker node and returns its response; a broker
// that cannot be reached is COORDINATOR_NOT_AVAILABLE /
// NOT_LEADER_OR_FOLLOWER to the callers (both retried).
func (ib *interBroker) request(ctx context.Context, node int32, req kmsg.Request) (kmsg.Response, error) {
	cl, err := ib.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return cl.Broker(int(node)).Request(ctx, req)
}

func (ib *interBroker) close() {
	ib.mu.Lock()
	cl := ib.cl
	ib.cl, ib.closed = nil, true
	ib.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// txnCoordinatorNode is the broker coordinating transactional id: this
// broker on a single node, else the leader of the id's partition of
// __transaction_state.
func (b *Broker) txnCoordinatorNode(id string) (int32, error) {
	if !b.clustered() {
		return b.cfg.NodeID, nil
	}
	br, err := b.coordinatorNode(txnStateTopic, b.txns.coord.PartitionFor(id))
	if err != nil {
		return -1, err
	}
	return br.NodeID, nil
}

// txnVerify is txn.Coordinator.Verify wherever the coordinator is.
func (b *Broker) txnVerify(ctx context.Context, id string, pid int64, epoch int16, tp txn.Partition) error {
	node, err := b.txnCoordinatorNode(id)
	if err != nil {
		return err
	}
	if node == b.cfg.NodeID {
		return b.txns.coord.Verify(id, pid, epoch, tp)
	}
	return b.remoteAddPartitions(ctx, node, id, pid, epoch, tp, true)
}

// txnAddPartition is txn.Coordinator.AddPartitions of one partition
// wherever the coordinator is.
func (b *Broker) txnAddPartition(ctx context.Context, id string, pid int64, epoch int16, tp txn.Partition) error {
	node, err := b.txnCoordinatorNode(id)
	if err != nil {
		return err
	}
	if node == b.cfg.NodeID {
		return b.txns.coord.AddPartitions(ctx, id, pid, epoch, []txn.Partition{tp})
	}
	return b.remoteAddPartitions(ctx, node, id, pid, epoch, tp, false)
}

// remoteAddPartitions sends AddPartitionsToTxn (the batched inter-broker
// form, v4+) for one partition to the coordinator node and returns its
// answer as an error.
func (b *Broker) remoteAddPartitions(ctx context.Context, node int32, id string, pid int64, epoch int16, tp txn.Partition, verifyOnly bool) error {
	req := kmsg.NewPtrAddPartitionsToTxnRequest() // kgo sends the highest version both know (5)
	rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
	rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly = id, pid, epoch, verifyOnly
	t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	t.Topic, t.Partitions = tp.Topic, []int32{tp.Partition}
	rt.Topics = append(rt.Topics, t)
	req.Transactions = append(req.Transactions, rt)
	raw, err := b.inter.request(ctx, node, req)
	if err != nil {
		return fmt.Errorf("%w: transaction coordinator %d: %w", kerr.CoordinatorNotAvailable, node, err)
	}
	resp := raw.(*kmsg.AddPartitionsToTxnResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, st := range resp.Transactions {
		for _, ot := range st.Topics {
			for _, op := range ot.Partitions {
				if err := kerr.ErrorForCode(op.ErrorCode); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// remoteMarker writes one transaction marker to a partition led by
// another broker (WriteTxnMarkers).
func (b *Broker) remoteMarker(ctx context.Context, node int32, tp txn.Partition, pid int64, epoch int16, commit bool) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = tp.Topic, []int32{tp.Partition}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	raw, err := b.inter.request(ctx, node, req)
	if err != nil {
		return fmt.Errorf("%w: marker to %s/%d on broker %d: %w", kerr.NotLeaderForPartition, tp.Topic, tp.Partition, node, err)
	}
	resp := raw.(*kmsg.WriteTxnMarkersResponse)
	for _, sm := range resp.Markers {
		for _, st := range sm.Topics {
			for _, sp := range st.Partitions {
				if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
					return fmt.Errorf("marker to %s/%d on broker %d: %w", tp.Topic, tp.Partition, node, err)
				}
			}
		}
	}
	return nil
}

// markerLeader returns the live leader of tp when it is another broker of
// the cluster (ok false on a single node, or when this broker leads it
// or nobody does).
func (b *Broker) markerLeader(tp txn.Partition) (int32, bool) {
	if !b.clustered() {
		return -1, false
	}
	leader, _, _, ok := b.currentLeader(tp.Topic, tp.Partition)
	if !ok || leader == b.cfg.NodeID {
		return -1, false
	}
	return leader, true
}
