package replica

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/metadata"
)

// TestStoreProposerAgainstMetadata runs the adapter against a real
// single-voter metadata store: the answers and the kerr errors the Leader
// matches with errors.Is are the ones the controller gives.
func TestStoreProposerAgainstMetadata(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := metadata.Open(ctx, metadata.Config{NodeID: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	topic, err := s.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	pr := StoreProposer(s)
	mp, ok := pr.Partition("t", 0)
	if !ok || mp.Leader != 1 || !slices.Equal(mp.ISR, []int32{1}) {
		t.Fatalf("Partition: %+v %v", mp, ok)
	}
	if _, ok := pr.Partition("t", 5); ok {
		t.Fatal("Partition of a missing partition")
	}
	req := metadata.AlterPartitionRequest{BrokerID: 1, BrokerEpoch: -1, Topic: "t", TopicID: topic.ID, Partition: 0,
		LeaderEpoch: mp.LeaderEpoch, PartitionEpoch: mp.PartitionEpoch, ISR: []int32{1}}
	got, err := pr.AlterPartition(ctx, req)
	if err != nil || got.PartitionEpoch != mp.PartitionEpoch || !slices.Equal(got.ISR, []int32{1}) {
		t.Fatalf("unchanged ISR: %+v, %v", got, err)
	}
	cases := []struct {
		name string
		mod  func(*metadata.AlterPartitionRequest)
		want error
	}{
		{"newer leader epoch", func(r *metadata.AlterPartitionRequest) { r.LeaderEpoch++ }, kerr.NotController},
		{"ISR without the leader", func(r *metadata.AlterPartitionRequest) { r.ISR = []int32{2} }, kerr.InvalidRequest},
		{"unknown partition", func(r *metadata.AlterPartitionRequest) { r.Partition = 3 }, kerr.UnknownTopicOrPartition},
	}
	for _, c := range cases {
		r := req
		c.mod(&r)
		if _, err := pr.AlterPartition(ctx, r); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
