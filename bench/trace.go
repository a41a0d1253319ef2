package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// e2eTimeline is the per-record timeline of one e2e run with -trace: for
// each measured record (by its sequence number, value bytes 9–16), when
// its pacing slot was, when it was handed to Produce (the time in its
// value), when its produce promise ran (the acks=all response was
// processed), when the consumer buffered it (kgo decoded the Fetch
// response that carried it) and when PollFetches returned it. Unix ns; 0
// for never. Each slot is written by one goroutine, and read after the
// scenario's waits, which order the writes before the reads.
type e2eTimeline struct {
	sched, send, ack, buf, poll []int64
	// gcPauses are the harness's GC pauses that ended during the run
	// (end time, duration), from runtime/debug.ReadGCStats.
	gcPauses [][2]int64
	gc0      debug.GCStats
	// reqs are the producer's Produce requests: when the response had
	// been read (unix ns) and kgo's BrokerE2E of it.
	mu   sync.Mutex
	reqs []produceReq
	// fetches are the consumer's Fetch requests, the same way.
	fetches []produceReq
}

// produceReq is one Produce (or Fetch) request of the e2e producer (or
// consumer).
type produceReq struct {
	end int64
	e2e kgo.BrokerE2E
}

// writeStart is when the request's write began (unix ns).
func (q produceReq) writeStart() int64 {
	return q.end - int64(q.e2e.TimeToRead+q.e2e.ReadWait+q.e2e.TimeToWrite)
}

// producerHooks is the hook of the e2e producer client (-trace).
type producerHooks struct{ t *e2eTimeline }

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (h producerHooks) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key != 0 || e.Err() != nil {
		return
	}
	now := time.Now().UnixNano()
	h.t.mu.Lock()
	h.t.reqs = append(h.t.reqs, produceReq{end: now, e2e: e})
	h.t.mu.Unlock()
}

// OnBrokerE2E implements kgo.HookBrokerE2E for the consumer: its Fetch
// requests.
func (t *e2eTimeline) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key != 1 || e.Err() != nil {
		return
	}
	now := time.Now().UnixNano()
	t.mu.Lock()
	t.fetches = append(t.fetches, produceReq{end: now, e2e: e})
	t.mu.Unlock()
}

// lastBefore is the last of reqs (in end order) whose response was read
// by at.
func lastBefore(reqs []produceReq, at int64) (produceReq, bool) {
	k, _ := slices.BinarySearchFunc(reqs, at, func(q produceReq, at int64) int {
		if q.end <= at {
			return -1
		}
		return 1
	})
	if k == 0 {
		return produceReq{}, false
	}
	return reqs[k-1], true
}

// reqOf is the Produce request that carried record i: the last one whose
// response was read before the record's promise ran.
func (t *e2eTimeline) reqOf(i int) (produceReq, bool) { return lastBefore(t.reqs, t.ack[i]) }

// fetchOf is the Fetch request that returned record i: the last one whose
// response was read before the consumer buffered the record.
func (t *e2eTimeline) fetchOf(i int) (produceReq, bool) { return lastBefore(t.fetches, t.buf[i]) }

func newE2ETimeline(n int64) *e2eTimeline {
	return &e2eTimeline{sched: make([]int64, n), send: make([]int64, n), ack: make([]int64, n), buf: make([]int64, n), poll: make([]int64, n)}
}

// seq is the sequence number of a measured record, ok false for warm-up
// records and out-of-range values.
func (t *e2eTimeline) seq(r *kgo.Record) (int64, bool) {
	if len(r.Value) < 17 || r.Value[8] != 1 {
		return 0, false
	}
	i := int64(binary.BigEndian.Uint64(r.Value[9:]))
	return i, i >= 0 && i < int64(len(t.send))
}

func (t *e2eTimeline) acked(r *kgo.Record) {
	if i, ok := t.seq(r); ok {
		t.ack[i] = time.Now().UnixNano()
	}
}

func (t *e2eTimeline) polled(r *kgo.Record, now time.Time) {
	if i, ok := t.seq(r); ok {
		t.send[i] = int64(binary.BigEndian.Uint64(r.Value))
		t.poll[i] = now.UnixNano()
	}
}

// OnFetchRecordBuffered implements kgo.HookFetchRecordBuffered.
func (t *e2eTimeline) OnFetchRecordBuffered(r *kgo.Record) {
	if i, ok := t.seq(r); ok {
		t.buf[i] = time.Now().UnixNano()
	}
}

