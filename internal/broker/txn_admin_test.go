package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTxnAdminViews checks DescribeProducers, DescribeTransactions and
// ListTransactions (through kadm) against a franz-go transactional
// producer in the middle of a transaction and after its commit, next to a
// plain idempotent producer.
func TestTxnAdminViews(t *testing.T) {
	b := txnBroker(t)
	ctx := testCtx(t, time.Minute)
	adm := kadm.NewClient(newClient(t, b.Addr()))

	// Before any transactional id: nothing listed, nothing found.
	if l, err := adm.ListTransactions(ctx, nil, nil); err != nil || len(l) != 0 {
		t.Fatalf("list before any transaction: %v %v", l, err)
	}

	// An idempotent (non-transactional) producer on tx-c.
	idem := newClient(t, b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := idem.ProduceSync(ctx, &kgo.Record{Topic: "tx-c", Value: []byte("i")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cl := txnProducer(t, b.Addr(), "adm-tx", kgo.TransactionTimeout(30*time.Second))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*kgo.Record{{Topic: "tx-a", Value: []byte("a0")}, {Topic: "tx-a", Value: []byte("a1")}, {Topic: "tx-b", Value: []byte("b0")}} {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// DescribeTransactions mid-transaction.
	dts, err := adm.DescribeTransactions(ctx, "adm-tx", "no-such-id")
	if err != nil {
		t.Fatal(err)
	}
	dt := dts["adm-tx"]
	if dt.Err != nil || dt.State != "Ongoing" || dt.TimeoutMillis != 30000 || dt.StartTimestamp <= 0 || dt.ProducerID < 0 {
		t.Fatalf("describe mid-transaction: %+v", dt)
	}
	if got := dt.Topics.Sorted(); len(got) != 2 || got[0].Topic != "tx-a" || got[1].Topic != "tx-b" ||
		len(got[0].Partitions) != 1 || len(got[1].Partitions) != 1 {
		t.Fatalf("transaction partitions: %+v", got)
	}
	if err := dts["no-such-id"].Err; !errors.Is(err, kerr.TransactionalIDNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	pid := dt.ProducerID

	// ListTransactions with filters.
	list := func(pids []int64, states ...string) kadm.ListedTransactions {
		t.Helper()
		l, err := adm.ListTransactions(ctx, pids, states)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := list(nil); len(l) != 1 || l["adm-tx"].State != "Ongoing" || l["adm-tx"].ProducerID != pid {
		t.Fatalf("list: %+v", l)
	}
	if l := list([]int64{pid}, "Ongoing", "PrepareCommit"); len(l) != 1 {
		t.Fatalf("list by pid and state: %+v", l)
	}
	if l := list([]int64{pid + 1000}); len(l) != 0 {
		t.Fatalf("list by other pid: %+v", l)
	}
	if l := list(nil, "CompleteCommit"); len(l) != 0 {
		t.Fatalf("list by other state: %+v", l)
	}

	// DescribeProducers mid-transaction: the transactional producer with
	// its open transaction's first offset, the idempotent one without.
	dps, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"tx-a": {0: {}}, "tx-b": {0: {}}, "tx-c": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	one := func(topic string) kadm.DescribedProducer {
		t.Helper()
		p := dps[topic].Partitions[0]
		if p.Err != nil || len(p.ActiveProducers) != 1 {
			t.Fatalf("%s: %+v", topic, p)
		}
		for _, d := range p.ActiveProducers {
			return d
		}
		panic("unreachable")
	}
	a, bb, c := one("tx-a"), one("tx-b"), one("tx-c")
	if a.ProducerID != pid || a.ProducerEpoch != dt.ProducerEpoch || a.LastSequence != 1 || a.CurrentTxnStartOffset != 0 || a.LastTimestamp <= 0 {
		t.Fatalf("tx-a producer: %+v", a)
	}
	if bb.ProducerID != pid || bb.LastSequence != 0 || bb.CurrentTxnStartOffset != 0 {
		t.Fatalf("tx-b producer: %+v", bb)
	}
	if c.ProducerID == pid || c.LastSequence != 0 || c.CurrentTxnStartOffset != -1 {
		t.Fatalf("tx-c producer: %+v", c)
	}

	// Unknown partitions, straight to the broker (kadm maps them client side).
	raw := kmsg.NewPtrDescribeProducersRequest()
	for _, tp := range []struct {
		topic string
		part  int32
	}{{"tx-a", 7}, {"no-such-topic", 0}} {
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = tp.topic, []int32{tp.part}
		raw.Topics = append(raw.Topics, rt)
	}
	bm, err := adm.BrokerMetadata(ctx)
	if err != nil || len(bm.Brokers) == 0 {
		t.Fatal(bm, err)
	}
	resp, err := raw.RequestWith(ctx, newClient(t, b.Addr()).Broker(int(bm.Brokers[0].NodeID)))
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		if rt.Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("%s/%d: error %d", rt.Topic, rt.Partitions[0].Partition, rt.Partitions[0].ErrorCode)
		}
	}

	// After the commit.
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	dts, err = adm.DescribeTransactions(ctx, "adm-tx")
	if err != nil {
		t.Fatal(err)
	}
	if dt := dts["adm-tx"]; dt.Err != nil || dt.State != "CompleteCommit" || len(dt.Topics) != 0 || dt.StartTimestamp != -1 || dt.ProducerID != pid {
		t.Fatalf("describe after commit: %+v", dt)
	}
	if l := list(nil, "CompleteCommit"); len(l) != 1 || l["adm-tx"].State != "CompleteCommit" {
		t.Fatalf("list after commit: %+v", l)
	}
	if l := list(nil, "Ongoing", "NoSuchState"); len(l) != 0 {
		t.Fatalf("list ongoing after commit: %+v", l)
	}
	dps, err = adm.DescribeProducers(ctx, kadm.TopicsSet{"tx-a": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if a := one("tx-a"); a.ProducerID != pid || a.CurrentTxnStartOffset != -1 {
		t.Fatalf("tx-a producer after commit: %+v", a)
	}
}
