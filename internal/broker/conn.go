package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/protocol"
)

var syscallEMFILE = syscall.EMFILE

const (
	produceKey = 0
	fetchKey   = 1
)

// maxInFlight bounds the requests of one connection that have been handled
// but not yet answered (pipelining). When full, the connection stops reading:
// backpressure instead of an unbounded queue.
const maxInFlight = 64

// inlineWriteLimit is the largest response the reader goroutine writes
// itself when the writer is idle; larger ones (big fetches) go to the
// writer so that reading and handling the next request overlaps the send.
const inlineWriteLimit = protocol.SmallMessageLimit

// conn serves one client connection. A reader goroutine decodes requests and
// runs their handlers in arrival order; a writer goroutine sends responses in
// the same order, waiting for deferred ones (acks=all produce, long-poll
// fetch) without holding up the handling of the requests behind them. A
// response that is ready at once and small, while nothing is queued for the
// writer, is written by the reader itself: no hand-off, no wake-up.
type conn struct {
	b      *Broker
	nc     net.Conn
	logger *slog.Logger

	out chan *pending
	// queued counts the responses handed to the writer (sent on out) that
	// it has not finished with. Zero means the writer is idle and has
	// written everything before: the reader may write the next response
	// itself without breaking the order.
	queued atomic.Int32
	// writerStarted is the reader's: the writer goroutine runs.
	writerStarted bool
	closeOnce     sync.Once
	wg            sync.WaitGroup // the writer and deferred-response goroutines
	// readStop is closed to ask the reader to stop after the current frame.
	readStop     chan struct{}
	readStopOnce sync.Once
	// hp parses request headers; it is the reader's (handleFrame's) alone.
	hp protocol.HeaderParser
	// bufs lends the reader pooled frame buffers (readPooledFrame).
	bufs frameBufs
}

// pending is one request's response slot in the connection's ordered queue.
type pending struct {
	hdr   protocol.Header
	start time.Time
	api   string
	msg   *protocol.Message
	// ready is closed when msg is set; nil when msg was set at once.
	ready chan struct{}
	// none marks a request that gets no response (acks=0 produce).
	none bool
	// fail, when set on a deferred response, closes the connection.
	fail error
	// serial makes the reader wait for this response before reading the
	// next request (coordinator requests: their effects must be ordered).
	serial bool
	// req is the request being handled, allocated with its slot.
	req request
}

func newConn(b *Broker, nc net.Conn) *conn {
	return &conn{
		b:        b,
		nc:       nc,
		logger:   b.logger.With("remote", nc.RemoteAddr().String()),
		out:      make(chan *pending, maxInFlight),
		readStop: make(chan struct{}),
	}
}

func (c *conn) stopReading() {
	c.readStopOnce.Do(func() {
		close(c.readStop)
		// Wake a reader blocked waiting for the next frame.
		_ = c.nc.SetReadDeadline(time.Now())
	})
}

func (c *conn) close() { c.closeOnce.Do(func() { _ = c.nc.Close() }) }

func (c *conn) serve(ctx context.Context) {
	c.b.metrics.connections.Inc()
	defer c.b.metrics.connections.Dec()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	err := c.readLoop(ctx)
	close(c.out)
	if err != nil {
		c.logger.Debug("connection closing", "err", err)
	}
	c.wg.Wait()
	c.close()
}

// startWriter starts the writer goroutine, on the first response that
// goes through the queue: a connection whose responses are all written
// inline (an idle one, a one-request-at-a-time client) never has one.
// Called by the reader only.
func (c *conn) startWriter(ctx context.Context) {
	if c.writerStarted {
		return
	}
	c.writerStarted = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.writeLoop(ctx)
		// If the writer stops (write error), stop the reader too.
		c.close()
	}()
}

// readAheadSize is the connection's read buffer. Small requests (ApiVersions,
// Metadata, Fetch, a one-record Produce) arrive whole in one read; larger
// bodies are read straight into a pooled frame buffer (bufio reads directly
// into the destination when it is at least this large), so an idle
// connection holds only this much.
const readAheadSize = 2 << 10

// frameClasses are the sizes of the pooled frame buffers of Produce and
// Fetch requests (the requests whose handlers are done with the frame when
// they return); larger frames are allocated as they arrive. Classes above
// growFrom are taken only as a frame's bytes arrive (readPooledFrame).
var frameClasses = [...]int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20,
	2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}

// growFrom is the largest buffer taken on a frame's announced size alone,
// as protocol.ReadFrame allocates at most this much ahead of the bytes.
const growFrom = 1 << 20

