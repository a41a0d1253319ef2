package broker_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

var txnTopics = []string{"tx-a", "tx-b", "tx-c"}

func txnBroker(t *testing.T, opts ...sluicetest.Option) *sluicetest.Broker {
	t.Helper()
	opts = append([]sluicetest.Option{
		sluicetest.Topic("tx-a", 1), sluicetest.Topic("tx-b", 1), sluicetest.Topic("tx-c", 1),
		sluicetest.Setting("transaction.state.log.num.partitions", "3"),
		sluicetest.Setting("offsets.topic.num.partitions", "3"),
	}, opts...)
	return sluicetest.New(t, opts...)
}

func txnProducer(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, addr, append([]kgo.Opt{kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
}

// runTxn produces one record per topic with value prefix+topic, and ends
// the transaction with commit.
func runTxn(t *testing.T, cl *kgo.Client, prefix string, commit bool) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, tp := range txnTopics {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: tp, Value: []byte(prefix + tp)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

// consumeTxn reads every topic from the start up to n records in total.
func consumeTxn(t *testing.T, addr string, level kgo.IsolationLevel, n int, topics ...string) map[string][]string {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topics...), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := testCtx(t, time.Minute)
	got := map[string][]string{}
	total := 0
	for total < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v (%v)", total, n, err, got)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Topic] = append(got[r.Topic], string(r.Value))
			total++
		})
	}
	return got
}

// TestTxnCommitAbort: franz-go commits and aborts transactions across three
// topics; read_committed sees only the committed records, in order, and
// read_uncommitted sees all of them.
func TestTxnCommitAbort(t *testing.T) {
	b := txnBroker(t)
	cl := txnProducer(t, b.Addr(), "tx-1")
	runTxn(t, cl, "c1-", true)
	runTxn(t, cl, "a1-", false)
	runTxn(t, cl, "c2-", true)
	runTxn(t, cl, "a2-", false)
	runTxn(t, cl, "c3-", true)

	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 9, txnTopics...)
	for _, tp := range txnTopics {
		want := []string{"c1-" + tp, "c2-" + tp, "c3-" + tp}
		if !slices.Equal(got[tp], want) {
			t.Errorf("read_committed %s: got %v, want %v", tp, got[tp], want)
		}
	}
	got = consumeTxn(t, b.Addr(), kgo.ReadUncommitted(), 15, txnTopics...)
	for _, tp := range txnTopics {
		var want []string
		for _, p := range []string{"c1-", "a1-", "c2-", "a2-", "c3-"} {
			want = append(want, p+tp)
		}
		if !slices.Equal(got[tp], want) {
			t.Errorf("read_uncommitted %s: got %v, want %v", tp, got[tp], want)
		}
	}
}

// TestTxnZombieFenced: a second producer with the same transactional id
// fences the first, whose open transaction is aborted.
func TestTxnZombieFenced(t *testing.T) {
	b := txnBroker(t)
	ctx := testCtx(t, time.Minute)
	zombie := txnProducer(t, b.Addr(), "tx-z")
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "tx-a", Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	fresh := txnProducer(t, b.Addr(), "tx-z")
	runTxn(t, fresh, "fresh-", true)

	// The zombie's open transaction was aborted; its next produce or
	// EndTxn is fenced.
	perr := zombie.ProduceSync(ctx, &kgo.Record{Topic: "tx-a", Value: []byte("zombie-2")}).FirstErr()
	eerr := zombie.EndTransaction(ctx, kgo.TryCommit)
	if !fenced(perr) && !fenced(eerr) {
		t.Fatalf("zombie not fenced: produce %v, end %v", perr, eerr)
	}
	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 3, txnTopics...)
	if want := []string{"fresh-tx-a"}; !slices.Equal(got["tx-a"], want) {
		t.Fatalf("read_committed tx-a: got %v, want %v", got["tx-a"], want)
	}
}

func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping)
}

