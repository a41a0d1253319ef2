package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// produceKeyed produces n keyed records with a header and a distinct
// timestamp each, and returns them.
func produceKeyed(t *testing.T, cl *kgo.Client, topic string, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 2*time.Minute)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	recs := make([]*kgo.Record, n)
	errs := make(chan error, 1)
	for i := range recs {
		recs[i] = &kgo.Record{
			Topic:     topic,
			Key:       []byte("key-" + strconv.Itoa(i%1000)),
			Value:     []byte(fmt.Sprintf("value-%d", i)),
			Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		}
		cl.Produce(ctx, recs[i], func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Fatalf("produce: %v", err)
	default:
	}
	return recs
}

// consumeAll reads every partition of topic from the start until n records
// arrived.
func consumeAll(t *testing.T, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	ctx := testCtx(t, 2*time.Minute)
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", len(got), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	return got
}

// checkSame compares produced and consumed records: every record once,
// per-partition offsets increasing, keys, values, headers, timestamps intact.
func checkSame(t *testing.T, produced, consumed []*kgo.Record) {
	t.Helper()
	if len(consumed) != len(produced) {
		t.Fatalf("consumed %d records, produced %d", len(consumed), len(produced))
	}
	byValue := map[string]*kgo.Record{}
	for _, r := range produced {
		byValue[string(r.Value)] = r
	}
	lastOff := map[int32]int64{}
	lastIdx := map[int32]int{}
	for _, r := range consumed {
		p, ok := byValue[string(r.Value)]
		if !ok {
			t.Fatalf("unexpected or duplicate record %q", r.Value)
		}
		delete(byValue, string(r.Value))
		if string(r.Key) != string(p.Key) || !r.Timestamp.Equal(p.Timestamp) || len(r.Headers) != 1 ||
			r.Headers[0].Key != "i" || string(r.Headers[0].Value) != string(p.Headers[0].Value) {
			t.Fatalf("record %q differs: key %q ts %v headers %v; want key %q ts %v", r.Value, r.Key, r.Timestamp, r.Headers, p.Key, p.Timestamp)
		}
		if r.Partition != p.Partition {
			t.Fatalf("record %q in partition %d, produced to %d", r.Value, r.Partition, p.Partition)
		}
		if last, ok := lastOff[r.Partition]; ok && r.Offset <= last {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, last)
		}
		lastOff[r.Partition] = r.Offset
		idx, _ := strconv.Atoi(string(r.Headers[0].Value))
		if last, ok := lastIdx[r.Partition]; ok && idx <= last {
			t.Fatalf("partition %d: record %d after %d: order not kept", r.Partition, idx, last)
		}
		lastIdx[r.Partition] = idx
	}
}

func TestKgoProduceConsume(t *testing.T) {
	for _, tc := range []struct {
		name string
		acks kgo.Acks
	}{{"acks=all", kgo.AllISRAcks()}, {"acks=0", kgo.NoAck()}} {
		t.Run(tc.name, func(t *testing.T) {
			b := sluicetest.New(t)
			adm := kadm.NewClient(newClient(t, b.Addr()))
			ctx := testCtx(t, time.Minute)
			if _, err := adm.CreateTopic(ctx, 8, 1, nil, "events"); err != nil {
				t.Fatal(err)
			}
			opts := []kgo.Opt{kgo.RequiredAcks(tc.acks)}
			if tc.acks != kgo.AllISRAcks() {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			cl := newClient(t, b.Addr(), opts...)
			const n = 100_000
			produced := produceKeyed(t, cl, "events", n)
			consumed := consumeAll(t, b.Addr(), "events", n)
			checkSame(t, produced, consumed)
			st := b.SendStats()
			if st.SendfileBytes.Load() == 0 || st.CopiedBytes.Load() != 0 {
				t.Fatalf("fetch did not go through sendfile: sendfile %d bytes, copied %d", st.SendfileBytes.Load(), st.CopiedBytes.Load())
			}
		})
	}
}

func TestKgoCompressionCodecs(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("codecs", 3))
	for _, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression(), kgo.NoCompression()} {
		cl := newClient(t, b.Addr(), kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("codecs"))
		ctx := testCtx(t, time.Minute)
		for i := 0; i < 200; i++ {
			cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("%v-%d-%s", codec, i, "payload payload payload"))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := consumeAll(t, b.Addr(), "codecs", 5*200)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[string(r.Value)] {
			t.Fatalf("duplicate %q", r.Value)
		}
		seen[string(r.Value)] = true
	}
}

