package replica

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The network LeaderClient over franz-go: requests built with kmsg and
// sent with kgo's Broker(id).Request, which negotiates the version with
// the leader (ApiVersions). The client is pinned to Fetch v12+ (diverging
// epochs, last fetched epoch) and OffsetForLeaderEpoch v3+ (replica id).

// Minimum versions the follower needs.
const (
	minFetchVersion        = 12
	minEpochRequestVersion = 3
)

// MinVersions returns the kgo option pinning the request versions a
// follower needs; give it to the kgo.Client passed to NewKgoClient.
func MinVersions() kgo.Opt {
	vs := new(kversion.Versions)
	vs.SetMaxKeyVersion(1, minFetchVersion)         // Fetch
	vs.SetMaxKeyVersion(23, minEpochRequestVersion) // OffsetForLeaderEpoch
	return kgo.MinVersions(vs)
}

// requester is kgo.Broker's Request (a seam for tests).
type requester interface {
	Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error)
}

// kgoClient is a LeaderClient talking to one leader broker.
type kgoClient struct {
	br requester
}

// NewKgoClient returns a LeaderClient for broker leaderID through cl (a
// client of the cluster built with MinVersions(); it finds the leader's
// address in its metadata).
func NewKgoClient(cl *kgo.Client, leaderID int32) LeaderClient {
	return &kgoClient{br: cl.Broker(int(leaderID))}
}

// buildFetch builds the kmsg request. Topics carry both name (v12) and id
// (v13+); kmsg writes the one the negotiated version has. The replica id
// is set both in ReplicaID (up to v14) and ReplicaState (v15+). No fetch
// session (SessionEpoch -1: full fetches), read_uncommitted.
func buildFetch(r *FetchRequest) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = r.ReplicaID
	req.ReplicaState.ID = r.ReplicaID
	req.ReplicaState.Epoch = r.BrokerEpoch
	req.MaxWaitMillis = int32(r.MaxWait.Milliseconds())
	req.MinBytes = r.MinBytes
	req.MaxBytes = r.MaxBytes
	req.IsolationLevel = 0
	req.SessionID = 0
	req.SessionEpoch = -1
	idx := map[string]int{}
	for _, p := range r.Partitions {
		i, ok := idx[p.Topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = p.Topic, p.TopicID
			i = len(req.Topics)
			idx[p.Topic] = i
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.Partition
		rp.CurrentLeaderEpoch = p.CurrentLeaderEpoch
		rp.FetchOffset = p.FetchOffset
		rp.LastFetchedEpoch = p.LastFetchedEpoch
		rp.LogStartOffset = p.LogStartOffset
		rp.PartitionMaxBytes = p.MaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	return req
}

// parseFetch converts the response; v13+ names topics by id, resolved
// through the request.
func parseFetch(req *kmsg.FetchRequest, resp *kmsg.FetchResponse) (*FetchResponse, error) {
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("replica: fetch: %w", kerr.ErrorForCode(resp.ErrorCode))
	}
	names := map[[16]byte]string{}
	for _, t := range req.Topics {
		names[t.TopicID] = t.Topic
	}
	out := &FetchResponse{}
	for _, t := range resp.Topics {
		name := t.Topic
		if resp.Version >= 13 {
			n, ok := names[t.TopicID]
			if !ok {
				continue
			}
			name = n
		}
		for _, p := range t.Partitions {
			fp := FetchedPartition{Topic: name, Partition: p.Partition, Err: kerr.ErrorForCode(p.ErrorCode),
				HighWatermark: p.HighWatermark, LogStartOffset: p.LogStartOffset, Records: p.RecordBatches}
			if d := p.DivergingEpoch; d.Epoch >= 0 && d.EndOffset >= 0 {
				fp.Diverging = &EpochEndOffset{Epoch: d.Epoch, EndOffset: d.EndOffset}
			}
			out.Partitions = append(out.Partitions, fp)
		}
	}
	return out, nil
}

// Fetch implements LeaderClient.
func (c *kgoClient) Fetch(ctx context.Context, r *FetchRequest) (*FetchResponse, error) {
	req := buildFetch(r)
	kresp, err := c.br.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, ok := kresp.(*kmsg.FetchResponse)
	if !ok {
		return nil, fmt.Errorf("replica: fetch: unexpected response %T", kresp)
	}
	if resp.Version < minFetchVersion {
		return nil, fmt.Errorf("replica: leader answered Fetch v%d, need v%d+", resp.Version, minFetchVersion)
	}
	return parseFetch(req, resp)
}

func buildEpochRequest(r *EpochRequest) *kmsg.OffsetForLeaderEpochRequest {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = r.ReplicaID
	idx := map[string]int{}
	for _, p := range r.Partitions {
		i, ok := idx[p.Topic]
		if !ok {
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = p.Topic
			i = len(req.Topics)
			idx[p.Topic] = i
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = p.Partition
		rp.CurrentLeaderEpoch = p.CurrentLeaderEpoch
		rp.LeaderEpoch = p.LeaderEpoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	return req
}

func parseEpochResponse(resp *kmsg.OffsetForLeaderEpochResponse) *EpochResponse {
	out := &EpochResponse{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out.Partitions = append(out.Partitions, EpochAnswer{Topic: t.Topic, Partition: p.Partition,
				Err: kerr.ErrorForCode(p.ErrorCode), EpochEndOffset: EpochEndOffset{Epoch: p.LeaderEpoch, EndOffset: p.EndOffset}})
		}
	}
	return out
}

// OffsetForLeaderEpoch implements LeaderClient.
func (c *kgoClient) OffsetForLeaderEpoch(ctx context.Context, r *EpochRequest) (*EpochResponse, error) {
	kresp, err := c.br.Request(ctx, buildEpochRequest(r))
	if err != nil {
		return nil, err
	}
	resp, ok := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	if !ok {
		return nil, fmt.Errorf("replica: OffsetForLeaderEpoch: unexpected response %T", kresp)
	}
	if resp.Version < minEpochRequestVersion {
		return nil, fmt.Errorf("replica: leader answered OffsetForLeaderEpoch v%d, need v%d+", resp.Version, minEpochRequestVersion)
	}
	return parseEpochResponse(resp), nil
}
