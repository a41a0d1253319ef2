package txn

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestCoordinatorV2EpochBump: EndTxn of transaction version 2 writes the
// markers with epoch+1, answers the new epoch, recognizes a retry of the
// old epoch, and hands out a new producer id when the epoch runs out;
// the state survives a reload.
func TestCoordinatorV2EpochBump(t *testing.T) {
	ctx := context.Background()
	log, mk, clk := &memLog{}, &memMarkers{}, &clock{now: time.UnixMilli(1e12)}
	c := newTestCoordinator(t, log, mk, clk)
	pid, epoch, err := c.InitProducerID(ctx, "v2", 1000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	a := Partition{"a", 0}
	if err := c.AddPartitions(ctx, "v2", pid, epoch, []Partition{a}); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify("v2", pid, epoch, a); err != nil {
		t.Fatalf("verify added partition: %v", err)
	}
	if err := c.Verify("v2", pid, epoch, Partition{"b", 0}); !errors.Is(err, kerr.TransactionAbortable) {
		t.Fatalf("verify partition not added: %v", err)
	}
	npid, nepoch, err := c.EndTxn(ctx, "v2", pid, epoch, true, 2)
	if err != nil || npid != pid || nepoch != epoch+1 {
		t.Fatalf("EndTxn v2: %d %d %v", npid, nepoch, err)
	}
	if got := mk.take(); len(got) != 1 || got[0].epoch != epoch+1 || !got[0].commit {
		t.Fatalf("markers %+v", got)
	}
	// Retry of the old epoch: same answer, nothing written.
	if rp, re, err := c.EndTxn(ctx, "v2", pid, epoch, true, 2); err != nil || rp != pid || re != epoch+1 {
		t.Fatalf("retry: %d %d %v", rp, re, err)
	}
	if _, _, err := c.EndTxn(ctx, "v2", pid, epoch, false, 2); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("retry with the other outcome: %v", err)
	}
	if got := mk.take(); len(got) != 0 {
		t.Fatalf("retry wrote markers %+v", got)
	}
	// The old epoch can no longer add or verify.
	if err := c.AddPartitions(ctx, "v2", pid, epoch, []Partition{a}); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("add with the old epoch: %v", err)
	}
	if err := c.Verify("v2", pid, epoch, a); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("verify with the old epoch: %v", err)
	}

	// Epoch exhaustion: the markers carry the last epoch, the producer
	// gets a new id with epoch 0; a retry of the old id is recognized.
	e, err := c.lock("v2")
	if err != nil {
		t.Fatal(err)
	}
	md := e.md.Clone()
	md.ProducerEpoch = math.MaxInt16 - 1
	e.set(md)
	e.mu.Unlock()
	last := int16(math.MaxInt16 - 1)
	if err := c.AddPartitions(ctx, "v2", pid, last, []Partition{a}); err != nil {
		t.Fatal(err)
	}
	npid, nepoch, err = c.EndTxn(ctx, "v2", pid, last, false, 2)
	if err != nil || npid == pid || nepoch != 0 {
		t.Fatalf("EndTxn at the last epoch: %d %d %v", npid, nepoch, err)
	}
	if got := mk.take(); len(got) != 1 || got[0].pid != pid || got[0].epoch != math.MaxInt16 || got[0].commit {
		t.Fatalf("overflow markers %+v", got)
	}
	if rp, re, err := c.EndTxn(ctx, "v2", pid, last, false, 2); err != nil || rp != npid || re != 0 {
		t.Fatalf("retry across the new id: %d %d %v", rp, re, err)
	}
	if err := c.AddPartitions(ctx, "v2", npid, 0, []Partition{a}); err != nil {
		t.Fatalf("new id: %v", err)
	}

	// Reload: the state (new id, its predecessor) comes back.
	c2 := newTestCoordinator(t, log, &memMarkers{}, clk)
	got, err := c2.Describe("v2")
	if err != nil || got.ProducerID != npid || got.PrevProducerID != pid || got.TxnVersion != 2 || got.State != Ongoing {
		t.Fatalf("reloaded: %+v %v", got, err)
	}
}

// TestCoordinatorV2EmptyAbort: under version 2 an abort with nothing
// ongoing bumps the epoch; classic EndTxn refuses it.
func TestCoordinatorV2EmptyAbort(t *testing.T) {
	ctx := context.Background()
	c := newTestCoordinator(t, &memLog{}, &memMarkers{}, &clock{now: time.UnixMilli(1e12)})
	pid, epoch, err := c.InitProducerID(ctx, "e", 1000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.EndTxn(ctx, "e", pid, epoch, false, 0); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("classic empty abort: %v", err)
	}
	if _, e2, err := c.EndTxn(ctx, "e", pid, epoch, false, 2); err != nil || e2 != epoch+1 {
		t.Fatalf("v2 empty abort: %d %v", e2, err)
	}
}

// TestCoordinatorIDExpiration: an id with no transaction for
// transactional.id.expiration.ms is removed (tombstone) by the sweep, an
// ongoing one is not; after a reload the removed id is unknown.
func TestCoordinatorIDExpiration(t *testing.T) {
	ctx := context.Background()
	log, mk, clk := &memLog{}, &memMarkers{}, &clock{now: time.UnixMilli(1e12)}
	c := New(Config{
		Partitions:     2,
		MaxTimeout:     time.Hour,
		AbortInterval:  time.Hour,
		IDExpiration:   time.Minute,
		GroupPartition: func(string) Partition { return Partition{"__consumer_offsets", 0} },
		Now:            clk.Now,
	}, log, mk, NewProducerIDs(&counter{}, 10))
	t.Cleanup(c.Close)
	for p := range int32(2) {
		if err := c.Load(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"idle", "busy"} {
		if _, _, err := c.InitProducerID(ctx, id, int32(time.Hour/time.Millisecond), -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	bpid, bepoch, _ := c.InitProducerID(ctx, "busy", int32(time.Hour/time.Millisecond), -1, -1)
	if err := c.AddPartitions(ctx, "busy", bpid, bepoch, []Partition{{"a", 0}}); err != nil {
		t.Fatal(err)
	}
	clk.add(30 * time.Second)
	c.Sweep(ctx)
	if _, err := c.Describe("idle"); err != nil {
		t.Fatalf("removed too early: %v", err)
	}
	clk.add(31 * time.Second)
	c.Sweep(ctx)
	if _, err := c.Describe("idle"); !errors.Is(err, kerr.TransactionalIDNotFound) {
		t.Fatalf("idle id after expiration: %v", err)
	}
	if md, err := c.Describe("busy"); err != nil || md.State != Ongoing {
		t.Fatalf("ongoing id: %+v %v", md, err)
	}
	// The id starts over with a new producer id.
	if pid, epoch, err := c.InitProducerID(ctx, "idle", 1000, -1, -1); err != nil || epoch != 0 || pid == bpid {
		t.Fatalf("re-init after removal: %d %d %v", pid, epoch, err)
	}
	c2 := newTestCoordinator(t, log, &memMarkers{}, clk)
	if md, err := c2.Describe("idle"); err != nil || md.ProducerEpoch != 0 {
		t.Fatalf("reloaded idle: %+v %v", md, err)
	}
}
