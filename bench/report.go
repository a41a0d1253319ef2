package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

var figureOrder = []string{figRecords, figMB, figP50, figP99, figP999, figCPU, figRSS}

// report holds every run's figures: row (scenario or limit) -> server ->
// figure -> one value per run.
type report struct {
	rows []string
	data map[string]map[string]map[string][]float64
}

func newReport() *report { return &report{data: map[string]map[string]map[string][]float64{}} }

func (r *report) add(row, server string, f figures) {
	if r.data[row] == nil {
		r.data[row] = map[string]map[string][]float64{}
		r.rows = append(r.rows, row)
	}
	if r.data[row][server] == nil {
		r.data[row][server] = map[string][]float64{}
	}
	for k, v := range f {
		r.data[row][server][k] = append(r.data[row][server][k], v)
	}
}

// stat is the median, min and max of a figure, ok if it was measured.
func (r *report) stat(row, server, fig string) (med, lo, hi float64, ok bool) {
	v := slices.Clone(r.data[row][server][fig])
	if len(v) == 0 {
		return 0, 0, 0, false
	}
	slices.Sort(v)
	med = v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return med, v[0], v[len(v)-1], true
}

func (r *report) median(row, server, fig string) (float64, bool) {
	m, _, _, ok := r.stat(row, server, fig)
	return m, ok
}

// peers are the kfake modes each Sluice mode is compared with.
var peers = map[serverKind][]serverKind{
	sluicePageCache: {kfakeMem, kfakeDisk},
	sluiceDurable:   {kfakeSync},
}

func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func (r *report) cell(row, server, fig string, runs int) string {
	m, lo, hi, ok := r.stat(row, server, fig)
	if !ok {
		return "–"
	}
	if runs == 1 {
		return num(m)
	}
	return fmt.Sprintf("%s (%s–%s)", num(m), num(lo), num(hi))
}

func (r *report) ratio(row, a, b, fig string) string {
	x, ok1 := r.median(row, a, fig)
	y, ok2 := r.median(row, b, fig)
	if !ok1 || !ok2 || y == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x/y)
}

// rowRatio is the ratio of the medians of fig of two rows on one server.
func (r *report) rowRatio(a, b, server, fig string) string {
	x, ok1 := r.median(a, server, fig)
	y, ok2 := r.median(b, server, fig)
	if !ok1 || !ok2 || y == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x/y)
}