func TestKgoListOffsetsByTime(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("times", 1))
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("times"))
	ctx := testCtx(t, time.Minute)
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 100; i++ {
		// Flush each record so that every record is its own batch and
		// lookups exercise the time index across batches.
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Second)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	for _, tc := range []struct {
		ms   int64
		want int64
	}{
		{base.UnixMilli() - 1, 0},
		{base.UnixMilli(), 0},
		{base.Add(42 * time.Second).UnixMilli(), 42},
		{base.Add(42*time.Second + time.Millisecond).UnixMilli(), 43},
		{base.Add(99 * time.Second).UnixMilli(), 99},
		{base.Add(100 * time.Second).UnixMilli(), 100}, // none: the broker answers -1, which kadm turns into the end offset
	} {
		res, err := adm.ListOffsetsAfterMilli(ctx, tc.ms, "times")
		if err != nil {
			t.Fatal(err)
		}
		lo, _ := res.Lookup("times", 0)
		if lo.Err != nil {
			t.Fatalf("after %d: %v", tc.ms, lo.Err)
		}
		if lo.Offset != tc.want {
			t.Fatalf("offset after %d = %d, want %d", tc.ms, lo.Offset, tc.want)
		}
	}
	start, err := adm.ListStartOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := start.Lookup("times", 0); s.Offset != 0 {
		t.Fatalf("start offset %d", s.Offset)
	}
	if e, _ := end.Lookup("times", 0); e.Offset != 100 {
		t.Fatalf("end offset %d", e.Offset)
	}
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := maxTS.Lookup("times", 0); m.Offset != 99 || m.Timestamp != base.Add(99*time.Second).UnixMilli() {
		t.Fatalf("max timestamp offset %d ts %d", m.Offset, m.Timestamp)
	}
}

