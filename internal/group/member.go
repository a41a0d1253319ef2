package group

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// member is one member of a classic group.
type member struct {
	id         string
	instanceID *string // group.instance.id of a static member (KIP-345)
	clientID   string
	clientHost string

	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol // in the member's order of preference
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration

	assignment []byte

	// isNew is set from the member's first join until its first join
	// response: a new member parked in JoinGroup is dropped after
	// newMemberJoinTimeout rather than kept alive by the rebalance.
	isNew bool
	// joinReply and syncReply are the parked JoinGroup and SyncGroup of
	// the member, if any (nil when none).
	joinReply *joinWaiter
	syncReply *syncWaiter
	// deadline is when the member's session expires (its heartbeat timer).
	deadline time.Time
}

// joinWaiter is a parked JoinGroup.
type joinWaiter struct {
	version int16
	reply   func(*kmsg.JoinGroupResponse)
}

// syncWaiter is a parked SyncGroup.
type syncWaiter struct {
	version int16
	reply   func(*kmsg.SyncGroupResponse)
}

func (m *member) isStatic() bool         { return m.instanceID != nil }
func (m *member) awaitingJoin() bool     { return m.joinReply != nil }
func (m *member) awaitingSync() bool     { return m.syncReply != nil }
func (m *member) supports(p string) bool { return m.metadataFor(p) != nil }

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// hasSatisfiedHeartbeat is Kafka's check when the session timer fires: a
// new member must have been answered by then; an old one waiting in a
// rebalance counts as alive.
func (m *member) hasSatisfiedHeartbeat() bool {
	if m.isNew {
		return false
	}
	return m.awaitingJoin() || m.awaitingSync()
}

// metadataFor returns the member's metadata for protocol p, or nil if the
// member does not support p. Supported protocols with empty metadata
// return a non-nil empty slice.
func (m *member) metadataFor(p string) []byte {
	for i := range m.protocols {
		if m.protocols[i].Name == p {
			if m.protocols[i].Metadata == nil {
				return []byte{}
			}
			return m.protocols[i].Metadata
		}
	}
	return nil
}

// matches reports whether protocols equal the member's, in order and with
// the same metadata: a rejoin that changes nothing.
func (m *member) matches(protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(protocols) != len(m.protocols) {
		return false
	}
	for i := range protocols {
		if protocols[i].Name != m.protocols[i].Name || !bytes.Equal(protocols[i].Metadata, m.protocols[i].Metadata) {
			return false
		}
	}
	return true
}

// vote is the member's most preferred protocol among the candidates.
func (m *member) vote(candidates map[string]bool) string {
	for _, p := range m.protocols {
		if candidates[p.Name] {
			return p.Name
		}
	}
	return ""
}

// cloneProtocols copies a join request's protocols so the member keeps no
// reference into the request.
func cloneProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(ps))
	for i, p := range ps {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	return out
}

// randomMemberID is Kafka's member id: the client id (or the group instance
// id of a static member), a dash and a random UUID.
func randomMemberID(clientID string, instanceID *string) string {
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return prefix + "-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Client identifies the client behind a request: Kafka keeps both per
// member and shows them in DescribeGroups.
type Client struct {
	ID   string // the request header's client id
	Host string // the client's address, as Kafka shows it ("/10.0.0.1")
}

type clientKey struct{}

// WithClient returns a context carrying the client of a request; the
// broker wraps the ctx it passes to JoinGroup with it. Without it the
// member's client id and host are empty.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

func clientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}
