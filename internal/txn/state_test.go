package txn

import (
	"errors"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestTransactionStateMachine(t *testing.T) {
	m := &Metadata{TransactionalID: "t", ProducerID: 7, ProducerEpoch: 2, TimeoutMs: 1000, State: Empty, Partitions: map[Partition]struct{}{}, StartMs: -1, PrevProducerID: -1, NextProducerID: -1}
	if _, err := m.AddPartitions(8, 2, nil, 10); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("wrong producer id: %v", err)
	}
	if _, err := m.AddPartitions(7, 1, nil, 10); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("old epoch: %v", err)
	}
	if _, err := m.End(7, 2, true, 0, 10); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("commit without a transaction: %v", err)
	}
	on, err := m.AddPartitions(7, 2, []Partition{{"a", 1}, {"a", 0}, {"b", 0}}, 10)
	if err != nil || on.State != Ongoing || on.StartMs != 10 || len(on.Partitions) != 3 || m.State != Empty {
		t.Fatalf("add: %+v, %v (old %+v)", on, err, m)
	}
	if on.Expired(1010) || !on.Expired(1011) {
		t.Fatal("expiry at the timeout")
	}
	on2, _ := on.AddPartitions(7, 2, []Partition{{"c", 0}}, 20)
	if on2.StartMs != 10 || len(on2.Partitions) != 4 {
		t.Fatalf("second add: %+v", on2)
	}
	res, err := on2.End(7, 2, true, 0, 30)
	if err != nil || res.Prepare == nil || res.Prepare.State != PrepareCommit {
		t.Fatalf("end: %+v, %v", res, err)
	}
	prep := res.Prepare
	if _, err := prep.AddPartitions(7, 2, nil, 31); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("add while preparing: %v", err)
	}
	if _, err := prep.End(7, 2, true, 0, 31); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("commit while preparing: %v", err)
	}
	if _, err := prep.End(7, 2, false, 0, 31); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("abort while committing: %v", err)
	}
	done, err := prep.Complete(40)
	if err != nil || done.State != CompleteCommit || len(done.Partitions) != 0 || done.StartMs != -1 {
		t.Fatalf("complete: %+v, %v", done, err)
	}
	if r, err := done.End(7, 2, true, 0, 50); err != nil || r.Prepare != nil {
		t.Fatalf("retried commit: %+v, %v", r, err)
	}
	if _, err := done.End(7, 2, false, 0, 50); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("abort after commit: %v", err)
	}
	if _, err := done.Complete(50); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("complete twice: %v", err)
	}
	if Dead.CanTransition(Ongoing) || !PrepareEpochFence.CanTransition(PrepareAbort) {
		t.Fatal("transition table")
	}
}

func TestTransactionRecordRoundTrip(t *testing.T) {
	m := &Metadata{
		TransactionalID: "tx-1", ProducerID: 42, ProducerEpoch: 3, TimeoutMs: 60000, State: PrepareAbort,
		Partitions: map[Partition]struct{}{{"b", 2}: {}, {"a", 0}: {}, {"b", 0}: {}, {"__consumer_offsets", 7}: {}},
		StartMs:    100, LastUpdateMs: 200, PrevProducerID: -1, NextProducerID: -1,
	}
	k, v := m.Record()
	id, got, err := ParseRecord(k, v)
	if err != nil || id != "tx-1" || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %q %+v %v", id, got, err)
	}
	if id, got, err := ParseRecord(k, nil); err != nil || id != "tx-1" || got != nil {
		t.Fatalf("tombstone: %q %+v %v", id, got, err)
	}
	if _, _, err := ParseRecord(k, v[:5]); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("short value: %v", err)
	}
}