// traceName is a file-name-safe name of scenario s on srv.
func traceName(srv *server, s scenario) string {
	return strings.NewReplacer("/", "-", " ", "-", "=", "").Replace(srv.kind.String() + "-" + s.String())
}

// startTraces starts a runtime/trace of the harness and, for a sluice
// process with an admin listener, a secs-long one of the broker
// (/debug/pprof/trace), both saved in dir; stop ends them (stopTraces)
// and may be called more than once.
func startTraces(dir string, srv *server, s scenario, secs int, t *e2eTimeline) (stop func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	name := traceName(srv, s)
	hf, err := os.Create(filepath.Join(dir, "harness-"+name+".trace"))
	if err != nil {
		return nil, err
	}
	debug.ReadGCStats(&t.gc0)
	if err := trace.Start(hf); err != nil {
		hf.Close()
		return nil, err
	}
	broker := make(chan error, 1)
	if srv.admin != "" {
		go func() {
			broker <- savePprof(srv.admin, fmt.Sprintf("trace?seconds=%d", secs), filepath.Join(dir, "broker-"+name+".trace"))
		}()
	} else {
		broker <- nil
	}
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() { stopErr = stopTraces(hf, broker, secs, t) })
		return stopErr
	}, nil
}

// stopTraces ends the traces of startTraces and records the harness's GC
// pauses meanwhile in t.
func stopTraces(hf *os.File, broker <-chan error, secs int, t *e2eTimeline) error {
	trace.Stop()
	var gc debug.GCStats
	debug.ReadGCStats(&gc)
	for i := 0; i < int(gc.NumGC-t.gc0.NumGC) && i < len(gc.Pause); i++ {
		t.gcPauses = append(t.gcPauses, [2]int64{gc.PauseEnd[i].UnixNano(), int64(gc.Pause[i])})
	}
	if err := hf.Close(); err != nil {
		return err
	}
	select {
	case err := <-broker:
		return err
	case <-time.After(time.Duration(secs)*time.Second + 30*time.Second):
		return fmt.Errorf("broker trace not saved")
	}
}

