package group

// ListGroups and DescribeGroups.

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// classicGroupType is the group type ListGroups v5+ reports (KIP-848
// "consumer" groups are not implemented).
const classicGroupType = "classic"

// list answers ListGroups for this partition; states and types are
// lower-cased filters (Kafka matches them case-insensitively).
func (s *partitionState) list(states, types []string) []kmsg.ListGroupsResponseGroup {
	if len(types) > 0 && !slices.Contains(types, classicGroupType) {
		return nil
	}
	out := make([]kmsg.ListGroupsResponseGroup, 0, len(s.groups))
	for _, g := range s.groups {
		if len(states) > 0 && !slices.Contains(states, strings.ToLower(g.state.String())) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = g.id
		lg.ProtocolType = g.protocolType
		lg.GroupState = g.state.String()
		lg.GroupType = classicGroupType
		out = append(out, lg)
	}
	slices.SortFunc(out, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	return out
}

// describe answers DescribeGroups for one group. A group that does not
// exist is reported Dead with no error (before v6, as Kafka does). Member
// metadata and assignments are shown only while the group is Stable.
func (s *partitionState) describe(id string) kmsg.DescribeGroupsResponseGroup {
	dg := kmsg.NewDescribeGroupsResponseGroup()
	dg.Group = id
	g := s.groups[id]
	if g == nil {
		dg.State = stateDead.String()
		return dg
	}
	dg.State = g.state.String()
	dg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		dg.Protocol = g.protocol
	}
	for _, m := range g.members {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID = m.id
		dm.InstanceID = m.instanceID
		dm.ClientID = m.clientID
		dm.ClientHost = m.clientHost
		dm.ProtocolMetadata, dm.MemberAssignment = []byte{}, []byte{}
		if stable {
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			if m.assignment != nil {
				dm.MemberAssignment = m.assignment
			}
		}
		dg.Members = append(dg.Members, dm)
	}
	return dg
}
