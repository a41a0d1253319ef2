package txn

import (
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transaction metadata: the state of one transactional id, as Kafka's
// TransactionMetadata keeps it and writes it to __transaction_state. The
// functions here are the state machine only (no goroutines, clocks or
// I/O): the coordinator (coordinator.go) calls them holding the id's
// mutex, writes the resulting record durably, and only then installs the
// new Metadata.
//
// Transitions (Kafka's TransactionState.validPreviousStates):
//
//	Empty             <- Empty, CompleteCommit, CompleteAbort
//	Ongoing           <- Ongoing, Empty, CompleteCommit, CompleteAbort
//	PrepareCommit     <- Ongoing
//	PrepareAbort      <- Ongoing, PrepareEpochFence
//	CompleteCommit    <- PrepareCommit
//	CompleteAbort     <- PrepareAbort
//	Dead              <- Empty, CompleteCommit, CompleteAbort
//	PrepareEpochFence <- Ongoing

// State is a transaction state; the values are Kafka's (TransactionState
// in the __transaction_state value).
type State int8

// Transaction states. Part of the __transaction_state format.
const (
	Empty             State = 0
	Ongoing           State = 1
	PrepareCommit     State = 2
	PrepareAbort      State = 3
	CompleteCommit    State = 4
	CompleteAbort     State = 5
	Dead              State = 6
	PrepareEpochFence State = 7
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

var validPrevious = map[State][]State{
	Empty:             {Empty, CompleteCommit, CompleteAbort},
	Ongoing:           {Ongoing, Empty, CompleteCommit, CompleteAbort},
	PrepareCommit:     {Ongoing},
	PrepareAbort:      {Ongoing, PrepareEpochFence},
	CompleteCommit:    {PrepareCommit},
	CompleteAbort:     {PrepareAbort},
	Dead:              {Empty, CompleteCommit, CompleteAbort},
	PrepareEpochFence: {Ongoing},
}

// CanTransition reports whether to may follow s.
func (s State) CanTransition(to State) bool {
	for _, p := range validPrevious[to] {
		if p == s {
			return true
		}
	}
	return false
}

// Partition is a partition in a transaction.
type Partition struct {
	Topic     string
	Partition int32
}

// Metadata is one transactional id's state.
type Metadata struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	TimeoutMs       int32
	State           State
	// Partitions are the partitions of the ongoing (or preparing)
	// transaction, including the __consumer_offsets partition of a group
	// added by AddOffsetsToTxn.
	Partitions   map[Partition]struct{}
	StartMs      int64 // when the transaction became Ongoing; -1 otherwise
	LastUpdateMs int64
}

// Clone returns a deep copy.
func (m *Metadata) Clone() *Metadata {
	c := *m
	c.Partitions = make(map[Partition]struct{}, len(m.Partitions))
	for p := range m.Partitions {
		c.Partitions[p] = struct{}{}
	}
	return &c
}

// SortedPartitions returns the partitions ordered by topic and partition.
func (m *Metadata) SortedPartitions() []Partition {
	ps := make([]Partition, 0, len(m.Partitions))
	for p := range m.Partitions {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Topic != ps[j].Topic {
			return ps[i].Topic < ps[j].Topic
		}
		return ps[i].Partition < ps[j].Partition
	})
	return ps
}

// ErrInvalidTransition marks a state change the state machine forbids.
var ErrInvalidTransition = errors.New("txn: invalid state transition")

// transition returns a copy of m moved to state at nowMs.
func (m *Metadata) transition(to State, nowMs int64) (*Metadata, error) {
	if !m.State.CanTransition(to) {
		return nil, fmt.Errorf("%w: %s: %s -> %s", ErrInvalidTransition, m.TransactionalID, m.State, to)
	}
	c := m.Clone()
	if to == Ongoing && m.State != Ongoing {
		c.StartMs = nowMs
	}
	if to == Empty || to == CompleteCommit || to == CompleteAbort {
		c.Partitions = map[Partition]struct{}{}
		c.StartMs = -1
	}
	c.State, c.LastUpdateMs = to, nowMs
	return c, nil
}

// checkProducer applies the producer id and epoch checks of
// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn.
func (m *Metadata) checkProducer(pid int64, epoch int16) error {
	if m.ProducerID != pid {
		return kerr.InvalidProducerIDMapping
	}
	if m.ProducerEpoch != epoch {
		return kerr.ProducerFenced
	}
	return nil
}

