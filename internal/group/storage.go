package group

// The __consumer_offsets record format, Kafka's (kmsg types):
//
//	key version 0/1  OffsetCommitKey    group, topic, partition
//	                 value OffsetCommitValue v3 (offset, leader epoch,
//	                 metadata, commit time), or v1 (with an expire time)
//	                 for OffsetCommit v2-4 with a retention time
//	key version 2    GroupMetadataKey   group
//	                 value GroupMetadataValue v3 (protocol type,
//	                 generation, protocol, leader, state time, members
//	                 with instance id, timeouts, subscription, assignment)
//	key version 3+   records of KIP-848/share groups: skipped
//
// A null value is a tombstone. Records are written as uncompressed magic v2
// batches, one per write; replay keeps the last value per key.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Record versions written. Part of the on-disk format: do not change.
const (
	offsetKeyVersion        = 1
	groupKeyVersion         = 2
	offsetValueVersion      = 3
	offsetValueVersionTTL   = 1 // with an expire timestamp
	groupValueVersion       = 3
	maxOffsetValueVersion   = 4
	maxGroupValueVersion    = 4
	maxLoadDecompressedSize = 64 << 20
)

func offsetRecord(group, topic string, partition int32, o offset) record {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset = o.offset
	v.LeaderEpoch = o.leaderEpoch
	v.Metadata = o.metadata
	v.CommitTimestamp = o.commitTime.UnixMilli()
	if !o.expireTime.IsZero() {
		v.Version = offsetValueVersionTTL
		v.ExpireTimestamp = o.expireTime.UnixMilli()
	}
	return record{key: offsetKey(group, topic, partition), value: v.AppendTo(nil)}
}

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = offsetKeyVersion
	k.Group, k.Topic, k.Partition = group, topic, partition
	return k.AppendTo(nil)
}

func offsetTombstone(group, topic string, partition int32) record {
	return record{key: offsetKey(group, topic, partition)}
}

func groupKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = groupKeyVersion
	k.Group = group
	return k.AppendTo(nil)
}

func groupTombstone(group string) record { return record{key: groupKey(group)} }

// groupRecord is the group's metadata; assignment overrides the members'
// current assignments when not nil.
func groupRecord(g *group, assignment map[string][]byte, now time.Time) record {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	v.Protocol = optString(g.protocol)
	v.Leader = optString(g.leader)
	v.CurrentStateTimestamp = now.UnixMilli()
	if !g.stateTime.IsZero() {
		v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	}
	for _, m := range g.members {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadataFor(g.protocol)
		if vm.Subscription == nil {
			vm.Subscription = []byte{}
		}
		vm.Assignment = m.assignment
		if assignment != nil {
			vm.Assignment = assignment[m.id]
		}
		if vm.Assignment == nil {
			vm.Assignment = []byte{}
		}
		v.Members = append(v.Members, vm)
	}
	return record{key: groupKey(g.id), value: v.AppendTo(nil)}
}

// buildBatch encodes records as one uncompressed magic-v2 batch; the log
// assigns its offsets.
func buildBatch(dst []byte, records []record, now time.Time) ([]byte, error) {
	recs := make([]batch.Record, len(records))
	ts := now.UnixMilli()
	for i, r := range records {
		recs[i] = batch.Record{Offset: int64(i), Timestamp: ts, Key: r.key, Value: r.value}
	}
	return batch.AppendBatch(dst, batch.Header{
		PartitionLeaderEpoch: -1,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		BaseSequence:         -1,
	}, recs, batch.CodecNone)
}

// loader replays a __consumer_offsets partition: the last value per key
// wins and a tombstone deletes.
type loader struct {
	dec     batch.Decoder
	offsets map[string]map[tp]offset // group → offsets
	groups  map[string]*kmsg.GroupMetadataValue
	skipped int // records that do not decode, or of unknown versions

	// Transactional offset commits (txn.go): records of open
	// transactions by producer id, replayed when the commit marker comes
	// and dropped by an abort marker; the producers' next sequences.
	txnRecords map[int64][]record
	txnSeq     map[int64]*producerSeq
}

func newLoader() *loader {
	l := &loader{
		offsets: make(map[string]map[tp]offset),
		groups:  make(map[string]*kmsg.GroupMetadataValue),

		txnRecords: make(map[int64][]record),
		txnSeq:     make(map[int64]*producerSeq),
	}
	l.dec.MaxSize = maxLoadDecompressedSize
	return l
}

