package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/broker"
)

// TestReplicatedPartitionInProcess: three in-process brokers, an RF 3
// topic with min.insync.replicas=2: acks=all produce is acknowledged once
// replicated, the ISR is full, OffsetForLeaderEpoch answers from the
// leader only (with Kafka's epoch checks), and a follower refuses produce
// with NOT_LEADER_OR_FOLLOWER.
func TestReplicatedPartitionInProcess(t *testing.T) {
	bs := startCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	cl := newClient(t, bs[0].Addr().String())
	adm := kadm.NewClient(cl)
	mi := "2"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &mi}, "rep"); err != nil {
		t.Fatal(err)
	}
	var leader, epoch int32
	var followers []int32
	var topicID [16]byte
	waitFor(t, 30*time.Second, func() bool {
		md, err := adm.Metadata(ctx, "rep")
		if err != nil || len(md.Topics["rep"].Partitions) != 1 {
			return false
		}
		p := md.Topics["rep"].Partitions[0]
		topicID = md.Topics["rep"].ID
		leader, epoch, followers = p.Leader, p.LeaderEpoch, nil
		for _, r := range p.Replicas {
			if r != p.Leader {
				followers = append(followers, r)
			}
		}
		return p.Leader >= 0 && len(p.ISR) == 3 && len(followers) == 2
	})
	prod := newClient(t, bs[0].Addr().String(), kgo.DefaultProduceTopic("rep"))
	for i := range 100 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}

	ofle := func(node, current int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = "rep"
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LeaderEpoch = current, epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		raw, err := cl.Broker(int(node)).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return raw.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	}
	if p := ofle(leader, epoch); p.ErrorCode != 0 || p.LeaderEpoch != epoch || p.EndOffset != 100 {
		t.Fatalf("leader: %v epoch %d end %d, want epoch %d end 100", kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset, epoch)
	}
	if p := ofle(leader, epoch+1); !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.UnknownLeaderEpoch) {
		t.Fatalf("newer current epoch: %v, want UNKNOWN_LEADER_EPOCH", kerr.ErrorForCode(p.ErrorCode))
	}
	if p := ofle(followers[0], epoch); !errors.Is(kerr.ErrorForCode(p.ErrorCode), kerr.NotLeaderForPartition) {
		t.Fatalf("follower: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(p.ErrorCode))
	}

	// The leader's replication metrics: full ISR, nothing under-replicated,
	// both followers caught up (lag 0 once their next fetch reported it).
	var lb *broker.Broker
	for _, b := range bs {
		if b.Addr().String() == brokerAddr(t, adm, leader) {
			lb = b
		}
	}
	if lb == nil {
		t.Fatalf("leader %d not found", leader)
	}
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + lb.AdminAddr().String() + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := string(body)
		return strings.Contains(m, `sluice_partition_isr_size{partition="0",topic="rep"} 3`) &&
			strings.Contains(m, `sluice_partition_under_replicated{partition="0",topic="rep"} 0`) &&
			strings.Contains(m, fmt.Sprintf(`sluice_partition_follower_lag{partition="0",replica="%d",topic="rep"} 0`, followers[0])) &&
			strings.Contains(m, fmt.Sprintf(`sluice_partition_follower_lag{partition="0",replica="%d",topic="rep"} 0`, followers[1]))
	})

	// Produce straight to a follower.
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = "rep", topicID // by id from v13
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = oneRecordBatch([]byte("x"))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	raw, err := cl.Broker(int(followers[0])).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	sp := raw.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if !errors.Is(kerr.ErrorForCode(sp.ErrorCode), kerr.NotLeaderForPartition) {
		t.Fatalf("produce to follower %d: %v, want NOT_LEADER_OR_FOLLOWER", followers[0], kerr.ErrorForCode(sp.ErrorCode))
	}
	if sp.CurrentLeader.LeaderID != leader {
		t.Fatalf("produce to follower: leader hint %d, want %d", sp.CurrentLeader.LeaderID, leader)
	}
}

// brokerAddr returns broker id's host:port from the metadata.
func brokerAddr(t *testing.T, adm *kadm.Client, id int32) string {
	t.Helper()
	md, err := adm.BrokerMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if b.NodeID == id {
			return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
	}
	t.Fatalf("no broker %d", id)
	return ""
}
