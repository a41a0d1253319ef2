package metadata

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Write forwarding and the controller RPCs.
//
// The controller listener carries two protocols on one port, told apart by
// the first byte of a connection (as Consul multiplexes its RPC and Raft
// traffic): hashicorp/raft's NetworkTransport opens every connection with
// its RPC type (0..4), and our forwarding connections open with
// forwardMagic. muxLayer is the raft.StreamLayer that splits them, so raft
// keeps its own transport untouched and a node needs to know only the
// voters' controller addresses (--controller-voters) to reach the leader.
//
// Forwarding is not consensus: the leader applies what it receives through
// raft.Apply like its own writes. The protocol is net/rpc (gob framing)
// with a single method, Metadata.Call, whose argument and reply are JSON
// documents (fwdRequest, fwdResponse). Ops:
//
//   - apply: an encoded command (planned by the sender) to raft.Apply; the
//     reply carries the FSM's result and the entry's index, which the
//     sender waits for locally before returning (read-your-writes).
//   - sync: join and catch up. The leader adds the sender as a non-voter if
//     it is not a member (or updates its address), runs a Barrier and
//     returns its applied index.
//   - heartbeat: a broker's liveness (liveness.go).
//   - add_voter, remove_voter: quorum changes (cluster.go).
//
// A node that is not the leader answers Retry with the leader's address;
// the caller retries there (or at the next voter) until its context ends.

// forwardMagic opens a forwarding connection; never a raft RPC type.
const forwardMagic byte = 0xF7

// forwardTimeout bounds a forwarded call whose context has no deadline.
const forwardTimeout = 10 * time.Second

const (
	opApply       = "apply"
	opSync        = "sync"
	opHeartbeat   = "heartbeat"
	opAddVoter    = "add_voter"
	opRemoveVoter = "remove_voter"
)

