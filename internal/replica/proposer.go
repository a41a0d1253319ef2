package replica

import (
	"context"

	"github.com/sluice-io/sluice/internal/metadata"
)

// MetadataStore is the part of *metadata.Store an ISRProposer needs.
type MetadataStore interface {
	AlterPartition(ctx context.Context, req metadata.AlterPartitionRequest) (metadata.Partition, error)
	Topic(name string) (metadata.Topic, bool)
}

// StoreProposer adapts a metadata store (*metadata.Store) to ISRProposer.
func StoreProposer(s MetadataStore) ISRProposer { return storeProposer{s} }

type storeProposer struct{ s MetadataStore }

func (p storeProposer) AlterPartition(ctx context.Context, req metadata.AlterPartitionRequest) (metadata.Partition, error) {
	return p.s.AlterPartition(ctx, req)
}

func (p storeProposer) Partition(topic string, partition int32) (metadata.Partition, bool) {
	t, ok := p.s.Topic(topic)
	if !ok {
		return metadata.Partition{}, false
	}
	for _, mp := range t.Partitions {
		if mp.ID == partition {
			return mp, true
		}
	}
	return metadata.Partition{}, false
}
