package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"
	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// rawProducer sends hand-built batches (transactional data) with kmsg, as
// a transactional producer would.
type rawProducer struct {
	t     *testing.T
	cl    *kgo.Client
	topic string
	id    [16]byte
}

func (p rawProducer) send(b []byte) {
	p.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = p.topic, p.id
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = b
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(p.t, 30*time.Second), p.cl)
	if err != nil {
		p.t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		p.t.Fatalf("produce: error code %d", code)
	}
}

func (p rawProducer) data(pid int64, txn bool, seq int32, values ...string) {
	p.t.Helper()
	h := batch.Header{ProducerID: pid, BaseSequence: seq}
	if pid < 0 {
		h.ProducerEpoch, h.BaseSequence = -1, -1
	}
	if txn {
		h.Attributes = batch.AttrTransactional
	}
	ts := time.Now().UnixMilli()
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		recs[i] = batch.Record{Offset: int64(i), Timestamp: ts, Value: []byte(v)}
	}
	b, err := batch.Build(h, recs, batch.CodecNone)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(b)
}

// rawTxn is a transaction driven with kmsg requests to the transaction
// coordinator (InitProducerId, AddPartitionsToTxn, EndTxn), whose data the
// test writes with rawProducer.data; the coordinator writes the markers.
type rawTxn struct {
	t     *testing.T
	cl    *kgo.Client
	id    string
	pid   int64
	epoch int16
}

func newRawTxn(t *testing.T, cl *kgo.Client, id, topic string) *rawTxn {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = &id
	init.TransactionTimeoutMillis = 60000
	resp, err := init.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("InitProducerId: %v", err)
	}
	x := &rawTxn{t: t, cl: cl, id: id, pid: resp.ProducerID, epoch: resp.ProducerEpoch}
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, x.pid, x.epoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{0}
	add.Topics = append(add.Topics, at)
	aresp, err := add.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(aresp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("AddPartitionsToTxn: %v", err)
	}
	return x
}

// end commits or aborts: the coordinator writes the marker.
func (x *rawTxn) end(commit bool) {
	x.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = x.id, x.pid, x.epoch, commit
	resp, err := req.RequestWith(testCtx(x.t, 30*time.Second), x.cl)
	if err != nil {
		x.t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		x.t.Fatalf("EndTxn: %v", err)
	}
}

func values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReadCommittedIsolation: the last stable offset bounds read_committed
// fetches and ListOffsets, and the aborted-transaction list lets the client
// drop aborted records; read_uncommitted sees everything.
func TestReadCommittedIsolation(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("iso", 1))
	cl := newClient(t, b.Addr())
	p := rawProducer{t: t, cl: cl, topic: "iso"}
	tds, err := kadm.NewClient(cl).ListTopics(testCtx(t, 30*time.Second), "iso")
	if err != nil {
		t.Fatal(err)
	}
	p.id = tds["iso"].ID

	ta := newRawTxn(t, cl, "iso-a", "iso")
	tb := newRawTxn(t, cl, "iso-b", "iso")
	td := newRawTxn(t, cl, "iso-d", "iso")
	p.data(ta.pid, true, 0, "a0", "a1", "a2") // 0..2, aborted
	p.data(tb.pid, true, 0, "b0", "b1")       // 3..4, committed
	p.data(-1, false, 0, "c0")                // 5
	ta.end(false)                             // 6
	p.data(tb.pid, true, 2, "b2")             // 7
	tb.end(true)                              // 8
	p.data(td.pid, true, 0, "d0")             // 9, open
	p.data(-1, false, 0, "c1")                // 10

	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 30*time.Second)
	var ends kadm.ListedOffsets
	ends, err = adm.ListEndOffsets(ctx, "iso")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.ListCommittedOffsets(ctx, "iso")
	if err != nil {
		t.Fatal(err)
	}
	if e, c := ends["iso"][0].Offset, committed["iso"][0].Offset; e != 11 || c != 9 {
		t.Fatalf("end offset %d, last stable offset %d; want 11, 9", e, c)
	}

	got := values(consumeAll(t, b.Addr(), "iso", 4, kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	if want := []string{"b0", "b1", "c0", "b2"}; !equalStrings(got, want) {
		t.Fatalf("read_committed: %q, want %q", got, want)
	}
	got = values(consumeAll(t, b.Addr(), "iso", 9))
	if want := []string{"a0", "a1", "a2", "b0", "b1", "c0", "b2", "d0", "c1"}; !equalStrings(got, want) {
		t.Fatalf("read_uncommitted: %q, want %q", got, want)
	}

	// The open transaction aborts, then a restart: the index and the LSO
	// come back from disk.
	td.end(false) // 11
	b.Restart()
	got = values(consumeAll(t, b.Addr(), "iso", 5, kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	if want := []string{"b0", "b1", "c0", "b2", "c1"}; !equalStrings(got, want) {
		t.Fatalf("read_committed after restart: %q, want %q", got, want)
	}
}
