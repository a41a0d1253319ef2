package broker

// Produce: v3-13
//
// Behavior:
//   - Record batches (magic v2) are appended as they came: the storage
//     engine validates the header and CRC, rewrites baseOffset (and
//     maxTimestamp for LogAppendTime) and writes the bytes; nothing is
//     decompressed.
//   - In a cluster the partition's replica.Leader decides (replication.go):
//     NOT_ENOUGH_REPLICAS before the append when acks=all and the ISR is
//     below min.insync.replicas; acks=all answers once the high watermark
//     (the minimum over the ISR of durable offsets, or of log ends with
//     write caching) passes the batch, NOT_ENOUGH_REPLICAS_AFTER_APPEND if
//     the ISR shrank below min.insync.replicas meanwhile,
//     NOT_LEADER_OR_FOLLOWER if the leadership ended. A follower answers
//     NOT_LEADER_OR_FOLLOWER with the leader hint. The rest of this list
//     is the single-node path.
//   - acks=0: no response. acks=1: answered after the local append.
//     acks=-1 (all): answered once the batch is durable (group-commit
//     fdatasync) unless the topic uses write caching (Kafka's page-cache
//     model: flush.messages / flush.ms / write.caching=true), in which case
//     after the append as Kafka's single replica would. TimeoutMillis bounds
//     the wait (REQUEST_TIMED_OUT).
//   - Other acks values: INVALID_REQUIRED_ACKS. Unknown topic or partition:
//     UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID for v13 topic ids).
//     Bad batches: CORRUPT_MESSAGE, INVALID_RECORD, MESSAGE_TOO_LARGE, with
//     the error message (v8+).
//   - Each append wakes the long-poll fetches parked on its partition.
//   - Idempotent producers (batches with a producer id): the storage engine
//     checks sequences and epochs atomically with the append. A retried
//     batch (one of the producer's last five) is answered with success and
//     its original base offset, nothing is written, and acks=all waits for
//     the original to be durable. A sequence gap or a new epoch not
//     starting at 0: OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch:
//     INVALID_PRODUCER_EPOCH. A producer the partition does not know (new,
//     expired after producer.id.expiration.ms, or whose batches were all
//     deleted) is accepted at any sequence, as in Kafka 4.
//   - Transactional batches (KIP-890). A producer with no transaction
//     ongoing on the partition at its epoch is checked with the
//     transaction coordinator (in-process, or AddPartitionsToTxn
//     VerifyOnly to the coordinator's broker in a cluster, as Kafka's
//     leader does; interbroker.go) before anything is appended: the
//     partition must be in the ongoing transaction of that producer id
//     and epoch. Refused: TRANSACTION_ABORTABLE (v11+; INVALID_TXN_STATE
//     before, KIP-1050), an old epoch INVALID_PRODUCER_EPOCH, the
//     coordinator busy or unavailable NOT_ENOUGH_REPLICAS (retriable), as
//     Kafka answers. This stops a delayed produce of a finished
//     transaction from opening a hanging one. With transaction.version 2
//     a v12+ produce adds the partition to the transaction itself
//     (implicit AddPartitionsToTxn, KIP-890 part 2). A check and its
//     append are serialized with marker writes of the same partition and
//     producer, so a marker in between forces a new check. Requests
//     without a transactional id are not checked.
//   - Control batches (transaction markers) are refused with
//     INVALID_RECORD, as Kafka does: the transaction coordinator writes
//     them.
//   - Compacted topics (cleanup.policy contains compact) refuse records
//     without a key with INVALID_RECORD, as Kafka does; this is the one case
//     where produce decodes (and decompresses) records.
//
// Version notes:
//   - v3: record batches and transactional id; v5: LogStartOffset
//   - v8: ErrorRecords / ErrorMessage; v9: flexible
//   - v10+: CurrentLeader tag on NOT_LEADER (KIP-951); v13: topic ids
//   - v11: TRANSACTION_ABORTABLE (KIP-1050); v12: implicit add to the
//     transaction under transaction.version 2 (KIP-890 part 2)

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log"
	"github.com/sluice-io/sluice/internal/log/batch"
	"github.com/sluice-io/sluice/internal/replica"
	"github.com/sluice-io/sluice/internal/txn"
)

func init() { register(0, 3, 13, (*Broker).handleProduce) }

