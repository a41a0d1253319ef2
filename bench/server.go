package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverKind names a server under test and its durability mode.
type serverKind struct {
	Name string // "sluice", "kfake" or "sluice-cluster"
	Mode string // sluice, sluice-cluster: pagecache, durable; kfake: mem, disk, sync
}

func (k serverKind) String() string { return k.Name + "/" + k.Mode }

var (
	sluicePageCache = serverKind{"sluice", "pagecache"}
	sluiceDurable   = serverKind{"sluice", "durable"}
	kfakeMem        = serverKind{"kfake", "mem"}
	kfakeDisk       = serverKind{"kfake", "disk"}
	kfakeSync       = serverKind{"kfake", "sync"}
	// The three-broker cluster of the replication scenarios (issue 7).
	clusterPageCache = serverKind{clusterName, "pagecache"}
	clusterDurable   = serverKind{clusterName, "durable"}
)

// clusterName is the server name of a three-node sluice cluster.
const clusterName = "sluice-cluster"

// allKinds are every server kind the harness knows, the default -servers.
var allKinds = []serverKind{sluicePageCache, sluiceDurable, kfakeMem, kfakeDisk, kfakeSync, clusterPageCache, clusterDurable}

// server is a broker running as a child process, or a cluster of them.
type server struct {
	kind  serverKind
	cmd   *exec.Cmd // nil for a cluster
	addr  string    // Kafka listener (a cluster: node 1's)
	admin string    // sluice's admin HTTP listener (pprof), empty for kfake and clusters
	dir   string
	done  chan error
	logs  *tailBuffer
	// peers are a cluster's nodes (sluice-cluster), each a server with its
	// own process; nil for a single process.
	peers []*server
}

// procs are the processes of s: itself, or a cluster's nodes.
func (s *server) procs() []*server {
	if s.peers != nil {
		return s.peers
	}
	return []*server{s}
}

// seeds are the Kafka listeners of every process of s.
func (s *server) seeds() []string {
	var out []string
	for _, p := range s.procs() {
		out = append(out, p.addr)
	}
	return out
}