var framePools [len(frameClasses)]sync.Pool

// getFrameBuf returns a pooled buffer of at least n bytes, nil above the
// largest class.
func getFrameBuf(n int) *[]byte {
	for i, size := range frameClasses {
		if n <= size {
			if b, ok := framePools[i].Get().(*[]byte); ok {
				return b
			}
			b := make([]byte, size)
			return &b
		}
	}
	return nil
}

// putFrameBuf returns a buffer from getFrameBuf to its pool.
func putFrameBuf(b *[]byte) {
	for i, size := range frameClasses {
		if cap(*b) == size {
			*b = (*b)[:size]
			framePools[i].Put(b)
			return
		}
	}
}

// frameBufs lends protocol.ReadFrameInto pooled buffers for one Produce
// or Fetch frame: one of the frame's class up to growFrom, and beyond that
// a buffer four times as large each time the previous one has filled.
// Memory follows the bytes received (at most 4× them, where
// protocol.ReadFrame's doubling allows 2×), the bytes are copied at most
// 1/3 more times, and a large Produce request costs no allocation: a
// fresh 16 MiB frame per request meant page faults and GC work, 3–6 CPU-s
// per GB produced on the benchmark VM. body is the buffer in use, for
// putFrameBuf.
type frameBufs struct{ body *[]byte }

// Grow implements protocol.Buffers.
func (f *frameBufs) Grow(have []byte, size int) []byte {
	want := min(size, growFrom)
	if have != nil {
		want = min(size, 4*cap(have))
	}
	next := getFrameBuf(want)
	if next == nil { // above the largest class: readLoop reads those with ReadFrame
		b := make([]byte, want)
		next = &b
	}
	copy(*next, have)
	if f.body != nil {
		putFrameBuf(f.body)
	}
	f.body = next
	return (*next)[:len(have)]
}

// readPooledFrame reads the next frame, at most the largest frame class,
// into pooled buffers lent by bufs (reset here), and returns the frame and
// its buffer, to go back with putFrameBuf.
func readPooledFrame(br *bufio.Reader, limit int32, bufs *frameBufs) (frame []byte, body *[]byte, err error) {
	bufs.body = nil
	frame, err = protocol.ReadFrameInto(br, limit, bufs)
	if err != nil {
		if bufs.body != nil {
			putFrameBuf(bufs.body)
		}
		return nil, nil, err
	}
	return frame, bufs.body, nil
}

// peekFrame reads ahead the size prefix and api key of the next frame.
// ok is false when the size is invalid (ReadFrame then reports it) or the
// bytes could not be read (ReadFrame reports that too).
func peekFrame(br *bufio.Reader, limit int32) (key int16, size int, ok bool) {
	if limit <= 0 {
		limit = protocol.DefaultMaxFrameSize
	}
	b, err := br.Peek(4)
	if err != nil {
		return 0, 0, false
	}
	n := int32(binary.BigEndian.Uint32(b))
	if n < protocol.MinFrameSize || n > limit {
		return 0, 0, false
	}
	if b, err = br.Peek(6); err != nil {
		return 0, 0, false
	}
	return int16(binary.BigEndian.Uint16(b[4:])), int(n), true
}

