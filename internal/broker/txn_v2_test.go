package broker_test

// KIP-890 (transaction verification, and part 2: the epoch bump per
// transaction with implicit partition adds), WriteTxnMarkers,
// AddPartitionsToTxn v4+ and OffsetFetch require_stable, with real clients.

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluice-io/sluice/internal/log/batch"
	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// keyCounter counts the requests a client writes, by API key.
type keyCounter struct{ n [64]atomic.Int64 }

func (c *keyCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil && key >= 0 && int(key) < len(c.n) {
		c.n[key].Add(1)
	}
}

// rawClient is a client whose Produce is capped at produceMax, for
// hand-built transactional produce requests.
func rawClient(t *testing.T, addr string, produceMax int16) *kgo.Client {
	v := kversion.Stable()
	v.SetMaxKeyVersion(0, produceMax)
	return newClient(t, addr, kgo.MaxVersions(v))
}

// rawTxnProduce sends one transactional batch of producer pid/epoch (as
// transactional id txnID) to topic/0 and returns the partition's error.
func rawTxnProduce(t *testing.T, cl *kgo.Client, txnID, topic string, pid int64, epoch int16, seq int32, value string) error {
	t.Helper()
	b, err := batch.Build(batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Attributes: batch.AttrTransactional},
		[]batch.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(value)}}, batch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID = &txnID
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = b
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// offsets returns topic/0's high watermark and last stable offset.
func offsets(t *testing.T, cl *kgo.Client, topic string) (hw, lso int64) {
	t.Helper()
	get := func(level int8) int64 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = level
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("ListOffsets %s: %v", topic, err)
		}
		return p.Offset
	}
	return get(0), get(1)
}