func TestLongPoll(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("poll", 1))
	const maxWait = 2 * time.Second
	cons := newClient(t, b.Addr(), kgo.ConsumeTopics("poll"), kgo.FetchMaxWait(maxWait),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	prod := newClient(t, b.Addr(), kgo.DefaultProduceTopic("poll"))

	// Empty after max wait: a poll with a deadline longer than maxWait
	// comes back with nothing, and the broker answered it (no error).
	ctx := testCtx(t, time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 3*maxWait)
	start := time.Now()
	fs := cons.PollFetches(pctx)
	cancel()
	if n := len(fs.Records()); n != 0 {
		t.Fatalf("got %d records from an empty topic", n)
	}
	if waited := time.Since(start); waited < maxWait/2 {
		t.Fatalf("empty poll returned after %v; want about the fetch max wait %v", waited, maxWait)
	}

	// Early return on append: a parked fetch is answered by the append,
	// well before max wait would end it.
	got := make(chan time.Time, 1)
	go func() {
		for {
			fs := cons.PollFetches(ctx)
			if len(fs.Records()) > 0 {
				got <- time.Now()
				return
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	// Give the consumer's fetch time to park (observable through the
	// purgatory gauge is not needed: an early answer is what we check).
	waitFor(t, 10*time.Second, func() bool { return b.FetchesParked() > 0 })
	sent := time.Now()
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-got:
		if d := at.Sub(sent); d >= maxWait {
			t.Fatalf("parked fetch answered %v after the append; want before max wait %v", d, maxWait)
		}
	case <-ctx.Done():
		t.Fatal("no records")
	}
}

func TestDeleteRecords(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("del", 1))
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("del"))
	ctx := testCtx(t, time.Minute)
	for i := 0; i < 50; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "del", Partition: 0, At: 30})
	res, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("del", 0); r.Err != nil || r.LowWatermark != 30 {
		t.Fatalf("delete records: low watermark %d err %v", r.LowWatermark, r.Err)
	}
	start, err := adm.ListStartOffsets(ctx, "del")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := start.Lookup("del", 0); s.Offset != 30 {
		t.Fatalf("start offset after DeleteRecords = %d, want 30", s.Offset)
	}
	got := consumeAll(t, b.Addr(), "del", 20)
	if got[0].Offset != 30 || string(got[0].Value) != "30" {
		t.Fatalf("first record after delete: offset %d value %q", got[0].Offset, got[0].Value)
	}
	// Beyond the high watermark is refused.
	offs = kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "del", Partition: 0, At: 51})
	res, err = adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("del", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete past the high watermark: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("log.retention.ms", "3600000"))
	adm := kadm.NewClient(newClient(t, b.Addr()))
	ctx := testCtx(t, time.Minute)
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "cfg"); err != nil {
		t.Fatal(err)
	}
	describe := func(name string) kadm.Config {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("cfg", nil)
		if err != nil || rc.Err != nil {
			t.Fatal(err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == name {
				return c
			}
		}
		t.Fatalf("config %s not described", name)
		return kadm.Config{}
	}
	if c := describe("cleanup.policy"); c.MaybeValue() != "compact" || c.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		t.Fatalf("cleanup.policy = %q from %v", c.MaybeValue(), c.Source)
	}
	if c := describe("retention.ms"); c.MaybeValue() != "3600000" || c.Source.String() != "STATIC_BROKER_CONFIG" {
		t.Fatalf("retention.ms = %q from %v", c.MaybeValue(), c.Source)
	}
	if c := describe("segment.bytes"); c.MaybeValue() != "1073741824" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("segment.bytes = %q from %v", c.MaybeValue(), c.Source)
	}
	// Incremental alter: set, then delete back to the default.
	res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("1000")}}, "cfg")
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	if c := describe("retention.ms"); c.MaybeValue() != "1000" {
		t.Fatalf("retention.ms after alter = %q", c.MaybeValue())
	}
	res, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "retention.ms"}}, "cfg")
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	if c := describe("retention.ms"); c.MaybeValue() != "3600000" {
		t.Fatalf("retention.ms after delete = %q", c.MaybeValue())
	}
	// Bad values and unknown keys are refused with INVALID_CONFIG.
	for _, bad := range []kadm.AlterConfig{
		{Name: "retention.ms", Value: kadm.StringPtr("soon")},
		{Name: "no.such.config", Value: kadm.StringPtr("1")},
		{Name: "cleanup.policy", Value: kadm.StringPtr("shred")},
	} {
		res, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{bad}, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(res[0].Err, kerr.InvalidConfig) {
			t.Fatalf("alter %s=%v: %v, want INVALID_CONFIG", bad.Name, bad.Value, res[0].Err)
		}
	}
	// Legacy AlterConfigs replaces the whole set of overrides.
	lres, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: kadm.StringPtr("1048576")}}, "cfg")
	if err != nil || lres[0].Err != nil {
		t.Fatal(err, lres)
	}
	if c := describe("cleanup.policy"); c.MaybeValue() != "delete" {
		t.Fatalf("cleanup.policy after replace = %q, want the default", c.MaybeValue())
	}
	if c := describe("retention.bytes"); c.MaybeValue() != "1048576" {
		t.Fatalf("retention.bytes after replace = %q", c.MaybeValue())
	}
	// Broker configs are described.
	bcs, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rc := range bcs {
		for _, c := range rc.Configs {
			if c.Key == "log.retention.ms" && c.MaybeValue() == "3600000" {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("broker config log.retention.ms not described")
	}
}

func TestTopicAdmin(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("auto.create.topics.enable", "false"))
	adm := kadm.NewClient(newClient(t, b.Addr()))
	ctx := testCtx(t, time.Minute)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "a"); err != nil {
		t.Fatal(err)
	}
	if r, _ := adm.CreateTopic(ctx, 2, 1, nil, "a"); !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 2, 1, nil, "bad/name"); !errors.Is(r.Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 0, 1, nil, "zero"); !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Fatalf("zero partitions: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, 3, nil, "rf3"); !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 3 on one broker: %v", r.Err)
	}
	if _, err := adm.CreatePartitions(ctx, 3, "a"); err != nil {
		t.Fatal(err)
	}
	tds, err := adm.ListTopics(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tds["a"].Partitions); n != 5 {
		t.Fatalf("partitions after adding 3 = %d", n)
	}
	// Produce to a new partition works at once.
	cl := newClient(t, b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Partition: 4, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Unknown topic with auto-creation off.
	md, err := adm.Metadata(ctx, "nope")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(md.Topics["nope"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("metadata for unknown topic: %v", md.Topics["nope"].Err)
	}
	dres, err := adm.DeleteTopics(ctx, "a", "nope")
	if err != nil {
		t.Fatal(err)
	}
	if r := dres["a"]; r.Err != nil {
		t.Fatalf("delete a: %v", r.Err)
	}
	if r := dres["nope"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete unknown: %v", r.Err)
	}
	tds, err = adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tds.Has("a") {
		t.Fatal("topic a still listed after delete")
	}
	// Re-create with the same name: a fresh, empty log.
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "a"); err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := end.Lookup("a", 0); e.Offset != 0 {
		t.Fatalf("re-created topic end offset %d", e.Offset)
	}
	// Cluster and log dirs.
	cm, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Brokers) != 1 || cm.Brokers[0].NodeID != 1 || cm.Controller != 1 || cm.Cluster == "" {
		t.Fatalf("cluster metadata: %+v", cm)
	}
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dirs[1].Error(); err != nil {
		t.Fatal(err)
	}
	if _, ok := dirs[1].LookupPartition("a", 0); !ok {
		t.Fatalf("log dirs do not list a/0: %+v", dirs)
	}
}

