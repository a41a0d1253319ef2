package protocol

import (
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EncodeFetchResponse serializes a Fetch response for h.Version (0 through
// kmsg's maximum; flexible from v12, topic IDs from v13) with the response
// header for h.CorrelationID.
//
// For every partition, regions(t, p) gives the file regions holding the
// records of resp.Topics[t].Partitions[p]. The records length prefix is
// written from their total length and the regions follow it in the Message
// without being read. When regions returns nil, the partition's
// RecordBatches field is encoded as kmsg encodes it: nil is a null records
// field, a non-nil empty slice an empty one (what Kafka sends for a
// partition without data). regions may be nil itself, meaning nil for all.
//
// The bytes on the wire are exactly those kmsg.FetchResponse.AppendTo would
// produce with the region bytes in RecordBatches. resp is not modified.
func EncodeFetchResponse(h Header, resp *kmsg.FetchResponse, regions func(t, p int) []Region) *Message {
	m := newMessage()
	flexible := h.Version >= 12
	m.buf = AppendResponseHeader(m.buf, 1, flexible, h.CorrelationID)
	w := fetchWriter{m: m, version: h.Version, flexible: flexible, regions: regions}
	m.buf = w.appendResponse(m.buf, resp)
	m.finish(w.from)
	return m
}

// fetchWriter follows kmsg's generated FetchResponse.AppendTo field by
// field. Where a partition's records come from regions, it ends the current
// byte part of m at the length prefix and adds the regions as parts.
type fetchWriter struct {
	m        *Message
	version  int16
	flexible bool
	regions  func(t, p int) []Region
	from     int // start of the current byte part in m.buf
}

func (w *fetchWriter) appendResponse(dst []byte, r *kmsg.FetchResponse) []byte {
	v := w.version
	if v >= 1 {
		dst = kbin.AppendInt32(dst, r.ThrottleMillis)
	}
	if v >= 7 {
		dst = kbin.AppendInt16(dst, r.ErrorCode)
		dst = kbin.AppendInt32(dst, r.SessionID)
	}
	dst = w.appendArrayLen(dst, len(r.Topics))
	for t := range r.Topics {
		dst = w.appendTopic(dst, t, &r.Topics[t])
	}
	if w.flexible {
		n := r.UnknownTags.Len()
		if len(r.Brokers) > 0 {
			n++
		}
		dst = kbin.AppendUvarint(dst, uint32(n))
		if len(r.Brokers) > 0 {
			dst = kbin.AppendUvarint(dst, 0) // tag 0: NodeEndpoints
			at := len(dst)
			dst = w.appendBrokers(dst, r.Brokers)
			dst = insertSize(dst, at)
		}
		dst = r.UnknownTags.AppendEach(dst)
	}
	return dst
}

func (w *fetchWriter) appendTopic(dst []byte, t int, topic *kmsg.FetchResponseTopic) []byte {
	if w.version <= 12 {
		dst = w.appendString(dst, topic.Topic)
	}
	if w.version >= 13 {
		dst = kbin.AppendUuid(dst, topic.TopicID)
	}
	dst = w.appendArrayLen(dst, len(topic.Partitions))
	for p := range topic.Partitions {
		dst = w.appendPartition(dst, t, p, &topic.Partitions[p])
	}
	if w.flexible {
		dst = kbin.AppendUvarint(dst, uint32(topic.UnknownTags.Len()))
		dst = topic.UnknownTags.AppendEach(dst)
	}
	return dst
}

func (w *fetchWriter) appendPartition(dst []byte, t, p int, part *kmsg.FetchResponseTopicPartition) []byte {
	v := w.version
	dst = kbin.AppendInt32(dst, part.Partition)
	dst = kbin.AppendInt16(dst, part.ErrorCode)
	dst = kbin.AppendInt64(dst, part.HighWatermark)
	if v >= 4 {
		dst = kbin.AppendInt64(dst, part.LastStableOffset)
	}
	if v >= 5 {
		dst = kbin.AppendInt64(dst, part.LogStartOffset)
	}
	if v >= 4 {
		txns := part.AbortedTransactions
		if w.flexible {
			dst = kbin.AppendCompactNullableArrayLen(dst, len(txns), txns == nil)
		} else {
			dst = kbin.AppendNullableArrayLen(dst, len(txns), txns == nil)
		}
		for i := range txns {
			dst = kbin.AppendInt64(dst, txns[i].ProducerID)
			dst = kbin.AppendInt64(dst, txns[i].FirstOffset)
			if w.flexible {
				dst = kbin.AppendUvarint(dst, uint32(txns[i].UnknownTags.Len()))
				dst = txns[i].UnknownTags.AppendEach(dst)
			}
		}
	}
	if v >= 11 {
		dst = kbin.AppendInt32(dst, part.PreferredReadReplica)
	}
	dst = w.appendRecords(dst, t, p, part.RecordBatches)
	if w.flexible {
		dst = appendPartitionTags(dst, part)
	}
	return dst
}

// appendRecords writes the records field: from regions when there are any,
// else the inline bytes as kmsg would.
func (w *fetchWriter) appendRecords(dst []byte, t, p int, inline []byte) []byte {
	var rs []Region
	if w.regions != nil {
		rs = w.regions(t, p)
	}
	if rs == nil {
		if w.flexible {
			return kbin.AppendCompactNullableBytes(dst, inline)
		}
		return kbin.AppendNullableBytes(dst, inline)
	}
	var total int64
	for _, r := range rs {
		total += r.Len
	}
	if w.flexible {
		dst = kbin.AppendUvarint(dst, uint32(total+1))
	} else {
		dst = kbin.AppendInt32(dst, int32(total))
	}
	m := w.m
	m.buf = dst
	w.from = m.cut(w.from)
	for _, r := range rs {
		m.addRegion(r)
	}
	return m.buf
}

// appendPartitionTags writes the partition's tagged fields in kmsg's order:
// DivergingEpoch (0), CurrentLeader (1), SnapshotID (2) when they differ
// from their defaults (-1 fields, no unknown tags), then unknown tags.
func appendPartitionTags(dst []byte, part *kmsg.FetchResponseTopicPartition) []byte {
	de, cl, si := &part.DivergingEpoch, &part.CurrentLeader, &part.SnapshotID
	hasDE := de.Epoch != -1 || de.EndOffset != -1 || de.UnknownTags.Len() > 0
	hasCL := cl.LeaderID != -1 || cl.LeaderEpoch != -1 || cl.UnknownTags.Len() > 0
	hasSI := si.EndOffset != -1 || si.Epoch != -1 || si.UnknownTags.Len() > 0
	n := part.UnknownTags.Len()
	for _, has := range [...]bool{hasDE, hasCL, hasSI} {
		if has {
			n++
		}
	}
	dst = kbin.AppendUvarint(dst, uint32(n))
	if hasDE {
		dst = kbin.AppendUvarint(dst, 0)
		at := len(dst)
		dst = kbin.AppendInt32(dst, de.Epoch)
		dst = kbin.AppendInt64(dst, de.EndOffset)
		dst = appendTags(dst, &de.UnknownTags)
		dst = insertSize(dst, at)
	}
	if hasCL {
		dst = kbin.AppendUvarint(dst, 1)
		at := len(dst)
		dst = kbin.AppendInt32(dst, cl.LeaderID)
		dst = kbin.AppendInt32(dst, cl.LeaderEpoch)
		dst = appendTags(dst, &cl.UnknownTags)
		dst = insertSize(dst, at)
	}
	if hasSI {
		dst = kbin.AppendUvarint(dst, 2)
		at := len(dst)
		dst = kbin.AppendInt64(dst, si.EndOffset)
		dst = kbin.AppendInt32(dst, si.Epoch)
		dst = appendTags(dst, &si.UnknownTags)
		dst = insertSize(dst, at)
	}
	return part.UnknownTags.AppendEach(dst)
}

func (w *fetchWriter) appendBrokers(dst []byte, brokers []kmsg.FetchResponseBroker) []byte {
	dst = w.appendArrayLen(dst, len(brokers))
	for i := range brokers {
		b := &brokers[i]
		dst = kbin.AppendInt32(dst, b.NodeID)
		dst = w.appendString(dst, b.Host)
		dst = kbin.AppendInt32(dst, b.Port)
		if w.flexible {
			dst = kbin.AppendCompactNullableString(dst, b.Rack)
		} else {
			dst = kbin.AppendNullableString(dst, b.Rack)
		}
		if w.flexible {
			dst = appendTags(dst, &b.UnknownTags)
		}
	}
	return dst
}

func (w *fetchWriter) appendArrayLen(dst []byte, n int) []byte {
	if w.flexible {
		return kbin.AppendCompactArrayLen(dst, n)
	}
	return kbin.AppendArrayLen(dst, n)
}

func (w *fetchWriter) appendString(dst []byte, s string) []byte {
	if w.flexible {
		return kbin.AppendCompactString(dst, s)
	}
	return kbin.AppendString(dst, s)
}

// appendTags writes a tagged-field section holding only unknown tags.
func appendTags(dst []byte, tags *kmsg.Tags) []byte {
	dst = kbin.AppendUvarint(dst, uint32(tags.Len()))
	return tags.AppendEach(dst)
}

// insertSize inserts, at at, the uvarint length of dst[at:]: the size
// prefix of a tagged field written after the fact.
func insertSize(dst []byte, at int) []byte {
	n := uint32(len(dst) - at)
	var tmp [5]byte
	size := kbin.AppendUvarint(tmp[:0], n)
	dst = append(dst, size...) // grow by len(size)
	copy(dst[at+len(size):], dst[at:at+int(n)])
	copy(dst[at:], size)
	return dst
}