func describeTxn(t *testing.T, cl *kgo.Client, id string) kadm.DescribedTransaction {
	t.Helper()
	dts, err := kadm.NewClient(cl).DescribeTransactions(testCtx(t, 30*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	dt, ok := dts[id]
	if !ok || dt.Err != nil {
		t.Fatalf("DescribeTransactions %s: %+v", id, dt)
	}
	return dt
}

// initRaw is InitProducerId for a transactional id.
func initRaw(t *testing.T, cl *kgo.Client, id string) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 60000
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("InitProducerId: %v", err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func addPartitionRaw(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, topic string) {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("AddPartitionsToTxn: %v", err)
	}
}

func endRaw(t *testing.T, cl *kgo.Client, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func writeMarker(t *testing.T, cl *kgo.Client, topic string, pid int64, epoch int16, commit bool) error {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	// Straight to the broker, as a coordinator would send it (the
	// client's sharder would answer unknown topics itself).
	kresp, err := cl.SeedBrokers()[0].Request(testCtx(t, 30*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.WriteTxnMarkersResponse)
	return kerr.ErrorForCode(resp.Markers[0].Topics[0].Partitions[0].ErrorCode)
}

// TestTxnVersionFeature: ApiVersions v3+ advertises transaction.version
// 0-2 and finalizes the configured level (2 by default, as Kafka 4).
func TestTxnVersionFeature(t *testing.T) {
	for _, tc := range []struct {
		setting string
		want    int16 // finalized level; 0: not listed
	}{{"", 2}, {"1", 1}, {"0", 0}} {
		var opts []sluicetest.Option
		if tc.setting != "" {
			opts = append(opts, sluicetest.Setting("transaction.version", tc.setting))
		}
		b := txnBroker(t, opts...)
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(testCtx(t, 30*time.Second), newClient(t, b.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.SupportedFeatures) != 1 || resp.SupportedFeatures[0].Name != "transaction.version" ||
			resp.SupportedFeatures[0].MinVersion != 0 || resp.SupportedFeatures[0].MaxVersion != 2 {
			t.Errorf("setting %q: supported features %+v", tc.setting, resp.SupportedFeatures)
		}
		if resp.FinalizedFeaturesEpoch < 0 {
			t.Errorf("setting %q: finalized features epoch %d", tc.setting, resp.FinalizedFeaturesEpoch)
		}
		var got int16
		for _, f := range resp.FinalizedFeatures {
			if f.Name == "transaction.version" {
				got = f.MaxVersionLevel
			}
		}
		if got != tc.want {
			t.Errorf("setting %q: finalized transaction.version %d, want %d (%+v)", tc.setting, got, tc.want, resp.FinalizedFeatures)
		}
	}
}

// TestTxnV2EpochBump: franz-go under transaction.version 2 skips
// AddPartitionsToTxn (produce v12 adds the partitions) and gets a new
// epoch from every EndTxn v5; commits and aborts are honoured, and a late
// produce or a marker of the old epoch is refused without being appended.
func TestTxnV2EpochBump(t *testing.T) {
	b := txnBroker(t)
	var reqs keyCounter
	cl := txnProducer(t, b.Addr(), "tx-v2", kgo.WithHooks(&reqs))
	runTxn(t, cl, "c1-", true)
	first := describeTxn(t, cl, "tx-v2")
	runTxn(t, cl, "a1-", false)
	runTxn(t, cl, "c2-", true)
	last := describeTxn(t, cl, "tx-v2")
	if first.State != "CompleteCommit" || last.State != "CompleteCommit" || last.ProducerID != first.ProducerID {
		t.Fatalf("states: first %+v, last %+v", first, last)
	}
	// InitProducerId gave epoch e; each of the three EndTxn bumped it.
	if first.ProducerEpoch < 1 || last.ProducerEpoch != first.ProducerEpoch+2 {
		t.Fatalf("epochs: after the first transaction %d, after the third %d; want +1 per transaction", first.ProducerEpoch, last.ProducerEpoch)
	}
	if n := reqs.n[24].Load(); n != 0 {
		t.Errorf("client sent %d AddPartitionsToTxn under transaction.version 2", n)
	}
	if n := reqs.n[26].Load(); n != 3 {
		t.Errorf("client sent %d EndTxn, want 3", n)
	}
	dps, err := kadm.NewClient(cl).DescribeProducers(testCtx(t, 30*time.Second), kadm.TopicsSet{"tx-a": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range dps.SortedProducers() {
		if p.ProducerID == last.ProducerID {
			found = true
			if p.ProducerEpoch != last.ProducerEpoch {
				t.Errorf("tx-a producer epoch %d, want %d (the commit marker's)", p.ProducerEpoch, last.ProducerEpoch)
			}
		}
	}
	if !found {
		t.Errorf("DescribeProducers tx-a: producer %d missing: %+v", last.ProducerID, dps.SortedProducers())
	}

	got := consumeTxn(t, b.Addr(), kgo.ReadCommitted(), 6, txnTopics...)
	for _, tp := range txnTopics {
		if want := []string{"c1-" + tp, "c2-" + tp}; !slices.Equal(got[tp], want) {
			t.Errorf("read_committed %s: got %v, want %v", tp, got[tp], want)
		}
	}

	// A delayed produce of the finished transaction (the old epoch), to a
	// partition of the transaction and to one never used: refused, nothing
	// appended, no transaction opened.
	raw := rawClient(t, b.Addr(), 12)
	old := last.ProducerEpoch - 1
	for _, topic := range []string{"tx-a", "tx-late"} {
		if topic == "tx-late" {
			if _, err := kadm.NewClient(raw).CreateTopic(testCtx(t, 30*time.Second), 1, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
		}
		hw, lso := offsets(t, raw, topic)
		if err := rawTxnProduce(t, raw, "tx-v2", topic, last.ProducerID, old, 100, "late"); err != kerr.InvalidProducerEpoch {
			t.Errorf("late produce to %s: %v, want INVALID_PRODUCER_EPOCH", topic, err)
		}
		if hw2, lso2 := offsets(t, raw, topic); hw2 != hw || lso2 != lso {
			t.Errorf("late produce to %s moved the log: hw %d -> %d, lso %d -> %d", topic, hw, hw2, lso, lso2)
		}
	}
	if dt := describeTxn(t, cl, "tx-v2"); dt.State != "CompleteCommit" || dt.ProducerEpoch != last.ProducerEpoch {
		t.Errorf("after the late produces: %+v", dt)
	}

	// A retried EndTxn of the old epoch after completion: the same answer.
	resp := endRaw(t, cl, "tx-v2", last.ProducerID, old, true)
	if resp.ErrorCode != 0 || resp.ProducerID != last.ProducerID || resp.ProducerEpoch != last.ProducerEpoch {
		t.Errorf("retried EndTxn v%d: code %d, id %d epoch %d; want 0, %d, %d", resp.Version, resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch, last.ProducerID, last.ProducerEpoch)
	}
	if resp := endRaw(t, cl, "tx-v2", last.ProducerID, old, false); resp.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("retried EndTxn with the other outcome: code %d, want INVALID_TXN_STATE", resp.ErrorCode)
	}

	// A stale marker (the epoch before the last bump) is refused.
	hw, _ := offsets(t, raw, "tx-a")
	if err := writeMarker(t, raw, "tx-a", last.ProducerID, old, false); err != kerr.InvalidProducerEpoch {
		t.Errorf("stale marker: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if hw2, _ := offsets(t, raw, "tx-a"); hw2 != hw {
		t.Errorf("stale marker appended: hw %d -> %d", hw, hw2)
	}
}

// TestTxnV2EmptyAbort: under transaction.version 2 an abort with no
// transaction ongoing succeeds and bumps the epoch (Kafka 4).
func TestTxnV2EmptyAbort(t *testing.T) {
	b := txnBroker(t)
	cl := newClient(t, b.Addr())
	pid, epoch := initRaw(t, cl, "tx-empty")
	resp := endRaw(t, cl, "tx-empty", pid, epoch, false)
	if resp.Version < 5 || resp.ErrorCode != 0 || resp.ProducerID != pid || resp.ProducerEpoch != epoch+1 {
		t.Fatalf("empty abort: %+v", resp)
	}
	if resp := endRaw(t, cl, "tx-empty", pid, epoch+1, true); resp.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("commit with nothing ongoing: code %d, want INVALID_TXN_STATE", resp.ErrorCode)
	}
}

// TestTxnV1Classic: with transaction.version pinned to 1, franz-go uses
// the classic protocol (AddPartitionsToTxn, no epoch bump), its group
// transact session works, and the leader verifies transactional produces:
// a produce from a finished transaction, or to a partition never added,
// is refused INVALID_TXN_STATE (TRANSACTION_ABORTABLE from v11) and
// leaves the log and its LSO unchanged. (Its group transact session:
// TestTxnV1GroupTransactSession.)
func TestTxnV1Classic(t *testing.T) {
	b := txnBroker(t, sluicetest.Setting("transaction.version", "1"))
	var reqs keyCounter
	cl := txnProducer(t, b.Addr(), "tx-v1", kgo.WithHooks(&reqs))
	runTxn(t, cl, "c1-", true)
	first := describeTxn(t, cl, "tx-v1")
	runTxn(t, cl, "a1-", false)
	last := describeTxn(t, cl, "tx-v1")
	if first.ProducerEpoch != last.ProducerEpoch || last.State != "CompleteAbort" {
		t.Fatalf("classic: epochs %d then %d, state %s", first.ProducerEpoch, last.ProducerEpoch, last.State)
	}
	if reqs.n[24].Load() == 0 {
		t.Fatal("client sent no AddPartitionsToTxn under transaction.version 1")
	}

	// A delayed produce of the finished (aborted) transaction: same
	// producer id and epoch, but no transaction is ongoing.
	for _, tc := range []struct {
		version int16
		want    error
	}{{10, kerr.InvalidTxnState}, {11, kerr.TransactionAbortable}} {
		raw := rawClient(t, b.Addr(), tc.version)
		hw, lso := offsets(t, raw, "tx-a")
		if err := rawTxnProduce(t, raw, "tx-v1", "tx-a", last.ProducerID, last.ProducerEpoch, 1, "late"); err != tc.want {
			t.Errorf("produce v%d of a finished transaction: %v, want %v", tc.version, err, tc.want)
		}
		if hw2, lso2 := offsets(t, raw, "tx-a"); hw2 != hw || lso2 != lso {
			t.Errorf("refused produce moved tx-a: hw %d -> %d, lso %d -> %d", hw, hw2, lso, lso2)
		}
	}

	// A transaction that added tx-a only: its produce to tx-b is refused,
	// the one to tx-a accepted.
	raw := rawClient(t, b.Addr(), 10)
	pid, epoch := initRaw(t, raw, "tx-v1-raw")
	addPartitionRaw(t, raw, "tx-v1-raw", pid, epoch, "tx-a")
	hwB, lsoB := offsets(t, raw, "tx-b")
	if err := rawTxnProduce(t, raw, "tx-v1-raw", "tx-b", pid, epoch, 0, "not-added"); err != kerr.InvalidTxnState {
		t.Errorf("produce to a partition never added: %v, want INVALID_TXN_STATE", err)
	}
	if hw, lso := offsets(t, raw, "tx-b"); hw != hwB || lso != lsoB {
		t.Errorf("tx-b moved: hw %d -> %d, lso %d -> %d", hwB, hw, lsoB, lso)
	}
	hwA, _ := offsets(t, raw, "tx-a")
	if err := rawTxnProduce(t, raw, "tx-v1-raw", "tx-a", pid, epoch, 0, "added"); err != nil {
		t.Fatalf("produce to the added partition: %v", err)
	}
	if _, lso := offsets(t, raw, "tx-a"); lso != hwA {
		t.Errorf("tx-a LSO %d, want %d (the open transaction's first offset)", lso, hwA)
	}
	if resp := endRaw(t, raw, "tx-v1-raw", pid, epoch, true); resp.ErrorCode != 0 || resp.ProducerID != -1 {
		t.Errorf("classic EndTxn: %+v", resp)
	}
	if hw, lso := offsets(t, raw, "tx-a"); lso != hw {
		t.Errorf("after commit tx-a LSO %d, hw %d", lso, hw)
	}
}

// TestTxnV1GroupTransactSession: the consume-transform-produce loop with
// transaction.version 1 (AddOffsetsToTxn, TxnOffsetCommit verified).
func TestTxnV1GroupTransactSession(t *testing.T) {
	var reqs keyCounter
	groupTransactSession(t, txnBroker(t, sluicetest.Setting("transaction.version", "1"), sluicetest.Setting("group.initial.rebalance.delay.ms", "0")), kgo.WithHooks(&reqs))
	if reqs.n[25].Load() == 0 || reqs.n[24].Load() == 0 {
		t.Errorf("classic protocol: %d AddOffsetsToTxn, %d AddPartitionsToTxn sent", reqs.n[25].Load(), reqs.n[24].Load())
	}
}

// TestTxnV2GroupTransactSession: the consume-transform-produce loop under
// transaction.version 2 (TxnOffsetCommit v5 adds the offsets partition).
func TestTxnV2GroupTransactSession(t *testing.T) {
	var reqs keyCounter
	groupTransactSession(t, txnBroker(t, sluicetest.Setting("group.initial.rebalance.delay.ms", "0")), kgo.WithHooks(&reqs))
	if reqs.n[25].Load() != 0 || reqs.n[24].Load() != 0 || reqs.n[28].Load() == 0 {
		t.Errorf("KIP-890 part 2: %d AddOffsetsToTxn, %d AddPartitionsToTxn, %d TxnOffsetCommit sent; want 0, 0, >0",
			reqs.n[25].Load(), reqs.n[24].Load(), reqs.n[28].Load())
	}
}

// TestWriteTxnMarkers: the inter-broker marker write ends a transaction
// on the named partitions (the LSO moves past it), answers unknown
// partitions, and refuses a marker older than the producer's epoch.
func TestWriteTxnMarkers(t *testing.T) {
	b := txnBroker(t, sluicetest.Setting("transaction.version", "1"))
	cl := rawClient(t, b.Addr(), 10)
	pid, epoch := initRaw(t, cl, "tx-wm")
	addPartitionRaw(t, cl, "tx-wm", pid, epoch, "tx-a")
	if err := rawTxnProduce(t, cl, "tx-wm", "tx-a", pid, epoch, 0, "x"); err != nil {
		t.Fatal(err)
	}
	hw, lso := offsets(t, cl, "tx-a")
	if lso != hw-1 {
		t.Fatalf("open transaction: hw %d lso %d", hw, lso)
	}
	if err := writeMarker(t, cl, "tx-a", pid, epoch, true); err != nil {
		t.Fatalf("WriteTxnMarkers: %v", err)
	}
	if hw2, lso2 := offsets(t, cl, "tx-a"); hw2 != hw+1 || lso2 != hw2 {
		t.Fatalf("after the marker: hw %d lso %d, want %d both", hw2, lso2, hw+1)
	}
	if err := writeMarker(t, cl, "no-such-topic", pid, epoch, true); err != kerr.UnknownTopicOrPartition {
		t.Errorf("unknown partition: %v", err)
	}
	// The coordinator fences the producer (InitProducerId aborts with
	// epoch+1): a marker of the old epoch is stale.
	if _, e2 := initRaw(t, cl, "tx-wm"); e2 != epoch+1 {
		t.Fatalf("re-init epoch %d, want %d", e2, epoch+1)
	}
	hw, _ = offsets(t, cl, "tx-a")
	if err := writeMarker(t, cl, "tx-a", pid, epoch, false); err != kerr.InvalidProducerEpoch {
		t.Errorf("stale marker: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if hw2, _ := offsets(t, cl, "tx-a"); hw2 != hw {
		t.Errorf("stale marker appended: hw %d -> %d", hw, hw2)
	}
}

// TestAddPartitionsToTxnBatched: v4+ verifies (VerifyOnly) or adds the
// partitions of several transactions in one request.
func TestAddPartitionsToTxnBatched(t *testing.T) {
	b := txnBroker(t)
	cl := newClient(t, b.Addr())
	pid, epoch := initRaw(t, cl, "tx-batch")
	addPartitionRaw(t, cl, "tx-batch", pid, epoch, "tx-a")
	send := func(verify bool, txns ...kmsg.AddPartitionsToTxnRequestTransaction) map[string]map[string]int16 {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		for _, x := range txns {
			x.VerifyOnly = verify
			req.Transactions = append(req.Transactions, x)
		}
		resp, err := req.RequestWith(testCtx(t, 30*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("AddPartitionsToTxn: top-level code %d", resp.ErrorCode)
		}
		out := map[string]map[string]int16{}
		for _, rt := range resp.Transactions {
			out[rt.TransactionalID] = map[string]int16{}
			for _, tt := range rt.Topics {
				for _, p := range tt.Partitions {
					out[rt.TransactionalID][tt.Topic] = p.ErrorCode
				}
			}
		}
		return out
	}
	txnOf := func(id string, pid int64, epoch int16, topics ...string) kmsg.AddPartitionsToTxnRequestTransaction {
		x := kmsg.NewAddPartitionsToTxnRequestTransaction()
		x.TransactionalID, x.ProducerID, x.ProducerEpoch = id, pid, epoch
		for _, tp := range topics {
			rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			rt.Topic, rt.Partitions = tp, []int32{0}
			x.Topics = append(x.Topics, rt)
		}
		return x
	}
	got := send(true, txnOf("tx-batch", pid, epoch, "tx-a", "tx-b"), txnOf("tx-unknown", 12345, 0, "tx-a"))
	if got["tx-batch"]["tx-a"] != 0 || got["tx-batch"]["tx-b"] != kerr.TransactionAbortable.Code ||
		got["tx-unknown"]["tx-a"] != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("verify: %v", got)
	}
	if got := send(true, txnOf("tx-batch", pid, epoch+1, "tx-a")); got["tx-batch"]["tx-a"] != kerr.ProducerFenced.Code {
		t.Fatalf("verify with another epoch: %v", got)
	}
	if got := send(false, txnOf("tx-batch", pid, epoch, "tx-b")); got["tx-batch"]["tx-b"] != 0 {
		t.Fatalf("add: %v", got)
	}
	if got := send(true, txnOf("tx-batch", pid, epoch, "tx-b")); got["tx-batch"]["tx-b"] != 0 {
		t.Fatalf("verify after add: %v", got)
	}
	if dt := describeTxn(t, cl, "tx-batch"); len(dt.Topics["tx-b"]) != 1 || dt.State != "Ongoing" {
		t.Fatalf("transaction after the add: %+v", dt)
	}
}

// TestOffsetFetchRequireStable: while a transactional offset commit is
// pending, OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
// for its partition (without it, the last committed offset); after the
// commit the offset is returned.
func TestOffsetFetchRequireStable(t *testing.T) {
	b := txnBroker(t, sluicetest.Setting("transaction.version", "1"))
	cl := newClient(t, b.Addr())
	ctx := testCtx(t, time.Minute)
	pid, epoch := initRaw(t, cl, "tx-stable")
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "tx-stable", pid, epoch, "stable-g"
	if resp, err := add.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %+v", err, resp)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch, commit.Generation = "tx-stable", "stable-g", pid, epoch, -1
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = "tx-a"
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 42
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	cresp, err := commit.RequestWith(ctx, cl)
	if err != nil || cresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v %+v", err, cresp)
	}
	fetch := func(stable bool) (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = "stable-g"
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = "tx-a", []int32{0}
		rg.Topics = append(rg.Topics, rt)
		req.Groups = append(req.Groups, rg)
		req.RequireStable = stable
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
			t.Fatalf("OffsetFetch v%d: %+v", resp.Version, resp)
		}
		p := resp.Groups[0].Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	if off, code := fetch(true); code != kerr.UnstableOffsetCommit.Code || off != -1 {
		t.Fatalf("require_stable while pending: offset %d code %d, want -1 UNSTABLE_OFFSET_COMMIT", off, code)
	}
	if off, code := fetch(false); code != 0 || off != -1 {
		t.Fatalf("without require_stable while pending: offset %d code %d", off, code)
	}
	if resp := endRaw(t, cl, "tx-stable", pid, epoch, true); resp.ErrorCode != 0 {
		t.Fatalf("EndTxn: %+v", resp)
	}
	if off, code := fetch(true); code != 0 || off != 42 {
		t.Fatalf("require_stable after commit: offset %d code %d, want 42", off, code)
	}

	// A TxnOffsetCommit of the finished transaction is refused (the
	// offsets partition is no longer in an ongoing transaction).
	cresp, err = commit.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := cresp.Topics[0].Partitions[0].ErrorCode; code != kerr.TransactionAbortable.Code && code != kerr.InvalidTxnState.Code {
		t.Fatalf("TxnOffsetCommit after the end: code %d", code)
	}
	if off, code := fetch(true); code != 0 || off != 42 {
		t.Fatalf("after the refused commit: offset %d code %d", off, code)
	}
}
