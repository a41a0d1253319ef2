package broker_test

import (
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestIncrementalFetchSessions walks a KIP-227 session by hand: a full
// fetch creates it, incremental fetches name only changes and get only
// partitions with news, forgotten partitions leave it, and wrong ids or
// epochs are refused.
func TestIncrementalFetchSessions(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("s", 2))
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	corr := int32(0)
	fetch := func(id, epoch int32, parts []int32, offsets []int64, forget []int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = 12
		req.ReplicaID = -1
		req.MaxWaitMillis = 0
		req.MaxBytes = 1 << 20
		req.SessionID, req.SessionEpoch = id, epoch
		if len(parts) > 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "s"
			for i, p := range parts {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, offsets[i], 1<<20, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		if len(forget) > 0 {
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic, ft.Partitions = "s", forget
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
		}
		corr++
		body := rawRequest(t, c, corr, req)
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 12
		if err := resp.ReadFrom(body[1:]); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	parts := func(r *kmsg.FetchResponse) map[int32]int {
		out := map[int32]int{}
		for _, rt := range r.Topics {
			for _, rp := range rt.Partitions {
				out[rp.Partition] = len(rp.RecordBatches)
			}
		}
		return out
	}

	// Full fetch, new session.
	r := fetch(0, 0, []int32{0, 1}, []int64{0, 0}, nil)
	if r.ErrorCode != 0 || r.SessionID == 0 {
		t.Fatalf("session not created: error %d id %d", r.ErrorCode, r.SessionID)
	}
	id := r.SessionID
	if got := parts(r); len(got) != 2 {
		t.Fatalf("full fetch answered partitions %v", got)
	}
	// Nothing changed: an incremental fetch answers no partitions.
	r = fetch(id, 1, nil, nil, nil)
	if got := parts(r); r.ErrorCode != 0 || len(got) != 0 {
		t.Fatalf("unchanged session answered error %d partitions %v", r.ErrorCode, got)
	}
	// Data on partition 1 only: only it comes back, with records.
	cl := newClient(t, b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(testCtx(t, 30e9), &kgo.Record{Topic: "s", Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r = fetch(id, 2, nil, nil, nil)
	if got := parts(r); len(got) != 1 || got[1] == 0 {
		t.Fatalf("after an append to partition 1: partitions %v", got)
	}
	// The client moves its offset past the record; nothing new after that.
	r = fetch(id, 3, []int32{1}, []int64{1}, nil)
	if got := parts(r); len(got) != 0 {
		t.Fatalf("after advancing: partitions %v", got)
	}
	// Forget partition 0; a later append there is not reported.
	r = fetch(id, 4, nil, nil, []int32{0})
	if err := cl.ProduceSync(testCtx(t, 30e9), &kgo.Record{Topic: "s", Partition: 0, Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r = fetch(id, 5, nil, nil, nil)
	if got := parts(r); len(got) != 0 {
		t.Fatalf("forgotten partition reported: %v", got)
	}
	// Wrong epoch, unknown id.
	if r = fetch(id, 9, nil, nil, nil); r.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("wrong epoch: error %d", r.ErrorCode)
	}
	if r = fetch(id+1, 1, nil, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: error %d", r.ErrorCode)
	}
	// Final epoch closes the session and does a sessionless full fetch.
	r = fetch(id, -1, []int32{0}, []int64{0}, nil)
	if r.ErrorCode != 0 || r.SessionID != 0 || parts(r)[0] == 0 {
		t.Fatalf("final fetch: error %d id %d partitions %v", r.ErrorCode, r.SessionID, parts(r))
	}
	if r = fetch(id, 6, nil, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session still answers: error %d", r.ErrorCode)
	}
}
