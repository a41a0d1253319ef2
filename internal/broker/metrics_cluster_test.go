package broker_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/internal/broker"
)

// scrape reads b's /metrics and returns the unlabelled samples by name.
func scrape(t *testing.T, b *broker.Broker) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitMetrics polls b's metrics until every wanted value is there.
func waitMetrics(t *testing.T, b *broker.Broker, what string, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := scrape(t, b)
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
			}
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			sub := map[string]float64{}
			for k := range want {
				sub[k] = got[k]
			}
			t.Fatalf("%s: metrics %v, want %v", what, sub, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAtLeast polls b's metrics until counter name reaches min.
func waitAtLeast(t *testing.T, b *broker.Broker, name string, min float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := scrape(t, b)
		if got[name] >= min {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want at least %v", name, got[name], min)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicationHealthMetrics: three in-process brokers, an RF 3 topic
// with min.insync.replicas=3. A follower stops (without controlled
// shutdown) and acks=1 writes go on: the leader shrinks the ISR
// (sluice_isr_shrinks_total, sluice_under_replicated_partitions and
// sluice_under_min_isr_partitions move), and the controller fences it
// (sluice_fenced_brokers). It comes
// back: the leader expands the ISR and the gauges return to a healthy
// cluster's values. Exactly one broker reports sluice_active_controller 1.
func TestReplicationHealthMetrics(t *testing.T) {
	bs, cfgs := startClusterWith(t, 3, map[string]string{
		"replica.lag.time.max.ms":   "500",
		"broker.session.timeout.ms": "4000",
	})
	ctx := testCtx(t, 2*time.Minute)
	adm := kadm.NewClient(newClient(t, bs[0].Addr().String()))
	mi := "3"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &mi}, "health"); err != nil {
		t.Fatal(err)
	}
	var leader int32
	var replicas []int32
	waitFor(t, 30*time.Second, func() bool {
		md, err := adm.Metadata(ctx, "health")
		if err != nil || len(md.Topics["health"].Partitions) != 1 {
			return false
		}
		p := md.Topics["health"].Partitions[0]
		leader, replicas = p.Leader, p.Replicas
		return p.Leader > 0 && len(p.ISR) == 3
	})
	// The active controller, by the metric: exactly one broker says 1.
	var controller int32 = -1
	waitFor(t, 30*time.Second, func() bool {
		controller = -1
		n := 0
		for i, b := range bs {
			if scrape(t, b)["sluice_active_controller"] == 1 {
				controller, n = int32(i+1), n+1
			}
		}
		return n == 1
	})
	lb, cb := bs[leader-1], bs[controller-1]
	healthy := map[string]float64{
		"sluice_leader_partitions": 1, "sluice_partitions": 1,
		"sluice_under_replicated_partitions": 0, "sluice_under_min_isr_partitions": 0, "sluice_at_min_isr_partitions": 1,
	}
	before := waitMetrics(t, lb, "healthy leader", healthy)
	waitMetrics(t, cb, "healthy controller", map[string]float64{"sluice_offline_partitions": 0, "sluice_fenced_brokers": 0})
	for i, b := range bs {
		if id := int32(i + 1); id != leader {
			waitMetrics(t, b, fmt.Sprintf("follower %d", id), map[string]float64{"sluice_leader_partitions": 0, "sluice_partitions": 1, "sluice_under_replicated_partitions": 0})
		}
	}

	// Some data, then a follower (not the controller) stops.
	prod := newClient(t, bs[leader-1].Addr().String(), kgo.DefaultProduceTopic("health"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	for i := range 20 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var follower int32 = -1
	for _, r := range replicas {
		if r != leader && r != controller {
			follower = r
		}
	}
	if follower < 0 {
		t.Fatalf("no follower besides leader %d and controller %d in %v", leader, controller, replicas)
	}
	if err := bs[follower-1].Close(); err != nil {
		t.Fatal(err)
	}
	// A follower whose log end equals the leader's stays in sync however
	// long it is silent (Kafka's isCaughtUp): the leader shrinks the ISR
	// only once its log end moves past the stopped follower's.
	for i := range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(20 + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	shrunk := waitMetrics(t, lb, "ISR shrunk", map[string]float64{
		"sluice_under_replicated_partitions": 1, "sluice_under_min_isr_partitions": 1, "sluice_at_min_isr_partitions": 0,
		"sluice_leader_partitions": 1,
	})
	// The counter moves when the leader gets the controller's answer,
	// which may come after this node applied the change (the gauges).
	shrunk = waitAtLeast(t, lb, "sluice_isr_shrinks_total", before["sluice_isr_shrinks_total"]+1)
	waitMetrics(t, cb, "follower fenced", map[string]float64{"sluice_fenced_brokers": 1, "sluice_offline_partitions": 0})

	// It comes back on the same data and controller address.
	back, err := broker.Start(cfgs[follower-1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	bs[follower-1] = back
	expanded := waitMetrics(t, lb, "ISR expanded", healthy)
	expanded = waitAtLeast(t, lb, "sluice_isr_expands_total", shrunk["sluice_isr_expands_total"]+1)
	if expanded["sluice_isr_shrinks_total"] != shrunk["sluice_isr_shrinks_total"] {
		t.Fatalf("sluice_isr_shrinks_total %v after the expansion, %v before", expanded["sluice_isr_shrinks_total"], shrunk["sluice_isr_shrinks_total"])
	}
	waitMetrics(t, cb, "follower unfenced", map[string]float64{"sluice_fenced_brokers": 0, "sluice_offline_partitions": 0, "sluice_active_controller": 1})
	waitMetrics(t, back, "returned follower", map[string]float64{"sluice_partitions": 1, "sluice_leader_partitions": 0, "sluice_active_controller": 0})
}
