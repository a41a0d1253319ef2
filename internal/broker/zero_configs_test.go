package broker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestZeroValuedTopicConfigs: Kafka accepts 0 for retention.ms (the
// closed segments of a topic are deleted at the next retention check, the
// usual way to empty a topic) and for file.delete.delay.ms (a deleted
// topic's files go at once). The log package read a zero as "unset": the
// broker worked around it for retention.ms, and file.delete.delay.ms=0
// kept deleted files for the default 60 s.
func TestZeroValuedTopicConfigs(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("log.retention.check.interval.ms", "100"))
	ctx := testCtx(t, time.Minute)
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("purge"), kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	segBytes, keep := "1048576", "-1" // Kafka 4's smallest segment.bytes
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": &segBytes, "retention.ms": &keep}, "purge"); err != nil {
		t.Fatal(err)
	}
	value := []byte(strings.Repeat("x", 1000))
	var rs []*kgo.Record
	for range 4000 { // about 4 segments
		rs = append(rs, &kgo.Record{Value: value})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	start := func() int64 {
		t.Helper()
		o, err := adm.ListStartOffsets(ctx, "purge")
		if err != nil {
			t.Fatal(err)
		}
		l, _ := o.Lookup("purge", 0)
		if l.Err != nil {
			t.Fatal(l.Err)
		}
		return l.Offset
	}
	if s := start(); s != 0 {
		t.Fatalf("log start %d with retention.ms=-1, want 0", s)
	}
	zero := "0"
	if r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: &zero}}, "purge"); err != nil || r[0].Err != nil {
		t.Fatalf("set retention.ms=0: %v %v", err, r)
	}
	waitFor(t, 30*time.Second, func() bool { return start() > 2000 }) // the closed segments

	// file.delete.delay.ms=0: the partition's directory is gone soon after
	// the topic is deleted (the default keeps it 60 s).
	if r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "file.delete.delay.ms", Value: &zero}}, "purge"); err != nil || r[0].Err != nil {
		t.Fatalf("set file.delete.delay.ms=0: %v %v", err, r)
	}
	logs := filepath.Join(b.DataDir(), "logs")
	partDirs := func() []string {
		ents, err := os.ReadDir(logs)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "purge-0") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	if len(partDirs()) == 0 {
		t.Fatalf("no directory purge-0* in %s", logs)
	}
	if _, err := adm.DeleteTopics(ctx, "purge"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { return len(partDirs()) == 0 })
}
