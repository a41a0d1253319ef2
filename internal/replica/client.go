package replica

import (
	"context"
	"time"
)

// LeaderClient is the follower's connection to one leader broker: the two
// requests a fetcher sends. NewKgoClient implements it over the network;
// tests answer in-process.
type LeaderClient interface {
	Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error)
	OffsetForLeaderEpoch(ctx context.Context, req *EpochRequest) (*EpochResponse, error)
}

// FetchRequest is a follower's Fetch (replica id set).
type FetchRequest struct {
	ReplicaID   int32
	BrokerEpoch int64 // ReplicaState.ReplicaEpoch (v15+); -1 unknown
	MaxWait     time.Duration
	MinBytes    int32
	MaxBytes    int32
	Partitions  []FetchPartition
}

// FetchPartition is one partition of a FetchRequest.
type FetchPartition struct {
	Topic              string
	TopicID            [16]byte
	Partition          int32
	CurrentLeaderEpoch int32
	FetchOffset        int64
	LastFetchedEpoch   int32 // -1: none
	LogStartOffset     int64
	MaxBytes           int32
}

// FetchResponse is the leader's answer, one entry per partition it
// answered (an incremental answer may omit partitions).
type FetchResponse struct {
	Partitions []FetchedPartition
}

// FetchedPartition is one partition of a FetchResponse.
type FetchedPartition struct {
	Topic          string
	Partition      int32
	Err            error // nil or a kerr error
	HighWatermark  int64
	LogStartOffset int64
	Diverging      *EpochEndOffset // KIP-320
	Records        []byte          // whole batches (a trailing partial batch is dropped)
}

// EpochRequest is OffsetForLeaderEpoch from a follower.
type EpochRequest struct {
	ReplicaID  int32
	Partitions []EpochPartition
}

// EpochPartition is one partition of an EpochRequest.
type EpochPartition struct {
	Topic              string
	Partition          int32
	CurrentLeaderEpoch int32
	LeaderEpoch        int32
}

// EpochResponse answers an EpochRequest.
type EpochResponse struct {
	Partitions []EpochAnswer
}

// EpochAnswer is one partition of an EpochResponse.
type EpochAnswer struct {
	Topic     string
	Partition int32
	Err       error
	EpochEndOffset
}
