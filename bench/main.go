// Command bench is Sluice's benchmark harness (issue 8): it builds
// `sluice` and a kfake server (bench/kfakeserver), starts each as a child
// process on loopback in each durability mode, drives them with franz-go
// (kgo) from this process, measures the physical limits of the machine in
// the same run, and prints medians and ranges over several runs with the
// Sluice/kfake ratio next to every figure.
//
//	go run ./bench -runs 5 -md BENCHMARKS.tables.md
//	go run ./bench -quick            # tiny counts, one run (what bench_test.go runs)
//	go run ./bench -runs 1 -profile /tmp/prof   # plus CPU profiles of the broker
//	go run ./bench -servers sluice/pagecache -only e2e -limits latency -trace /tmp/tr
//	                                 # e2e only, its latency floor, traces and per-record timelines
//
// Servers: sluice/pagecache (log.write.caching=true), sluice/durable (the
// default: group-commit fdatasync), kfake/mem (no storage), kfake/disk
// (kfake.DataDir: page cache) and kfake/sync (kfake.DataDir+SyncWrites: an
// fsync per batch). Each figure of sluice/pagecache is compared with
// kfake/mem and kfake/disk; each of sluice/durable with kfake/sync.
//
// sluice-cluster/pagecache and sluice-cluster/durable are three sluice
// processes forming one cluster (issue 7); they run only the replication
// scenarios, 1 KiB acks=all produce and end-to-end latency on a topic with
// replication factor 1 and one with 3, and the report gives RF 3 ÷ RF 1
// (`go run ./bench -servers sluice-cluster` runs only those).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the harness's flags.
type config struct {
	runs        int
	quick       bool
	md          string
	tmp         string
	moduleRoot  string
	lim         limits
	idleConns   int
	scaleParts  []int
	scaleConns  int
	servers     []serverKind
	sluiceBin   string // prebuilt sluice; empty: build ./cmd/sluice
	profileDir  string // if set, save broker CPU profiles here
	profileSecs int
	limitsBytes int64
	// only, if set, keeps the scenarios whose name contains one of these
	// strings (-only).
	only []string
	// limitSet is which physical limits run: "all", "latency" (the
	// loopback latency floors only) or "none" (-limits).
	limitSet      string
	out, progress io.Writer
}

func defaultConfig() config {
	return config{
		runs: 5,
		lim: limits{
			produceBytes: 1 << 30,
			produceTime:  2 * time.Second,
			e2eRate:      10000,
			e2eRecords:   20000,
			consumeTime:  60 * time.Second,
			compression:  "none",
		},
		idleConns:   10000,
		scaleParts:  []int{256},
		scaleConns:  8,
		servers:     allKinds,
		limitsBytes: 512 << 20,
		limitSet:    "all",
		out:         os.Stdout,
		progress:    os.Stderr,
	}
}

// quickConfig is -quick: tiny counts and one run, to check that every
// figure is produced (bench_test.go).
func quickConfig() config {
	c := defaultConfig()
	c.quick = true
	c.runs = 1
	c.lim = limits{produceBytes: 512 << 10, produceTime: time.Second, e2eRate: 10000, e2eRecords: 300, consumeTime: 30 * time.Second, compression: "none"}
	c.idleConns = 300
	c.scaleConns = 2
	// 32 MiB: with less, a buffered append can take under the
	// resolution of the thread CPU clock (CPU s/GB 0).
	c.limitsBytes = 32 << 20
	return c
}

