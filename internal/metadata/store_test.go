package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func strp(s string) *string { return &s }

func wantKerr(t *testing.T, err error, want *kerr.Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %s", err, want.Message)
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) || ke != want {
		t.Fatalf("errors.As = %v, want %s", ke, want.Message)
	}
}

func TestOpenBootstrap(t *testing.T) {
	s := openStore(t, Config{Addr: "broker1:19092", Rack: "r1"})
	if id := s.ClusterID(); len(id) != 22 {
		t.Errorf("ClusterID = %q, want 22 base64 chars", id)
	}
	if got := s.ControllerID(); got != 1 {
		t.Errorf("ControllerID = %d, want 1", got)
	}
	want := []Broker{{NodeID: 1, Host: "broker1", Port: 19092, Rack: "r1"}}
	got := s.Brokers()
	if len(got) == 1 {
		want[0].Epoch = got[0].Epoch
	}
	if !reflect.DeepEqual(got, want) || got[0].Epoch <= 0 {
		t.Errorf("Brokers = %+v, want %+v with epoch > 0", got, want)
	}
	if len(s.Topics()) != 0 || len(s.BrokerConfigs()) != 0 {
		t.Errorf("fresh store not empty")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Dir: "x", NodeID: -1},
		{Dir: "x", Addr: "no-port"},
		{Dir: "x", Addr: "h:99999"},
	} {
		c.setDefaults()
		if c.Dir == "" {
			c.Addr = "h:1"
		}
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
	_, err := Open(context.Background(), Config{})
	if err == nil {
		t.Fatal("Open without Dir succeeded")
	}
}