type fwdRequest struct {
	Op        string `json:"op"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	Cmd       []byte `json:"cmd,omitempty"`
	NodeID    int32  `json:"node_id,omitempty"`
	Epoch     int64  `json:"epoch,omitempty"`
	Addr      string `json:"addr,omitempty"`
	// Heartbeat flags (Kafka's BrokerHeartbeat wantFence / wantShutDown).
	WantFence    bool `json:"want_fence,omitempty"`
	WantShutdown bool `json:"want_shutdown,omitempty"`
}

type fwdResponse struct {
	Code  int16  `json:"code,omitempty"` // kerr code of the error, 0 = none
	Msg   string `json:"msg,omitempty"`
	Retry bool   `json:"retry,omitempty"` // not the leader, nothing done: ask LeaderAddr
	// LeaderAddr is the leader's controller address if known.
	LeaderAddr string `json:"leader_addr,omitempty"`
	// Index: apply = the entry's index; sync = the leader's applied index.
	Index uint64 `json:"index,omitempty"`
	// Apply results.
	First   int64      `json:"first,omitempty"`
	Part    *Partition `json:"part,omitempty"`
	PerCode []int16    `json:"per_code,omitempty"`
	PerMsg  []string   `json:"per_msg,omitempty"`
	// Heartbeat results.
	Fenced               bool `json:"fenced,omitempty"`
	InControlledShutdown bool `json:"in_controlled_shutdown,omitempty"`
	ShouldShutDown       bool `json:"should_shut_down,omitempty"`
}

// errToWire turns an error into a kerr code and message.
func errToWire(err error) (int16, string) {
	if err == nil {
		return 0, ""
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code, KafkaMessage(err)
	}
	return kerr.UnknownServerError.Code, err.Error()
}

// errFromWire is errToWire's inverse: a kafkaError wrapping the code.
func errFromWire(code int16, msg string) error {
	if code == 0 {
		return nil
	}
	ke := kerr.ErrorForCode(code)
	var k *kerr.Error
	if !errors.As(ke, &k) {
		k = kerr.UnknownServerError
	}
	return &kafkaError{msg: "metadata: " + msg, code: k}
}

func (r *fwdResponse) setErr(err error) { r.Code, r.Msg = errToWire(err) }

func (r *fwdResponse) err() error { return errFromWire(r.Code, r.Msg) }

// result rebuilds the FSM result of a forwarded apply.
func (r *fwdResponse) result() applyResult {
	res := applyResult{err: r.err(), first: r.First, part: r.Part}
	for i, c := range r.PerCode {
		res.perPart = append(res.perPart, errFromWire(c, r.PerMsg[i]))
	}
	return res
}

// ---- server side ----

// forwardService is the net/rpc receiver registered as "Metadata".
type forwardService struct{ s *Store }

// Call handles one forwarded request (JSON in, JSON out).
func (f *forwardService) Call(in []byte, out *[]byte) error {
	var req fwdRequest
	if err := json.Unmarshal(in, &req); err != nil {
		return fmt.Errorf("metadata: bad forwarded request: %w", err)
	}
	timeout := forwardTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(f.s.ctx, timeout)
	defer cancel()
	resp := f.s.handle(ctx, &req)
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	*out = b
	return nil
}

// serveForward serves one forwarding connection until it closes.
func (s *Store) serveForward(conn net.Conn) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Metadata", &forwardService{s: s}); err != nil {
		s.logger.Error("metadata: register forward service", "err", err)
		_ = conn.Close()
		return
	}
	srv.ServeConn(conn)
}

// notLeader is the reply of a node that is not the leader.
func (s *Store) notLeader() *fwdResponse {
	addr, _ := s.raft.LeaderWithID()
	r := &fwdResponse{Retry: true, LeaderAddr: string(addr)}
	r.setErr(kerrorf(kerr.NotController, "node %d is not the active controller", s.cfg.NodeID))
	return r
}

// handle runs a request on this node, which must be the leader.
func (s *Store) handle(ctx context.Context, req *fwdRequest) *fwdResponse {
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	resp := &fwdResponse{}
	switch req.Op {
	case opApply:
		res, index, retry, err := s.applyLocal(ctx, req.Cmd)
		if retry {
			return s.notLeader()
		}
		if err != nil {
			resp.setErr(err)
			return resp
		}
		resp.Index = index
		resp.setErr(res.err)
		resp.First, resp.Part = res.first, res.part
		for _, e := range res.perPart {
			c, m := errToWire(e)
			resp.PerCode = append(resp.PerCode, c)
			resp.PerMsg = append(resp.PerMsg, m)
		}
	case opSync:
		if err := s.ensureMember(ctx, req.NodeID, req.Addr); err != nil {
			resp.setErr(err)
			return resp
		}
		if err := s.raft.Barrier(timeoutFrom(ctx)).Error(); err != nil {
			resp.setErr(fmt.Errorf("metadata: barrier: %v: %w", err, kerr.NotController))
			return resp
		}
		resp.Index = s.fsm.appliedIndex()
	case opHeartbeat:
		return s.handleHeartbeat(ctx, req)
	case opAddVoter:
		resp.setErr(s.addVoterLocal(ctx, req.NodeID, req.Addr))
	case opRemoveVoter:
		resp.setErr(s.removeVoterLocal(ctx, req.NodeID))
	default:
		resp.setErr(kerrorf(kerr.InvalidRequest, "unknown forwarded op %q", req.Op))
	}
	return resp
}

// ---- client side ----

// call runs req on the leader: here if this node leads, else over the
// controller listener of the leader (or of each voter in turn while no
// leader is known), retrying while the answer is "not the leader" until
// ctx ends (forwardTimeout without a deadline). An apply whose request was
// sent but whose reply was lost is not retried: it fails with
// NOT_CONTROLLER, as it may or may not have been applied.
func (s *Store) call(ctx context.Context, req *fwdRequest) (*fwdResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, forwardTimeout)
		defer cancel()
	}
	var hint string
	var lastErr error
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if s.raft.State() == raft.Leader {
			resp := s.handle(ctx, req)
			if !resp.Retry {
				return resp, resp.err()
			}
			lastErr = resp.err()
		} else {
			addr := hint
			if addr == "" {
				a, _ := s.raft.LeaderWithID()
				addr = string(a)
			}
			if addr == "" && len(s.cfg.Voters) > 0 {
				addr = s.cfg.Voters[attempt%len(s.cfg.Voters)].Addr
			}
			hint = ""
			switch {
			case s.mux == nil:
				lastErr = kerrorf(kerr.NotController, "node %d is not the active controller and has no controller listener", s.cfg.NodeID)
			case addr == "" || addr == string(s.localAddr):
				lastErr = kerrorf(kerr.NotController, "no active controller known")
			default:
				resp, sent, err := s.rpcCall(ctx, addr, req)
				switch {
				case err == nil && !resp.Retry:
					return resp, resp.err()
				case err == nil:
					hint, lastErr = resp.LeaderAddr, resp.err()
				case sent && req.Op == opApply:
					return nil, fmt.Errorf("metadata: forwarding to %s: %v: %w", addr, err, kerr.NotController)
				default:
					lastErr = fmt.Errorf("metadata: forwarding to %s: %v: %w", addr, err, kerr.NotController)
				}
			}
		}
		if hint != "" && attempt < 3 {
			continue // follow a fresh leader hint at once
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("metadata: no active controller reachable: %w (last: %w)", ctx.Err(), lastErr)
		case <-s.ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", ErrClosed, kerr.NotController)
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// rpcCall sends one request to addr. sent reports whether the request may
// have reached the other side.
func (s *Store) rpcCall(ctx context.Context, addr string, req *fwdRequest) (_ *fwdResponse, sent bool, _ error) {
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMS = max(time.Until(dl).Milliseconds(), 1)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, false, err
	}
	client, err := s.forwardClient(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	var out []byte
	sentAt := time.Now().UnixNano()
	c := client.Go("Metadata.Call", in, &out, make(chan *rpc.Call, 1))
	select {
	case <-c.Done:
	case <-ctx.Done():
		// Close the connection only if it looks dead: nothing answered on
		// it since this call went out. A slow answer to one call (a
		// heartbeat with a short deadline, say) must not fail the other
		// calls waiting on the same connection.
		if client.lastReply.Load() < sentAt {
			s.dropForwardClient(addr, client)
		}
		return nil, true, ctx.Err()
	}
	if c.Error != nil {
		s.dropForwardClient(addr, client)
		// ErrShutdown: the cached connection was found broken (or was
		// dropped by another call's error) before the request went out.
		return nil, !errors.Is(c.Error, rpc.ErrShutdown), c.Error
	}
	client.lastReply.Store(time.Now().UnixNano())
	var resp fwdResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, true, fmt.Errorf("metadata: bad forwarded reply: %w", err)
	}
	return &resp, true, nil
}

// forwardClient returns the cached client for addr, dialing one when
// needed. There is one client per address: a call to one node (a
// heartbeat trying a voter while no leader is known, say) never closes the
// connection another call is waiting on, whose forwarded write could then
// not be retried safely.
func (s *Store) forwardClient(ctx context.Context, addr string) (*fwdClient, error) {
	s.fwd.Lock()
	defer s.fwd.Unlock()
	if c := s.fwd.clients[addr]; c != nil {
		return c, nil
	}
	if err := s.ctx.Err(); err != nil {
		return nil, ErrClosed
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{forwardMagic}); err != nil {
		_ = conn.Close() // the write error is the one worth reporting
		return nil, err
	}
	if s.fwd.clients == nil {
		s.fwd.clients = map[string]*fwdClient{}
	}
	c := &fwdClient{Client: rpc.NewClient(conn)}
	s.fwd.clients[addr] = c
	return c, nil
}

// fwdClient is a forwarding connection to one node.
type fwdClient struct {
	*rpc.Client
	lastReply atomic.Int64 // unix nanoseconds of the last answer read
}

// dropForwardClient closes c (broken, or its call timed out) and forgets
// it, unless it was replaced meanwhile.
func (s *Store) dropForwardClient(addr string, c *fwdClient) {
	s.fwd.Lock()
	defer s.fwd.Unlock()
	if s.fwd.clients[addr] == c {
		_ = c.Close() // broken already
		delete(s.fwd.clients, addr)
	}
}

func (s *Store) closeForwardClients() {
	s.fwd.Lock()
	defer s.fwd.Unlock()
	for addr, c := range s.fwd.clients {
		_ = c.Close() // shutting down
		delete(s.fwd.clients, addr)
	}
}

// ---- the multiplexing stream layer ----

// muxLayer is a raft.StreamLayer over one TCP listener that hands
// connections opening with forwardMagic to a forwarding handler and all
// others to raft. It owns one accept goroutine and one goroutine per
// connection being classified or served, all waited for by wait.
type muxLayer struct {
	ln     net.Listener
	addr   muxAddr
	handle func(net.Conn)
	raftCh chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // forwarding connections being served
}

type muxAddr string

func (a muxAddr) Network() string { return "tcp" }
func (a muxAddr) String() string  { return string(a) }

var _ raft.StreamLayer = (*muxLayer)(nil)

func newMuxLayer(ln net.Listener, advertise string, handle func(net.Conn)) *muxLayer {
	return &muxLayer{
		ln: ln, addr: muxAddr(advertise), handle: handle,
		raftCh: make(chan net.Conn), done: make(chan struct{}),
		conns: map[net.Conn]struct{}{},
	}
}

// start begins accepting (after raft is set up, since forwarded calls use
// it).
func (m *muxLayer) start() {
	m.wg.Add(1)
	go m.acceptLoop()
}

func (m *muxLayer) acceptLoop() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		m.wg.Add(1)
		go m.classify(conn)
	}
}

func (m *muxLayer) classify(conn net.Conn) {
	defer m.wg.Done()
	br := bufio.NewReaderSize(conn, 16)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a silent peer is dropped below
	first, err := br.Peek(1)
	_ = conn.SetReadDeadline(time.Time{}) // no deadline while serving
	if err != nil {
		_ = conn.Close() // nothing was said
		return
	}
	if first[0] == forwardMagic {
		_, _ = br.Discard(1) // peeked above
		m.mu.Lock()
		select {
		case <-m.done:
			m.mu.Unlock()
			_ = conn.Close() // closing
			return
		default:
		}
		m.conns[conn] = struct{}{}
		m.mu.Unlock()
		m.handle(&bufConn{Conn: conn, r: br})
		m.mu.Lock()
		delete(m.conns, conn)
		m.mu.Unlock()
		_ = conn.Close() // served
		return
	}
	select {
	case m.raftCh <- &bufConn{Conn: conn, r: br}:
	case <-m.done:
		_ = conn.Close() // closing
	}
}

// Accept implements net.Listener for raft.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftCh:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it stops accepting and closes the
// forwarding connections being served.
func (m *muxLayer) Close() error {
	var err error
	m.once.Do(func() {
		m.mu.Lock()
		close(m.done)
		for c := range m.conns {
			_ = c.Close() // unblocks its server
		}
		m.mu.Unlock()
		err = m.ln.Close()
	})
	return err
}

// wait waits for the layer's goroutines after Close.
func (m *muxLayer) wait() { m.wg.Wait() }

// Addr implements net.Listener: the advertised address.
func (m *muxLayer) Addr() net.Addr { return m.addr }

// Dial implements raft.StreamLayer.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}

// bufConn is a connection whose first bytes were read into r.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
