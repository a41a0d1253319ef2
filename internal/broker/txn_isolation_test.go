package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"
	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// rawProducer sends hand-built batches (transactional data, markers) with
// kmsg, as a transaction coordinator and a transactional producer would.
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

func (p rawProducer) marker(pid int64, typ batch.ControlType) {
	p.t.Helper()
	b, err := batch.ControlBatch(0, pid, 0, batch.ControlRecord{Type: typ}, time.Now().UnixMilli())
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(b)
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

	p.data(1000, true, 0, "a0", "a1", "a2") // 0..2, aborted
	p.data(1001, true, 0, "b0", "b1")       // 3..4, committed
	p.data(-1, false, 0, "c0")              // 5
	p.marker(1000, batch.ControlAbort)      // 6
	p.data(1001, true, 2, "b2")             // 7
	p.marker(1001, batch.ControlCommit)     // 8
	p.data(1002, true, 0, "d0")             // 9, open
	p.data(-1, false, 0, "c1")              // 10

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
	p.marker(1002, batch.ControlAbort) // 11
	b.Restart()
	got = values(consumeAll(t, b.Addr(), "iso", 5, kgo.FetchIsolationLevel(kgo.ReadCommitted())))
	if want := []string{"b0", "b1", "c0", "b2", "c1"}; !equalStrings(got, want) {
		t.Fatalf("read_committed after restart: %q, want %q", got, want)
	}
}