// produceWait is an acks=all partition append waiting to become durable;
// ti and pi locate its response slot.
type produceWait struct {
	part   *partition
	leader *replica.Leader // nil on a single node: wait for durability only
	last   int64
	ti, pi int
}

func (b *Broker) handleProduce(r *request, req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	badAcks := req.Acks != 0 && req.Acks != 1 && req.Acks != -1
	var waits []produceWait
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, idErr := b.resolveTopic(req.Version >= 13, rt.Topic, rt.TopicID)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			fail := func(err error) {
				sp.ErrorCode = errCode(err)
				if req.Version >= 8 && sp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
					sp.ErrorMessage = errMessage(err)
				}
				b.produceLeaderHint(req.Version, resp, &sp, name)
			}
			switch {
			case badAcks:
				fail(kerr.InvalidRequiredAcks)
			case idErr != nil:
				fail(idErr)
			default:
				p, ok := b.parts.get(name, rp.Partition)
				if !ok {
					fail(b.missingPartitionErr(name, rp.Partition))
					break
				}
				if err := refuseControl(rp.Records); err != nil {
					fail(err)
					break
				}
				l := p.leader.Load()
				if l != nil {
					// min.insync.replicas (acks=all) and a leadership
					// that ended since the table was read.
					if err := l.CheckAppend(req.Acks); err != nil {
						fail(err)
						break
					}
				}
				if p.compacted.Load() {
					if err := requireKeys(rp.Records); err != nil {
						fail(err)
						break
					}
				}
				res, err := b.produceAppend(r.ctx, req, name, rp.Partition, p, rp.Records)
				b.metrics.bytesIn.Add(float64(len(rp.Records)))
				if err != nil {
					b.logger.Debug("produce refused", "topic", name, "partition", rp.Partition, "err", err)
					fail(err)
					break
				}
				sp.BaseOffset = res.FirstOffset
				sp.LogAppendTime = res.LogAppendTime
				sp.LogStartOffset = res.LogStartOffset
				if l != nil {
					l.OnAppend()
				}
				if res.Duplicate {
					// A retry of a batch already written: nothing new to
					// wake fetches for; acks=all still waits until the
					// original is durable.
					b.logger.Debug("duplicate batch", "topic", name, "partition", rp.Partition, "base_offset", res.FirstOffset)
				} else {
					p.wake()
					b.metrics.recordsIn.Add(float64(res.NumRecords))
				}
				if req.Acks == -1 && (l != nil || !p.writeCaching.Load()) {
					waits = append(waits, produceWait{part: p, leader: l, last: res.LastOffset, ti: len(resp.Topics), pi: len(st.Partitions)})
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return nil
	}
	if len(waits) == 0 {
		return resp
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	r.later(func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for _, w := range waits {
			var err error
			if w.leader != nil {
				err = w.leader.WaitCommitted(ctx, w.last)
			} else {
				err = w.part.log.WaitDurable(ctx, w.last)
			}
			if err == nil {
				continue
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				err = kerr.RequestTimedOut
			}
			sp := &resp.Topics[w.ti].Partitions[w.pi]
			sp.ErrorCode = errCode(err)
			if req.Version >= 8 {
				sp.ErrorMessage = errMessage(err)
			}
		}
		return resp
	})
	return nil
}

// produceAppend appends a partition's records; transactional batches are
// verified with (or, under transaction.version 2 from a v12+ client,
// added to) the transaction coordinator first.
func (b *Broker) produceAppend(ctx context.Context, req *kmsg.ProduceRequest, topic string, part int32, p *partition, records []byte) (log.AppendResult, error) {
	h, err := batch.ParseHeader(records)
	if err != nil || h.ProducerID < 0 || !h.IsTransactional() || h.IsControl() || req.TransactionID == nil {
		return p.log.Append(records)
	}
	g := b.txns.guard(topic, part, h.ProducerID)
	for range 3 {
		g.mu.Lock()
		if p.log.InTransaction(h.ProducerID, h.ProducerEpoch) {
			res, err := p.log.Append(records)
			g.mu.Unlock()
			return res, err
		}
		gen := g.gen
		g.mu.Unlock()
		tp := txn.Partition{Topic: topic, Partition: part}
		if req.Version >= 12 && b.txns.version() >= 2 {
			err = b.txnAddPartition(ctx, *req.TransactionID, h.ProducerID, h.ProducerEpoch, tp) // interbroker.go
		} else {
			err = b.txnVerify(ctx, *req.TransactionID, h.ProducerID, h.ProducerEpoch, tp)
		}
		if err != nil {
			return log.AppendResult{}, verifyErr(err, req.Version <= 10)
		}
		g.mu.Lock()
		if g.gen == gen {
			res, err := p.log.Append(records)
			g.mu.Unlock()
			return res, err
		}
		g.mu.Unlock() // a marker was written meanwhile: check again
	}
	return log.AppendResult{}, fmt.Errorf("%w: transaction markers kept arriving during verification", kerr.NotEnoughReplicas)
}