// markdown renders every table.
func (r *report) markdown(c config) string {
	var b strings.Builder
	// w is &b, or io.Discard for the single-node tables when no single-node
	// server was run (-servers sluice-cluster): they would be empty.
	w := io.Writer(&b)
	single := io.Writer(&b)
	if !slices.ContainsFunc(c.servers, func(k serverKind) bool { return k.Name != clusterName }) {
		single = io.Discard
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	has := func(k serverKind) bool { return slices.Contains(c.servers, k) }
	p("Generated %s by `go run ./bench` with %d run(s)%s, producer compression %s. Cells: median (min–max over runs). ", time.Now().UTC().Format("2006-01-02 15:04 UTC"), c.runs, map[bool]string{true: " in -quick mode", false: ""}[c.quick], c.lim.compression)
	p("Bounds: produce %d KiB or %v per scenario (one kgo client per connection, default options: linger 10ms, acks=all idempotent, acks=1 not); consume: all of the acks=all topic, one kgo consumer; e2e %d records of 1 KiB at %.0f records/s, acks=all, linger 0. ", c.lim.produceBytes>>10, c.lim.produceTime, c.lim.e2eRecords, c.lim.e2eRate)
	p("MB/s counts record values (10^6 bytes); CPU s/GB is the server process's CPU time (all threads, user+system: /proc/<pid>/task/*/schedstat) per 10^9 value bytes. Ratio rows are Sluice/kfake of the medians (for latency and CPU, below 1 is better).\n\n")

	w = single
	p("### Throughput, latency and CPU\n\n")
	p("| scenario | server | %s |\n|---|---|%s\n", strings.Join(figureOrder[:6], " | "), strings.Repeat("---|", 6))
	for _, row := range r.rows {
		if strings.HasPrefix(row, "idle") || r.data[row]["machine"] != nil || isReplication(row) {
			continue
		}
		first := true
		line := func(server string, cells []string) {
			name := ""
			if first {
				name, first = row, false
			}
			p("| %s | %s | %s |\n", name, server, strings.Join(cells, " | "))
		}
		for _, sk := range []serverKind{sluicePageCache, sluiceDurable} {
			if !has(sk) {
				continue
			}
			var cells []string
			for _, f := range figureOrder[:6] {
				cells = append(cells, r.cell(row, sk.String(), f, c.runs))
			}
			line("**"+sk.String()+"**", cells)
			for _, pk := range peers[sk] {
				if !has(pk) {
					continue
				}
				var ratios []string
				cells = nil
				for _, f := range figureOrder[:6] {
					cells = append(cells, r.cell(row, pk.String(), f, c.runs))
					ratios = append(ratios, r.ratio(row, sk.String(), pk.String(), f))
				}
				line(pk.String(), cells)
				line("ratio "+sk.Mode+"/"+pk.Mode, ratios)
			}
		}
	}

	scale := []string{"produce 1KiB p1 acks=all", "produce 1KiB p16 acks=all"}
	for _, row := range r.rows {
		if strings.HasPrefix(row, "produce 1KiB") && strings.HasSuffix(row, "acks=all") && !slices.Contains(scale, row) {
			scale = append(scale, row)
		}
	}
	for _, row := range r.rows {
		if strings.Contains(row, "conns=") && strings.HasPrefix(row, "produce") {
			scale = append(scale, row)
		}
	}
	p("\n### Scaling (1 KiB, acks=all): partitions and producer connections\n\n")
	p("| scenario | server | MB/s | CPU s/GB | ratio MB/s | ratio CPU s/GB |\n|---|---|---|---|---|---|\n")
	for _, row := range scale {
		if r.data[row] == nil {
			continue
		}
		for _, sk := range c.servers {
			if sk.Name != "sluice" {
				continue
			}
			peer := peers[sk][0]
			p("| %s | %s | %s | %s | %s | %s |\n", row, sk, r.cell(row, sk.String(), figMB, c.runs), r.cell(row, sk.String(), figCPU, c.runs),
				r.ratio(row, sk.String(), peer.String(), figMB)+" vs "+peer.String(), r.ratio(row, sk.String(), peer.String(), figCPU))
		}
	}
	w = &b
	r.replication(&b, c)
	for _, row := range r.rows {
		if !strings.HasPrefix(row, "idle") {
			continue
		}
		p("\n### Memory per connection (%s: one ApiVersions request each, then idle; broker RSS after minus before)\n\n", row)
		p("| server | RSS KiB/conn |\n|---|---|\n")
		for _, sk := range c.servers {
			if sk.Name == clusterName {
				continue
			}
			p("| %s | %s |\n", sk, r.cell(row, sk.String(), figRSS, c.runs))
		}
	}

	p("\n### Physical limits (same run, same bytes: 1 KiB records in 1 MiB writes)\n\n")
	p("| measurement | MB/s | CPU s/GB (sending/writing thread) | fdatasync p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|\n")
	for _, name := range []string{limAppend, limAppendSync, limSendfile, limCopy} {
		p("| %s | %s | %s | %s | %s | %s |\n", name, r.cell(name, "machine", figMB, c.runs), r.cell(name, "machine", figCPU, c.runs),
			r.cell(name, "machine", figP50, c.runs), r.cell(name, "machine", figP99, c.runs), r.cell(name, "machine", figP999, c.runs))
	}
	p("\n| latency floor: %d messages of 1 KiB at %.0f/s over loopback TCP to a relay process, paced as e2e | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|\n", c.lim.e2eRecords, c.lim.e2eRate)
	for _, name := range latencyFloorNames {
		p("| %s | %s | %s | %s |\n", name, r.cell(name, "machine", figP50, c.runs), r.cell(name, "machine", figP99, c.runs), r.cell(name, "machine", figP999, c.runs))
	}
	frac := func(label, row, server, fig, lim string) {
		x, ok1 := r.median(row, server, fig)
		y, ok2 := r.median(lim, "machine", fig)
		if ok1 && ok2 && y != 0 {
			p("| %s | %s | %s | %.2f |\n", label, num(x), num(y), x/y)
		}
	}
	w = single
	p("\n| Sluice against the limit | Sluice | limit | fraction |\n|---|---|---|---|\n")
	for _, acks := range []string{"1", "all"} {
		row := "produce 1KiB p1 acks=" + acks
		frac(row+", pagecache, MB/s ÷ "+limAppend, row, sluicePageCache.String(), figMB, limAppend)
		frac(row+", durable, MB/s ÷ "+limAppendSync, row, sluiceDurable.String(), figMB, limAppendSync)
	}
	for _, sk := range []serverKind{sluicePageCache, sluiceDurable} {
		frac("consume 1KiB p1, "+sk.Mode+", MB/s ÷ sendfile", "consume 1KiB p1", sk.String(), figMB, limSendfile)
		frac("consume 1KiB p1, "+sk.Mode+", CPU s/GB ÷ sendfile", "consume 1KiB p1", sk.String(), figCPU, limSendfile)
		frac("consume 1KiB p1, "+sk.Mode+", CPU s/GB ÷ read+write", "consume 1KiB p1", sk.String(), figCPU, limCopy)
	}

	p("\n### Targets of issue 8 (medians)\n\n| target | measured | goal | met |\n|---|---|---|---|\n")
	target := func(label string, v float64, ok bool, goal float64, atLeast bool, unit string) {
		if !ok {
			return
		}
		met := v <= goal
		if atLeast {
			met = v >= goal
		}
		verdict := "met"
		if !met {
			verdict = fmt.Sprintf("missed by %.0f%%", 100*abs(v-goal)/goal)
		}
		cmp := "≤"
		if atLeast {
			cmp = "≥"
		}
		p("| %s | %s%s | %s %s%s | %s |\n", label, num(v), unit, cmp, num(goal), unit, verdict)
	}
	ratioOf := func(row string, a, b serverKind, fig string) (float64, bool) {
		x, ok1 := r.median(row, a.String(), fig)
		y, ok2 := r.median(row, b.String(), fig)
		return x / y, ok1 && ok2 && y != 0
	}
	for _, pr := range []string{"p1", "p16"} {
		row := "produce 1KiB " + pr + " acks=all"
		v, ok := ratioOf(row, sluicePageCache, kfakeMem, figMB)
		target(row+", pagecache ÷ kfake/mem (within 5%)", v, ok, 0.95, true, "×")
		v, ok = ratioOf(row, sluicePageCache, kfakeDisk, figMB)
		target(row+", pagecache ÷ kfake/disk", v, ok, 1.0, true, "×")
		v, ok = ratioOf(row, sluiceDurable, kfakeSync, figMB)
		target(row+", durable ÷ kfake/sync", v, ok, 1.3, true, "×")
		crow := "consume 1KiB " + pr
		v, ok = ratioOf(crow, sluicePageCache, kfakeMem, figMB)
		target(crow+", pagecache ÷ kfake/mem", v, ok, 1.5, true, "×")
		v, ok = r.median(row, sluicePageCache.String(), figCPU)
		target(row+", pagecache, broker CPU s/GB", v, ok, 0.5, false, "")
		v, ok = r.median(crow, sluicePageCache.String(), figCPU)
		target(crow+", pagecache, broker CPU s/GB", v, ok, 0.3, false, "")
		erow := "e2e 1KiB " + pr
		v, ok = r.median(erow, sluicePageCache.String(), figP99)
		target(erow+" at 10k/s, pagecache, p99", v, ok, 0.6, false, " ms")
		v, ok = r.median(erow, sluiceDurable.String(), figP99)
		target(erow+" at 10k/s, durable, p99", v, ok, 1.5, false, " ms")
		// The e2e tail against the machine's: the one-way latency floor
		// (the e2e shape without Kafka) measured in the same run.
		floor, okf := r.median(limOneWay, "machine", figP99)
		for _, sk := range []serverKind{sluicePageCache, sluiceDurable} {
			v, ok := r.median(erow, sk.String(), figP99)
			if !ok || !okf || floor == 0 {
				continue
			}
			goal := map[serverKind]float64{sluicePageCache: 0.6, sluiceDurable: 1.5}[sk]
			verdict := "target above the floor"
			if goal < floor {
				verdict = "target below the floor"
			}
			p("| %s at 10k/s, %s, p99 ÷ floor p99 (%s) | %.2f× | floor p99 %s ms, target %s ms | %s |\n", erow, sk.Mode, limOneWay, v/floor, num(floor), num(goal), verdict)
		}
	}
	return b.String()
}

// isReplication reports whether row is a replication scenario (on the
// three-broker cluster: its name ends in the replication factor).
func isReplication(row string) bool { return strings.Contains(row, " rf=") }

// replication renders the table of the replication scenarios: for each
// scenario and cluster mode, the RF 1 and RF 3 rows and their ratio.
func (r *report) replication(b *strings.Builder, c config) {
	var kinds []serverKind
	for _, k := range c.servers {
		if k.Name == clusterName {
			kinds = append(kinds, k)
		}
	}
	var bases []string
	for _, row := range r.rows {
		if base, ok := strings.CutSuffix(row, " rf=3"); ok && r.data[base+" rf=1"] != nil {
			bases = append(bases, base)
		}
	}
	if len(kinds) == 0 || len(bases) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	figs := figureOrder[:6]
	p("\n### Replication (3 brokers, acks=all)\n\n")
	p("Three `sluice serve` processes forming one cluster (each a broker and a controller voter) on this machine, with the client; ")
	p("each scenario writes a topic with replication factor 1 and one with 3 (`min.insync.replicas=2`) on the same processes in the same run. ")
	p("1 KiB values, acks=all (idempotent); produce and e2e bounds as above. Leaders are wherever the controller placed them. ")
	p("CPU s/GB sums the three brokers' CPU. Ratio rows are RF 3 ÷ RF 1 of the medians.\n\n")
	p("| scenario | server | RF | %s |\n|---|---|---|%s\n", strings.Join(figs, " | "), strings.Repeat("---|", len(figs)))
	for _, base := range bases {
		name := base
		for _, k := range kinds {
			server := k.String()
			for _, rf := range []string{"1", "3"} {
				var cells []string
				for _, f := range figs {
					cells = append(cells, r.cell(base+" rf="+rf, k.String(), f, c.runs))
				}
				p("| %s | %s | %s | %s |\n", name, server, rf, strings.Join(cells, " | "))
				name, server = "", ""
			}
			var ratios []string
			for _, f := range figs {
				ratios = append(ratios, r.rowRatio(base+" rf=3", base+" rf=1", k.String(), f))
			}
			p("|  |  | ratio RF3/RF1 | %s |\n", strings.Join(ratios, " | "))
		}
	}
}

func abs(x float64) float64 { return max(x, -x) }
