package txn

// The transaction coordinator: the state of every transactional id whose
// __transaction_state partition this broker serves.
//
// Concurrency: one mutex per transactional id (entry.mu), held for the
// whole of one request or background step on that id, I/O included (the
// record append, the marker writes). Requests of one id are sequential in
// Kafka too (a client has one transaction at a time), so the lock is not
// contended across ids; different ids never share a lock. Coordinator.mu
// guards the id table and the loaded partitions and is a leaf: it is never
// held during I/O or while taking an entry's mutex. Lock order:
// entry.mu → Coordinator.mu.
//
// One background goroutine (started by New, stopped by Close) aborts
// expired transactions every AbortInterval and retries the completion of
// prepared transactions whose markers could not all be written (or that
// were prepared before a restart).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-io/sluice/internal/log/batch"
)

// Log is the __transaction_state topic: Append writes batches to a
// partition and returns once they are durable; Read replays a partition.
type Log interface {
	Append(ctx context.Context, p int32, batches []byte) error
	Read(p int32, fn func(batch []byte) error) error
}

// Markers writes transaction markers (control batches) to the partitions
// of a transaction, durably. A partition that no longer exists must be
// skipped (nil), as Kafka does for deleted topics.
type Markers interface {
	WriteMarker(ctx context.Context, tp Partition, producerID int64, producerEpoch int16, commit bool) error
}

// Config configures a Coordinator.
type Config struct {
	Partitions int32 // transaction.state.log.num.partitions
	// MaxTimeout bounds a producer's transaction.timeout.ms
	// (transaction.max.timeout.ms).
	MaxTimeout time.Duration
	// AbortInterval is how often expired transactions are aborted
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	AbortInterval time.Duration
	// IDExpiration removes a transactional id with no transaction for
	// this long (transactional.id.expiration.ms; default 7 days).
	IDExpiration time.Duration
	// GroupPartition is the __consumer_offsets partition of a group
	// (AddOffsetsToTxn).
	GroupPartition func(group string) Partition
	Now            func() time.Time
	Logger         *slog.Logger
}

// ErrClosed is returned by Load after Close.
var ErrClosed = errors.New("txn: coordinator closed")

type entry struct {
	mu sync.Mutex
	md *Metadata // nil: unknown id (never initialized, or removed)
	// view is md published for readers that do not take mu (Describe,
	// List, Verify): an installed Metadata is never modified (each
	// transition returns a copy), so readers never wait behind a
	// request's I/O.
	view atomic.Pointer[Metadata]
	// removed: the id expired and this entry left the table (under mu);
	// a request that found it before must look the id up again.
	removed bool
}

// set installs md (under e.mu) and publishes it to readers.
func (e *entry) set(md *Metadata) {
	e.md = md
	e.view.Store(md)
}

// Coordinator is the transaction coordinator.
type Coordinator struct {
	cfg     Config
	log     Log
	markers Markers
	pids    *ProducerIDs

	mu struct {
		sync.Mutex
		ids     map[string]*entry
		loaded  map[int32]bool
		loading map[int32]bool
		closed  bool
	}

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a coordinator and starts its background goroutine; call
// Load for each partition it serves and Close to stop it.
func New(cfg Config, log Log, markers Markers, pids *ProducerIDs) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AbortInterval <= 0 {
		cfg.AbortInterval = 10 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 15 * time.Minute
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = 7 * 24 * time.Hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{cfg: cfg, log: log, markers: markers, pids: pids, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	c.mu.ids = make(map[string]*entry)
	c.mu.loaded = make(map[int32]bool)
	c.mu.loading = make(map[int32]bool)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.run()
	}()
	return c
}

// Close stops the background goroutine and waits for it. Requests after
// Close answer NOT_COORDINATOR.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// PartitionFor is the __transaction_state partition of a transactional
// id: Kafka's abs(javaStringHashCode(id)) % Partitions.
func (c *Coordinator) PartitionFor(id string) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(id)) {
		h = 31*h + int32(u)
	}
	if h == math.MinInt32 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % c.cfg.Partitions
}

