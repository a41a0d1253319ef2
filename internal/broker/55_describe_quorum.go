package broker

// DescribeQuorum: v0-2
//
// Behavior:
//   - Describes the metadata quorum (topic __cluster_metadata, partition
//     0, as Kafka): the active controller (LeaderID; -1 when none is
//     known), the voters (CurrentVoters) and the broker-only nodes that
//     follow the metadata as Raft non-voters (Observers), as this broker
//     last saw the Raft configuration.
//   - LeaderEpoch, HighWatermark and the replicas' offsets and timestamps
//     are -1: hashicorp/raft's terms and indexes are not Kafka's metadata
//     log offsets, and are not reported.
//   - Another topic or partition: UNKNOWN_TOPIC_OR_PARTITION.
//   - v2 lists every member in Nodes with its controller listener
//     ("CONTROLLER", the Raft address).
//
// Version notes:
//   - v1: replica timestamps; v2: ErrorMessage, ReplicaDirectoryID, Nodes

import (
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(55, 0, 2, (*Broker).handleDescribeQuorum) }

// metadataTopic is Kafka's name for the metadata log.
const metadataTopic = "__cluster_metadata"

func (b *Broker) handleDescribeQuorum(r *request, req *kmsg.DescribeQuorumRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeQuorumResponse)
	members, membersErr := b.meta.Members()
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeQuorumResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDescribeQuorumResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderID, sp.LeaderEpoch, sp.HighWatermark = -1, -1, -1
			switch {
			case rt.Topic != metadataTopic || rp.Partition != 0:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case membersErr != nil:
				sp.ErrorCode = kerr.UnknownServerError.Code
				sp.ErrorMessage = errMessage(membersErr)
			default:
				sp.LeaderID = b.meta.ControllerID()
				sp.CurrentVoters = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
				sp.Observers = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
				for _, m := range members {
					rs := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
					rs.ReplicaID, rs.LogEndOffset = m.NodeID, -1
					if m.Voter {
						sp.CurrentVoters = append(sp.CurrentVoters, rs)
					} else {
						sp.Observers = append(sp.Observers, rs)
					}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Version >= 2 && membersErr == nil {
		for _, m := range members {
			host, p, err := net.SplitHostPort(m.Addr)
			port, perr := strconv.ParseUint(p, 10, 16)
			if err != nil || perr != nil {
				continue
			}
			n := kmsg.NewDescribeQuorumResponseNode()
			n.NodeID = m.NodeID
			l := kmsg.NewDescribeQuorumResponseNodeListener()
			l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(port)
			n.Listeners = append(n.Listeners, l)
			resp.Nodes = append(resp.Nodes, n)
		}
	}
	return resp
}
