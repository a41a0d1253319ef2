package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func txnCommitReq(group string, pid int64, epoch int16, topic string, p int32, off int64) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = group, pid, epoch, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = p, off, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func (m *machine) txnCommit(req *kmsg.TxnOffsetCommitRequest) int16 {
	m.t.Helper()
	var got *kmsg.TxnOffsetCommitResponse
	m.step(&txnCommitEvent{req: req, reply: func(r *kmsg.TxnOffsetCommitResponse) { got = r }})
	if got == nil {
		m.t.Fatal("TxnOffsetCommit not answered")
	}
	return got.Topics[0].Partitions[0].ErrorCode
}

func (m *machine) complete(pid int64, epoch int16, commit bool) {
	m.t.Helper()
	var done bool
	m.step(&txnCompleteEvent{producerID: pid, producerEpoch: epoch, commit: commit, reply: func(err error) {
		if err != nil {
			m.t.Fatal(err)
		}
		done = true
	}})
	if !done {
		m.t.Fatal("CompleteTxn not answered")
	}
}

// TestTxnOffsets: transactional offsets are invisible until the commit
// marker, dropped by an abort marker, and replay honours the markers
// (offsets of a transaction still open come back pending).
func TestTxnOffsets(t *testing.T) {
	m := newMachine(t, testConfig())
	wantCode(t, "txn commit", m.txnCommit(txnCommitReq("g", 7, 0, "t", 0, 10)), 0)
	if got := m.fetchOffset("g", "t", 0).Offset; got != -1 {
		t.Fatalf("pending offset visible: %d", got)
	}
	m.complete(7, 0, true)
	if got := m.fetchOffset("g", "t", 0).Offset; got != 10 {
		t.Fatalf("committed offset %d, want 10", got)
	}

	wantCode(t, "txn commit", m.txnCommit(txnCommitReq("g", 7, 0, "t", 0, 20)), 0)
	m.complete(7, 0, false)
	if got := m.fetchOffset("g", "t", 0).Offset; got != 10 {
		t.Fatalf("after abort %d, want 10", got)
	}
	// A fenced (older) epoch is refused once a newer one wrote.
	wantCode(t, "txn commit", m.txnCommit(txnCommitReq("g", 7, 2, "t", 0, 30)), 0)
	wantCode(t, "old epoch", m.txnCommit(txnCommitReq("g", 7, 1, "t", 0, 31)), kerr.InvalidProducerEpoch.Code)

	// Reload: 10 committed, 30 pending for producer 7.
	r := newMachineOn(t, testConfig(), m.log, m.now)
	if got := r.fetchOffset("g", "t", 0).Offset; got != 10 {
		t.Fatalf("replayed %d, want 10", got)
	}
	// The replayed sequence continues where the log is.
	if seq := r.s.txnSeq[7]; seq == nil || seq.epoch != 2 || seq.next != 1 {
		t.Fatalf("replayed sequence %+v, want epoch 2 next 1", seq)
	}
	wantCode(t, "txn commit after reload", r.txnCommit(txnCommitReq("g", 7, 2, "t", 1, 5)), 0)
	r.complete(7, 2, true)
	if got := r.fetchOffset("g", "t", 0).Offset; got != 30 {
		t.Fatalf("after commit of replayed pending %d, want 30", got)
	}
	if got := r.fetchOffset("g", "t", 1).Offset; got != 5 {
		t.Fatalf("t/1 %d, want 5", got)
	}
}