// Load replays partition p and starts serving its ids. Transactions found
// prepared are completed by the background goroutine; ongoing ones are
// aborted when they expire or when their id is initialized again.
func (c *Coordinator) Load(ctx context.Context, p int32) error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.mu.loaded[p] || c.mu.loading[p] {
		c.mu.Unlock()
		return nil
	}
	c.mu.loading[p] = true
	c.mu.Unlock()

	states := make(map[string]*Metadata)
	var dec batch.Decoder
	err := c.log.Read(p, func(b []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, recs, err := dec.Decode(b)
		if err != nil {
			return fmt.Errorf("txn: load __transaction_state/%d: %w", p, err)
		}
		if h.IsControl() {
			return nil
		}
		for i := range recs {
			id, md, err := ParseRecord(recs[i].Key, recs[i].Value)
			if err != nil {
				c.cfg.Logger.Warn("skipping transaction log record", "partition", p, "err", err)
				continue
			}
			if md == nil {
				delete(states, id)
			} else {
				states[id] = md
			}
		}
		return nil
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mu.loading, p)
	if err != nil {
		return err
	}
	prepared := 0
	for id, md := range states {
		e := &entry{}
		e.set(md)
		c.mu.ids[id] = e
		if md.State == PrepareCommit || md.State == PrepareAbort {
			prepared++
		}
	}
	c.mu.loaded[p] = true
	if prepared > 0 {
		c.kickLocked()
	}
	return nil
}

// Unload stops serving partition p (its leadership moved to another
// broker): its ids are forgotten and requests for them answer
// NOT_COORDINATOR until Load is called again. A request already holding
// an entry finishes against it; its write to the partition then fails,
// since this broker no longer leads it.
func (c *Coordinator) Unload(p int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.loaded[p] {
		return
	}
	delete(c.mu.loaded, p)
	for id := range c.mu.ids {
		if c.PartitionFor(id) == p {
			delete(c.mu.ids, id)
		}
	}
}

func (c *Coordinator) kickLocked() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// entry returns the id's entry (created empty) or the error for a
// partition not served here.
func (c *Coordinator) entry(id string) (*entry, error) {
	p := c.PartitionFor(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.mu.closed:
		return nil, kerr.NotCoordinator
	case c.mu.loading[p]:
		return nil, kerr.CoordinatorLoadInProgress
	case !c.mu.loaded[p]:
		return nil, kerr.NotCoordinator
	}
	e := c.mu.ids[id]
	if e == nil {
		e = &entry{}
		c.mu.ids[id] = e
	}
	return e, nil
}

// lock returns the id's entry locked (see entry).
func (c *Coordinator) lock(id string) (*entry, error) {
	for {
		e, err := c.entry(id)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		if !e.removed {
			return e, nil
		}
		e.mu.Unlock()
	}
}

func (c *Coordinator) nowMs() int64 { return c.cfg.Now().UnixMilli() }

// persist writes md to __transaction_state, durably.
func (c *Coordinator) persist(ctx context.Context, md *Metadata) error {
	k, v := md.Record()
	ts := c.nowMs()
	b, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Timestamp: ts, Key: k, Value: v}}, batch.CodecNone)
	if err != nil {
		return fmt.Errorf("txn: build record: %w", err)
	}
	if err := c.log.Append(ctx, c.PartitionFor(md.TransactionalID), b); err != nil {
		return fmt.Errorf("txn: write %s state %s: %w", md.TransactionalID, md.State, err)
	}
	return nil
}

// InitProducerID is InitProducerId with a transactional id: a new producer
// id on first use, otherwise the next epoch, which fences older producers.
// An ongoing transaction is aborted (markers written with the new epoch)
// and a prepared one completed before the answer. reqPID/reqEpoch are the
// producer's current id and epoch (v3+, -1 if none).
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, reqPID int64, reqEpoch int16) (int64, int16, error) {
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	e, err := c.lock(id)
	if err != nil {
		return -1, -1, err
	}
	defer e.mu.Unlock()
	now := c.nowMs()
	md := e.md
	if md == nil || md.State == Dead {
		pid, err := c.pids.Next(ctx)
		if err != nil {
			return -1, -1, kerr.CoordinatorNotAvailable
		}
		n := &Metadata{TransactionalID: id, ProducerID: pid, ProducerEpoch: 0, TimeoutMs: timeoutMs, State: Empty,
			Partitions: map[Partition]struct{}{}, StartMs: -1, LastUpdateMs: now, PrevProducerID: -1, NextProducerID: -1}
		if err := c.persist(ctx, n); err != nil {
			return -1, -1, c.storageErr(err)
		}
		e.set(n)
		return n.ProducerID, n.ProducerEpoch, nil
	}
	if reqPID >= 0 && (reqPID != md.ProducerID || (reqEpoch != md.ProducerEpoch && reqEpoch != md.ProducerEpoch-1)) {
		return -1, -1, kerr.ProducerFenced
	}
	switch md.State {
	case PrepareCommit, PrepareAbort:
		if err := c.completeLocked(ctx, e); err != nil {
			return -1, -1, kerr.ConcurrentTransactions
		}
	case Ongoing:
		// Fence the old producer and abort its transaction with the
		// bumped epoch, then hand that epoch out.
		if err := c.abortLocked(ctx, e, true); err != nil {
			return -1, -1, kerr.ConcurrentTransactions
		}
		return c.resetLocked(ctx, e, timeoutMs, false)
	}
	return c.resetLocked(ctx, e, timeoutMs, true)
}