// batch replays one batch. A batch that does not decode is an error
// (ErrCorrupt); a record that does not is skipped and counted.
func (l *loader) batch(b []byte) error {
	h, recs, err := l.dec.Decode(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if h.IsControl() {
		if seq := l.txnSeq[h.ProducerID]; seq != nil && h.ProducerEpoch > seq.epoch {
			l.txnSeq[h.ProducerID] = &producerSeq{epoch: h.ProducerEpoch}
		}
		if len(recs) == 0 {
			return nil
		}
		c, err := batch.ParseControl(&recs[0])
		if err != nil || !c.IsTxnMarker() {
			return nil // not a transaction marker: nothing to replay
		}
		pending := l.txnRecords[h.ProducerID]
		delete(l.txnRecords, h.ProducerID)
		if c.Type == batch.ControlCommit {
			for _, r := range pending {
				if err := l.record(r.key, r.value); err != nil {
					l.skipped++
				}
			}
		}
		return nil
	}
	if h.IsTransactional() && h.ProducerID >= 0 {
		for i := range recs {
			l.txnRecords[h.ProducerID] = append(l.txnRecords[h.ProducerID], record{key: bytes.Clone(recs[i].Key), value: cloneNil(recs[i].Value)})
		}
		l.txnSeq[h.ProducerID] = &producerSeq{epoch: h.ProducerEpoch, next: h.BaseSequence + h.LastOffsetDelta + 1}
		return nil
	}
	for i := range recs {
		if err := l.record(recs[i].Key, recs[i].Value); err != nil {
			l.skipped++
		}
	}
	return nil
}

// record replays one record.
func (l *loader) record(key, value []byte) error {
	if len(key) < 2 {
		return fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(key))
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("%w: offset key: %w", ErrCorrupt, err)
		}
		t := tp{k.Topic, k.Partition}
		if value == nil {
			if m := l.offsets[k.Group]; m != nil {
				delete(m, t)
			}
			return nil
		}
		o, err := decodeOffsetValue(value)
		if err != nil {
			return err
		}
		m := l.offsets[k.Group]
		if m == nil {
			m = make(map[tp]offset)
			l.offsets[k.Group] = m
		}
		m[t] = o
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return fmt.Errorf("%w: group key: %w", ErrCorrupt, err)
		}
		if value == nil {
			delete(l.groups, k.Group)
			delete(l.offsets, k.Group) // written with the group's tombstones anyway
			return nil
		}
		v, err := decodeGroupValue(value)
		if err != nil {
			return err
		}
		l.groups[k.Group] = v
	default:
		return fmt.Errorf("%w: unknown key version %d", ErrCorrupt, version)
	}
	return nil
}

func decodeOffsetValue(b []byte) (offset, error) {
	var v kmsg.OffsetCommitValue
	if len(b) < 2 {
		return offset{}, fmt.Errorf("%w: offset value of %d bytes", ErrCorrupt, len(b))
	}
	if ver := int16(binary.BigEndian.Uint16(b)); ver < 0 || ver > maxOffsetValueVersion {
		return offset{}, fmt.Errorf("%w: offset value version %d", ErrCorrupt, ver)
	}
	if err := v.ReadFrom(b); err != nil {
		return offset{}, fmt.Errorf("%w: offset value: %w", ErrCorrupt, err)
	}
	o := offset{
		offset:      v.Offset,
		leaderEpoch: v.LeaderEpoch,
		metadata:    v.Metadata,
		commitTime:  time.UnixMilli(v.CommitTimestamp),
	}
	if v.Version < 3 {
		o.leaderEpoch = -1
	}
	if v.Version == 1 && v.ExpireTimestamp >= 0 {
		o.expireTime = time.UnixMilli(v.ExpireTimestamp)
	}
	return o, nil
}

// minGroupMember is the smallest encoding of a GroupMetadataValue member
// per value version (empty strings and bytes, no tags), used to bound the
// member count by the bytes left before kmsg allocates for it.
var minGroupMember = [maxGroupValueVersion + 1]int{
	0: 2 + 2 + 2 + 4 + 4 + 4,
	1: 2 + 2 + 2 + 4 + 4 + 4 + 4,
	2: 2 + 2 + 2 + 4 + 4 + 4 + 4,
	3: 2 + 2 + 2 + 2 + 4 + 4 + 4 + 4,
	4: 1 + 1 + 1 + 1 + 4 + 4 + 1 + 1 + 1,
}