func TestAutoCreateTopic(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("num.partitions", "3"))
	cl := newClient(t, b.Addr(), kgo.AllowAutoTopicCreation())
	ctx := testCtx(t, time.Minute)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auto", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tds, err := kadm.NewClient(cl).ListTopics(ctx, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tds["auto"].Partitions); n != 3 {
		t.Fatalf("auto-created topic has %d partitions, want num.partitions=3", n)
	}
}

func TestRestartKeepsDataAndMetadata(t *testing.T) {
	b := sluicetest.New(t)
	adm := kadm.NewClient(newClient(t, b.Addr()))
	ctx := testCtx(t, time.Minute)
	if _, err := adm.CreateTopic(ctx, 4, 1, map[string]*string{"retention.ms": kadm.StringPtr("86400000")}, "keep"); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, b.Addr())
	produced := produceKeyed(t, cl, "keep", 5000)
	tds, err := adm.ListTopics(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	id := tds["keep"].ID

	b.Restart()

	adm2 := kadm.NewClient(newClient(t, b.Addr()))
	tds, err = adm2.ListTopics(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if tds["keep"].ID != id || len(tds["keep"].Partitions) != 4 {
		t.Fatalf("topic after restart: id %v partitions %d", tds["keep"].ID, len(tds["keep"].Partitions))
	}
	rcs, err := adm2.DescribeTopicConfigs(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("keep", nil)
	ok := false
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.MaybeValue() == "86400000" {
			ok = true
		}
	}
	if !ok {
		t.Fatal("topic config lost across restart")
	}
	checkSame(t, produced, consumeAll(t, b.Addr(), "keep", len(produced)))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