// resetLocked moves a finished transaction to Empty with the next epoch
// (bump) or the current one, or a new producer id when epochs run out.
func (c *Coordinator) resetLocked(ctx context.Context, e *entry, timeoutMs int32, bump bool) (int64, int16, error) {
	n, err := e.md.transition(Empty, c.nowMs())
	if err != nil {
		return -1, -1, kerr.ConcurrentTransactions
	}
	n.TimeoutMs = timeoutMs
	if bump {
		n.ProducerEpoch++
	}
	if n.ProducerEpoch >= math.MaxInt16-1 {
		pid, err := c.pids.Next(ctx)
		if err != nil {
			return -1, -1, kerr.CoordinatorNotAvailable
		}
		n.ProducerID, n.ProducerEpoch = pid, 0
	}
	if err := c.persist(ctx, n); err != nil {
		return -1, -1, c.storageErr(err)
	}
	e.set(n)
	return n.ProducerID, n.ProducerEpoch, nil
}

// abortLocked aborts e's ongoing transaction: PrepareAbort (with the next
// epoch if fence), markers, CompleteAbort.
func (c *Coordinator) abortLocked(ctx context.Context, e *entry, fence bool) error {
	cur := e.md.Clone()
	if fence {
		if cur.ProducerEpoch >= math.MaxInt16-1 {
			fence = false // cannot bump: the abort keeps the epoch; a new id follows
		} else {
			cur.ProducerEpoch++
		}
	}
	res, err := cur.End(cur.ProducerID, cur.ProducerEpoch, false, 0, c.nowMs())
	if err != nil {
		return err
	}
	if res.Prepare == nil {
		return nil
	}
	if err := c.persist(ctx, res.Prepare); err != nil {
		return err
	}
	e.set(res.Prepare)
	return c.completeLocked(ctx, e)
}

// completeLocked writes the markers of e's prepared transaction and then
// its Complete state. On error the transaction stays prepared and the
// background goroutine retries.
func (c *Coordinator) completeLocked(ctx context.Context, e *entry) error {
	md := e.md
	commit := md.State == PrepareCommit
	for _, p := range md.SortedPartitions() {
		if err := c.markers.WriteMarker(ctx, p, md.ProducerID, md.ProducerEpoch, commit); err != nil {
			return fmt.Errorf("txn: %s: marker to %s/%d: %w", md.TransactionalID, p.Topic, p.Partition, err)
		}
	}
	n, err := md.Complete(c.nowMs())
	if err != nil {
		return err
	}
	if err := c.persist(ctx, n); err != nil {
		return err
	}
	e.set(n)
	return nil
}

// storageErr maps a failed __transaction_state write to the client's code.
func (c *Coordinator) storageErr(err error) error {
	c.cfg.Logger.Warn("transaction state write failed", "err", err)
	var ke *kerr.Error
	if errors.As(err, &ke) && (ke == kerr.NotCoordinator || ke == kerr.CoordinatorLoadInProgress) {
		return ke
	}
	return kerr.CoordinatorNotAvailable
}

// AddPartitions is AddPartitionsToTxn.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []Partition) error {
	e, err := c.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.md == nil {
		return kerr.InvalidProducerIDMapping
	}
	if e.md.State == Ongoing && e.md.ProducerID == pid && e.md.ProducerEpoch == epoch {
		have := true
		for _, p := range parts {
			if _, ok := e.md.Partitions[p]; !ok {
				have = false
				break
			}
		}
		if have {
			return nil
		}
	}
	n, err := e.md.AddPartitions(pid, epoch, parts, c.nowMs())
	if err != nil {
		return err
	}
	if err := c.persist(ctx, n); err != nil {
		return c.storageErr(err)
	}
	e.set(n)
	return nil
}