// report writes the timeline as CSV to dir and prints, to w, where the
// time of all records and of the slowest 1% and 0.1% went.
func (t *e2eTimeline) report(dir string, srv *server, s scenario, w io.Writer) error {
	name := traceName(srv, s)
	var idx []int
	for i := range t.send {
		if t.poll[i] != 0 && t.ack[i] != 0 && t.buf[i] != 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return fmt.Errorf("timeline: no complete record")
	}
	t0 := t.sched[0]
	var csv strings.Builder
	fmt.Fprintf(&csv, "# times in µs after t0 = %d (unix ns, the first pacing slot)\nseq,sched_us,send_us,ack_us,buffered_us,polled_us\n", t0)
	us := func(v int64) float64 { return float64(v-t0) / 1e3 }
	for _, i := range idx {
		fmt.Fprintf(&csv, "%d,%.1f,%.1f,%.1f,%.1f,%.1f\n", i, us(t.sched[i]), us(t.send[i]), us(t.ack[i]), us(t.buf[i]), us(t.poll[i]))
	}
	if err := os.WriteFile(filepath.Join(dir, "timeline-"+name+".csv"), []byte(csv.String()), 0o644); err != nil {
		return err
	}
	e2e := func(i int) int64 { return t.poll[i] - t.send[i] }
	slices.SortFunc(idx, func(a, b int) int { return int(e2e(a) - e2e(b)) })

	// slowest returns the slowest fraction frac of the records (at least one).
	slowest := func(frac float64) []int {
		return idx[len(idx)-max(1, int(float64(len(idx))*frac+0.5)):]
	}
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	med := func(sel []int, f func(i int) int64) float64 {
		v := make([]int64, len(sel))
		for k, i := range sel {
			v[k] = f(i)
		}
		slices.Sort(v)
		return ms(v[len(v)/2])
	}
	// Burstiness of the pacing: a record sent within 20 µs of the one
	// before went out in the same burst (time.Sleep woke late).
	burst := 0
	for i := 1; i < len(t.send); i++ {
		if t.send[i] != 0 && t.send[i-1] != 0 && t.send[i]-t.send[i-1] < 20e3 {
			burst++
		}
	}
	fmt.Fprintf(w, "timeline %s: %d records; %.0f%% sent within 20 µs of the previous one (sleep overshoot bursts); harness GC: %d cycles, pauses total %.2f ms\n",
		name, len(idx), 100*float64(burst)/float64(len(t.send)-1), len(t.gcPauses), ms(sumPauses(t.gcPauses)))
	fmt.Fprintf(w, "  %-12s %8s %9s %9s %9s %9s %9s %8s %8s\n", "records", "e2e ms", "late ms", "ack ms", "fetched", "ack→fetch", "fetch→poll", "fetch>ack", "in GC")
	for _, part := range tailGroups {
		sel := slowest(part.frac)
		n := len(sel)
		later, inGC := 0, 0
		for _, i := range sel {
			if t.buf[i]-t.ack[i] > 200e3 {
				later++
			}
			for _, p := range t.gcPauses {
				if p[0] >= t.send[i] && p[0]-p[1] <= t.poll[i] {
					inGC++
					break
				}
			}
		}
		fmt.Fprintf(w, "  %-12s %8.3f %9.3f %9.3f %9.3f %9.3f %9.3f %7.0f%% %7.0f%%\n", part.label,
			med(sel, e2e), med(sel, func(i int) int64 { return t.send[i] - t.sched[i] }),
			med(sel, func(i int) int64 { return t.ack[i] - t.send[i] }),
			med(sel, func(i int) int64 { return t.buf[i] - t.send[i] }),
			med(sel, func(i int) int64 { return t.buf[i] - t.ack[i] }),
			med(sel, func(i int) int64 { return t.poll[i] - t.buf[i] }),
			100*float64(later)/float64(n), 100*float64(inGC)/float64(n))
	}
	fmt.Fprintf(w, "  %-12s %9s %9s %9s %9s %9s\n", "produce req", "send→wr", "wr wait", "write", "rd wait", "to read")
	for _, part := range tailGroups {
		sel, reqOf := carried(slowest(part.frac), t.reqOf)
		if len(sel) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-12s %9.3f %9.3f %9.3f %9.3f %9.3f\n", part.label,
			med(sel, func(i int) int64 { return reqOf[i].writeStart() - t.send[i] }),
			med(sel, func(i int) int64 { return int64(reqOf[i].e2e.WriteWait) }),
			med(sel, func(i int) int64 { return int64(reqOf[i].e2e.TimeToWrite) }),
			med(sel, func(i int) int64 { return int64(reqOf[i].e2e.ReadWait) }),
			med(sel, func(i int) int64 { return int64(reqOf[i].e2e.TimeToRead) }))
	}
	fmt.Fprintf(w, "  %-12s %9s %9s %9s %9s\n", "fetch req", "send→wr", "ack→wr", "wr→read", "asked late")
	for _, part := range tailGroups {
		sel, fetchOf := carried(slowest(part.frac), t.fetchOf)
		late := 0
		for _, i := range sel {
			if fetchOf[i].writeStart() > t.ack[i] {
				late++
			}
		}
		if len(sel) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-12s %9.3f %9.3f %9.3f %8.0f%%\n", part.label,
			med(sel, func(i int) int64 { return fetchOf[i].writeStart() - t.send[i] }),
			med(sel, func(i int) int64 { return fetchOf[i].writeStart() - t.ack[i] }),
			med(sel, func(i int) int64 { return fetchOf[i].end - fetchOf[i].writeStart() }),
			100*float64(late)/float64(len(sel)))
	}
	fmt.Fprintf(w, "  (medians within each group; late: send - pacing slot; ack: send → produce promise; fetched: send → consumer buffered it;\n   fetch>ack: buffered more than 0.2 ms after the ack; in GC: a harness GC pause ended while the record was in flight;\n   produce req: the Produce request that carried the record (kgo BrokerE2E): send→wr from Produce to the request's write,\n   wr wait: kgo's WriteWait, rd wait: waiting behind earlier in-flight responses, to read: the response's wait + read, i.e. broker + network + kgo's reader;\n   fetch req: the Fetch that returned the record: its write after the send and after the ack, write → response read, asked late: written after the ack)\n")
	return nil
}

// tailGroups are the rows of the timeline's tables: every record, then the
// slowest 10%, 1% and 0.1%.
var tailGroups = []struct {
	label string
	frac  float64
}{{"all", 1}, {"slowest 10%", 0.1}, {"slowest 1%", 0.01}, {"slowest 0.1%", 0.001}}

// carried keeps the records of sel for which of finds the request that
// carried them, and returns those requests by record.
func carried(sel []int, of func(i int) (produceReq, bool)) ([]int, map[int]produceReq) {
	var kept []int
	reqs := map[int]produceReq{}
	for _, i := range sel {
		if q, ok := of(i); ok {
			kept = append(kept, i)
			reqs[i] = q
		}
	}
	return kept, reqs
}

func sumPauses(p [][2]int64) int64 {
	var s int64
	for _, x := range p {
		s += x[1]
	}
	return s
}
