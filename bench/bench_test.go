package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuick runs the whole harness in -quick mode (tiny counts, one run)
// against real child processes and checks that every figure of every
// scenario, server and physical limit was produced and is positive. It
// asserts nothing about speed: the benchmark itself is the check.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten broker processes")
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
	for _, s := range c.scenarios() {
		for _, srv := range c.servers {
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
	md := rep.markdown(c)
	for _, s := range c.scenarios() {
		if !strings.Contains(md, s.String()) {
			t.Errorf("markdown has no row for %v", s)
		}
	}
	for _, section := range []string{"ratio pagecache/mem", "ratio pagecache/disk", "ratio durable/sync", "Physical limits", "Targets of issue 8"} {
		if !strings.Contains(md, section) {
			t.Errorf("markdown lacks %q", section)
		}
	}
	t.Logf("%d figures checked", checks)
}