// AddPartitions is AddPartitionsToTxn (and AddOffsetsToTxn with the
// group's __consumer_offsets partition): the next metadata, or the error
// for the client. A transaction being completed answers
// CONCURRENT_TRANSACTIONS, which clients retry.
func (m *Metadata) AddPartitions(pid int64, epoch int16, parts []Partition, nowMs int64) (*Metadata, error) {
	if err := m.checkProducer(pid, epoch); err != nil {
		return nil, err
	}
	switch m.State {
	case PrepareCommit, PrepareAbort, PrepareEpochFence:
		return nil, kerr.ConcurrentTransactions
	case Dead:
		return nil, kerr.InvalidTxnState
	}
	c, err := m.transition(Ongoing, nowMs)
	if err != nil {
		return nil, kerr.InvalidTxnState
	}
	for _, p := range parts {
		c.Partitions[p] = struct{}{}
	}
	return c, nil
}

// EndResult says what EndTxn must do.
type EndResult struct {
	// Prepare is the metadata to write before the markers (PrepareCommit
	// or PrepareAbort); nil when the request is a retry of a finished
	// transaction (answer success, write nothing).
	Prepare *Metadata
}

// End is EndTxn: the prepared state, a retry detected, or the error for
// the client.
func (m *Metadata) End(pid int64, epoch int16, commit bool, nowMs int64) (EndResult, error) {
	if err := m.checkProducer(pid, epoch); err != nil {
		return EndResult{}, err
	}
	switch m.State {
	case Ongoing:
		to := PrepareAbort
		if commit {
			to = PrepareCommit
		}
		p, err := m.transition(to, nowMs)
		if err != nil {
			return EndResult{}, kerr.InvalidTxnState
		}
		return EndResult{Prepare: p}, nil
	case CompleteCommit:
		if commit {
			return EndResult{}, nil // a retry
		}
	case CompleteAbort:
		if !commit {
			return EndResult{}, nil
		}
	case PrepareCommit:
		if commit {
			return EndResult{}, kerr.ConcurrentTransactions
		}
	case PrepareAbort:
		if !commit {
			return EndResult{}, kerr.ConcurrentTransactions
		}
	}
	return EndResult{}, kerr.InvalidTxnState
}

// Complete is the state after every marker of a prepared transaction is
// written: CompleteCommit or CompleteAbort.
func (m *Metadata) Complete(nowMs int64) (*Metadata, error) {
	switch m.State {
	case PrepareCommit:
		return m.transition(CompleteCommit, nowMs)
	case PrepareAbort:
		return m.transition(CompleteAbort, nowMs)
	}
	return nil, fmt.Errorf("%w: %s: complete from %s", ErrInvalidTransition, m.TransactionalID, m.State)
}

// Expired reports whether an ongoing transaction has outlived its
// timeout (transaction.timeout.ms) at nowMs and must be aborted.
func (m *Metadata) Expired(nowMs int64) bool {
	return m.State == Ongoing && m.StartMs >= 0 && nowMs-m.StartMs > int64(m.TimeoutMs)
}

// Record encodes m as a __transaction_state record (Kafka's
// TransactionLogKey / TransactionLogValue, value version 0).
func (m *Metadata) Record() (key, value []byte) {
	k := kmsg.NewTxnMetadataKey()
	k.TransactionalID = m.TransactionalID
	v := kmsg.NewTxnMetadataValue()
	v.ProducerID, v.ProducerEpoch, v.TimeoutMillis = m.ProducerID, m.ProducerEpoch, m.TimeoutMs
	v.State = kmsg.TransactionState(m.State)
	v.LastUpdateTimestamp, v.StartTimestamp = m.LastUpdateMs, m.StartMs
	for _, p := range m.SortedPartitions() {
		if n := len(v.Topics); n > 0 && v.Topics[n-1].Topic == p.Topic {
			v.Topics[n-1].Partitions = append(v.Topics[n-1].Partitions, p.Partition)
			continue
		}
		t := kmsg.NewTxnMetadataValueTopic()
		t.Topic, t.Partitions = p.Topic, []int32{p.Partition}
		v.Topics = append(v.Topics, t)
	}
	return k.AppendTo(nil), v.AppendTo(nil)
}

// ErrBadRecord marks a __transaction_state record that does not decode.
var ErrBadRecord = errors.New("txn: malformed transaction log record")

// ParseRecord decodes a __transaction_state record. A nil value (a
// tombstone: the id expired) gives a nil Metadata.
func ParseRecord(key, value []byte) (string, *Metadata, error) {
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, fmt.Errorf("%w: key: %w", ErrBadRecord, err)
	}
	if value == nil {
		return k.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return "", nil, fmt.Errorf("%w: value: %w", ErrBadRecord, err)
	}
	m := &Metadata{
		TransactionalID: k.TransactionalID,
		ProducerID:      v.ProducerID,
		ProducerEpoch:   v.ProducerEpoch,
		TimeoutMs:       v.TimeoutMillis,
		State:           State(v.State),
		Partitions:      map[Partition]struct{}{},
		StartMs:         v.StartTimestamp,
		LastUpdateMs:    v.LastUpdateTimestamp,
	}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.Partitions[Partition{t.Topic, p}] = struct{}{}
		}
	}
	return k.TransactionalID, m, nil
}
