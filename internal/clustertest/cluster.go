// Package clustertest runs a Sluice cluster of real `sluice serve` child
// processes for tests: it builds the sluice binary once per test binary,
// starts N nodes on free loopback ports with their own data directories
// (all voters, or voters plus broker-only nodes), waits until each is
// ready, and can kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT),
// terminate (SIGTERM) and restart any node by its process id. Each child's
// stderr goes to a file that is printed when the test fails. Everything is
// cleaned up through t.Cleanup, by PID.
//
// With Options.Proxies every node runs behind a fault proxy (faultnet.go):
// one listener in front of its Kafka port, one in front of its controller
// port. The node advertises the proxy's Kafka address (--advertise) and
// the voters list names the proxies' controller addresses, so all traffic
// between nodes (Raft, forwarding, heartbeats, replica fetches,
// inter-broker requests) goes through the proxy of the destination node,
// which tells the origin node by the connecting socket (/proc). Then
// Cluster.Partition(a, b) and Cluster.Isolate(id) cut nodes apart (a black
// hole: bytes dropped, connections left open, closes not passed on) and
// Cluster.Heal ends the partition (black-holed connections are closed).
// The test's own clients reach every node all along. Node.KafkaAddr and
// Node.ControllerAddr are then the proxies' addresses, KafkaListen and
// ControllerListen the node's own. Not covered: Raft traffic to a
// broker-only node (a non-voter registers its controller listener's own
// address), so partition tests use voters only.
//
//	func TestMain(m *testing.M) { clustertest.Main(m) }
//
//	func TestX(t *testing.T) {
//		c := clustertest.Start(t, clustertest.Options{Nodes: 3})
//		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...))
//		c.Nodes[0].Kill()
//		...
//	}
package clustertest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadyTimeout bounds how long Start and Restart wait for a node.
const ReadyTimeout = 60 * time.Second

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds the sluice binary (once per test binary) into a temporary
// directory and returns its path. Main removes the directory.
func Binary() (string, error) {
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-clustertest-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		path := filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", path, "github.com/sluice-io/sluice/cmd/sluice")
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("clustertest: go build sluice: %v\n%s", err, out)
			return
		}
		build.path = path
	})
	return build.path, build.err
}

// Main runs the tests and removes the built binary afterwards; call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// Options configure Start.
type Options struct {
	// Nodes is the number of nodes (default 3).
	Nodes int
	// Voters is how many of them (the first ones) are controller voters;
	// the others are broker-only nodes. Default: all of them.
	Voters int
	// Settings are extra broker settings (--set key=value); they override
	// the harness defaults (fast session timeout, no rebalance delay,
	// small internal topics).
	Settings map[string]string
	// Proxies runs every node behind a fault proxy, so that the test can
	// cut the network between nodes (Cluster.Partition, Isolate, Heal).
	Proxies bool
}

// DefaultSettings are the broker settings every node gets unless
// Options.Settings overrides them: quick fencing of dead brokers and
// small internal topics, so that tests run in seconds.
var DefaultSettings = map[string]string{
	"broker.session.timeout.ms":            "2000",
	"broker.heartbeat.interval.ms":         "250",
	"group.initial.rebalance.delay.ms":     "0",
	"offsets.topic.num.partitions":         "6",
	"transaction.state.log.num.partitions": "6",
}

// Cluster is a running set of nodes.
type Cluster struct {
	t      testing.TB
	bin    string
	dir    string
	voters string
	set    map[string]string
	net    *faultNet // nil unless Options.Proxies
	Nodes  []*Node
}

