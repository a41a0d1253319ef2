package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuick runs the whole harness in -quick mode (tiny counts, one run)
// against real child processes (the three-broker clusters included) and
// checks that every figure of every scenario, server and physical limit
// was produced and is positive, and that the replication table gives the
// RF 3 ÷ RF 1 ratios. It asserts nothing about speed: the benchmark itself
// is the check.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eleven broker processes")
	}
	c := quickConfig()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	c.moduleRoot = root
	c.tmp = t.TempDir()
	c.sluiceBin = os.Getenv("SLUICE_BENCH_BIN") // optional prebuilt binary
	c.progress = io.Discard
	if testing.Verbose() {
		c.progress = os.Stderr
	}
	rep, err := run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	want := func(kind string) []string {
		switch kind {
		case "produce", "e2e":
			return []string{figRecords, figMB, figP50, figP99, figP999, figCPU}
		case "consume":
			return []string{figRecords, figMB, figCPU}
		case "idle":
			return []string{figRSS}
		}
		return nil
	}
	checks := 0
	for _, srv := range c.servers {
		for _, s := range c.scenariosFor(srv) {
			for _, fig := range want(s.Kind) {
				v, ok := rep.median(s.String(), srv.String(), fig)
				if !ok || !(v > 0) {
					t.Errorf("%v on %v: %s = %v (measured: %v), want > 0", s, srv, fig, v, ok)
				}
				checks++
			}
		}
	}
	for _, lim := range []string{limAppend, limAppendSync, limSendfile, limCopy} {
		for _, fig := range []string{figMB, figCPU} {
			if v, ok := rep.median(lim, "machine", fig); !ok || !(v > 0) {
				t.Errorf("%s: %s = %v (measured: %v), want > 0", lim, fig, v, ok)
			}
			checks++
		}
	}
	for _, lim := range latencyFloorNames {
		for _, fig := range []string{figP50, figP99, figP999} {
			if v, ok := rep.median(lim, "machine", fig); !ok || !(v > 0) {
				t.Errorf("%s: %s = %v (measured: %v), want > 0", lim, fig, v, ok)
			}
			checks++
		}
	}
	md := rep.markdown(c)
	for _, s := range c.scenarios() {
		if !strings.Contains(md, s.String()) {
			t.Errorf("markdown has no row for %v", s)
		}
	}
	// The replication table has one row group per scenario (without its
	// RF) and cluster mode, with an RF 1 row, an RF 3 row and their ratio.
	for _, s := range c.replicationScenarios() {
		if s.RF != 3 {
			continue
		}
		for _, k := range []serverKind{clusterPageCache, clusterDurable} {
			for _, fig := range []string{figMB, figP99, figCPU} {
				v, ok1 := rep.median(s.String(), k.String(), fig)
				s1 := s
				s1.RF = 1
				w, ok2 := rep.median(s1.String(), k.String(), fig)
				if want := fmt.Sprintf("%.2f×", v/w); !ok1 || !ok2 || !strings.Contains(md, want) {
					t.Errorf("%v on %v: no RF3/RF1 ratio %s of %s in the markdown", s.name(), k, want, fig)
				}
				checks++
			}
		}
		if !strings.Contains(md, "| "+s.name()+" | "+clusterPageCache.String()+" | 1 |") {
			t.Errorf("replication table has no row for %v", s.name())
		}
	}
	if strings.Contains(md, " rf=") {
		t.Errorf("a replication scenario leaked into another table:\n%s", md)
	}
	for _, section := range []string{"ratio pagecache/mem", "ratio pagecache/disk", "ratio durable/sync", "Physical limits", "Targets of issue 8", "Replication (3 brokers, acks=all)", "ratio RF3/RF1", "latency floor", "p99 ÷ floor p99"} {
		if !strings.Contains(md, section) {
			t.Errorf("markdown lacks %q", section)
		}
	}
	t.Logf("%d figures checked", checks)
}
