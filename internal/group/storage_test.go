package group

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestRecordRoundTrip(t *testing.T) {
	g := newGroup("g", t0)
	g.protocolType, g.protocol, g.generation, g.leader = "consumer", "range", 4, "m1"
	g.add(&member{id: "m1", instanceID: kmsg.StringPtr("i1"), clientID: "c", clientHost: "/h",
		protocols: []kmsg.JoinGroupRequestProtocol{proto("range", "t")}, sessionTimeout: 10 * time.Second,
		rebalanceTimeout: time.Minute, assignment: []byte("a1")}, nil)

	l := newLoader()
	o := offset{offset: 42, leaderEpoch: 3, metadata: "md", commitTime: t0}
	for _, r := range []record{
		offsetRecord("g", "t", 1, o),
		offsetRecord("g", "t", 2, o),
		offsetTombstone("g", "t", 2),
		groupRecord(g, nil, t0),
		offsetRecord("old", "t", 0, offset{offset: 1, commitTime: t0, expireTime: t0.Add(time.Hour)}),
	} {
		if err := l.record(r.key, r.value); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.offsets["g"][tp{"t", 1}]; got.offset != o.offset || got.leaderEpoch != o.leaderEpoch || got.metadata != o.metadata ||
		!got.commitTime.Equal(o.commitTime) || !got.expireTime.IsZero() {
		t.Fatalf("offset %+v, want %+v", got, o)
	}
	if _, ok := l.offsets["g"][tp{"t", 2}]; ok {
		t.Fatal("tombstone did not delete")
	}
	if got := l.offsets["old"][tp{"t", 0}]; !got.expireTime.Equal(t0.Add(time.Hour)) || got.leaderEpoch != -1 {
		t.Fatalf("v1 value: %+v", got)
	}
	v := l.groups["g"]
	if v.Version != 3 || v.Generation != 4 || *v.Protocol != "range" || *v.Leader != "m1" || v.CurrentStateTimestamp != t0.UnixMilli() ||
		len(v.Members) != 1 || *v.Members[0].InstanceID != "i1" || string(v.Members[0].Assignment) != "a1" ||
		v.Members[0].SessionTimeoutMillis != 10_000 || v.Members[0].RebalanceTimeoutMillis != 60_000 {
		t.Fatalf("group value %+v", v)
	}
	// Kafka's key versions.
	if k := offsetKey("g", "t", 1); binary.BigEndian.Uint16(k) != 1 {
		t.Fatal("offset key version")
	}
	if k := groupKey("g"); binary.BigEndian.Uint16(k) != 2 {
		t.Fatal("group key version")
	}
}

func TestCheckGroupValueBoundsMembers(t *testing.T) {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	b := v.AppendTo(nil)
	// Patch the member count (the last 4 bytes) to a huge number.
	binary.BigEndian.PutUint32(b[len(b)-4:], 1<<30)
	if _, err := decodeGroupValue(b); err == nil {
		t.Fatal("a billion members in 0 bytes decoded")
	}
}

// FuzzLoad feeds garbage to the replay of __consumer_offsets, both as raw
// batches and as record keys and values inside valid batches.
// Invariants: no panic; a batch that does not decode is an error, never a
// partial state; memory stays proportional to the input (kmsg bounds
// arrays by the bytes left and checkGroupValue bounds the member count);
// whatever was replayed installs into a working state machine.
func FuzzLoad(f *testing.F) {
	g := newGroup("g", t0)
	g.protocolType, g.protocol, g.generation = "consumer", "range", 1
	g.add(&member{id: "m", protocols: []kmsg.JoinGroupRequestProtocol{proto("range", "t")}, sessionTimeout: time.Second}, nil)
	seeds := []record{
		offsetRecord("g", "t", 0, offset{offset: 5, commitTime: t0}),
		offsetTombstone("g", "t", 0),
		groupRecord(g, nil, t0),
		groupTombstone("g"),
	}
	for _, r := range seeds {
		b, err := buildBatch(nil, []record{r}, t0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, r.key, r.value)
	}
	f.Add([]byte{}, []byte{0, 2}, []byte{0, 4, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw, key, value []byte) {
		l := newLoader()
		l.dec.MaxSize = 1 << 20
		_ = l.batch(raw)
		if b, err := buildBatch(nil, []record{{key: key, value: value}}, t0); err == nil {
			if err := l.batch(b); err != nil {
				t.Fatalf("a valid batch does not decode: %v", err)
			}
		}
		_ = l.record(key, value)
		cfg := testConfig().withDefaults()
		s := newPartitionState(0, cfg, t0)
		l.install(s)
		s.Tick(t0.Add(time.Hour))
		for range s.TakeWrites() {
		}
	})
}