// TestTxnGroupTransactSession: read-process-write with franz-go's
// GroupTransactSession; the consumed offsets are committed in the
// transaction, so a second session continues where the first committed,
// and the output holds each input once.
func TestTxnGroupTransactSession(t *testing.T) {
	groupTransactSession(t, txnBroker(t, sluicetest.Setting("group.initial.rebalance.delay.ms", "0")))
}

// groupTransactSession runs the consume-transform-produce loop of
// TestTxnGroupTransactSession against b (also with transaction.version 1,
// in txn_v2_test.go).
func groupTransactSession(t *testing.T, b *sluicetest.Broker, opts ...kgo.Opt) {
	t.Helper()
	ctx := testCtx(t, 2*time.Minute)
	in := newClient(t, b.Addr())
	const n = 20
	input := func(from, to int) {
		for i := from; i < to; i++ {
			if err := in.ProduceSync(ctx, &kgo.Record{Topic: "tx-a", Value: []byte(fmt.Sprintf("v%02d", i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// process moves limit records from tx-a to tx-b in one session, one
	// transaction per poll; abortFirst aborts the first transaction (the
	// session rewinds and its records are consumed again).
	process := func(limit int, abortFirst bool) int {
		sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{
			kgo.SeedBrokers(b.Addr()),
			kgo.TransactionalID("tx-rpw"),
			kgo.ConsumerGroup("rpw"),
			kgo.ConsumeTopics("tx-a"),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
		}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		done, aborted := 0, false
		for done < limit {
			fs := sess.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("poll: %v", ctx.Err())
			}
			fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
			recs := fs.Records()
			if len(recs) == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				sess.Produce(ctx, &kgo.Record{Topic: "tx-b", Value: append([]byte("out-"), r.Value...)}, func(_ *kgo.Record, err error) {
					if err != nil && !errors.Is(err, kgo.ErrAborting) {
						t.Errorf("produce: %v", err)
					}
				})
			}
			commit := !(abortFirst && !aborted)
			committed, err := sess.End(ctx, kgo.TransactionEndTry(commit))
			if err != nil {
				t.Fatal(err)
			}
			if !commit {
				aborted = true
				continue
			}
			if committed {
				done += len(recs)
			}
		}
		return done
	}
	input(0, n/2)
	process(n/2, true)
	// A new session starts from the offsets committed in the
	// transactions: nothing is processed twice.
	input(n/2, n)
	process(n/2, false)

	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), n, "tx-b")["tx-b"]
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("out-v%02d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("output: got %v, want %v", got, want)
	}
}

// TestTxnRestart: a transaction open when the broker restarts is never
// half-visible: read_committed sees nothing of it, and once the producer
// comes back (InitProducerId) it is aborted; committed data survives, and
// so does the transactional id's epoch (the old producer is fenced).
func TestTxnRestart(t *testing.T) {
	b := txnBroker(t)
	ctx := testCtx(t, time.Minute)
	old := txnProducer(t, b.Addr(), "tx-r")
	runTxn(t, old, "c1-", true)
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, tp := range txnTopics {
		if err := old.ProduceSync(ctx, &kgo.Record{Topic: tp, Value: []byte("open-" + tp)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	b = b.Restart()

	// Before anyone completes it: read_committed stops at the open
	// transaction.
	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 3, txnTopics...)
	for _, tp := range txnTopics {
		if want := []string{"c1-" + tp}; !slices.Equal(got[tp], want) {
			t.Fatalf("read_committed %s before recovery: got %v, want %v", tp, got[tp], want)
		}
	}

	fresh := txnProducer(t, b.Addr(), "tx-r")
	runTxn(t, fresh, "c2-", true)
	got = consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 6, txnTopics...)
	for _, tp := range txnTopics {
		if want := []string{"c1-" + tp, "c2-" + tp}; !slices.Equal(got[tp], want) {
			t.Fatalf("read_committed %s: got %v, want %v", tp, got[tp], want)
		}
	}
	if err := old.EndTransaction(ctx, kgo.TryCommit); !fenced(err) {
		t.Fatalf("old producer after restart: EndTransaction = %v, want fenced", err)
	}
}

// TestTxnTimeout: a transaction left open longer than its
// transaction.timeout.ms is aborted by the coordinator.
func TestTxnTimeout(t *testing.T) {
	b := txnBroker(t, sluicetest.Setting("transaction.abort.timed.out.transaction.cleanup.interval.ms", "50"))
	ctx := testCtx(t, time.Minute)
	cl := txnProducer(t, b.Addr(), "tx-t", kgo.TransactionTimeout(200*time.Millisecond))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "tx-a", Value: []byte("abandoned")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	other := newClient(t, b.Addr())
	if err := other.ProduceSync(ctx, &kgo.Record{Topic: "tx-a", Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// read_committed reaches "plain" only once the abandoned
	// transaction is aborted (the LSO moves past it).
	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 1, "tx-a")
	if want := []string{"plain"}; !slices.Equal(got["tx-a"], want) {
		t.Fatalf("got %v, want %v", got["tx-a"], want)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); !fenced(err) {
		t.Fatalf("EndTransaction after timeout = %v, want fenced", err)
	}
}

// TestTxnInvalidTimeout: a timeout above transaction.max.timeout.ms is
// refused.
func TestTxnInvalidTimeout(t *testing.T) {
	b := txnBroker(t, sluicetest.Setting("transaction.max.timeout.ms", "1000"))
	cl := txnProducer(t, b.Addr(), "tx-i", kgo.TransactionTimeout(5*time.Second))
	err := cl.BeginTransaction()
	if err == nil {
		err = cl.ProduceSync(testCtx(t, time.Minute), &kgo.Record{Topic: "tx-a", Value: []byte("x")}).FirstErr()
	}
	if err == nil || !strings.Contains(err.Error(), "INVALID_TRANSACTION_TIMEOUT") {
		t.Fatalf("got %v, want INVALID_TRANSACTION_TIMEOUT", err)
	}
}

// TestTxnSarama: sarama's transactional producer commits and aborts across
// three topics; read_committed sees only the committed records.
func TestTxnSarama(t *testing.T) {
	b := txnBroker(t)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Transaction.ID = "tx-sarama"
	cfg.Producer.Retry.Max = 50
	cfg.Producer.Retry.Backoff = 20 * time.Millisecond
	cfg.Producer.Transaction.Retry.Backoff = 20 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	prod, err := sarama.NewSyncProducer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := prod.Close(); err != nil {
			t.Error(err)
		}
	}()
	run := func(prefix string, commit bool) {
		t.Helper()
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, tp := range txnTopics {
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: tp, Value: sarama.StringEncoder(prefix + tp)}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = prod.CommitTxn()
		} else {
			err = prod.AbortTxn()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	run("c1-", true)
	run("a1-", false)
	run("c2-", true)

	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 6, txnTopics...)
	for _, tp := range txnTopics {
		if want := []string{"c1-" + tp, "c2-" + tp}; !slices.Equal(got[tp], want) {
			t.Errorf("read_committed %s: got %v, want %v", tp, got[tp], want)
		}
	}
	got = consumeTxn(t, b.Addr(), kgo.ReadUncommitted(), 9, txnTopics...)
	for _, tp := range txnTopics {
		if want := []string{"c1-" + tp, "a1-" + tp, "c2-" + tp}; !slices.Equal(got[tp], want) {
			t.Errorf("read_uncommitted %s: got %v, want %v", tp, got[tp], want)
		}
	}
}

// TestProduceRefusesControlBatches: markers come from the transaction
// coordinator only; a producer's control batch is INVALID_RECORD.
func TestProduceRefusesControlBatches(t *testing.T) {
	b := txnBroker(t)
	cl := newClient(t, b.Addr())
	mk, err := batch.ControlBatch(0, 7, 0, batch.ControlRecord{Type: batch.ControlCommit}, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	tds, err := kadm.NewClient(cl).ListTopics(testCtx(t, 30*time.Second), "tx-a")
	if err != nil {
		t.Fatal(err)
	}
	rt.Topic, rt.TopicID = "tx-a", tds["tx-a"].ID
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = mk
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRecord.Code {
		t.Fatalf("error code %d, want INVALID_RECORD", code)
	}
}
