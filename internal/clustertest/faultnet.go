package clustertest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// faultNet is the network of a cluster started with Options.Proxies: one
// TCP proxy per node and listener (Kafka, controller). Node N advertises
// its proxy's Kafka address and the voters list names its proxy's
// controller address, so every connection between nodes goes through the
// proxy of the destination node.
//
// A proxy knows which node a connection comes from by looking up its
// peer's socket: the accepted connection's remote address is the
// connecting socket's local address, whose inode /proc/net/tcp gives, and
// the node process holding "socket:[inode]" in /proc/<pid>/fd is the
// origin. Connections from any other process (the test's clients) are
// never cut.
//
// A cut between nodes a and b is a black hole: a connection between them
// (either direction, existing or new) stays open, but the bytes each side
// sends are read and dropped, and a close on one side is not passed on.
// Heal closes every black-holed connection (as TCP connections that timed
// out during the partition would be) and lets new ones through.
//
// Goroutines: one accept loop per listener, two per proxied connection
// (one per direction), all waited for by close (a t.Cleanup).
type faultNet struct {
	pids func() map[int]int32 // running node processes: pid -> node id

	mu     sync.Mutex
	cut    map[[2]int32]bool // unordered node pairs, lower id first
	conns  map[*proxyConn]struct{}
	lns    []net.Listener
	closed bool

	wg sync.WaitGroup
}

// proxyConn is one accepted connection and, unless it arrived across a
// cut, its connection to the node.
type proxyConn struct {
	from, to int32    // from is 0 for a process that is not a node
	client   net.Conn // accepted
	server   net.Conn // dialled to the node; nil if the connection arrived cut
	cut      atomic.Bool
	once     sync.Once
}

func newFaultNet(pids func() map[int]int32) *faultNet {
	return &faultNet{pids: pids, cut: map[[2]int32]bool{}, conns: map[*proxyConn]struct{}{}}
}

func pair(a, b int32) [2]int32 {
	if a > b {
		a, b = b, a
	}
	return [2]int32{a, b}
}

// cutLocked reports whether traffic from node from to node to is cut.
func (f *faultNet) cutLocked(from, to int32) bool {
	return from != 0 && from != to && f.cut[pair(from, to)]
}

// listen opens a proxy on a free loopback port in front of target (an
// address of node to) and returns the proxy's address.
func (f *faultNet) listen(to int32, target string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	f.lns = append(f.lns, ln)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.accept(ln, to, target)
	}()
	return ln.Addr().String(), nil
}

func (f *faultNet) accept(ln net.Listener, to int32, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		pc := &proxyConn{from: f.origin(c), to: to, client: c}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			return
		}
		cut := f.cutLocked(pc.from, to)
		f.mu.Unlock()
		if !cut {
			// The dial is quick (loopback); a node that is down refuses it.
			s, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			pc.server = s
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			pc.close()
			return
		}
		// A cut made meanwhile applies too; one healed meanwhile leaves a
		// connection that was never dialled: close it, the node's peer
		// dials again.
		pc.cut.Store(f.cutLocked(pc.from, to))
		if pc.server == nil && !pc.cut.Load() {
			f.mu.Unlock()
			pc.close()
			continue
		}
		f.conns[pc] = struct{}{}
		f.wg.Add(1)
		if pc.server != nil {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.pipe(pc, pc.client, pc.server)
			}()
		}
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			f.pipe(pc, pc.server, pc.client)
		}()
	}
}

// pipe copies src to dst (dst nil: drop everything) until src fails. While
// the connection is cut, what is read is dropped and a failure is not
// passed on: Heal closes the connection.
func (f *faultNet) pipe(pc *proxyConn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !pc.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil && err == nil {
				err = werr
			}
		}
		if err != nil {
			if !pc.cut.Load() {
				f.drop(pc)
			}
			return
		}
	}
}

// drop closes pc and forgets it.
func (f *faultNet) drop(pc *proxyConn) {
	f.mu.Lock()
	delete(f.conns, pc)
	f.mu.Unlock()
	pc.close()
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		pc.client.Close()
		if pc.server != nil {
			pc.server.Close()
		}
	})
}