func (c *conn) readLoop(ctx context.Context) error {
	br := bufio.NewReaderSize(c.nc, readAheadSize)
	for {
		select {
		case <-c.readStop:
			return nil
		default:
		}
		if err := c.nc.SetReadDeadline(time.Now().Add(c.b.set.idleTimeout)); err != nil {
			return err
		}
		// Produce and Fetch frames go into pooled buffers, returned once
		// the handler is done with them; other requests keep their frame
		// (their decoded values alias it), which is allocated.
		var body *[]byte
		var frame []byte
		var err error
		if key, size, ok := peekFrame(br, c.b.set.maxRequestSize); ok && (key == produceKey || key == fetchKey) && size <= frameClasses[len(frameClasses)-1] {
			frame, body, err = readPooledFrame(br, c.b.set.maxRequestSize, &c.bufs)
		} else {
			frame, err = protocol.ReadFrame(br, c.b.set.maxRequestSize, nil)
		}
		if err != nil {
			if body != nil {
				putFrameBuf(body)
			}
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
				return nil
			case errors.Is(err, os.ErrDeadlineExceeded):
				select {
				case <-c.readStop:
					return nil
				default:
				}
				c.logger.Info("closing idle connection", "connections.max.idle.ms", c.b.set.idleTimeout.Milliseconds())
				return err
			case errors.Is(err, protocol.ErrFrameTooLarge), errors.Is(err, protocol.ErrBadFrameSize):
				c.b.metrics.badFrames.Inc()
				c.logger.Warn("closing connection: bad request frame", "err", err)
				return err
			}
			return err
		}
		p, key, err := c.handleFrame(ctx, frame)
		// Decoded requests alias the frame's bytes. Produce and Fetch
		// handlers are done with them when they return (records are
		// appended synchronously; deferred work keeps no request bytes), so
		// their pooled frames go back at once. After a failure (a panic
		// may have left references behind) the buffer is left to the GC.
		if body != nil && err == nil && (key == produceKey || key == fetchKey) {
			putFrameBuf(body)
		}
		if err != nil {
			c.b.metrics.badFrames.Inc()
			c.logger.Warn("closing connection: bad request", "err", err)
			return err
		}
		if p.ready == nil && c.queued.Load() == 0 && (p.none || p.msg.Len() <= inlineWriteLimit) {
			if err := c.writeInline(p); err != nil {
				return err
			}
			continue
		}
		c.startWriter(ctx)
		c.queued.Add(1)
		select {
		case c.out <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
		if p.serial {
			select {
			case <-p.ready:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// handleFrame decodes one request and runs its handler. An error closes the
// connection.
func (c *conn) handleFrame(ctx context.Context, frame []byte) (p *pending, key int16, err error) {
	hdr, body, err := c.hp.Parse(frame)
	if err != nil {
		return nil, -1, fmt.Errorf("request header: %w", err)
	}
	key = hdr.Key
	h, ok := handlers[hdr.Key]
	if !ok {
		return nil, key, fmt.Errorf("api key %d (version %d) is not supported", hdr.Key, hdr.Version)
	}
	p = &pending{hdr: hdr, start: time.Now(), api: h.name}
	if hdr.Version < h.min || hdr.Version > h.max {
		if hdr.Key == apiVersionsKey {
			p.msg = protocol.AppendResponse(hdr, apiVersionsUnsupported(hdr.Version))
			return p, key, nil
		}
		resp, ok := unsupportedVersionResponse(hdr)
		if !ok {
			return nil, key, fmt.Errorf("%s version %d is not supported (supported %d-%d)", h.name, hdr.Version, h.min, h.max)
		}
		c.logger.Info("unsupported request version", "api", h.name, "version", hdr.Version, "min", h.min, "max", h.max)
		p.msg = protocol.AppendResponse(hdr, resp)
		return p, key, nil
	}
	req, err := protocol.DecodeBody(hdr, body)
	if err != nil {
		return nil, key, fmt.Errorf("%s v%d body: %w", h.name, hdr.Version, err)
	}
	defer func() {
		if r := recover(); r != nil {
			c.b.metrics.panics.Inc()
			c.logger.Error("panic while handling request; closing connection", "api", h.name, "version", hdr.Version, "panic", r, "stack", string(debug.Stack()))
			p, err = nil, fmt.Errorf("panic in %s handler: %v", h.name, r)
		}
	}()
	r := &p.req
	*r = request{ctx: ctx, c: c, hdr: hdr, p: p}
	resp := h.fn(c.b, r, req)
	switch {
	case r.deferred:
	case resp == nil:
		p.none = true
	default:
		p.msg = protocol.AppendResponse(hdr, resp)
	}
	return p, key, nil
}

// writeInline writes a ready response from the reader goroutine while the
// writer is idle (queued == 0). An error closes the connection.
func (c *conn) writeInline(p *pending) error {
	if err := c.send(p); err != nil {
		c.close()
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// send records p's metrics and writes its response, if it has one, from
// whichever goroutine writes (writeInline or writeQueued).
func (c *conn) send(p *pending) error {
	c.b.metrics.observe(p)
	if p.none {
		return nil
	}
	err := c.b.sender.Send(c.nc, p.msg)
	c.b.metrics.bytesOut.Add(float64(p.msg.Len()))
	p.msg.Release()
	return err
}

func (c *conn) writeLoop(ctx context.Context) {
	for p := range c.out {
		ok := c.writeQueued(ctx, p)
		c.queued.Add(-1)
		if !ok {
			c.drain()
			return
		}
	}
}

// writeQueued sends one queued response, waiting for it if deferred. It
// returns false when the connection must close (it is then closed).
func (c *conn) writeQueued(ctx context.Context, p *pending) bool {
	if p.ready != nil {
		select {
		case <-p.ready:
		case <-ctx.Done():
			// The response may still be in the making: drain waits for it.
			return false
		}
	}
	if p.fail != nil {
		c.logger.Warn("closing connection", "api", p.api, "err", p.fail)
		c.close()
		return false
	}
	if err := c.send(p); err != nil {
		c.logger.Debug("write failed; closing connection", "err", err)
		c.close()
		return false
	}
	return true
}

// drain consumes the queue after the writer gave up, so the reader never
// blocks on a full queue of a dead connection.
func (c *conn) drain() {
	for p := range c.out {
		if p.ready != nil {
			<-p.ready
		}
		p.msg.Release()
		c.queued.Add(-1)
	}
}

// request is one request being handled.
type request struct {
	ctx      context.Context
	c        *conn
	hdr      protocol.Header
	p        *pending
	deferred bool
}

// later answers the request from fn, run in a goroutine owned by the
// connection; the responses behind it are handled meanwhile but sent after
// it. fn returns nil for no response.
func (r *request) later(fn func(ctx context.Context) kmsg.Response) {
	r.deferMsg(func(ctx context.Context) *protocol.Message {
		resp := fn(ctx)
		if resp == nil {
			return nil
		}
		return protocol.AppendResponse(r.hdr, resp)
	})
}

// serial is later for requests whose effects must be ordered with the
// requests behind them: the connection reads nothing more until it is done.
func (r *request) serial(fn func(ctx context.Context) kmsg.Response) {
	r.later(fn)
	r.p.serial = true
}

// respond answers the request at once with a message the handler built
// itself (Fetch), with no goroutine; the handler then returns nil.
func (r *request) respond(m *protocol.Message) {
	r.deferred = true
	if m == nil {
		r.p.none = true
		return
	}
	r.p.msg = m
}

// deferMsg is later for handlers that build the serialized message
// themselves (Fetch).
func (r *request) deferMsg(fn func(ctx context.Context) *protocol.Message) {
	r.deferred = true
	p := r.p
	p.ready = make(chan struct{})
	c := r.c
	ctx := r.ctx
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.ready)
		defer func() {
			if rec := recover(); rec != nil {
				c.b.metrics.panics.Inc()
				c.logger.Error("panic while completing request; closing connection", "api", p.api, "panic", rec, "stack", string(debug.Stack()))
				p.fail = fmt.Errorf("panic in %s: %v", p.api, rec)
			}
		}()
		msg := fn(ctx)
		if msg == nil {
			p.none = true
			return
		}
		p.msg = msg
	}()
}

// handler is one registered API.
type handler struct {
	name     string
	min, max int16
	fn       func(b *Broker, r *request, req kmsg.Request) kmsg.Response
}

// handlers is filled by the NN_*.go files' init functions: the API key,
// its supported version range, and the function. ApiVersions is built from
// it.
var handlers = map[int16]handler{}

func register[Req kmsg.Request](key int16, min, max int16, fn func(b *Broker, r *request, req Req) kmsg.Response) {
	name := kmsg.NameForKey(key)
	handlers[key] = handler{name: name, min: min, max: max, fn: func(b *Broker, r *request, req kmsg.Request) kmsg.Response {
		return fn(b, r, req.(Req))
	}}
}

// unsupportedVersionResponse builds a response at the request's version
// carrying UNSUPPORTED_VERSION in its top-level error code, for APIs whose
// response has one; others close the connection as Kafka does.
func unsupportedVersionResponse(h protocol.Header) (kmsg.Response, bool) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil || h.Version > req.MaxVersion() {
		return nil, false
	}
	resp := req.ResponseKind()
	resp.SetVersion(h.Version)
	v := reflect.ValueOf(resp).Elem()
	f := v.FieldByName("ErrorCode")
	if !f.IsValid() || f.Kind() != reflect.Int16 {
		return nil, false
	}
	f.SetInt(int64(kerr.UnsupportedVersion.Code))
	return resp, true
}

// errCode maps an error to its Kafka code: kerr errors as themselves, the
// storage engine's errors through storageErrCode, anything else as
// UNKNOWN_SERVER_ERROR.
func errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if code, ok := storageErrCode(err); ok {
		return code
	}
	return kerr.UnknownServerError.Code
}

// errMessage is the message to send beside a code (nil for none).
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// remoteIP is the client's IP address, as Kafka reports a member's host.
func (c *conn) remoteIP() string {
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.nc.RemoteAddr().String()
}
