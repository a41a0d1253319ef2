package txn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// memLog is an in-memory __transaction_state.
type memLog struct {
	mu    sync.Mutex
	parts map[int32][][]byte
}

func (l *memLog) Append(_ context.Context, p int32, b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts == nil {
		l.parts = map[int32][][]byte{}
	}
	l.parts[p] = append(l.parts[p], append([]byte(nil), b...))
	return nil
}

func (l *memLog) Read(p int32, fn func([]byte) error) error {
	l.mu.Lock()
	bs := append([][]byte(nil), l.parts[p]...)
	l.mu.Unlock()
	for _, b := range bs {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

type marker struct {
	tp     Partition
	pid    int64
	epoch  int16
	commit bool
}

type memMarkers struct {
	mu   sync.Mutex
	fail error
	got  []marker
}

func (m *memMarkers) WriteMarker(_ context.Context, tp Partition, pid int64, epoch int16, commit bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.got = append(m.got, marker{tp, pid, epoch, commit})
	return nil
}

func (m *memMarkers) take() []marker {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.got
	m.got = nil
	return g
}

type counter struct {
	mu   sync.Mutex
	next int64
}

func (c *counter) AllocateProducerIDs(_ context.Context, n int) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.next
	c.next += int64(n)
	return f, nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestCoordinator(t *testing.T, log *memLog, mk *memMarkers, clk *clock) *Coordinator {
	t.Helper()
	c := New(Config{
		Partitions:     2,
		MaxTimeout:     time.Minute,
		AbortInterval:  time.Hour, // the tests call Sweep
		GroupPartition: func(g string) Partition { return Partition{"__consumer_offsets", 0} },
		Now:            clk.Now,
	}, log, mk, NewProducerIDs(&counter{}, 10))
	t.Cleanup(c.Close)
	for p := range int32(2) {
		if err := c.Load(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestCoordinatorLifecycle(t *testing.T) {
	ctx := context.Background()
	log, mk, clk := &memLog{}, &memMarkers{}, &clock{now: time.UnixMilli(1e12)}
	c := newTestCoordinator(t, log, mk, clk)

	if _, _, err := c.InitProducerID(ctx, "x", 2*60_000, -1, -1); !errors.Is(err, kerr.InvalidTransactionTimeout) {
		t.Fatalf("timeout above max: %v", err)
	}
	pid, epoch, err := c.InitProducerID(ctx, "x", 1000, -1, -1)
	if err != nil || epoch != 0 {
		t.Fatalf("init: %d %d %v", pid, epoch, err)
	}
	a, b := Partition{"a", 0}, Partition{"b", 1}
	if err := c.AddPartitions(ctx, "x", pid, epoch, []Partition{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddOffsets(ctx, "x", pid, epoch, "g"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.EndTxn(ctx, "x", pid, epoch, true, 0); err != nil {
		t.Fatal(err)
	}
	if got := mk.take(); len(got) != 3 || !got[0].commit || got[0].tp != (Partition{"__consumer_offsets", 0}) {
		t.Fatalf("markers %+v", got)
	}
	if _, _, err := c.EndTxn(ctx, "x", pid, epoch, true, 0); err != nil {
		t.Fatalf("retried commit: %v", err)
	}

	// A zombie: a new init fences the open transaction and aborts it
	// with the bumped epoch.
	if err := c.AddPartitions(ctx, "x", pid, epoch, []Partition{a}); err != nil {
		t.Fatal(err)
	}
	pid2, epoch2, err := c.InitProducerID(ctx, "x", 1000, -1, -1)
	if err != nil || pid2 != pid || epoch2 != epoch+1 {
		t.Fatalf("re-init: %d %d %v", pid2, epoch2, err)
	}
	if got := mk.take(); len(got) != 1 || got[0].commit || got[0].epoch != epoch2 {
		t.Fatalf("fencing abort markers %+v", got)
	}
	if _, _, err := c.EndTxn(ctx, "x", pid, epoch, true, 0); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("zombie EndTxn: %v", err)
	}

	// Markers fail: EndTxn still succeeds (decision durable), the id
	// answers CONCURRENT_TRANSACTIONS until the sweep completes it.
	if err := c.AddPartitions(ctx, "x", pid2, epoch2, []Partition{b}); err != nil {
		t.Fatal(err)
	}
	mk.mu.Lock()
	mk.fail = errors.New("down")
	mk.mu.Unlock()
	if _, _, err := c.EndTxn(ctx, "x", pid2, epoch2, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPartitions(ctx, "x", pid2, epoch2, []Partition{a}); !errors.Is(err, kerr.ConcurrentTransactions) {
		t.Fatalf("while completing: %v", err)
	}

	// Reload from the log: the prepared abort is still to complete.
	c.Close()
	mk.mu.Lock()
	mk.fail = nil
	mk.mu.Unlock()
	c2 := newTestCoordinator(t, log, mk, clk)
	c2.Sweep(ctx)
	if got := mk.take(); len(got) != 1 || got[0].commit || got[0].tp != b {
		t.Fatalf("markers after reload %+v", got)
	}

	// Expiry: an ongoing transaction older than its timeout is aborted
	// and its producer fenced.
	if err := c2.AddPartitions(ctx, "x", pid2, epoch2, []Partition{a}); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second)
	c2.Sweep(ctx)
	if got := mk.take(); len(got) != 1 || got[0].commit || got[0].epoch != epoch2+1 {
		t.Fatalf("expiry markers %+v", got)
	}
	if _, _, err := c2.EndTxn(ctx, "x", pid2, epoch2, true, 0); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("EndTxn after expiry: %v", err)
	}
}

func TestCoordinatorDescribeList(t *testing.T) {
	ctx := context.Background()
	log, mk, clk := &memLog{}, &memMarkers{}, &clock{now: time.UnixMilli(1e12)}
	c := newTestCoordinator(t, log, mk, clk)

	if _, err := c.Describe("x"); !errors.Is(err, kerr.TransactionalIDNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	pid, epoch, err := c.InitProducerID(ctx, "x", 1000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	// A request on an id never initialized creates no visible entry.
	if err := c.AddPartitions(ctx, "never", 1, 0, []Partition{{"a", 0}}); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("add to unknown id: %v", err)
	}
	if err := c.AddPartitions(ctx, "x", pid, epoch, []Partition{{"b", 1}, {"a", 0}}); err != nil {
		t.Fatal(err)
	}
	md, err := c.Describe("x")
	if err != nil || md.State != Ongoing || md.StartMs != 1e12 || md.ProducerID != pid || len(md.Partitions) != 2 {
		t.Fatalf("describe ongoing: %+v %v", md, err)
	}
	md.Partitions[Partition{"z", 9}] = struct{}{} // a copy: the coordinator's state is untouched
	if l, err := c.List(); err != nil || len(l) != 1 || l[0].TransactionalID != "x" || len(l[0].Partitions) != 2 {
		t.Fatalf("list: %+v %v", l, err)
	}
	if _, _, err := c.EndTxn(ctx, "x", pid, epoch, true, 0); err != nil {
		t.Fatal(err)
	}
	if md, err := c.Describe("x"); err != nil || md.State != CompleteCommit || md.StartMs != -1 || len(md.Partitions) != 0 {
		t.Fatalf("describe committed: %+v %v", md, err)
	}
	c.Close()
	if _, err := c.List(); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("list after close: %v", err)
	}
}