// Node is one `sluice serve` child process.
type Node struct {
	ID             int32
	KafkaAddr      string // host:port of the Kafka listener, as advertised (the proxy's with Options.Proxies)
	ControllerAddr string // host:port of the controller listener, as in the voters list (the proxy's with Options.Proxies)
	// KafkaListen and ControllerListen are the addresses the process
	// binds: KafkaAddr and ControllerAddr unless behind a proxy (empty
	// means the same as those).
	KafkaListen      string
	ControllerListen string
	DataDir          string
	Voter            bool
	LogPath          string // the child's stderr (appended across restarts)

	c  *Cluster
	mu sync.Mutex
	// cmd and exited describe the current process; nil when not running.
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start builds the binary if needed, starts the nodes and waits until
// each is ready (see Node.WaitReady). Node ids are 1..N.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Voters == 0 || o.Voters > o.Nodes {
		o.Voters = o.Nodes
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin, dir: t.TempDir(), set: map[string]string{}}
	for k, v := range DefaultSettings {
		c.set[k] = v
	}
	for k, v := range o.Settings {
		c.set[k] = v
	}
	if o.Proxies {
		c.net = newFaultNet(c.nodePIDs)
		t.Cleanup(c.net.close) // after c.cleanup (cleanups run last in, first out)
	}
	var voters []string
	for i := 0; i < o.Nodes; i++ {
		n := &Node{ID: int32(i + 1), KafkaListen: freeAddr(t), ControllerListen: freeAddr(t), Voter: i < o.Voters, c: c}
		n.KafkaAddr, n.ControllerAddr = n.KafkaListen, n.ControllerListen
		if c.net != nil {
			if n.KafkaAddr, err = c.net.listen(n.ID, n.KafkaListen); err != nil {
				t.Fatal(err)
			}
			if n.ControllerAddr, err = c.net.listen(n.ID, n.ControllerListen); err != nil {
				t.Fatal(err)
			}
		}
		n.DataDir = filepath.Join(c.dir, fmt.Sprintf("node-%d", n.ID))
		n.LogPath = filepath.Join(c.dir, fmt.Sprintf("node-%d.log", n.ID))
		if n.Voter {
			voters = append(voters, fmt.Sprintf("%d@%s", n.ID, n.ControllerAddr))
		}
		c.Nodes = append(c.Nodes, n)
	}
	c.voters = strings.Join(voters, ",")
	t.Cleanup(c.cleanup)
	for _, n := range c.Nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		if err := n.WaitReady(ReadyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Voters is the --controller-voters value of the cluster.
func (c *Cluster) Voters() string { return c.voters }

// BinaryPath is the sluice binary the nodes run.
func (c *Cluster) BinaryPath() string { return c.bin }

// Node returns the node with id.
func (c *Cluster) Node(id int32) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	c.t.Fatalf("clustertest: no node %d", id)
	return nil
}

// Seeds lists the Kafka addresses of the running nodes.
func (c *Cluster) Seeds() []string {
	var out []string
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n.KafkaAddr)
		}
	}
	return out
}

// args is the node's command line.
func (n *Node) args() []string {
	a := []string{"serve",
		"--node-id", strconv.Itoa(int(n.ID)),
		"--listen", cmp.Or(n.KafkaListen, n.KafkaAddr),
		"--controller-listen", cmp.Or(n.ControllerListen, n.ControllerAddr),
		"--controller-voters", n.c.voters,
		"--data-dir", n.DataDir,
		"--admin-listen", "off",
		"--shutdown-timeout", "10s",
	}
	if n.KafkaListen != "" && n.KafkaListen != n.KafkaAddr {
		a = append(a, "--advertise", n.KafkaAddr)
	}
	for k, v := range n.c.set {
		a = append(a, "--set", k+"="+v)
	}
	return a
}

func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("clustertest: node %d is already running", n.ID)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== clustertest: starting node %d at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(n.c.bin, n.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The children die with the test process even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("clustertest: start node %d: %w", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	return nil
}

// PID is the node's process id, 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether the node's process was started and has not
// been stopped by Kill/Terminate (a paused process counts as running).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *Node) signal(sig syscall.Signal) {
	n.c.t.Helper()
	pid := n.PID()
	if pid == 0 {
		n.c.t.Fatalf("clustertest: node %d is not running", n.ID)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		n.c.t.Fatalf("clustertest: %v node %d (pid %d): %v", sig, n.ID, pid, err)
	}
}

// wait waits for the process to exit and forgets it.
func (n *Node) wait(timeout time.Duration) error {
	n.mu.Lock()
	exited, cmd := n.exited, n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return fmt.Errorf("clustertest: node %d (pid %d) did not exit within %v", n.ID, cmd.Process.Pid, timeout)
	}
	n.mu.Lock()
	n.cmd, n.exited = nil, nil
	n.mu.Unlock()
	return nil
}