// partition cuts every pair of nodes across the two groups, black-holes
// their open connections and returns how many.
func (f *faultNet) partition(a, b []int32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			if x != y {
				f.cut[pair(x, y)] = true
			}
		}
	}
	n := 0
	for pc := range f.conns {
		if f.cutLocked(pc.from, pc.to) {
			pc.cut.Store(true)
			n++
		}
	}
	return n
}

// heal removes every cut, closes the black-holed connections and returns
// how many.
func (f *faultNet) heal() int {
	f.mu.Lock()
	f.cut = map[[2]int32]bool{}
	var dead []*proxyConn
	for pc := range f.conns {
		if pc.cut.Load() {
			dead = append(dead, pc)
			delete(f.conns, pc)
		}
	}
	f.mu.Unlock()
	for _, pc := range dead {
		pc.close()
	}
	return len(dead)
}

// close stops the proxies, closes every connection and waits for the
// goroutines.
func (f *faultNet) close() {
	f.mu.Lock()
	f.closed = true
	lns := f.lns
	conns := f.conns
	f.conns = map[*proxyConn]struct{}{}
	f.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for pc := range conns {
		pc.close()
	}
	f.wg.Wait()
}

// origin returns the node whose process holds the other end of c, an
// accepted loopback connection, or 0.
func (f *faultNet) origin(c net.Conn) int32 {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0
	}
	inode, err := socketInode(remote, local)
	if err != nil {
		return 0 // gone already, or not a local socket: not a node's
	}
	link := "socket:[" + inode + "]"
	for pid, id := range f.pids() {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == link {
				return id
			}
		}
	}
	return 0
}

// socketInode finds, in /proc/net/tcp and tcp6, the inode of the socket
// whose local address is local and remote address is remote.
func socketInode(local, remote *net.TCPAddr) (string, error) {
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		l, r := procAddr(local, file), procAddr(remote, file)
		if l == "" || r == "" {
			continue
		}
		fh, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
			fs := strings.Fields(sc.Text())
			if len(fs) >= 10 && fs[1] == l && fs[2] == r && fs[9] != "0" {
				fh.Close()
				return fs[9], nil
			}
		}
		fh.Close()
	}
	return "", errors.New("clustertest: socket not found")
}

// procAddr formats an IPv4 address as /proc/net/tcp (native-endian 32-bit
// words in hex, then the port) or tcp6 (the IPv4-mapped IPv6 address) show
// it; "" if it is not IPv4.
func procAddr(a *net.TCPAddr, file string) string {
	ip4 := a.IP.To4()
	if ip4 == nil {
		return ""
	}
	port := fmt.Sprintf(":%04X", a.Port)
	word := func(b []byte) string { return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(b)) }
	if strings.HasSuffix(file, "6") {
		return "0000000000000000" + word([]byte{0, 0, 0xff, 0xff}) + word(ip4) + port
	}
	return word(ip4) + port
}

// Partition cuts the network between every node of a and every node of b
// (both directions; see Options.Proxies). Clients of the test still reach
// every node.
func (c *Cluster) Partition(a, b []int32) {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatal("clustertest: Partition needs Options.Proxies")
	}
	n := c.net.partition(a, b)
	c.t.Logf("clustertest: network partition %v | %v (%d open connections black-holed)", a, b, n)
}

// Isolate cuts node id from every other node.
func (c *Cluster) Isolate(id int32) {
	c.t.Helper()
	var others []int32
	for _, n := range c.Nodes {
		if n.ID != id {
			others = append(others, n.ID)
		}
	}
	c.Partition([]int32{id}, others)
}

// Heal ends every partition: the connections that were black-holed are
// closed, new ones go through.
func (c *Cluster) Heal() {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatal("clustertest: Heal needs Options.Proxies")
	}
	n := c.net.heal()
	c.t.Logf("clustertest: network healed (%d black-holed connections closed)", n)
}

// nodePIDs maps the running nodes' process ids to node ids.
func (c *Cluster) nodePIDs() map[int]int32 {
	m := map[int]int32{}
	for _, n := range c.Nodes {
		if pid := n.PID(); pid != 0 {
			m[pid] = n.ID
		}
	}
	return m
}

// ProxiedConns reports how many proxied connections are open and how many
// of them are black-holed, for tests' logs.
func (c *Cluster) ProxiedConns() (open, cut int) {
	if c.net == nil {
		return 0, 0
	}
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	for pc := range c.net.conns {
		open++
		if pc.cut.Load() {
			cut++
		}
	}
	return open, cut
}