// GroupPartition is the __consumer_offsets partition of a group.
func (c *Coordinator) GroupPartition(group string) Partition { return c.cfg.GroupPartition(group) }

// AddOffsets is AddOffsetsToTxn: the group's __consumer_offsets partition
// joins the transaction.
func (c *Coordinator) AddOffsets(ctx context.Context, id string, pid int64, epoch int16, group string) error {
	return c.AddPartitions(ctx, id, pid, epoch, []Partition{c.cfg.GroupPartition(group)})
}

// EndTxn commits or aborts the ongoing transaction: the PrepareCommit or
// PrepareAbort record is made durable (the decision), then the markers
// are written to every partition, then the Complete record. It returns
// after the markers when they all succeed; if one fails it still returns
// success once the decision is durable (as Kafka answers after the
// prepare record) and the background goroutine finishes the markers,
// meanwhile the id answers CONCURRENT_TRANSACTIONS.
//
// tv is the request's transaction version (2: EndTxn v5 under
// transaction.version 2, KIP-890 part 2). Under version 2 the epoch is
// bumped at every transaction end: the prepare and complete records and
// the markers carry epoch+1 (or, when the epoch runs out, the markers
// carry the last epoch and the producer gets a new id), and EndTxn
// returns the producer id and epoch to use next. A retry of an EndTxn
// that already ended the transaction (the old epoch) answers the same.
func (c *Coordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit bool, tv int16) (int64, int16, error) {
	e, err := c.lock(id)
	if err != nil {
		return -1, -1, err
	}
	defer e.mu.Unlock()
	if e.md == nil {
		return -1, -1, kerr.InvalidProducerIDMapping
	}
	res, err := e.md.End(pid, epoch, commit, tv, c.nowMs())
	if err != nil {
		return -1, -1, err
	}
	if res.Prepare == nil {
		rpid, repoch := e.md.ClientIDs()
		return rpid, repoch, nil
	}
	if res.NeedProducerID {
		next, err := c.pids.Next(ctx)
		if err != nil {
			return -1, -1, kerr.CoordinatorNotAvailable
		}
		res.Prepare.NextProducerID = next
	}
	if err := c.persist(ctx, res.Prepare); err != nil {
		return -1, -1, c.storageErr(err)
	}
	e.set(res.Prepare)
	rpid, repoch := res.Prepare.ClientIDs()
	if err := c.completeLocked(ctx, e); err != nil {
		c.cfg.Logger.Warn("completing transaction; will retry", "transactional_id", id, "err", err)
	}
	return rpid, repoch, nil
}

// Verify is the leader's check before appending a transactional batch of
// a producer with no transaction ongoing on the partition (KIP-890 part
// 1; Kafka's AddPartitionsToTxn with VerifyOnly): nil when tp is in the
// ongoing transaction of pid/epoch. Otherwise: an unknown id or another
// producer id INVALID_PRODUCER_ID_MAPPING, another epoch PRODUCER_FENCED,
// a transaction being completed CONCURRENT_TRANSACTIONS, a partition not
// in the transaction (or no transaction) TRANSACTION_ABORTABLE, as
// Kafka's TransactionCoordinator answers. It reads the last installed
// state without waiting for a request in progress on the id.
func (c *Coordinator) Verify(id string, pid int64, epoch int16, tp Partition) error {
	p := c.PartitionFor(id)
	c.mu.Lock()
	var e *entry
	switch {
	case c.mu.closed:
		c.mu.Unlock()
		return kerr.NotCoordinator
	case c.mu.loading[p]:
		c.mu.Unlock()
		return kerr.CoordinatorLoadInProgress
	case !c.mu.loaded[p]:
		c.mu.Unlock()
		return kerr.NotCoordinator
	default:
		e = c.mu.ids[id]
	}
	c.mu.Unlock()
	var md *Metadata
	if e != nil {
		md = e.view.Load()
	}
	if md == nil || md.State == Dead {
		return kerr.InvalidProducerIDMapping
	}
	if err := md.checkProducer(pid, epoch); err != nil {
		return err
	}
	switch md.State {
	case PrepareCommit, PrepareAbort, PrepareEpochFence:
		return kerr.ConcurrentTransactions
	case Ongoing:
		if _, ok := md.Partitions[tp]; ok {
			return nil
		}
	}
	return kerr.TransactionAbortable
}

