package batch

import (
	"encoding/binary"
	"fmt"
)

// ControlType is the type of a control record (the record of a batch whose
// control attribute is set): Kafka's ControlRecordType.
type ControlType int16

// Control record types. Part of the wire format.
const (
	ControlAbort  ControlType = 0 // transaction abort marker
	ControlCommit ControlType = 1 // transaction commit marker
	// Types 2 and up are KRaft's (leader change, snapshot header and
	// footer, ...); they never occur in data partitions.
)

// ErrControl marks a control record that does not parse.
var ErrControl = fmt.Errorf("%w: malformed control record", ErrCorrupt)

// ControlRecord is a decoded control record. The key holds Version and
// Type (int16 each); for transaction markers (abort/commit) the value holds
// a version (int16) and CoordinatorEpoch (int32).
type ControlRecord struct {
	Version          int16 // key version; 0 today
	Type             ControlType
	CoordinatorEpoch int32 // markers only; -1 when the value is absent
}

// IsTxnMarker reports whether c is a transaction commit or abort marker.
func (c ControlRecord) IsTxnMarker() bool {
	return c.Type == ControlAbort || c.Type == ControlCommit
}

// ParseControlKey decodes a control record's key: version int16, then
// type int16. Like Kafka, it needs at least 4 bytes and a non-negative
// version, and it ignores bytes after the type (later key versions may add
// fields).
func ParseControlKey(key []byte) (version int16, typ ControlType, err error) {
	if len(key) < 4 {
		return 0, 0, fmt.Errorf("%w: key of %d bytes", ErrControl, len(key))
	}
	version = int16(binary.BigEndian.Uint16(key))
	if version < 0 {
		return 0, 0, fmt.Errorf("%w: key version %d", ErrControl, version)
	}
	return version, ControlType(binary.BigEndian.Uint16(key[2:])), nil
}

// ParseControl decodes a control record. For a transaction marker the value
// must hold at least version (int16) and coordinator epoch (int32); later
// value versions may append fields, which are ignored.
func ParseControl(r *Record) (ControlRecord, error) {
	v, t, err := ParseControlKey(r.Key)
	if err != nil {
		return ControlRecord{}, err
	}
	c := ControlRecord{Version: v, Type: t, CoordinatorEpoch: -1}
	if !c.IsTxnMarker() {
		return c, nil
	}
	if len(r.Value) < 6 {
		return c, fmt.Errorf("%w: marker value of %d bytes", ErrControl, len(r.Value))
	}
	if vv := int16(binary.BigEndian.Uint16(r.Value)); vv < 0 {
		return c, fmt.Errorf("%w: marker value version %d", ErrControl, vv)
	}
	c.CoordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
	return c, nil
}

// AppendKey appends the control record key (version, type).
func (c ControlRecord) AppendKey(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Version))
	return binary.BigEndian.AppendUint16(dst, uint16(c.Type))
}

// AppendValue appends a version-0 transaction-marker value
// (version, coordinator epoch).
func (c ControlRecord) AppendValue(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(c.CoordinatorEpoch))
}

// ControlBatch returns the batch holding one transaction marker at offset
// for the given producer, as a transaction coordinator writes it
// (transactional and control bits set, CreateTime ts).
func ControlBatch(offset int64, producerID int64, producerEpoch int16, c ControlRecord, ts int64) ([]byte, error) {
	h := Header{
		BaseOffset:    offset,
		Attributes:    AttrTransactional | AttrControl,
		ProducerID:    producerID,
		ProducerEpoch: producerEpoch,
		BaseSequence:  -1,
	}
	rec := Record{Offset: offset, Timestamp: ts, Key: c.AppendKey(nil), Value: c.AppendValue(nil)}
	return Build(h, []Record{rec}, CodecNone)
}