func TestCreateTopicValidation(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	if _, err := s.CreateTopic(ctx, TopicSpec{Name: "exists", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic(ctx, TopicSpec{Name: "with_underscore", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 249)
	tests := []struct {
		name string
		spec TopicSpec
		want *kerr.Error
	}{
		{"ok", TopicSpec{Name: "Ok.name-1_x", Partitions: 3, ReplicationFactor: 1}, nil},
		{"max length", TopicSpec{Name: long, Partitions: 1, ReplicationFactor: 1}, nil},
		{"too long", TopicSpec{Name: long + "a", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"empty", TopicSpec{Name: "", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"dot", TopicSpec{Name: ".", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"dotdot", TopicSpec{Name: "..", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"slash", TopicSpec{Name: "a/b", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"space", TopicSpec{Name: "a b", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"unicode", TopicSpec{Name: "tópic", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"collision", TopicSpec{Name: "with.underscore", Partitions: 1, ReplicationFactor: 1}, kerr.InvalidTopicException},
		{"exists", TopicSpec{Name: "exists", Partitions: 1, ReplicationFactor: 1}, kerr.TopicAlreadyExists},
		{"zero partitions", TopicSpec{Name: "p0", Partitions: 0, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{"negative partitions", TopicSpec{Name: "p-1", Partitions: -1, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{"too many partitions", TopicSpec{Name: "pmax", Partitions: 1 << 30, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{"zero rf", TopicSpec{Name: "rf0", Partitions: 1, ReplicationFactor: 0}, kerr.InvalidReplicationFactor},
		{"rf > brokers", TopicSpec{Name: "rf2", Partitions: 1, ReplicationFactor: 2}, kerr.InvalidReplicationFactor},
		{"unknown config", TopicSpec{Name: "c1", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"retention.mss": "1"}}, kerr.InvalidConfig},
		{"bad config", TopicSpec{Name: "c2", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "shred"}}, kerr.InvalidConfig},
		{"good config", TopicSpec{Name: "c3", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact,delete", "write.caching": "true"}}, nil},
		{"manual ok", TopicSpec{Name: "m1", Partitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{1}, {1}}}, nil},
		{"manual unknown broker", TopicSpec{Name: "m2", Partitions: -1, ReplicationFactor: -1, Assignment: [][]int32{{2}}}, kerr.InvalidReplicaAssignment},
		{"manual dup", TopicSpec{Name: "m3", Assignment: [][]int32{{1, 1}}}, kerr.InvalidReplicaAssignment},
		{"manual empty replicas", TopicSpec{Name: "m4", Assignment: [][]int32{{}}}, kerr.InvalidReplicaAssignment},
		{"manual no partitions", TopicSpec{Name: "m5", Assignment: [][]int32{}}, kerr.InvalidPartitions},
		{"manual count mismatch", TopicSpec{Name: "m6", Partitions: 3, Assignment: [][]int32{{1}}}, kerr.InvalidRequest},
		{"manual rf mismatch", TopicSpec{Name: "m7", ReplicationFactor: 2, Assignment: [][]int32{{1}}}, kerr.InvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// validateOnly first: same verdict, nothing created.
			_, err := s.CreateTopic(ctx, tt.spec, true)
			wantKerr(t, err, tt.want)
			if tt.want == nil {
				if _, ok := s.Topic(tt.spec.Name); ok {
					t.Fatal("validateOnly created the topic")
				}
			}
			tp, err := s.CreateTopic(ctx, tt.spec, false)
			wantKerr(t, err, tt.want)
			if tt.want != nil {
				if msg := KafkaMessage(err); msg == "" || strings.HasPrefix(msg, "metadata:") {
					t.Errorf("KafkaMessage = %q", msg)
				}
				return
			}
			got, ok := s.Topic(tt.spec.Name)
			if !ok || !reflect.DeepEqual(got, tp) {
				t.Fatalf("Topic = %+v, %v; CreateTopic returned %+v", got, ok, tp)
			}
			if tp.ID == ([16]byte{}) {
				t.Fatal("zero topic id")
			}
			if byID, ok := s.TopicByID(tp.ID); !ok || byID.Name != tp.Name {
				t.Fatalf("TopicByID = %+v, %v", byID, ok)
			}
			if name, ok := s.TopicNameByID(tp.ID); !ok || name != tp.Name {
				t.Fatalf("TopicNameByID = %q, %v", name, ok)
			}
			for i, p := range tp.Partitions {
				if p.ID != int32(i) || p.Leader != p.Replicas[0] || p.LeaderEpoch != 0 || !reflect.DeepEqual(p.ISR, p.Replicas) {
					t.Errorf("partition %d = %+v", i, p)
				}
			}
		})
	}
}

func TestConfigTable(t *testing.T) {
	defs := TopicConfigs()
	for i, d := range defs {
		if i > 0 && defs[i-1].Name >= d.Name {
			t.Errorf("table not in name order at %s", d.Name)
		}
		if d.Validate == nil || d.Doc == "" || d.Type == 0 {
			t.Errorf("%s: incomplete definition", d.Name)
			continue
		}
		if d.Default != "" || d.Type != TypeList {
			if err := d.Validate(d.Default); err != nil {
				t.Errorf("%s: default %q does not validate: %v", d.Name, d.Default, err)
			}
		}
		if got, ok := LookupTopicConfig(d.Name); !ok || got.Name != d.Name {
			t.Errorf("LookupTopicConfig(%s) failed", d.Name)
		}
		if d.BrokerKey != "" {
			if got, ok := LookupTopicConfigByBrokerKey(d.BrokerKey); !ok || got.Name != d.Name {
				t.Errorf("LookupTopicConfigByBrokerKey(%s) = %s", d.BrokerKey, got.Name)
			}
		}
	}
	if _, ok := LookupTopicConfig("message.downconversion.enable"); ok {
		t.Error("message.downconversion.enable was removed in Kafka 4")
	}
	if d, ok := LookupTopicConfig("write.caching"); !ok || d.Default != "false" || d.BrokerKey != "log.write.caching" {
		t.Errorf("write.caching = %+v", d)
	}

	tests := []struct {
		key, value string
		ok         bool
	}{
		{"cleanup.policy", "delete", true},
		{"cleanup.policy", "compact, delete", true},
		{"cleanup.policy", "", false},
		{"cleanup.policy", "compact,shred", false},
		{"compression.type", "zstd", true},
		{"compression.type", "brotli", false},
		{"compression.gzip.level", "-1", true},
		{"compression.gzip.level", "0", false},
		{"compression.gzip.level", "9", true},
		{"compression.zstd.level", "-131073", false},
		{"delete.retention.ms", "-1", false},
		{"flush.messages", "0", false},
		{"flush.messages", "9223372036854775807", true},
		{"flush.messages", "9223372036854775808", false},
		{"flush.ms", "0", true},
		{"follower.replication.throttled.replicas", "*", true},
		{"follower.replication.throttled.replicas", "0:1,1:2", true},
		{"follower.replication.throttled.replicas", "0-1", false},
		{"max.compaction.lag.ms", "0", false},
		{"max.message.bytes", "2147483648", false},
		{"max.message.bytes", "abc", false},
		{"message.timestamp.type", "LogAppendTime", true},
		{"message.timestamp.type", "logappendtime", false},
		{"message.timestamp.after.max.ms", "-1", false},
		{"min.cleanable.dirty.ratio", "0", true},
		{"min.cleanable.dirty.ratio", "1.0", true},
		{"min.cleanable.dirty.ratio", "1.01", false},
		{"min.cleanable.dirty.ratio", "NaN", false},
		{"min.insync.replicas", "0", false},
		{"min.insync.replicas", "2", true},
		{"preallocate", "TRUE", true},
		{"preallocate", "yes", false},
		{"retention.bytes", "-1", true},
		{"retention.ms", "-1", true},
		{"retention.ms", "-2", false},
		{"segment.bytes", "1048575", false},
		{"segment.bytes", "1048576", true},
		{"segment.index.bytes", "3", false},
		{"segment.ms", "0", false},
		{"unclean.leader.election.enable", "false", true},
		{"write.caching", "true", true},
		{"write.caching", "1", false},
	}
	for _, tt := range tests {
		err := ValidateTopicConfigs(map[string]string{tt.key: tt.value})
		if (err == nil) != tt.ok {
			t.Errorf("%s=%q: err = %v, want ok=%v", tt.key, tt.value, err, tt.ok)
			continue
		}
		if err != nil {
			wantKerr(t, err, kerr.InvalidConfig)
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("%s=%q: message %q does not name the key", tt.key, tt.value, err)
			}
		}
	}
}

func TestTopicLifecycle(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)

	events := make(chan Event, 64)
	cancel := s.Subscribe(func(ev Event) { events <- ev })
	expect := func(kind EventKind, topic string) {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Kind != kind || ev.Topic != topic {
				t.Fatalf("event = %+v, want %s %s", ev, kind, topic)
			}
		default:
			// Subscribers run inside Apply, before the write returns.
			t.Fatalf("no %s event for %s when the write returned", kind, topic)
		}
	}

	tp, err := s.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "1000"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	expect(TopicCreated, "t")

	// CreatePartitions.
	wantKerr(t, s.CreatePartitions(ctx, "t", 2, false), kerr.InvalidPartitions)
	wantKerr(t, s.CreatePartitions(ctx, "t", 1, false), kerr.InvalidPartitions)
	wantKerr(t, s.CreatePartitions(ctx, "nope", 5, false), kerr.UnknownTopicOrPartition)
	wantKerr(t, s.CreatePartitions(ctx, "t", 5, true), nil)
	if got, _ := s.Topic("t"); len(got.Partitions) != 2 {
		t.Fatalf("validateOnly added partitions: %d", len(got.Partitions))
	}
	wantKerr(t, s.CreatePartitions(ctx, "t", 5, false), nil)
	expect(PartitionsAdded, "t")
	got, _ := s.Topic("t")
	if len(got.Partitions) != 5 || got.ID != tp.ID {
		t.Fatalf("after CreatePartitions: %+v", got)
	}
	for i, p := range got.Partitions {
		if p.ID != int32(i) || !reflect.DeepEqual(p.Replicas, []int32{1}) || p.Leader != 1 {
			t.Errorf("partition %+v", p)
		}
	}

	// AlterTopicConfigs.
	wantKerr(t, s.AlterTopicConfigs(ctx, "nope", nil, false, false), kerr.UnknownTopicOrPartition)
	wantKerr(t, s.AlterTopicConfigs(ctx, "t", []ConfigOp{{Name: "retention.ms", Op: OpSet, Value: strp("x")}}, false, false), kerr.InvalidConfig)
	wantKerr(t, s.AlterTopicConfigs(ctx, "t", []ConfigOp{{Name: "bogus", Op: OpSet, Value: strp("1")}}, false, false), kerr.InvalidConfig)
	wantKerr(t, s.AlterTopicConfigs(ctx, "t", []ConfigOp{{Name: "segment.ms", Op: OpSet, Value: strp("10")}}, false, true), nil)
	wantKerr(t, s.AlterTopicConfigs(ctx, "t", []ConfigOp{
		{Name: "segment.ms", Op: OpSet, Value: strp("10")},
		{Name: "cleanup.policy", Op: OpAppend, Value: strp("compact")},
	}, false, false), nil)
	expect(TopicConfigChanged, "t")
	got, _ = s.Topic("t")
	want := map[string]string{"retention.ms": "1000", "segment.ms": "10", "cleanup.policy": "delete,compact"}
	if !reflect.DeepEqual(got.Configs, want) {
		t.Fatalf("configs = %v, want %v", got.Configs, want)
	}
	wantKerr(t, s.AlterTopicConfigs(ctx, "t", []ConfigOp{{Name: "flush.ms", Op: OpSet, Value: strp("5")}}, true, false), nil)
	expect(TopicConfigChanged, "t")
	got, _ = s.Topic("t")
	if !reflect.DeepEqual(got.Configs, map[string]string{"flush.ms": "5"}) {
		t.Fatalf("replace: configs = %v", got.Configs)
	}
	// Returned copies are not aliased to the store.
	got.Configs["flush.ms"] = "999"
	got.Partitions[0].Replicas[0] = 42
	if again, _ := s.Topic("t"); again.Configs["flush.ms"] != "5" || again.Partitions[0].Replicas[0] != 1 {
		t.Fatal("Topic returned aliased data")
	}

	// Broker configs.
	wantKerr(t, s.AlterBrokerConfigs(ctx, []ConfigOp{{Name: "log.retention.ms", Op: OpSet, Value: strp("-7")}}, false, false), kerr.InvalidConfig)
	wantKerr(t, s.AlterBrokerConfigs(ctx, []ConfigOp{{Name: "log.retention.ms", Op: OpSet, Value: strp("60000")}}, false, false), nil)
	expect(BrokerConfigChanged, "")
	if bc := s.BrokerConfigs(); !reflect.DeepEqual(bc, map[string]string{"log.retention.ms": "60000"}) {
		t.Fatalf("BrokerConfigs = %v", bc)
	}

	// Delete.
	wantKerr(t, s.DeleteTopic(ctx, "nope"), kerr.UnknownTopicOrPartition)
	wantKerr(t, s.DeleteTopic(ctx, "t"), nil)
	expect(TopicDeleted, "t")
	if _, ok := s.Topic("t"); ok {
		t.Fatal("topic still there")
	}
	if _, ok := s.TopicByID(tp.ID); ok {
		t.Fatal("topic id still there")
	}
	if name, ok := s.TopicNameByID(tp.ID); ok {
		t.Fatalf("TopicNameByID of a deleted topic = %q", name)
	}
	// Re-created topics get a new id.
	tp2, err := s.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if tp2.ID == tp.ID {
		t.Fatal("topic id reused")
	}
	expect(TopicCreated, "t")

	cancel()
	if _, err := s.CreateTopic(ctx, TopicSpec{Name: "u", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Fatalf("event after cancel: %+v", ev)
	default:
	}
}

func TestConcurrentCreates(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.CreateTopic(ctx, TopicSpec{Name: "race", Partitions: 2, ReplicationFactor: 1}, false)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_ = s.Topics()
				s.Topic("race")
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantKerr(t, err, kerr.TopicAlreadyExists)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creations succeeded, want 1", ok)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s1 := openStore(t, Config{Dir: dir, ClusterID: "fixed-cluster"})
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := s1.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("t%d", i), Partitions: int32(i + 1), ReplicationFactor: 1,
			Configs: map[string]string{"retention.ms": fmt.Sprint(1000 * (i + 1))}}, false); err != nil {
			t.Fatal(err)
		}
	}
	wantKerr(t, s1.AlterTopicConfigs(ctx, "t0", []ConfigOp{{Name: "cleanup.policy", Op: OpSet, Value: strp("compact")}}, false, false), nil)
	wantKerr(t, s1.AlterBrokerConfigs(ctx, []ConfigOp{{Name: "log.segment.bytes", Op: OpSet, Value: strp("2097152")}}, false, false), nil)
	wantKerr(t, s1.DeleteTopic(ctx, "t4"), nil)
	topics, brokers, bc := s1.Topics(), s1.Brokers(), s1.BrokerConfigs()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, Config{Dir: dir})
	if s2.ClusterID() != "fixed-cluster" {
		t.Fatalf("ClusterID = %q", s2.ClusterID())
	}
	if !reflect.DeepEqual(s2.Topics(), topics) {
		t.Fatalf("topics after reopen:\n%+v\nwant\n%+v", s2.Topics(), topics)
	}
	if !reflect.DeepEqual(s2.Brokers(), brokers) {
		t.Fatalf("brokers after reopen: %+v want %+v (same address: no re-registration)", s2.Brokers(), brokers)
	}
	if !reflect.DeepEqual(s2.BrokerConfigs(), bc) {
		t.Fatalf("broker configs after reopen: %v", s2.BrokerConfigs())
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	// A different cluster id is refused; a different address re-registers.
	if _, err := Open(ctx, Config{Dir: dir, ClusterID: "other"}); err == nil || !strings.Contains(err.Error(), "cluster id") {
		t.Fatalf("Open with other cluster id: %v", err)
	}
	s3 := openStore(t, Config{Dir: dir, Addr: "elsewhere:9999"})
	if b := s3.Brokers(); len(b) != 1 || b[0].Host != "elsewhere" || b[0].Port != 9999 || b[0].Epoch <= brokers[0].Epoch {
		t.Fatalf("Brokers = %+v", b)
	}
}

func TestSnapshotAndTruncation(t *testing.T) {
	dir := t.TempDir()
	s1 := openStore(t, Config{Dir: dir, TrailingLogs: 2})
	ctx := ctxT(t)
	for i := range 10 {
		if _, err := s1.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("before-%d", i), Partitions: 1, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	first, err := s1.bolt.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last := s1.raft.LastIndex()
	if first <= 1 || last-first > 2 {
		t.Fatalf("log not truncated: first=%d last=%d", first, last)
	}
	for i := range 3 {
		if _, err := s1.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("after-%d", i), Partitions: 2, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	wantKerr(t, s1.DeleteTopic(ctx, "before-0"), nil)
	want := s1.Topics()
	id := s1.ClusterID()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot on disk")
	}

	s2 := openStore(t, Config{Dir: dir, TrailingLogs: 2})
	if s2.ClusterID() != id || !reflect.DeepEqual(s2.Topics(), want) {
		t.Fatalf("state after snapshot restore:\n%+v\nwant\n%+v", s2.Topics(), want)
	}
}

func TestTCPTransportReopen(t *testing.T) {
	dir := t.TempDir()
	s1 := openStore(t, Config{Dir: dir, RaftAddr: "127.0.0.1:0"})
	ctx := ctxT(t)
	if _, err := s1.CreateTopic(ctx, TopicSpec{Name: "tcp", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// A new ephemeral port: the voter's address is updated on open.
	s2 := openStore(t, Config{Dir: dir, RaftAddr: "127.0.0.1:0"})
	if _, ok := s2.Topic("tcp"); !ok {
		t.Fatal("topic lost")
	}
	cf := s2.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	srv := cf.Configuration().Servers
	if len(srv) != 1 || srv[0].Address != s2.trans.LocalAddr() {
		t.Fatalf("raft servers = %+v, local %s", srv, s2.trans.LocalAddr())
	}
	if s2.ControllerID() != 1 {
		t.Fatalf("ControllerID = %d", s2.ControllerID())
	}
}

func TestClosedStore(t *testing.T) {
	s := openStore(t, Config{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateTopic(context.Background(), TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 1}, false)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, kerr.NotController) {
		t.Fatalf("write after Close: %v", err)
	}
	if s.ControllerID() != -1 {
		t.Fatalf("ControllerID after Close = %d", s.ControllerID())
	}
}

func TestOpenLockedDir(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for bolt's 1 s lock timeout")
	}
	dir := t.TempDir()
	openStore(t, Config{Dir: dir})
	_, err := Open(ctxT(t), Config{Dir: dir})
	if err == nil {
		t.Fatal("second Open on the same dir succeeded")
	}
}

func TestRaftLogsToSlog(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	openStore(t, Config{Logger: l})
	out := buf.String()
	for _, want := range []string{"component=raft", "entering leader state", "metadata store open"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	// At Info, raft's routine state changes are quiet.
	buf.Reset()
	l = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	openStore(t, Config{Logger: l})
	if out := buf.String(); strings.Contains(out, "component=raft") {
		t.Errorf("raft logged at Info:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func TestAssignReplicas(t *testing.T) {
	// Kafka's documented example (AdminUtils): 5 brokers, 10 partitions,
	// RF 3, start index 0, shift 0.
	got := assignReplicas([]int32{0, 1, 2, 3, 4}, 10, 3, 0, 0, 0)
	want := [][]int32{
		{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 0}, {4, 0, 1},
		{0, 2, 3}, {1, 3, 4}, {2, 4, 0}, {3, 0, 1}, {4, 1, 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("assignReplicas = %v\nwant %v", got, want)
	}
	// Every start and shift gives distinct replicas and balanced leaders.
	brokers := []int32{1, 2, 3, 4}
	for start := range 4 {
		for shift := range 4 {
			leaders := map[int32]int{}
			for p, rs := range assignReplicas(brokers, 8, 3, start, shift, 0) {
				seen := map[int32]bool{}
				for _, b := range rs {
					if seen[b] {
						t.Fatalf("start %d shift %d partition %d: duplicate in %v", start, shift, p, rs)
					}
					seen[b] = true
				}
				leaders[rs[0]]++
			}
			for b, n := range leaders {
				if n != 2 {
					t.Fatalf("start %d shift %d: broker %d leads %d partitions", start, shift, b, n)
				}
			}
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	bodies := []any{
		&initClusterCmd{ClusterID: "c"},
		&registerBrokerCmd{NodeID: 3, Host: "h", Port: 1, Rack: "r"},
		&createTopicCmd{Name: "t", ID: randomTopicID(), Internal: true, Replicas: [][]int32{{1, 2}}, Configs: map[string]string{"a": "b"}},
		&deleteTopicCmd{Name: "t", ID: randomTopicID()},
		&createPartitionsCmd{Name: "t", ID: randomTopicID(), Total: 3, Replicas: [][]int32{{1}}},
		&alterTopicConfigsCmd{Name: "t", Ops: []configOp{{Name: "k", Op: OpSet, Value: strp("v")}, {Name: "d", Op: OpDelete}}, Replace: true},
		&setBrokerConfigsCmd{Ops: []configOp{{Name: "k", Op: OpSet, Value: strp("v")}}},
		&allocateProducerIDsCmd{Count: 7},
		&fenceBrokerCmd{NodeID: 2, Epoch: 9},
		&unfenceBrokerCmd{NodeID: 2, Epoch: 9},
		&controlledShutdownCmd{NodeID: 2, Epoch: 9},
		&alterPartitionCmd{BrokerID: 1, BrokerEpoch: 3, Topic: "t", TopicID: randomTopicID(), Partition: 2, LeaderEpoch: 4, PartitionEpoch: 5, ISR: []int32{1, 2}},
		&electLeadersCmd{Type: 1, Partitions: []partitionRef{{Topic: "t", Partition: 0}}},
		&reassignCmd{Items: []reassignItem{{Topic: "t", Partition: 1, Replicas: []int32{3, 1}}, {Topic: "t", Cancel: true}}},
	}
	for _, b := range bodies {
		data, err := encodeCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeCommand(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("round trip %T: got %+v want %+v", b, got, b)
		}
	}
	var u uuid
	if err := u.UnmarshalText([]byte("AAAA")); err == nil {
		t.Fatal("short uuid accepted")
	}
	if err := u.UnmarshalText([]byte(strings.Repeat("A", 40))); err == nil {
		t.Fatal("long uuid accepted")
	}
}

// BenchmarkOpen measures Open on a fresh directory (bootstrap) and on an
// existing one (replay), including the single-voter election.
func BenchmarkOpen(b *testing.B) {
	b.Run("bootstrap", func(b *testing.B) {
		for b.Loop() {
			dir, err := os.MkdirTemp(b.TempDir(), "open")
			if err != nil {
				b.Fatal(err)
			}
			s, err := Open(context.Background(), Config{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("reopen", func(b *testing.B) {
		dir := b.TempDir()
		s, err := Open(context.Background(), Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			if _, err := s.CreateTopic(context.Background(), TopicSpec{Name: fmt.Sprint("t", i), Partitions: 4, ReplicationFactor: 1}, false); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			s, err := Open(context.Background(), Config{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}