func decodeGroupValue(b []byte) (*kmsg.GroupMetadataValue, error) {
	if err := checkGroupValue(b); err != nil {
		return nil, err
	}
	v := new(kmsg.GroupMetadataValue)
	if err := v.ReadFrom(b); err != nil {
		return nil, fmt.Errorf("%w: group value: %w", ErrCorrupt, err)
	}
	for i := range v.Members {
		m := &v.Members[i]
		m.Subscription = bytes.Clone(m.Subscription)
		m.Assignment = bytes.Clone(m.Assignment)
	}
	return v, nil
}

// checkGroupValue walks a GroupMetadataValue up to its member count and
// checks that count against the bytes left, so garbage cannot make the
// decoder allocate far more than its input.
func checkGroupValue(b []byte) error {
	r := kbin.Reader{Src: b}
	ver := r.Int16()
	if ver < 0 || ver > maxGroupValueVersion {
		return fmt.Errorf("%w: group value version %d", ErrCorrupt, ver)
	}
	flex := ver >= 4
	str := func() {
		if flex {
			if n := int(r.Uvarint()) - 1; n > 0 {
				r.Span(n)
			}
		} else if n := int(r.Int16()); n > 0 {
			r.Span(n)
		}
	}
	str()     // protocol type
	r.Int32() // generation
	str()     // protocol
	str()     // leader
	if ver >= 2 {
		r.Int64() // current state timestamp
	}
	var n int
	if flex {
		n = int(r.Uvarint()) - 1
	} else {
		n = int(r.Int32())
	}
	if !r.Ok() {
		return fmt.Errorf("%w: group value truncated", ErrCorrupt)
	}
	if n > len(r.Src)/minGroupMember[ver] {
		return fmt.Errorf("%w: group value claims %d members in %d bytes", ErrCorrupt, n, len(r.Src))
	}
	return nil
}

// install builds the partition's groups from what was replayed. Groups
// with members come back Stable (sessions restart now), the others Empty;
// offsets without group metadata belong to Empty "simple" groups.
func (l *loader) install(s *partitionState) {
	for id, v := range l.groups {
		g := s.newGroup(id)
		g.protocolType = v.ProtocolType
		g.generation = v.Generation
		g.protocol = derefString(v.Protocol)
		g.leader = derefString(v.Leader)
		g.stateTime = time.Time{}
		if v.CurrentStateTimestamp >= 0 {
			g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
		}
		for _, vm := range v.Members {
			if g.byID[vm.MemberID] != nil {
				continue
			}
			m := &member{
				id:             vm.MemberID,
				clientID:       vm.ClientID,
				clientHost:     vm.ClientHost,
				protocolType:   v.ProtocolType,
				protocols:      []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: vm.Subscription}},
				sessionTimeout: time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
				assignment:     vm.Assignment,
			}
			m.rebalanceTimeout = m.sessionTimeout
			if vm.RebalanceTimeoutMillis >= 0 {
				m.rebalanceTimeout = time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond
			}
			if vm.InstanceID != nil {
				inst := *vm.InstanceID
				m.instanceID = &inst
			}
			g.add(m, nil)
			m.deadline = s.after(m.sessionTimeout)
		}
		if g.leader != "" && g.byID[g.leader] == nil {
			g.leader = ""
			if len(g.members) > 0 {
				g.leader = g.members[0].id
			}
		}
		g.state, g.prevState = stateEmpty, stateEmpty
		if len(g.members) > 0 {
			g.state = stateStable
			if g.stateTime.IsZero() {
				g.stateTime = s.now
			}
		}
		g.subscribed = g.computeSubscribedTopics()
	}
	for id, offs := range l.offsets {
		if len(offs) == 0 {
			continue
		}
		g := s.groups[id]
		if g == nil {
			g = s.newGroup(id)
			g.stateTime = time.Time{}
		}
		for t, o := range offs {
			g.setOffset(t, o)
		}
	}
	for _, g := range s.groups {
		s.rearm(g)
	}
	for pid, seq := range l.txnSeq {
		s.txnSeq[pid] = seq
	}
	for pid, recs := range l.txnRecords {
		tmp := newLoader()
		for _, r := range recs {
			if err := tmp.record(r.key, r.value); err != nil {
				l.skipped++
			}
		}
		for group, offs := range tmp.offsets {
			s.addPending(pid, group, offs)
		}
	}
}

func cloneNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}