// verifyErr maps the transaction coordinator's answer to a verification
// (or implicit add) to the produce error Kafka's leader returns
// (AddPartitionsToTxnManager and ReplicaManager): PRODUCER_FENCED is
// INVALID_PRODUCER_EPOCH, TRANSACTION_ABORTABLE is INVALID_TXN_STATE for
// clients that predate KIP-1050 (oldClient), and a busy or unreachable
// coordinator NOT_ENOUGH_REPLICAS, which every client retries.
func verifyErr(err error, oldClient bool) error {
	switch {
	case errors.Is(err, kerr.ProducerFenced):
		return fmt.Errorf("%w: producer epoch is fenced by the transaction coordinator", kerr.InvalidProducerEpoch)
	case errors.Is(err, kerr.TransactionAbortable):
		if oldClient {
			return fmt.Errorf("%w: partition was not added to the transaction", kerr.InvalidTxnState)
		}
		return fmt.Errorf("%w: partition was not added to the transaction", kerr.TransactionAbortable)
	case errors.Is(err, kerr.ConcurrentTransactions), errors.Is(err, kerr.CoordinatorLoadInProgress),
		errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.NotCoordinator):
		return fmt.Errorf("%w: transaction verification: %w", kerr.NotEnoughReplicas, err)
	}
	return err
}

// resolveTopic returns the topic name for a request that names it either
// by name or (byID) by topic id.
func (b *Broker) resolveTopic(byID bool, name string, id [16]byte) (string, error) {
	if !byID {
		return name, nil
	}
	byIDName, ok := b.meta.TopicNameByID(id) // no copy of the topic
	if !ok {
		return "", kerr.UnknownTopicID
	}
	return byIDName, nil
}

// missingPartitionErr explains why a partition is not served here.
func (b *Broker) missingPartitionErr(topic string, part int32) error {
	if err := b.parts.openErr(topic, part); err != nil {
		return errors.Join(kerr.KafkaStorageError, err)
	}
	n, ok := b.meta.PartitionCount(topic)
	if !ok || part < 0 || part >= n {
		return kerr.UnknownTopicOrPartition
	}
	return kerr.NotLeaderForPartition
}

// refuseControl refuses control batches (transaction markers) from
// clients: only the transaction coordinator writes them (Kafka:
// INVALID_RECORD). It reads each batch's attributes in place; a malformed
// frame is left for the storage engine to reject.
func refuseControl(records []byte) error {
	for pos := 0; len(records)-pos >= batch.HeaderSize; {
		b := records[pos:]
		if b[batch.MagicOffset] != batch.MagicV2 {
			return nil
		}
		if int16(binary.BigEndian.Uint16(b[batch.AttributesOffset:]))&batch.AttrControl != 0 {
			return fmt.Errorf("%w: control batches are written by the transaction coordinator, not by producers", kerr.InvalidRecord)
		}
		n := int(int32(binary.BigEndian.Uint32(b[batch.LengthOffset:]))) + batch.LogOverhead
		if n <= batch.LogOverhead || n > len(b) {
			return nil
		}
		pos += n
	}
	return nil
}

// requireKeys checks that every data record of the batches has a key
// (compacted topics). Malformed batches are left for the storage engine to
// refuse with its own error.
func requireKeys(records []byte) error {
	var dec batch.Decoder
	it := batch.NewIter(records)
	for it.Next() {
		if it.Header().IsControl() {
			continue
		}
		_, recs, err := dec.Decode(it.Batch())
		if err != nil {
			return nil
		}
		for i := range recs {
			if recs[i].Key == nil {
				return fmt.Errorf("%w: compacted topic cannot accept a record without a key (offset delta %d)", kerr.InvalidRecord, i)
			}
		}
	}
	return nil
}