// cpu is the CPU time so far of every process of s, summed (cpuSeconds).
func (s *server) cpu() (float64, error) {
	var sum float64
	for _, p := range s.procs() {
		v, err := cpuSeconds(p.pid())
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// logTail is the end of what every process of s wrote.
func (s *server) logTail() string {
	if s.peers == nil {
		return s.logs.String()
	}
	var b strings.Builder
	for i, p := range s.peers {
		fmt.Fprintf(&b, "---- node %d ----\n%s", i+1, p.logs.String())
	}
	return b.String()
}

// binaries are the programs the harness starts.
type binaries struct {
	sluice, kfake string
}

// buildBinaries compiles sluice and kfakeserver into dir with the go tool
// of this module (so the harness always measures the working tree).
// A non-empty sluiceBin is used as is instead.
func buildBinaries(dir, moduleRoot, sluiceBin string) (binaries, error) {
	b := binaries{sluice: filepath.Join(dir, "sluice"), kfake: filepath.Join(dir, "kfakeserver")}
	builds := []struct{ out, pkg string }{{b.kfake, "./bench/kfakeserver"}}
	if sluiceBin != "" {
		b.sluice = sluiceBin
	} else {
		builds = append(builds, struct{ out, pkg string }{b.sluice, "./cmd/sluice"})
	}
	for _, x := range builds {
		cmd := exec.Command("go", "build", "-o", x.out, x.pkg)
		cmd.Dir = moduleRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// tailBuffer keeps the last bytes a child wrote, for error messages.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = t.b[len(t.b)-8192:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// startServer starts kind as a child process with its own data directory
// under tmp and waits (at most 30s) until it reports its listener; a
// sluice-cluster kind starts three (startCluster).
func startServer(bins binaries, kind serverKind, tmp string) (*server, error) {
	if kind.Name == clusterName {
		return startCluster(bins, kind, tmp)
	}
	dir, err := os.MkdirTemp(tmp, kind.Name+"-"+kind.Mode+"-")
	if err != nil {
		return nil, err
	}
	s := &server{kind: kind, dir: dir, done: make(chan error, 1), logs: &tailBuffer{}}
	var (
		ready io.ReadCloser
		parse func(line string) bool
	)
	switch kind.Name {
	case "sluice":
		args := []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--data-dir", filepath.Join(dir, "data"), "--log-format", "json", "--log-level", "info",
			"--set", "group.initial.rebalance.delay.ms=0",
			// A deleted scenario topic frees its page cache at once, as
			// kfake's does: the next scenario then reuses those pages
			// instead of touching new ones (BENCHMARKS.md, "Round 4").
			"--set", "log.segment.delete.delay.ms=0"}
		if kind.Mode == "pagecache" {
			args = append(args, "--set", "log.write.caching=true")
		}
		s.cmd = exec.Command(bins.sluice, args...)
		ready, err = s.cmd.StderrPipe()
		parse = s.parseSluiceReady
	case "kfake":
		var args []string
		switch kind.Mode {
		case "disk":
			args = []string{"-data-dir", filepath.Join(dir, "data")}
		case "sync":
			args = []string{"-data-dir", filepath.Join(dir, "data"), "-sync"}
		}
		s.cmd = exec.Command(bins.kfake, args...)
		s.cmd.Stderr = s.logs
		ready, err = s.cmd.StdoutPipe()
		parse = func(line string) bool {
			a, ok := strings.CutPrefix(line, "ready ")
			if ok {
				s.addr = a
			}
			return ok
		}
	default:
		os.RemoveAll(dir)
		return nil, fmt.Errorf("unknown server %v", kind)
	}
	var found <-chan error
	if err == nil {
		found, err = s.launch(ready, parse)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	select {
	case err := <-found:
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("%v: %v\n%s", kind, err, s.logs)
		}
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%v: not ready after 30s\n%s", kind, s.logs)
	}
	return s, nil
}

// launch starts s.cmd, copies the lines of ready (the child's output) into
// s.logs, and returns a channel that receives nil once parse accepted a
// line (parse sets the listener address), or an error if the output ended
// before. The child gets SIGKILL if the harness dies.
func (s *server) launch(ready io.ReadCloser, parse func(line string) bool) (<-chan error, error) {
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(ready)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		reported := false
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			if !reported && parse(line) {
				reported = true
				found <- nil
			}
		}
		if !reported {
			found <- errors.New("exited before it was ready")
		}
	}()
	go func() { s.done <- s.cmd.Wait() }()
	return found, nil
}

// parseSluiceReady reads the listeners from sluice's JSON "ready" line.
func (s *server) parseSluiceReady(line string) bool {
	var m struct{ Msg, Kafka, Admin string }
	if json.Unmarshal([]byte(line), &m) != nil || m.Msg != "ready" {
		return false
	}
	s.addr, s.admin = m.Kafka, m.Admin
	return true
}

// stop sends SIGTERM to the PID of every process of s at once, waits up
// to 20s for each to exit, then kills it, and removes the data directory.
func (s *server) stop() {
	procs := s.procs()
	for _, p := range procs {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range procs {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// pid is the process id of s (a cluster: of node 1).
func (s *server) pid() int { return s.procs()[0].cmd.Process.Pid }

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the CPU time of process pid so far, all threads, user and
// system. It sums the first field of /proc/<pid>/task/*/schedstat (time on
// CPU in nanoseconds), since utime+stime of /proc/<pid>/stat counts in
// 10 ms ticks, too coarse for a short scenario; it falls back to
// /proc/<pid>/stat when schedstat is missing.
func cpuSeconds(pid int) (float64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var ns uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d/task", pid)); serr != nil {
				return 0, serr // the process is gone
			}
			continue // the thread exited meanwhile
		}
		if err != nil {
			return statCPUSeconds(pid)
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return statCPUSeconds(pid)
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return statCPUSeconds(pid)
		}
		ns += v
	}
	return float64(ns) / 1e9, nil
}

// statCPUSeconds is utime+stime of process pid from /proc/<pid>/stat.
func statCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// rssBytes is the resident set size of process pid (VmRSS in
// /proc/<pid>/status).
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, for this
// process and (inherited) its children, and returns the new soft limit.
func raiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, err
		}
	}
	return r.Cur, nil
}