// Describe returns a copy of a transactional id's state
// (DescribeTransactions): TRANSACTIONAL_ID_NOT_FOUND for an id never
// initialized (or Dead), NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS
// for a partition not served here or still loading. It does not wait for
// a request in progress on the id: it sees the last installed state.
func (c *Coordinator) Describe(id string) (*Metadata, error) {
	p := c.PartitionFor(id)
	c.mu.Lock()
	var e *entry
	var err error
	switch {
	case c.mu.closed:
		err = kerr.NotCoordinator
	case c.mu.loading[p]:
		err = kerr.CoordinatorLoadInProgress
	case !c.mu.loaded[p]:
		err = kerr.NotCoordinator
	default:
		e = c.mu.ids[id]
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, kerr.TransactionalIDNotFound
	}
	md := e.view.Load()
	if md == nil || md.State == Dead {
		return nil, kerr.TransactionalIDNotFound
	}
	return md.Clone(), nil
}

// List returns a copy of the state of every transactional id served here
// (ListTransactions), sorted by id, Dead ones left out. While a partition
// is loading it answers COORDINATOR_LOAD_IN_PROGRESS (Kafka's choice);
// after Close, NOT_COORDINATOR.
func (c *Coordinator) List() ([]*Metadata, error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, kerr.NotCoordinator
	}
	if len(c.mu.loading) > 0 {
		c.mu.Unlock()
		return nil, kerr.CoordinatorLoadInProgress
	}
	es := make([]*entry, 0, len(c.mu.ids))
	for _, e := range c.mu.ids {
		es = append(es, e)
	}
	c.mu.Unlock()
	out := make([]*Metadata, 0, len(es))
	for _, e := range es {
		if md := e.view.Load(); md != nil && md.State != Dead {
			out = append(out, md.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out, nil
}

// run is the background goroutine.
func (c *Coordinator) run() {
	t := time.NewTicker(c.cfg.AbortInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		c.sweep(c.ctx)
	}
}

// sweep aborts expired transactions (fencing their producer with a new
// epoch, as Kafka does) and completes prepared ones.
func (c *Coordinator) sweep(ctx context.Context) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.mu.ids))
	for id := range c.mu.ids {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		e := c.mu.ids[id]
		c.mu.Unlock()
		if e == nil {
			continue
		}
		e.mu.Lock()
		var err error
		switch {
		case e.removed || e.md == nil:
		case e.md.State == PrepareCommit || e.md.State == PrepareAbort:
			err = c.completeLocked(ctx, e)
		case e.md.Expired(c.nowMs()):
			c.cfg.Logger.Info("aborting expired transaction", "transactional_id", id, "producer_id", e.md.ProducerID)
			err = c.abortLocked(ctx, e, true)
		case e.md.IDExpired(c.nowMs(), c.cfg.IDExpiration.Milliseconds()):
			err = c.removeLocked(ctx, id, e)
		}
		e.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("transaction sweep", "transactional_id", id, "err", err)
		}
	}
}

// removeLocked removes an expired transactional id: a tombstone in
// __transaction_state (so a reload forgets it too), then the entry leaves
// the table (as Kafka's TransactionStateManager removes expired ids).
func (c *Coordinator) removeLocked(ctx context.Context, id string, e *entry) error {
	k := (&Metadata{TransactionalID: id}).recordKey()
	b, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Timestamp: c.nowMs(), Key: k, Value: nil}}, batch.CodecNone)
	if err != nil {
		return fmt.Errorf("txn: build tombstone: %w", err)
	}
	if err := c.log.Append(ctx, c.PartitionFor(id), b); err != nil {
		return fmt.Errorf("txn: write %s tombstone: %w", id, err)
	}
	c.cfg.Logger.Info("removed expired transactional id", "transactional_id", id, "producer_id", e.md.ProducerID)
	e.set(nil)
	e.removed = true
	c.mu.Lock()
	if c.mu.ids[id] == e {
		delete(c.mu.ids, id)
	}
	c.mu.Unlock()
	return nil
}

// Sweep runs one background step now (tests).
func (c *Coordinator) Sweep(ctx context.Context) { c.sweep(ctx) }
