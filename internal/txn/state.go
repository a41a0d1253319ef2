package txn

import (
	"errors"
	"fmt"
	"math"
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
//	PrepareAbort      <- Ongoing, PrepareEpochFence, Empty, CompleteCommit, CompleteAbort
//	CompleteCommit    <- PrepareCommit
//	CompleteAbort     <- PrepareAbort
//	Dead              <- Empty, CompleteCommit, CompleteAbort
//	PrepareEpochFence <- Ongoing
//
// (PrepareAbort from Empty and Complete*: Kafka 4's transaction version 2,
// where an EndTxn abort with no transaction still bumps the epoch.)

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
	PrepareAbort:      {Ongoing, PrepareEpochFence, Empty, CompleteCommit, CompleteAbort},
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

	// KIP-890 part 2 (transaction version 2). TxnVersion is the
	// transaction version of the client's last EndTxn (0: classic). Under
	// version 2 EndTxn bumps the epoch: the prepared state carries the
	// new epoch (the markers are written with it). When the epoch runs
	// out, NextProducerID is the id handed to the producer, installed by
	// the Complete state, which keeps the old id in PrevProducerID (so a
	// retried EndTxn of the old id is recognized). -1 when unset.
	TxnVersion     int16
	PrevProducerID int64
	NextProducerID int64
}

// ClientIDs are the producer id and epoch EndTxn v5 answers: the ones the
// producer uses for its next transaction.
func (m *Metadata) ClientIDs() (int64, int16) {
	if m.NextProducerID >= 0 {
		return m.NextProducerID, 0
	}
	return m.ProducerID, m.ProducerEpoch
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
	// NeedProducerID: the bumped epoch is the last one (version 2); the
	// caller must set Prepare.NextProducerID to a new producer id.
	NeedProducerID bool
}

// epochExhausted is Kafka's TransactionMetadata.isProducerEpochExhausted.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// isV2Retry reports whether an EndTxn of version 2 with pid/epoch is a
// retry of the one that ended (or is ending) the transaction: the epoch
// is the one before the bump, or the id is the one replaced when the
// epoch ran out.
func (m *Metadata) isV2Retry(pid int64, epoch int16) bool {
	if m.TxnVersion < 2 {
		return false
	}
	switch m.State {
	case PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort:
	default:
		return false
	}
	if pid == m.ProducerID && int32(epoch)+1 == int32(m.ProducerEpoch) {
		return true
	}
	return m.PrevProducerID >= 0 && pid == m.PrevProducerID && m.ProducerEpoch == 0 && epochExhausted(epoch)
}

// End is EndTxn: the prepared state, a retry detected, or the error for
// the client. tv is the transaction version of the request (2: EndTxn v5
// with transaction.version 2, KIP-890 part 2): the prepared state then
// carries the next epoch, and an abort with no transaction ongoing is a
// transaction of its own (it bumps the epoch), as in Kafka 4.
func (m *Metadata) End(pid int64, epoch int16, commit bool, tv int16, nowMs int64) (EndResult, error) {
	retry := tv >= 2 && m.isV2Retry(pid, epoch)
	if !retry {
		if err := m.checkProducer(pid, epoch); err != nil {
			return EndResult{}, err
		}
	}
	prepare := func() (EndResult, error) {
		to := PrepareAbort
		if commit {
			to = PrepareCommit
		}
		p, err := m.transition(to, nowMs)
		if err != nil {
			return EndResult{}, kerr.InvalidTxnState
		}
		p.TxnVersion = max(tv, 0)
		p.NextProducerID = -1
		var need bool
		if tv >= 2 {
			need = epochExhausted(p.ProducerEpoch)
			p.ProducerEpoch++
		}
		return EndResult{Prepare: p, NeedProducerID: need}, nil
	}
	switch m.State {
	case Ongoing:
		return prepare()
	case CompleteCommit, CompleteAbort:
		done := (m.State == CompleteCommit) == commit
		switch {
		case retry && done, tv < 2 && done:
			return EndResult{}, nil // a retry
		case tv >= 2 && !retry && !commit:
			return prepare() // an abort with nothing ongoing bumps the epoch
		}
	case Empty:
		if tv >= 2 && !commit {
			return prepare()
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
// written: CompleteCommit or CompleteAbort. A NextProducerID becomes the
// producer id (epoch 0), the old one PrevProducerID.
func (m *Metadata) Complete(nowMs int64) (*Metadata, error) {
	var (
		c   *Metadata
		err error
	)
	switch m.State {
	case PrepareCommit:
		c, err = m.transition(CompleteCommit, nowMs)
	case PrepareAbort:
		c, err = m.transition(CompleteAbort, nowMs)
	default:
		return nil, fmt.Errorf("%w: %s: complete from %s", ErrInvalidTransition, m.TransactionalID, m.State)
	}
	if err != nil {
		return nil, err
	}
	if c.NextProducerID >= 0 {
		c.PrevProducerID, c.ProducerID, c.ProducerEpoch, c.NextProducerID = c.ProducerID, c.NextProducerID, 0, -1
	}
	return c, nil
}

// Expired reports whether an ongoing transaction has outlived its
// timeout (transaction.timeout.ms) at nowMs and must be aborted.
func (m *Metadata) Expired(nowMs int64) bool {
	return m.State == Ongoing && m.StartMs >= 0 && nowMs-m.StartMs > int64(m.TimeoutMs)
}

// IDExpired reports whether the id has had no transaction for at least
// expirationMs (transactional.id.expiration.ms) at nowMs and may be
// removed: only Empty and completed states expire, as in Kafka.
func (m *Metadata) IDExpired(nowMs, expirationMs int64) bool {
	switch m.State {
	case Empty, CompleteCommit, CompleteAbort:
		return nowMs-m.LastUpdateMs >= expirationMs
	}
	return false
}

func (m *Metadata) recordKey() []byte {
	k := kmsg.NewTxnMetadataKey()
	k.TransactionalID = m.TransactionalID
	return k.AppendTo(nil)
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
	if m.TxnVersion > 0 || m.PrevProducerID >= 0 || m.NextProducerID >= 0 {
		// Value version 1 (flexible) carries KIP-890's tagged fields.
		v.Version = 1
		v.PreviousProducerID, v.NextProducerID, v.ClientTransactionVersion = m.PrevProducerID, m.NextProducerID, m.TxnVersion
	}
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
		TxnVersion:      v.ClientTransactionVersion,
		PrevProducerID:  v.PreviousProducerID,
		NextProducerID:  v.NextProducerID,
	}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.Partitions[Partition{t.Topic, p}] = struct{}{}
		}
	}
	return k.TransactionalID, m, nil
}
