package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// cli runs one sluice command in-process against the broker at addr.
type cli struct {
	t    *testing.T
	addr string
}

type result struct {
	stdout, stderr string
	code           int
}

func (c cli) run(stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, envMap(map[string]string{"SLUICE_BROKERS": c.addr}))
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed and returns its stdout.
func (c cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("sluice %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must exit with code and mention want on stderr.
func (c cli) fails(code int, want string, args ...string) {
	c.t.Helper()
	r := c.run("", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("sluice %s: exit %d (want %d), stderr %q (want %q)", strings.Join(args, " "), r.code, code, r.stderr, want)
	}
}

func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok("", append(args, "--format", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("sluice %s: %v in %q", strings.Join(args, " "), err, out)
	}
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Fatalf("%s: %q does not contain %q", what, got, w)
		}
	}
}

func TestTopicCommands(t *testing.T) {
	b := sluicetest.New(t)
	c := cli{t, b.Addr()}

	out := c.ok("", "topic", "create", "orders", "-p", "3", "-c", "retention.ms=3600000")
	mustContain(t, "create", out, "TOPIC", "PARTITIONS", "orders")
	c.fails(1, "TOPIC_ALREADY_EXISTS", "topic", "create", "orders")
	c.fails(1, "INVALID_CONFIG", "topic", "create", "bad", "-c", "retention.ms=soon")
	c.fails(1, "INVALID_PARTITIONS", "topic", "create", "bad", "-p", "0")
	c.ok("", "topic", "create", "--dry-run", "dry", "-p", "2")

	var list []struct {
		Topic      string `json:"topic"`
		Partitions int    `json:"partitions"`
	}
	c.json(&list, "topic", "list")
	if len(list) != 1 || list[0].Topic != "orders" || list[0].Partitions != 3 {
		t.Fatalf("topic list: %+v", list)
	}
	mustContain(t, "list", c.ok("", "topic", "list"), "orders", "3")

	out = c.ok("", "topic", "describe", "orders")
	mustContain(t, "describe", out, "Topic: orders", "Partitions: 3", "retention.ms=3600000", "PARTITION", "LEADER")
	c.fails(1, "UNKNOWN_TOPIC_OR_PARTITION", "topic", "describe", "nope")

	c.ok("", "topic", "alter-config", "orders", "--set", "cleanup.policy=compact", "--delete", "retention.ms")
	c.fails(1, "INVALID_CONFIG", "topic", "alter-config", "orders", "--set", "cleanup.policy=never")
	c.fails(1, "UNKNOWN_TOPIC_OR_PARTITION", "topic", "alter-config", "nope", "--set", "retention.ms=1")
	var desc []topicDescription
	c.json(&desc, "topic", "describe", "orders")
	if len(desc) != 1 || desc[0].Configs["cleanup.policy"] != "compact" || desc[0].Configs["retention.ms"] != "" || len(desc[0].Partitions) != 3 {
		t.Fatalf("describe after alter: %+v", desc)
	}

	out = c.ok("", "topic", "add-partitions", "orders", "--total", "5")
	mustContain(t, "add-partitions", out, "orders", "5")
	c.ok("", "topic", "add-partitions", "orders", "-n", "1")
	c.json(&desc, "topic", "describe", "orders")
	if len(desc[0].Partitions) != 6 {
		t.Fatalf("partitions after add: %d, want 6", len(desc[0].Partitions))
	}
	c.fails(1, "INVALID_PARTITIONS", "topic", "add-partitions", "orders", "--total", "2")

	mustContain(t, "delete", c.ok("", "topic", "delete", "orders"), "orders", "deleted")
	c.fails(1, "UNKNOWN_TOPIC_OR_PARTITION", "topic", "delete", "orders")
	c.json(&list, "topic", "list")
	if len(list) != 0 {
		t.Fatalf("topics after delete: %+v", list)
	}

	// Usage errors exit 2.
	c.fails(2, "flag provided but not defined", "topic", "list", "--bogus")
	c.fails(2, `unknown command "frobnicate"`, "topic", "frobnicate")
	c.fails(2, "name at least one topic", "topic", "create")
	c.fails(2, "unknown client setting", "topic", "list", "-X", "no.such=1")
	c.fails(2, `--format "yaml"`, "topic", "list", "--format", "yaml")
	c.fails(2, "give exactly one of", "topic", "add-partitions", "x")
	c.ok("", "topic", "--help")
}

