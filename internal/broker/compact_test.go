package broker_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestCompactedTopic produces many values for a few keys to a compacted
// topic with small segments and a fast cleaner, then reads it back with
// franz-go until only (about) the latest value per key is left; keyless
// records are refused with INVALID_RECORD.
func TestCompactedTopic(t *testing.T) {
	b := sluicetest.New(t,
		sluicetest.Setting("log.cleaner.backoff.ms", "20"),
		sluicetest.Topic("cmp", 1, "cleanup.policy", "compact", "segment.bytes", "1048576",
			"min.cleanable.dirty.ratio", "0.01", "delete.retention.ms", "0"))
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("cmp"), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 2*time.Minute)

	err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record on a compacted topic: %v, want INVALID_RECORD", err)
	}

	const keys, rounds = 10, 1000 // ~10 MB: ten 1 MiB segments, of which only the active one stays dirty
	val := make([]byte, 1000)
	for r := 0; r < rounds; r++ {
		for k := 0; k < keys; k++ {
			copy(val, fmt.Sprintf("round %d key %d ", r, k))
			cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(k)), Value: append([]byte(nil), val...)}, nil)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := keys * rounds
	// Wait for the cleaner: read from the start until the log holds far
	// fewer records than were produced.
	var latest map[string]string
	waitFor(t, time.Minute, func() bool {
		recs := consumeUntilEnd(t, b.Addr(), "cmp", int64(total))
		latest = map[string]string{}
		for _, r := range recs {
			latest[string(r.Key)] = string(r.Value)
		}
		return len(recs) < total/4
	})
	for k := 0; k < keys; k++ {
		want := fmt.Sprintf("round %d key %d ", rounds-1, k)
		if got := latest["k"+strconv.Itoa(k)]; !strings.HasPrefix(got, want) {
			t.Fatalf("key k%d: latest value %.20q, want %q", k, got, want)
		}
	}
}

// consumeUntilEnd reads partition 0 from the start up to end offset end.
func consumeUntilEnd(t *testing.T, addr, topic string, end int64) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	defer cl.Close()
	ctx := testCtx(t, time.Minute)
	var out []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		for _, r := range fs.Records() {
			out = append(out, r)
			if r.Offset == end-1 {
				return out
			}
		}
	}
}
