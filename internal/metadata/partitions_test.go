package metadata

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// phantomBrokers registers brokers that never heartbeat (the session
// timeout of the store under test must be long) and returns their epochs.
func phantomBrokers(t *testing.T, s *Store, racks map[int32]string) map[int32]int64 {
	t.Helper()
	ctx := ctxT(t)
	for _, id := range slices.Sorted(maps.Keys(racks)) {
		if err := s.propose(ctx, &registerBrokerCmd{NodeID: id, Host: fmt.Sprintf("b%d", id), Port: 9092, Rack: racks[id]}); err != nil {
			t.Fatal(err)
		}
	}
	out := map[int32]int64{}
	for _, b := range s.Brokers() {
		out[b.NodeID] = b.Epoch
	}
	return out
}

func fence(t *testing.T, s *Store, id int32, on bool) {
	t.Helper()
	b, _ := s.fsm.broker(id)
	var cmd any = &fenceBrokerCmd{NodeID: id, Epoch: b.Epoch}
	if !on {
		cmd = &unfenceBrokerCmd{NodeID: id, Epoch: b.Epoch}
	}
	if err := s.propose(ctxT(t), cmd); err != nil {
		t.Fatal(err)
	}
}

// TestAlterPartitionValidation is the AlterPartition table through the
// Store: every check with its Kafka error, then accepted changes.
func TestAlterPartitionValidation(t *testing.T) {
	s := openStore(t, Config{BrokerSessionTimeout: time.Hour})
	ctx := ctxT(t)
	epochs := phantomBrokers(t, s, map[int32]string{2: "", 3: "", 4: ""})
	fence(t, s, 4, true)
	tp, err := s.CreateTopic(ctx, TopicSpec{Name: "ap", Assignment: [][]int32{{1, 2, 3, 4}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p := tp.Partitions[0]; p.Leader != 1 || !reflect.DeepEqual(p.ISR, []int32{1, 2, 3}) {
		t.Fatalf("created %+v (fenced broker 4 must not be in the ISR)", p)
	}
	base := AlterPartitionRequest{BrokerID: 1, BrokerEpoch: epochs[1], Topic: "ap", TopicID: tp.ID, Partition: 0, ISR: []int32{1, 2}}
	tests := []struct {
		name string
		mod  func(r *AlterPartitionRequest)
		want *kerr.Error
	}{
		{"unknown topic", func(r *AlterPartitionRequest) { r.Topic, r.TopicID = "nope", [16]byte{} }, kerr.UnknownTopicOrPartition},
		{"unknown partition", func(r *AlterPartitionRequest) { r.Partition = 1 }, kerr.UnknownTopicOrPartition},
		{"other topic id", func(r *AlterPartitionRequest) { r.TopicID = [16]byte{9} }, kerr.UnknownTopicID},
		{"stale broker epoch", func(r *AlterPartitionRequest) { r.BrokerEpoch-- }, kerr.StaleBrokerEpoch},
		{"newer leader epoch", func(r *AlterPartitionRequest) { r.LeaderEpoch = 1 }, kerr.NotController},
		{"newer partition epoch", func(r *AlterPartitionRequest) { r.PartitionEpoch = 1 }, kerr.NotController},
		{"not the leader", func(r *AlterPartitionRequest) { r.BrokerID, r.BrokerEpoch = 2, epochs[2] }, kerr.InvalidRequest},
		{"empty ISR", func(r *AlterPartitionRequest) { r.ISR = nil }, kerr.InvalidRequest},
		{"ISR without the leader", func(r *AlterPartitionRequest) { r.ISR = []int32{2, 3} }, kerr.InvalidRequest},
		{"duplicate", func(r *AlterPartitionRequest) { r.ISR = []int32{1, 2, 2} }, kerr.InvalidRequest},
		{"not a replica", func(r *AlterPartitionRequest) { r.ISR = []int32{1, 5} }, kerr.InvalidRequest},
		{"fenced member", func(r *AlterPartitionRequest) { r.ISR = []int32{1, 2, 3, 4} }, kerr.IneligibleReplica},
		{"unchanged", func(r *AlterPartitionRequest) { r.ISR = []int32{1, 2, 3}; r.BrokerEpoch = -1 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.ISR = slices.Clone(base.ISR)
			tt.mod(&r)
			p, err := s.AlterPartition(ctx, r)
			wantKerr(t, err, tt.want)
			if got, _ := s.Topic("ap"); !reflect.DeepEqual(got.Partitions[0], tp.Partitions[0]) {
				t.Fatalf("state changed: %+v", got.Partitions[0])
			}
			if tt.want == nil && !reflect.DeepEqual(p, tp.Partitions[0]) {
				t.Fatalf("result %+v", p)
			}
		})
	}

	events := make(chan Event, 16)
	defer s.Subscribe(func(ev Event) { events <- ev })()
	// Shrink: partition epoch 1, same leader epoch.
	p, err := s.AlterPartition(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if p.Leader != 1 || p.LeaderEpoch != 0 || p.PartitionEpoch != 1 || !reflect.DeepEqual(p.ISR, []int32{1, 2}) {
		t.Fatalf("after shrink %+v", p)
	}
	if ev := <-events; ev.Kind != PartitionChanged || ev.Topic != "ap" || ev.Partition != 0 {
		t.Fatalf("event %+v", ev)
	}
	// The same request again carries a stale partition epoch.
	_, err = s.AlterPartition(ctx, base)
	wantKerr(t, err, kerr.InvalidUpdateVersion)
	// Leadership moves (broker 1 fenced); the old leader is fenced out.
	fence(t, s, 1, true)
	cur, _ := s.Topic("ap")
	if q := cur.Partitions[0]; q.Leader != 2 || q.LeaderEpoch != 1 || q.PartitionEpoch != 2 || !reflect.DeepEqual(q.ISR, []int32{2}) {
		t.Fatalf("after fencing the leader %+v", q)
	}
	r := base
	r.PartitionEpoch = 1
	_, err = s.AlterPartition(ctx, r)
	wantKerr(t, err, kerr.FencedLeaderEpoch)
	fence(t, s, 1, false)
	// The new leader expands the ISR back.
	p, err = s.AlterPartition(ctx, AlterPartitionRequest{BrokerID: 2, BrokerEpoch: epochs[2], Topic: "ap", LeaderEpoch: 1, PartitionEpoch: 2, ISR: []int32{2, 1, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Leader != 2 || p.LeaderEpoch != 1 || p.PartitionEpoch != 3 || !reflect.DeepEqual(p.ISR, []int32{2, 1, 3}) {
		t.Fatalf("after expand %+v", p)
	}
}

// TestElectAndReassign drives ElectLeaders and the reassignment API
// through the Store.
func TestElectAndReassign(t *testing.T) {
	s := openStore(t, Config{BrokerSessionTimeout: time.Hour})
	ctx := ctxT(t)
	epochs := phantomBrokers(t, s, map[int32]string{2: "", 3: ""})
	if _, err := s.CreateTopic(ctx, TopicSpec{Name: "e", Assignment: [][]int32{{1, 2}, {2, 1}}}, false); err != nil {
		t.Fatal(err)
	}
	// Nothing to elect.
	if tps, errs, err := s.ElectLeaders(ctx, ElectPreferred, nil); err != nil || len(tps) != 0 || len(errs) != 0 {
		t.Fatalf("ElectLeaders = %v %v %v", tps, errs, err)
	}
	fence(t, s, 2, true)
	fence(t, s, 2, false)
	tp, _ := s.Topic("e")
	if p := tp.Partitions[1]; p.Leader != 1 || !reflect.DeepEqual(p.ISR, []int32{1}) {
		t.Fatalf("after fence/unfence %+v", p)
	}
	_, errs, err := s.ElectLeaders(ctx, ElectPreferred, []TopicPartition{{"e", 1}, {"e", 0}})
	if err != nil {
		t.Fatal(err)
	}
	wantKerr(t, errs[0], kerr.PreferredLeaderNotAvailable)
	wantKerr(t, errs[1], kerr.ElectionNotNeeded)
	// The leader brings 2 back into the ISR; then the preferred election works.
	if _, err := s.AlterPartition(ctx, AlterPartitionRequest{BrokerID: 1, BrokerEpoch: epochs[1], Topic: "e", Partition: 1,
		LeaderEpoch: 1, PartitionEpoch: 1, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	tps, errs, err := s.ElectLeaders(ctx, ElectPreferred, nil)
	if err != nil || !reflect.DeepEqual(tps, []TopicPartition{{"e", 1}}) || errs[0] != nil {
		t.Fatalf("ElectLeaders(all) = %v %v %v", tps, errs, err)
	}
	tp, _ = s.Topic("e")
	if p := tp.Partitions[1]; p.Leader != 2 || p.LeaderEpoch != 2 {
		t.Fatalf("after preferred election %+v", p)
	}
	_, _, err = s.ElectLeaders(ctx, ElectionType(5), nil)
	wantKerr(t, err, kerr.InvalidRequest)

	// Move e-0 from [1 2] to [3 1]: 3 is added, 2 is removed once 3 is in sync.
	errs, err = s.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "e", Partition: 0, Replicas: []int32{3, 1}}, {Topic: "e", Partition: 1}, {Topic: "x", Partition: 0, Replicas: []int32{1}}})
	if err != nil {
		t.Fatal(err)
	}
	wantKerr(t, errs[0], nil)
	wantKerr(t, errs[1], kerr.NoReassignmentInProgress)
	wantKerr(t, errs[2], kerr.UnknownTopicOrPartition)
	want := []ReassignmentStatus{{Topic: "e", Partition: 0, Replicas: []int32{3, 1, 2}, AddingReplicas: []int32{3}, RemovingReplicas: []int32{2}}}
	if got := s.ListPartitionReassignments(nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("ListPartitionReassignments = %+v", got)
	}
	if got := s.ListPartitionReassignments([]TopicPartition{{"e", 1}}); len(got) != 0 {
		t.Fatalf("filtered list = %+v", got)
	}
	tp, _ = s.Topic("e")
	p0 := tp.Partitions[0]
	p, err := s.AlterPartition(ctx, AlterPartitionRequest{BrokerID: 1, BrokerEpoch: -1, Topic: "e", Partition: 0,
		LeaderEpoch: p0.LeaderEpoch, PartitionEpoch: p0.PartitionEpoch, ISR: []int32{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Replicas, []int32{3, 1}) || !reflect.DeepEqual(p.ISR, []int32{1, 3}) || p.Leader != 1 || len(p.AddingReplicas)+len(p.RemovingReplicas) != 0 {
		t.Fatalf("after completion %+v", p)
	}
	if got := s.ListPartitionReassignments(nil); len(got) != 0 {
		t.Fatalf("still listed: %+v", got)
	}
}

// TestRackAwarePlacement checks Kafka's rack-aware assignment against the
// example of Kafka's AdminRackAwareTest and its spreading properties.
func TestRackAwarePlacement(t *testing.T) {
	ex := []placementBroker{{0, "rack1"}, {1, "rack3"}, {2, "rack3"}, {3, "rack2"}, {4, "rack2"}, {5, "rack1"}}
	if got := rackAlternated(ex); !reflect.DeepEqual(got, []int32{0, 3, 1, 5, 4, 2}) {
		t.Fatalf("rackAlternated = %v", got)
	}
	got := placeReplicas(ex, 7, 3, 0, 0, 0)
	want := [][]int32{{0, 3, 1}, {3, 1, 5}, {1, 5, 4}, {5, 4, 2}, {4, 2, 0}, {2, 0, 3}, {0, 4, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("placement = %v\nwant %v", got, want)
	}
	rackOf := func(bs []placementBroker) map[int32]string {
		m := map[int32]string{}
		for _, b := range bs {
			m[b.id] = b.rack
		}
		return m
	}
	cases := []struct {
		brokers []placementBroker
		rf      int
	}{
		{[]placementBroker{{1, "a"}, {2, "a"}, {3, "b"}, {4, "b"}, {5, "c"}, {6, "c"}}, 3},
		{[]placementBroker{{1, "a"}, {2, "a"}, {3, "b"}, {4, "b"}, {5, "c"}, {6, "c"}}, 2},
		{[]placementBroker{{1, "a"}, {2, "a"}, {3, "a"}, {4, "b"}}, 2},
		{[]placementBroker{{1, "a"}, {2, "b"}, {3, ""}}, 3},  // a broker without a rack counts as rack ""
		{[]placementBroker{{1, "a"}, {2, "a"}, {3, "b"}}, 3}, // rf > racks: every broker once
	}
	for ci, c := range cases {
		racks := rackOf(c.brokers)
		nRacks := len(slices.Compact(slices.Sorted(maps.Values(racks))))
		n := len(c.brokers)
		for start := range n {
			for shift := range n {
				parts := n * 4
				leaders, load := map[int32]int{}, map[int32]int{}
				for p, rs := range placeReplicas(c.brokers, parts, c.rf, start, shift, 0) {
					if len(rs) != c.rf {
						t.Fatalf("case %d: partition %d: %v", ci, p, rs)
					}
					seenB, seenR := map[int32]bool{}, map[string]bool{}
					for _, b := range rs {
						if seenB[b] {
							t.Fatalf("case %d: partition %d: duplicate in %v", ci, p, rs)
						}
						seenB[b], seenR[racks[b]] = true, true
						load[b]++
					}
					if len(seenR) != min(c.rf, nRacks) {
						t.Fatalf("case %d start %d shift %d: partition %d %v spans %d racks, want %d", ci, start, shift, p, rs, len(seenR), min(c.rf, nRacks))
					}
					leaders[rs[0]]++
				}
				for _, b := range c.brokers {
					if leaders[b.id] != 4 {
						t.Fatalf("case %d start %d shift %d: broker %d leads %d of %d partitions", ci, start, shift, b.id, leaders[b.id], parts)
					}
				}
				if ci == 0 { // equal racks: replicas spread evenly too
					for _, b := range c.brokers {
						if load[b.id] != parts*c.rf/n {
							t.Fatalf("case %d: broker %d holds %d replicas: %v", ci, b.id, load[b.id], load)
						}
					}
				}
			}
		}
	}
}

// TestPlacementLiveBrokers: the Store places replicas on live brokers,
// rack-aware when racks are set, and refuses a replication factor larger
// than the live brokers.
func TestPlacementLiveBrokers(t *testing.T) {
	s := openStore(t, Config{Rack: "r1", BrokerSessionTimeout: time.Hour})
	ctx := ctxT(t)
	phantomBrokers(t, s, map[int32]string{2: "r1", 3: "r2", 4: "r2", 5: "r3", 6: "r3"})
	racks := map[int32]string{1: "r1", 2: "r1", 3: "r2", 4: "r2", 5: "r3", 6: "r3"}
	tp, err := s.CreateTopic(ctx, TopicSpec{Name: "spread", Partitions: 12, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tp.Partitions {
		rs := map[string]bool{}
		for _, b := range p.Replicas {
			rs[racks[b]] = true
		}
		if len(rs) != 3 {
			t.Fatalf("partition %d replicas %v span racks %v", p.ID, p.Replicas, rs)
		}
	}
	if err := s.CreatePartitions(ctx, "spread", 18, false); err != nil {
		t.Fatal(err)
	}
	fence(t, s, 5, true)
	fence(t, s, 6, true)
	tp, err = s.CreateTopic(ctx, TopicSpec{Name: "two-racks", Partitions: 8, ReplicationFactor: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tp.Partitions {
		if slices.Contains(p.Replicas, 5) || slices.Contains(p.Replicas, 6) {
			t.Fatalf("replica on a fenced broker: %+v", p)
		}
	}
	_, err = s.CreateTopic(ctx, TopicSpec{Name: "rf5", Partitions: 1, ReplicationFactor: 5}, false)
	wantKerr(t, err, kerr.InvalidReplicationFactor)
	err = s.CreatePartitions(ctx, "spread", 20, false)
	wantKerr(t, err, nil)
	got, _ := s.Topic("spread")
	for _, p := range got.Partitions[18:] {
		if slices.Contains(p.Replicas, 5) || slices.Contains(p.Replicas, 6) {
			t.Fatalf("new partition on a fenced broker: %+v", p)
		}
	}
}