func TestClientSettings(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("t", 1))
	// -X brokers beats SLUICE_BROKERS, which points nowhere here.
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"topic", "list", "-X", "brokers=" + b.Addr(), "-X", "client.id=cli-test",
		"-X", "request.timeout.ms=5000"}, nil, &out, &errb, envMap(map[string]string{"SLUICE_BROKERS": "127.0.0.1:1"}))
	if code != 0 || !strings.Contains(out.String(), "t ") {
		t.Fatalf("-X brokers: exit %d, %q %q", code, out.String(), errb.String())
	}
	c := cli{t, b.Addr()}
	c.fails(2, "request.timeout.ms=soon", "topic", "list", "-X", "request.timeout.ms=soon")
}

func TestClusterInfo(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("a", 2), sluicetest.Topic("b", 3))
	c := cli{t, b.Addr()}
	out := c.ok("", "cluster", "info", "--apis")
	mustContain(t, "cluster info", out, "Cluster:", "Controller: 1", "Topics: 2", "Partitions: 5", "NODE", "Produce", "Fetch")
	var info struct {
		ClusterID  string `json:"cluster_id"`
		Controller int32  `json:"controller"`
		Brokers    []struct {
			NodeID int32  `json:"node_id"`
			Host   string `json:"host"`
			Port   int32  `json:"port"`
		} `json:"brokers"`
	}
	c.json(&info, "cluster", "info")
	if info.ClusterID == "" || len(info.Brokers) != 1 || fmt.Sprintf("%s:%d", info.Brokers[0].Host, info.Brokers[0].Port) != b.Addr() {
		t.Fatalf("cluster info: %+v (broker %s)", info, b.Addr())
	}
}