// Kill sends SIGKILL and waits for the process to exit.
func (n *Node) Kill() {
	n.c.t.Helper()
	n.signal(syscall.SIGKILL)
	if err := n.wait(10 * time.Second); err != nil {
		n.c.t.Fatal(err)
	}
}

// Terminate sends SIGTERM (controlled shutdown, then a clean stop) and
// waits up to timeout for the process to exit.
func (n *Node) Terminate(timeout time.Duration) {
	n.c.t.Helper()
	n.signal(syscall.SIGTERM)
	if err := n.wait(timeout); err != nil {
		n.c.t.Fatal(err)
	}
}

// Stop pauses the process (SIGSTOP) and waits until every thread of it is
// stopped: the kernel stops the other threads only once one thread has
// handled the signal, which on a busy machine can take milliseconds, during
// which the process still serves requests.
func (n *Node) Stop() {
	n.c.t.Helper()
	n.signal(syscall.SIGSTOP)
	if err := waitStopped(n.PID(), 10*time.Second); err != nil {
		n.c.t.Fatalf("clustertest: node %d: %v", n.ID, err)
	}
}

// waitStopped polls /proc until no thread of process pid runs.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		running, err := runningThreads(pid)
		if err != nil || running == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d threads of pid %d still running %v after SIGSTOP", running, pid, timeout)
		}
		time.Sleep(time.Millisecond) // polling the kernel's view of another process
	}
}

// runningThreads counts the threads of process pid that are neither
// stopped nor dead (the state field of /proc/<pid>/task/<tid>/stat).
func runningThreads(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		// "tid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 || i+2 >= len(data) {
			continue
		}
		switch data[i+2] {
		case 'T', 't', 'Z', 'X':
		default:
			n++
		}
	}
	return n, nil
}

// Cont resumes a paused process (SIGCONT).
func (n *Node) Cont() { n.c.t.Helper(); n.signal(syscall.SIGCONT) }

// Restart kills the node if it runs, starts it again with the same
// identity, addresses and data directory, and waits until it is ready.
func (n *Node) Restart() {
	n.c.t.Helper()
	if n.Running() {
		n.Kill()
	}
	if err := n.wait(10 * time.Second); err != nil {
		n.c.t.Fatal(err)
	}
	if err := n.start(); err != nil {
		n.c.t.Fatal(err)
	}
	if err := n.WaitReady(ReadyTimeout); err != nil {
		n.c.t.Fatal(err)
	}
}

// WaitReady waits until the node's Kafka listener accepts connections and
// the node lists itself as a live (registered, unfenced) broker.
func (n *Node) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !n.Running() {
			return fmt.Errorf("clustertest: node %d exited while starting; log %s:\n%s", n.ID, n.LogPath, tail(n.LogPath, 4000))
		}
		last = n.ready()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // polling an external process: no event to wait on
	}
	return fmt.Errorf("clustertest: node %d not ready after %v: %v", n.ID, timeout, last)
}

func (n *Node) ready() error {
	conn, err := net.DialTimeout("tcp", n.KafkaAddr, time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr), kgo.RetryTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	for _, b := range md.Brokers {
		if b.NodeID == n.ID {
			return nil
		}
	}
	return fmt.Errorf("node %d not registered yet (brokers %v)", n.ID, md.Brokers.NodeIDs())
}

// cleanup kills every child by PID and, if the test failed, prints the
// tail of each node's log.
func (c *Cluster) cleanup() {
	for _, n := range c.Nodes {
		if pid := n.PID(); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_ = n.wait(10 * time.Second)
		}
	}
	if c.t.Failed() {
		for _, n := range c.Nodes {
			c.t.Logf("---- node %d log (%s) ----\n%s", n.ID, n.LogPath, tail(n.LogPath, 8000))
		}
	}
}

// tail returns the last max bytes of a file.
func tail(path string, max int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > max {
		data = data[len(data)-max:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (the kernel's choice for :0).
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Eventually polls cond until it returns nil or timeout passes, and
// returns the time it took; on timeout the test fails with cond's last
// error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // polling other processes' state
	}
}