func main() {
	c := defaultConfig()
	quick := flag.Bool("quick", false, "tiny counts and one run (overrides the count flags)")
	runs := flag.Int("runs", c.runs, "runs; medians and min-max are over runs")
	md := flag.String("md", "", "also write the tables as markdown to this file")
	tmp := flag.String("dir", "", "directory for data dirs and the limit files (default: a new temp dir)")
	produceMB := flag.Int64("produce-mb", c.lim.produceBytes>>20, "value MiB per produce scenario (also bounded by -produce-time)")
	produceTime := flag.Duration("produce-time", c.lim.produceTime, "time bound of a produce scenario")
	e2eRecords := flag.Int64("e2e-records", c.lim.e2eRecords, "records of an end-to-end scenario (at -e2e-rate)")
	e2eRate := flag.Float64("e2e-rate", c.lim.e2eRate, "records/s of an end-to-end scenario")
	idle := flag.Int("idle-conns", c.idleConns, "idle connections for the memory-per-connection figure (0: skip)")
	parts := flag.String("scale-partitions", "256", "extra partition counts for scaling (1 and 16 are always run)")
	sconns := flag.Int("scale-conns", c.scaleConns, "producer connections of the scaling scenario (0: skip)")
	limMB := flag.Int64("limits-mb", c.limitsBytes>>20, "MiB written and sent by the physical-limit measurements")
	servers := flag.String("servers", "", "comma-separated subset, e.g. sluice/pagecache,kfake/mem; a name alone is all its modes, e.g. sluice-cluster (default: all seven)")
	sluiceBin := flag.String("sluice", "", "use this sluice binary instead of building ./cmd/sluice")
	profile := flag.String("profile", "", "after the runs, save CPU profiles of sluice/pagecache (produce.pprof, fetch.pprof) in this directory")
	profileSecs := flag.Int("profile-seconds", 8, "length of each CPU profile")
	only := flag.String("only", "", "comma-separated: run only the scenarios whose name contains one of these, e.g. e2e or \"e2e 1KiB p1\"")
	limitSet := flag.String("limits", "all", "physical limits to measure: all, latency (the loopback latency floors only) or none")
	compression := flag.String("compression", "none", "producers' batch codec: none, gzip, snappy, lz4 or zstd (kgo's own default is snappy, which shrinks the bench's repeated values about 17:1)")
	clientGOGC := flag.Int("client-gogc", 100, "GOGC of the harness (the kgo clients), not of the servers; the same for every server")
	traceDir := flag.String("trace", "", "in e2e scenarios, save runtime traces of the harness and of sluice and per-record timelines here, and print where the slowest records' time went")
	flag.Parse()
	if *quick {
		c = quickConfig()
	} else {
		c.runs = *runs
		c.lim.produceBytes = *produceMB << 20
		c.lim.produceTime = *produceTime
		c.lim.e2eRecords = *e2eRecords
		c.lim.e2eRate = *e2eRate
		c.idleConns = *idle
		c.scaleConns = *sconns
		c.limitsBytes = *limMB << 20
		c.scaleParts = nil
		for _, p := range strings.Split(*parts, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bench: -scale-partitions: %q is not a partition count\n", p)
				os.Exit(2)
			}
			c.scaleParts = append(c.scaleParts, n)
		}
	}
	var err error
	c.md, c.tmp, c.sluiceBin = *md, *tmp, *sluiceBin
	c.profileDir, c.profileSecs = *profile, *profileSecs
	c.lim.traceDir = *traceDir
	if _, ok := codecs[*compression]; !ok {
		fmt.Fprintf(os.Stderr, "bench: -compression: %q is not none, gzip, snappy, lz4 or zstd\n", *compression)
		os.Exit(2)
	}
	c.lim.compression = *compression
	if *clientGOGC != 100 {
		debug.SetGCPercent(*clientGOGC)
	}
	for _, o := range strings.Split(*only, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.only = append(c.only, o)
		}
	}
	switch *limitSet {
	case "all", "latency", "none":
		c.limitSet = *limitSet
	default:
		fmt.Fprintf(os.Stderr, "bench: -limits: %q is not all, latency or none\n", *limitSet)
		os.Exit(2)
	}
	if *servers != "" {
		if c.servers, err = parseServers(*servers); err != nil {
			fmt.Fprintln(os.Stderr, "bench: -servers:", err)
			os.Exit(2)
		}
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: go list -m (run from inside the module):", err)
		os.Exit(1)
	}
	c.moduleRoot = strings.TrimSpace(string(root))
	rep, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	text := rep.markdown(c)
	fmt.Fprint(c.out, text)
	if c.md != "" {
		if err := os.WriteFile(c.md, []byte(text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

// parseServers reads -servers: name/mode kinds, or a name alone for every
// mode of that name.
func parseServers(list string) ([]serverKind, error) {
	var out []serverKind
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		name, mode, hasMode := strings.Cut(s, "/")
		matched := false
		for _, k := range allKinds {
			if k.Name == name && (!hasMode || k.Mode == mode) {
				matched = true
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		}
		if !matched {
			return nil, fmt.Errorf("unknown server %q (known: %v)", s, allKinds)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no server in %q", list)
	}
	return out, nil
}

// scenariosFor lists the workloads run against a server of kind k, in
// order: the replication scenarios on a cluster, the others on a single
// node.
func (c config) scenariosFor(k serverKind) []scenario {
	ss := c.scenarios()
	if k.Name == clusterName {
		ss = c.replicationScenarios()
	}
	if len(c.only) == 0 {
		return ss
	}
	return slices.DeleteFunc(ss, func(s scenario) bool {
		return !slices.ContainsFunc(c.only, func(o string) bool { return strings.Contains(s.String(), o) })
	})
}

// replicationScenarios are run on the three-broker cluster (issue 7): 1 KiB
// acks=all produce and end-to-end latency, each on a topic with
// replication factor 1 and one with 3 (min.insync.replicas=2), on the same
// processes in the same run, so that RF 3 ÷ RF 1 compares like with like.
func (c config) replicationScenarios() []scenario {
	var ss []scenario
	for _, kind := range []string{"produce", "e2e"} {
		for _, p := range []int{1, 16} {
			for _, rf := range []int{1, 3} {
				ss = append(ss, scenario{Kind: kind, Size: 1024, Partitions: p, Acks: "all", Conns: 1, RF: rf})
			}
		}
	}
	return ss
}

// scenarios lists the workloads run against every single-node server, in
// order.
func (c config) scenarios() []scenario {
	var ss []scenario
	// Idle connections first, on the fresh server: later, the heap left
	// by the throughput scenarios can shrink under the measurement.
	if c.idleConns > 0 {
		ss = append(ss, scenario{Kind: "idle", Conns: c.idleConns})
	}
	for _, size := range []int{100, 1024} {
		for _, p := range []int{1, 16} {
			for _, acks := range []string{"1", "all"} {
				ss = append(ss, scenario{Kind: "produce", Size: size, Partitions: p, Acks: acks, Conns: 1})
			}
			ss = append(ss, scenario{Kind: "consume", Size: size, Partitions: p})
		}
	}
	for _, p := range []int{1, 16} {
		ss = append(ss, scenario{Kind: "e2e", Size: 1024, Partitions: p, Acks: "all"})
	}
	// Scaling: more partitions, more producer connections.
	for _, p := range c.scaleParts {
		ss = append(ss, scenario{Kind: "produce", Size: 1024, Partitions: p, Acks: "all", Conns: 1})
	}
	if c.scaleConns > 1 {
		ss = append(ss, scenario{Kind: "produce", Size: 1024, Partitions: 16, Acks: "all", Conns: c.scaleConns})
	}
	return ss
}

// run runs every scenario against every server c.runs times, the servers
// in a rotated order each run, and the physical limits once per run.
func run(ctx context.Context, c config) (*report, error) {
	if c.tmp == "" {
		d, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		c.tmp = d
	}
	nofile, err := raiseFileLimit()
	if err != nil {
		return nil, err
	}
	if c.idleConns > 0 && nofile < uint64(c.idleConns)+1024 {
		return nil, fmt.Errorf("RLIMIT_NOFILE is %d: too low for -idle-conns %d", nofile, c.idleConns)
	}
	fmt.Fprintf(c.progress, "building sluice and kfakeserver in %s\n", c.tmp)
	bins, err := buildBinaries(c.tmp, c.moduleRoot, c.sluiceBin)
	if err != nil {
		return nil, err
	}
	rep := newReport()
	for r := 0; r < c.runs; r++ {
		// Each run starts with the next server: on this VM the first
		// writer after the physical limits, or after a pause, pays for
		// memory the host has to back again (BENCHMARKS.md, "Round 4").
		for i := range c.servers {
			kind := c.servers[(i+r)%len(c.servers)]
			srv, err := startServer(bins, kind, c.tmp)
			if err != nil {
				return nil, err
			}
			scenarios := c.scenariosFor(kind)
			for _, s := range scenarios {
				t0 := time.Now()
				var f figures
				switch s.Kind {
				case "produce":
					f, err = runProduce(ctx, srv, s, c.lim)
				case "consume":
					f, err = runConsume(ctx, srv, s, c.lim)
				case "e2e":
					f, err = runE2E(ctx, srv, s, c.lim)
				case "idle":
					f, err = runIdle(ctx, srv, s)
				}
				if err != nil {
					err = fmt.Errorf("run %d, %v, %v: %w\n%s", r+1, kind, s, err, srv.logTail())
					srv.stop()
					return nil, err
				}
				if !readLater(s, scenarios) {
					// Keeps kfake/mem's heap and the data dirs small.
					if err := deleteTopic(ctx, srv.seeds(), s.topic()); err != nil {
						srv.stop()
						return nil, fmt.Errorf("run %d, %v, delete %s: %w", r+1, kind, s.topic(), err)
					}
				}
				rep.add(s.String(), kind.String(), f)
				fmt.Fprintf(c.progress, "run %d/%d %-16v %-34v %6.1fs %s\n", r+1, c.runs, kind, s, time.Since(t0).Seconds(), f)
			}
			srv.stop()
		}
		lims := map[string]figures{}
		if c.limitSet == "all" {
			if lims, err = runLimits(c.tmp, c.limitsBytes); err != nil {
				return nil, fmt.Errorf("physical limits: %w", err)
			}
		}
		if c.limitSet != "none" {
			floors, err := runLatencyFloors(bins, c.lim)
			if err != nil {
				return nil, fmt.Errorf("latency floor: %w", err)
			}
			maps.Copy(lims, floors)
		}
		for _, name := range slices.Sorted(maps.Keys(lims)) {
			f := lims[name]
			rep.add(name, "machine", f)
			fmt.Fprintf(c.progress, "run %d/%d %-51s %s\n", r+1, c.runs, name, f)
		}
	}
	if c.profileDir != "" {
		fmt.Fprintf(c.progress, "profiling sluice/pagecache for 2×%ds into %s\n", c.profileSecs, c.profileDir)
		if err := profileSluice(ctx, bins, c, c.profileDir, c.profileSecs); err != nil {
			return nil, err
		}
		fmt.Fprintf(c.progress, "go tool pprof -top %s %s/produce.pprof (and fetch.pprof)\n", bins.sluice, c.profileDir)
	}
	return rep, nil
}

func (f figures) String() string {
	var b strings.Builder
	for _, k := range figureOrder {
		if v, ok := f[k]; ok {
			fmt.Fprintf(&b, " %s=%.4g", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}