type consumedRecord struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp int64   `json:"timestamp"`
	Key       *string `json:"key"`
	Value     string  `json:"value"`
	Headers   []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"headers"`
}

func parseLines(t *testing.T, out string) []consumedRecord {
	t.Helper()
	var recs []consumedRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r consumedRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("consume json line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestProduceConsume(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("lines", 1), sluicetest.Topic("spread", 4))
	c := cli{t, b.Addr()}

	r := c.run("k1:v1\nk2:v2\nno-key-here\n", "produce", "-t", "lines", "--key-separator", ":", "-H", "h1=a", "-H", "h2=b",
		"--compression", "zstd")
	if r.code != 0 || !strings.Contains(r.stderr, "3 records to lines") {
		t.Fatalf("produce: %+v", r)
	}
	c.ok("v3\nv4\n", "produce", "-t", "lines", "--acks", "1", "--compression", "gzip", "-q")

	out := c.ok("", "consume", "-t", "lines", "-o", "beginning", "-e", "-f", `%t/%p/%o %k=%v [%h] %K %S\n`)
	want := "lines/0/0 k1=v1 [h1=a,h2=b] 2 2\nlines/0/1 k2=v2 [h1=a,h2=b] 2 2\nlines/0/2 =no-key-here [h1=a,h2=b] 0 11\n" +
		"lines/0/3 =v3 [] 0 2\nlines/0/4 =v4 [] 0 2\n"
	if out != want {
		t.Fatalf("consume -f:\n%s\nwant:\n%s", out, want)
	}
	recs := parseLines(t, c.ok("", "consume", "-t", "lines", "-o", "1", "-n", "2", "--format", "json"))
	if len(recs) != 2 || recs[0].Offset != 1 || *recs[0].Key != "k2" || recs[0].Value != "v2" ||
		len(recs[0].Headers) != 2 || recs[0].Headers[1].Key != "h2" || recs[1].Key != nil || recs[1].Value != "no-key-here" {
		t.Fatalf("consume json: %+v", recs)
	}
	if out := c.ok("", "consume", "-t", "lines", "-o", "-2", "-e"); out != "v3\nv4\n" {
		t.Fatalf("consume -o -2: %q", out)
	}
	if out := c.ok("", "consume", "-t", "lines", "-o", "end", "-e"); out != "" {
		t.Fatalf("consume -o end -e: %q", out)
	}
	ts := recs[0].Timestamp
	if out := c.ok("", "consume", "-t", "lines", "-o", fmt.Sprintf("@%d", ts+time.Hour.Milliseconds()), "-e"); out != "" {
		t.Fatalf("consume from the future: %q", out)
	}
	if out := c.ok("", "consume", "-t", "lines", "-o", "@0", "-e", "-n", "1", "--isolation", "read_committed"); out != "v1\n" {
		t.Fatalf("consume @0: %q", out)
	}

	// Keyed records land by key hash (the Java client's murmur2); -p pins a partition.
	var in strings.Builder
	for i := range 40 {
		fmt.Fprintf(&in, "key%d=value%d\n", i, i)
	}
	c.ok(in.String(), "produce", "-t", "spread", "-K", "=")
	c.ok("pinned\n", "produce", "-t", "spread", "-p", "2")
	recs = parseLines(t, c.ok("", "consume", "-t", "spread", "-o", "beginning", "-e", "--format", "json"))
	if len(recs) != 41 {
		t.Fatalf("spread: %d records, want 41", len(recs))
	}
	parts := map[int32]bool{}
	for _, r := range recs {
		parts[r.Partition] = true
	}
	if len(parts) < 3 {
		t.Fatalf("40 keys landed on partitions %v", parts)
	}
	recs = parseLines(t, c.ok("", "consume", "-t", "spread", "-p", "2", "-o", "-1", "-e", "--format", "json"))
	if len(recs) != 1 || recs[0].Value != "pinned" {
		t.Fatalf("consume -p 2 -o -1: %+v", recs)
	}

	c.fails(1, "UNKNOWN_TOPIC_OR_PARTITION", "consume", "-t", "nope", "-e")
	c.fails(2, "-t topic is required", "consume")
	c.fails(2, "-t topic is required", "produce")
	c.fails(2, `-o "sometime"`, "consume", "-t", "lines", "-o", "sometime")
	c.fails(2, "--compression", "produce", "-t", "lines", "--compression", "brotli")
	c.fails(2, "--idempotent needs --acks all", "produce", "-t", "lines", "--acks", "0", "--idempotent")
	c.fails(2, "--isolation", "consume", "-t", "lines", "--isolation", "maybe")
}

// TestProduceTransactional: with --transactional-id the records are
// committed in one transaction where the broker supports transactions, and
// the command says clearly that it does not otherwise.
func TestProduceTransactional(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("tx", 1))
	c := cli{t, b.Addr()}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	txnErr := checkTransactions(context.Background(), kadm.NewClient(cl))
	if txnErr != nil {
		c.fails(1, "transactions are not supported by this broker yet", "produce", "-t", "tx", "--transactional-id", "tx-1")
		return
	}
	c.ok("a\nb\n", "produce", "-t", "tx", "--transactional-id", "tx-1")
	if out := c.ok("", "consume", "-t", "tx", "-o", "beginning", "-n", "2", "--isolation", "read_committed"); out != "a\nb\n" {
		t.Fatalf("transactional records: %q", out)
	}
}

func TestGroupCommands(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("events", 2))
	c := cli{t, b.Addr()}
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	c.ok(in.String(), "produce", "-t", "events", "-K", ":")

	// A group consumer reads 4 records and commits exactly those.
	if out := c.ok("", "consume", "-t", "events", "-g", "g1", "-o", "beginning", "-n", "4"); strings.Count(out, "\n") != 4 {
		t.Fatalf("group consume -n 4: %q", out)
	}
	var groups []struct {
		Group string `json:"group"`
		State string `json:"state"`
	}
	c.json(&groups, "group", "list")
	if len(groups) != 1 || groups[0].Group != "g1" || groups[0].State != "Empty" {
		t.Fatalf("group list: %+v", groups)
	}
	mustContain(t, "group list", c.ok("", "group", "list"), "GROUP", "g1", "Empty")

	var desc []groupDescription
	c.json(&desc, "group", "describe", "g1")
	if len(desc) != 1 || desc[0].TotalLag != 6 || len(desc[0].Offsets) != 2 {
		t.Fatalf("group describe: %+v", desc)
	}
	mustContain(t, "group describe", c.ok("", "group", "describe", "g1"), "Group: g1", "State: Empty", "Lag: 6", "COMMITTED")
	c.fails(1, `group "nope" does not exist`, "group", "describe", "nope")

	// The same group continues where it committed (from the beginning
	// where it has no commit yet) and reaches the end.
	if out := c.ok("", "consume", "-t", "events", "-g", "g1", "-o", "beginning", "-e"); strings.Count(out, "\n") != 6 {
		t.Fatalf("group consume -e: %q", out)
	}
	var offs []partitionOffsets
	c.json(&offs, "offsets", "-g", "g1")
	var lag, end int64
	for _, o := range offs {
		lag += *o.Lag
		end += o.End
		if o.Committed == nil || *o.Committed != o.End {
			t.Fatalf("offsets -g after -e: %+v", o)
		}
	}
	if lag != 0 || end != 10 || len(offs) != 2 {
		t.Fatalf("offsets -g: %+v", offs)
	}
	mustContain(t, "offsets", c.ok("", "offsets", "events", "-g", "g1"), "TOPIC", "COMMITTED", "LAG", "events")
	mustContain(t, "offsets", c.ok("", "offsets"), "START", "END", "events")
	c.fails(1, "UNKNOWN_TOPIC_OR_PARTITION", "offsets", "nope")

	// Seek: a dry run changes nothing; then to the beginning, then by a shift.
	var plan struct {
		DryRun     bool       `json:"dry_run"`
		Partitions []seekPlan `json:"partitions"`
	}
	c.json(&plan, "group", "seek", "g1", "--to", "earliest", "--dry-run")
	if !plan.DryRun || len(plan.Partitions) != 2 || plan.Partitions[0].New != 0 || plan.Partitions[0].Current == 0 {
		t.Fatalf("seek dry run: %+v", plan)
	}
	c.json(&offs, "offsets", "-g", "g1")
	if *offs[0].Lag != 0 || *offs[1].Lag != 0 {
		t.Fatalf("dry run moved offsets: %+v", offs)
	}
	mustContain(t, "seek", c.ok("", "group", "seek", "g1", "--to", "earliest"), "moved", "CURRENT", "NEW")
	c.json(&desc, "group", "describe", "g1")
	if desc[0].TotalLag != 10 {
		t.Fatalf("lag after seek to earliest: %d", desc[0].TotalLag)
	}
	c.ok("", "group", "seek", "g1", "--shift-by", "2")
	c.json(&desc, "group", "describe", "g1")
	if desc[0].TotalLag != 6 {
		t.Fatalf("lag after shift by 2: %d", desc[0].TotalLag)
	}
	c.ok("", "group", "seek", "g1", "--to", "latest", "-t", "events")
	c.json(&desc, "group", "describe", "g1")
	if desc[0].TotalLag != 0 {
		t.Fatalf("lag after seek to latest: %d", desc[0].TotalLag)
	}
	c.ok("", "group", "seek", "g1", "--to", "1")
	c.json(&offs, "offsets", "-g", "g1")
	if *offs[0].Committed != 1 || *offs[1].Committed != 1 {
		t.Fatalf("seek --to 1: %+v", offs)
	}
	c.ok("", "group", "seek", "g1", "--to", "@0")
	c.json(&offs, "offsets", "-g", "g1")
	if *offs[0].Committed != 0 {
		t.Fatalf("seek --to @0: %+v", offs)
	}
	c.fails(2, "or --shift-by N", "group", "seek", "g1")
	c.fails(2, "not both", "group", "seek", "g1", "--to", "earliest", "--shift-by", "1")
	c.fails(1, "no committed offsets", "group", "seek", "fresh", "--to", "earliest")

	// A group with an active member can be neither moved nor deleted.
	member, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		member.PollFetches(ctx)
		cancel()
		var d []groupDescription
		c.json(&d, "group", "describe", "live")
		if len(d) == 1 && d[0].State == "Stable" {
			mustContain(t, "describe live", c.ok("", "group", "describe", "live"), "MEMBER-ID", "events:0,1")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group live not stable: %+v", d)
		}
	}
	c.fails(1, "active members", "group", "seek", "live", "--to", "earliest", "-t", "events")
	c.fails(1, "NON_EMPTY_GROUP", "group", "delete", "live")
	member.Close()

	mustContain(t, "delete", c.ok("", "group", "delete", "g1"), "g1", "deleted")
	c.fails(1, "GROUP_ID_NOT_FOUND", "group", "delete", "g1")
}

func TestBench(t *testing.T) {
	b := sluicetest.New(t)
	c := cli{t, b.Addr()}
	var res benchResult
	c.json(&res, "bench", "produce", "-t", "bench", "--records", "2000", "--record-size", "100", "--partitions", "2",
		"--linger", "1ms", "--batch-size", "16384", "--compression", "lz4")
	if res.Mode != "produce" || res.Records != 2000 || res.Bytes != 200000 || res.Errors != 0 || res.RecordsPerSec <= 0 ||
		res.MBPerSec <= 0 || res.Latency == nil || res.Latency.P50 <= 0 || res.Latency.P999 < res.Latency.P50 || res.Latency.Max < res.Latency.P999 {
		t.Fatalf("bench produce: %+v %+v", res, res.Latency)
	}
	var desc []topicDescription
	c.json(&desc, "topic", "describe", "bench")
	if len(desc[0].Partitions) != 2 {
		t.Fatalf("bench topic has %d partitions, want 2", len(desc[0].Partitions))
	}
	c.json(&res, "bench", "consume", "-t", "bench", "--records", "2000")
	if res.Mode != "consume" || res.Records != 2000 || res.Bytes != 200000 || res.RecordsPerSec <= 0 {
		t.Fatalf("bench consume: %+v", res)
	}
	c.json(&res, "bench", "e2e", "-t", "bench", "--records", "300", "--rate", "1000", "--record-size", "64", "--acks", "1")
	if res.Mode != "e2e" || res.Records != 300 || res.Latency == nil || res.Latency.P99 <= 0 {
		t.Fatalf("bench e2e: %+v %+v", res, res.Latency)
	}
	if res.Seconds < 0.25 {
		t.Fatalf("bench e2e at 1000 records/s took %.3fs for 300 records: rate not applied", res.Seconds)
	}
	// A duration bound alone stops the run.
	c.json(&res, "bench", "produce", "-t", "bench", "--records", "0", "--duration", "300ms", "--rate", "500", "--record-size", "10")
	if res.Records < 50 || res.Records > 200 {
		t.Fatalf("bench produce for 300ms at 500/s: %d records", res.Records)
	}
	out := c.ok("", "bench", "produce", "-t", "bench", "--records", "100", "--record-size", "10")
	mustContain(t, "bench text", out, "produce: 100 records", "records/s", "MB/s", "p50", "p95", "p99", "p99.9")
	c.fails(2, "every run is bounded", "bench", "produce", "--records", "0")
	c.fails(2, "at least 8", "bench", "e2e", "--record-size", "4")
	c.fails(1, "UNKNOWN_TOPIC_OR_PARTITION", "bench", "consume", "-t", "nope")
}
