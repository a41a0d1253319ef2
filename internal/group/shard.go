package group

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// shard drives the state machine of one loaded __consumer_offsets
// partition: the loop goroutine owns the partitionState and is the only
// one to touch it; the writer goroutine appends what the state machine
// emits, one Append at a time (so the log holds records in the order they
// were decided), coalescing the writes queued meanwhile into one call.
type shard struct {
	p   int32
	c   *Coordinator
	st  *partitionState // owned by the loop goroutine
	log Log

	inbox   chan event      // requests; bounded: senders block when full
	results chan appendDone // append outcomes from the writer
	ticks   chan chan struct{}

	wmu     sync.Mutex
	wqueue  []*write
	wsignal chan struct{} // capacity 1: "the queue is not empty"

	ctx    context.Context // cancelled by stop: ends a blocked Append
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has exited
	wg     sync.WaitGroup
}

const (
	inboxSize = 1024
	// maxAppendBytes bounds the batches coalesced into one Append; a
	// single write larger than this still goes alone.
	maxAppendBytes = 1 << 20
)

func startShard(c *Coordinator, st *partitionState) *shard {
	ctx, cancel := context.WithCancel(context.Background())
	sh := &shard{
		p:       st.partition,
		c:       c,
		st:      st,
		log:     c.log,
		inbox:   make(chan event, inboxSize),
		results: make(chan appendDone, 64),
		ticks:   make(chan chan struct{}),
		wsignal: make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	sh.goFunc(sh.run)
	sh.goFunc(sh.writeLoop)
	return sh
}

func (sh *shard) goFunc(fn func()) {
	sh.wg.Add(1)
	go func() {
		defer sh.wg.Done()
		fn()
	}()
}

// stop ends both goroutines and waits for them. Requests still parked are
// answered NOT_COORDINATOR by their callers, who watch done.
func (sh *shard) stop() {
	sh.cancel()
	sh.wg.Wait()
}

// run is the event loop.
func (sh *shard) run() {
	defer close(sh.done)
	var timer *time.Timer
	var timerC <-chan time.Time
	if !sh.c.manualTime {
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	for {
		sh.flushWrites()
		if timer != nil {
			timer.Stop()
			if next := sh.st.NextDeadline(); !next.IsZero() {
				timer.Reset(max(next.Sub(sh.c.cfg.Now()), 0))
				timerC = timer.C
			} else {
				timerC = nil
			}
		}
		select {
		case <-sh.ctx.Done():
			return
		case ev := <-sh.inbox:
			sh.st.Tick(sh.c.cfg.Now())
			sh.st.Step(ev)
		case r := <-sh.results:
			sh.st.Tick(sh.c.cfg.Now())
			sh.st.Step(r)
		case <-timerC:
			sh.st.Tick(sh.c.cfg.Now())
		case ack := <-sh.ticks:
			sh.st.Tick(sh.c.cfg.Now())
			sh.flushWrites()
			close(ack)
		}
	}
}

// flushWrites hands the state machine's new writes to the writer.
func (sh *shard) flushWrites() {
	ws := sh.st.TakeWrites()
	if len(ws) == 0 {
		return
	}
	sh.wmu.Lock()
	sh.wqueue = append(sh.wqueue, ws...)
	sh.wmu.Unlock()
	select {
	case sh.wsignal <- struct{}{}:
	default:
	}
}

// writeLoop appends queued writes in order.
func (sh *shard) writeLoop() {
	var buf []byte
	for {
		select {
		case <-sh.ctx.Done():
			return
		case <-sh.wsignal:
		}
		for {
			sh.wmu.Lock()
			jobs := sh.wqueue
			sh.wqueue = nil
			sh.wmu.Unlock()
			if len(jobs) == 0 {
				break
			}
			for len(jobs) > 0 {
				// A fresh buffer each time: the Log may keep what it
				// is given.
				buf = make([]byte, 0, cap(buf))
				var sent, failed []appendDone
				n := 0
				for ; n < len(jobs) && (n == 0 || len(buf) < maxAppendBytes); n++ {
					var err error
					start := len(buf)
					buf, err = buildWrite(buf, jobs[n], sh.c.cfg.Now())
					if err != nil {
						buf = buf[:start]
						failed = append(failed, appendDone{id: jobs[n].id, err: fmt.Errorf("group: build batch: %w", err)})
						continue
					}
					sent = append(sent, appendDone{id: jobs[n].id})
				}
				jobs = jobs[n:]
				var err error
				if len(sent) > 0 {
					err = sh.log.Append(sh.ctx, sh.p, buf)
				}
				for _, r := range sent {
					r.err = err
					if !sh.report(r) {
						return
					}
				}
				for _, r := range failed {
					if !sh.report(r) {
						return
					}
				}
			}
		}
	}
}

func (sh *shard) report(r appendDone) bool {
	select {
	case sh.results <- r:
		return true
	case <-sh.ctx.Done():
		return false
	}
}

// call sends the event made by mk to the loop and waits for its reply. ok
// is false if ctx ended or the shard stopped first; stopped tells which.
func call[T any](ctx context.Context, sh *shard, mk func(reply func(T)) event) (v T, ok, stopped bool) {
	ch := make(chan T, 1)
	ev := mk(func(v T) {
		select {
		case ch <- v:
		default: // answered twice: a bug, but never block the loop
		}
	})
	select {
	case sh.inbox <- ev:
	case <-ctx.Done():
		return v, false, false
	case <-sh.done:
		return v, false, true
	}
	select {
	case v = <-ch:
		return v, true, false
	case <-ctx.Done():
		return v, false, false
	case <-sh.done:
		select {
		case v = <-ch:
			return v, true, false
		default:
			return v, false, true
		}
	}
}

// tick makes the loop Tick now and waits until it has (tests with a manual
// clock).
func (sh *shard) tick() {
	ack := make(chan struct{})
	select {
	case sh.ticks <- ack:
		<-ack
	case <-sh.done:
	}
}
