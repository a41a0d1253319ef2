package broker_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/protocol"
)

// faultProxy is a TCP proxy in front of a broker that delays client
// requests. It reads the client's stream as Kafka request frames (4-byte
// size, then the header: api key, version, correlation id) and asks
// delay(apiKey) how long to hold each one. A connection stays ordered, as a
// Kafka connection is: a held frame holds every frame behind it (each frame
// leaves at max(previous departure, arrival + delay)).
//
// Frames the client sent before closing its connection are still
// delivered, late, after the close (as the kernel would deliver bytes
// already in flight): this is the "delayed message" that reaches the
// broker after the client gave up on it and moved on. Afterwards the proxy
// half-closes the broker side, and the broker answers what it read into
// the void.
//
// The late AddPartitionsToTxn and EndTxn requests are decoded and kept
// (lateReqs) so a test can tell which transactions a late request could
// have hit.
//
// Start the broker with sluicetest.Advertise(proxy.addr()) so clients
// reach it through the proxy also after Metadata and FindCoordinator.
// Goroutines: one accept loop, three per connection (client reader,
// timed forwarder, broker-to-client copy), all waited for by close (a
// t.Cleanup).
type faultProxy struct {
	ln     net.Listener
	target string
	delay  func(apiKey int16) time.Duration

	done chan struct{} // closed at cleanup: held frames are dropped
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	// held counts frames read from clients and not yet delivered or
	// dropped.
	held atomic.Int64

	began    time.Time
	lateMu   sync.Mutex
	lateReqs []lateRequest // transaction requests delivered after their client left

	// Counters, by API key (index): frames forwarded, frames delayed,
	// frames delivered after their client connection had closed.
	forwarded [faultProxyKeys]atomic.Int64
	delayed   [faultProxyKeys]atomic.Int64
	late      [faultProxyKeys]atomic.Int64
}

const faultProxyKeys = 128

// newFaultProxy listens on 127.0.0.1:0. Set target, then call serve.
// delay may be nil (no delays) and is called from many goroutines.
func newFaultProxy(t *testing.T, delay func(apiKey int16) time.Duration) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if delay == nil {
		delay = func(int16) time.Duration { return 0 }
	}
	p := &faultProxy{ln: ln, delay: delay, done: make(chan struct{}), conns: map[net.Conn]struct{}{}, began: time.Now()}
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c to be closed by close; false if the proxy is closing.
func (p *faultProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *faultProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

// serve accepts connections until close.
func (p *faultProxy) serve() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

// heldFrame is a request frame waiting for its departure time.
type heldFrame struct {
	frame  []byte
	key    int16
	depart time.Time
}

func (p *faultProxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	defer p.untrack(client, server)

	// Bounded: a client far ahead of its held frames waits (TCP
	// backpressure), which is what a slow link does too.
	queue := make(chan heldFrame, 256)
	var clientGone atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client -> queue
		defer wg.Done()
		defer close(queue)
		last := time.Now()
		for {
			f, err := readFrame(client)
			if err != nil || len(f) < 12 {
				clientGone.Store(true)
				return
			}
			key := int16(binary.BigEndian.Uint16(f[4:]))
			now := time.Now()
			d := p.delay(key)
			depart := now.Add(d)
			if depart.Before(last) {
				depart = last
			}
			last = depart
			if d > 0 && key >= 0 && key < faultProxyKeys {
				p.delayed[key].Add(1)
			}
			p.held.Add(1)
			select {
			case queue <- heldFrame{frame: f, key: key, depart: depart}:
			case <-p.done:
				p.held.Add(-1)
				return
			}
		}
	}()
	go func() { // queue -> broker, at each frame's departure time
		defer wg.Done()
		timer := time.NewTimer(0)
		defer timer.Stop()
		broken := false // the broker side failed: drain the queue only
		deliver := func(hf heldFrame) {
			defer p.held.Add(-1)
			if broken {
				return
			}
			if wait := time.Until(hf.depart); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-p.done:
					broken = true
					return
				}
			}
			if _, err := server.Write(hf.frame); err != nil {
				broken = true
				_ = client.Close()
				return
			}
			if hf.key >= 0 && hf.key < faultProxyKeys {
				p.forwarded[hf.key].Add(1)
				if clientGone.Load() {
					p.late[hf.key].Add(1)
					p.noteLate(hf)
				}
			}
		}
		for hf := range queue {
			deliver(hf)
		}
		// Everything the client sent is delivered: end the broker's
		// read side; it still answers what it read.
		if tc, ok := server.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	// broker -> client. Once the client is gone, keep draining the
	// broker's answers (to late requests) so it is never blocked on us.
	if _, err := io.Copy(client, server); err != nil {
		_, _ = io.Copy(io.Discard, server)
	}
	_ = client.Close() // the client reader ends; the forwarder drains
	wg.Wait()
}

// lateRequest is a transaction coordinator request that reached the
// broker after its client had closed the connection.
type lateRequest struct {
	at         time.Duration // since the proxy started
	key        int16
	producerID int64
	epoch      int16
	desc       string
}

// noteLate records hf if it is an AddPartitionsToTxn or EndTxn.
func (p *faultProxy) noteLate(hf heldFrame) {
	if hf.key != 24 && hf.key != 26 {
		return
	}
	h, body, err := protocol.ParseHeader(hf.frame[4:])
	if err != nil {
		return
	}
	req, err := protocol.DecodeBody(h, body)
	if err != nil {
		return
	}
	lr := lateRequest{at: time.Since(p.began), key: hf.key}
	switch r := req.(type) {
	case *kmsg.AddPartitionsToTxnRequest:
		lr.producerID, lr.epoch = r.ProducerID, r.ProducerEpoch
		var tps []string
		for _, t := range r.Topics {
			for _, pt := range t.Partitions {
				tps = append(tps, fmt.Sprintf("%s/%d", t.Topic, pt))
			}
		}
		lr.desc = fmt.Sprintf("late AddPartitionsToTxn v%d %s producer %d epoch %d %v", h.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch, tps)
	case *kmsg.EndTxnRequest:
		lr.producerID, lr.epoch = r.ProducerID, r.ProducerEpoch
		lr.desc = fmt.Sprintf("late EndTxn v%d %s producer %d epoch %d commit %v", h.Version, r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit)
	default:
		return
	}
	p.lateMu.Lock()
	p.lateReqs = append(p.lateReqs, lr)
	p.lateMu.Unlock()
}

// lateFor lists the late transaction requests of a producer id.
func (p *faultProxy) lateFor(producerID int64) []string {
	p.lateMu.Lock()
	defer p.lateMu.Unlock()
	var out []string
	for _, lr := range p.lateReqs {
		if lr.producerID == producerID {
			out = append(out, fmt.Sprintf("%v %s", lr.at.Round(time.Millisecond), lr.desc))
		}
	}
	return out
}

// lateEndTxn reports whether an EndTxn of producerID/epoch reached the
// broker late between from and to (since the proxy started).
func (p *faultProxy) lateEndTxn(producerID int64, epoch int16, from, to time.Duration) bool {
	p.lateMu.Lock()
	defer p.lateMu.Unlock()
	for _, lr := range p.lateReqs {
		if lr.key == 26 && lr.producerID == producerID && lr.epoch == epoch && lr.at >= from && lr.at <= to {
			return true
		}
	}
	return false
}

// counts returns the forwarded, delayed and late counters of an API key.
func (p *faultProxy) counts(key int16) (forwarded, delayed, late int64) {
	return p.forwarded[key].Load(), p.delayed[key].Load(), p.late[key].Load()
}
