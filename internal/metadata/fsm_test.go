package metadata

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt golden files with the actual output")

// TestFSMGolden drives fsm.Apply directly with the scripts in
// testdata/fsm_*.txt. Each case is a command line, a "----" line, and the
// expected output up to a blank line. Run with -rewrite to regenerate.
func TestFSMGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/fsm_*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/fsm_*.txt")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runGolden(t, file) })
	}
}

type goldenCase struct {
	comment []string // "#" lines before the case, kept by -rewrite
	cmd     string
	line    int
	expect  string
}

func parseGolden(t *testing.T, data string) (header string, cases []goldenCase) {
	t.Helper()
	lines := strings.Split(data, "\n")
	var hdr []string
	i := 0
	for ; i < len(lines); i++ {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			hdr = append(hdr, l)
			continue
		}
		break
	}
	header = strings.Join(hdr, "\n")
	var comment []string
	for i < len(lines) {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			if l != "" {
				comment = append(comment, l)
			}
			i++
			continue
		}
		c := goldenCase{comment: comment, cmd: l, line: i + 1}
		comment = nil
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("line %d: expected ---- after %q", c.line, l)
		}
		i++
		var out []string
		for i < len(lines) && lines[i] != "" {
			out = append(out, lines[i])
			i++
		}
		c.expect = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return header, cases
}

func runGolden(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	header, cases := parseGolden(t, string(data))
	var events []Event
	f := newFSM(func(ev []Event) { events = append(events, ev...) })
	var index uint64
	var out strings.Builder
	out.WriteString(header)
	if header != "" {
		out.WriteString("\n")
	}
	for _, c := range cases {
		events = nil
		got := runGoldenCmd(t, f, &index, &events, c.cmd)
		if !*rewrite && got != c.expect {
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", file, c.line, c.cmd, got, c.expect)
		}
		for _, l := range c.comment {
			fmt.Fprintf(&out, "%s\n", l)
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", c.cmd, got)
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func testID(s string) uuid {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	var id uuid
	id[15] = byte(n)
	return id
}

func parseReplicas(s string) [][]int32 {
	var out [][]int32
	if s == "" {
		return out
	}
	for _, part := range strings.Split(s, "/") {
		var rs []int32
		for _, b := range strings.Split(part, ",") {
			if b == "" {
				continue
			}
			n, err := strconv.Atoi(b)
			if err != nil {
				panic(err)
			}
			rs = append(rs, int32(n))
		}
		out = append(out, rs)
	}
	return out
}

// parseOps turns set.k=v, delete.k, append.k=v, subtract.k=v args into ops.
func parseOps(args []string) (ops []ConfigOp, replace bool) {
	for _, a := range args {
		if a == "replace" {
			replace = true
			continue
		}
		verb, rest, _ := strings.Cut(a, ".")
		k, v, hasV := strings.Cut(rest, "=")
		op := ConfigOp{Name: k}
		if hasV {
			op.Value = &v
		}
		switch verb {
		case "set":
			op.Op = OpSet
		case "delete":
			op.Op = OpDelete
		case "append":
			op.Op = OpAppend
		case "subtract":
			op.Op = OpSubtract
		case "op9":
			op.Op = 9
		default:
			continue
		}
		ops = append(ops, op)
	}
	return ops, replace
}

func runGoldenCmd(t *testing.T, f *fsm, index *uint64, events *[]Event, line string) string {
	t.Helper()
	fields := strings.Fields(line)
	verb, args := fields[0], fields[1:]
	kv := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		kv[k] = v
	}
	var body any
	switch verb {
	case "state":
		return dumpState(f)
	case "snapshot-roundtrip":
		return snapshotRoundtrip(t, f)
	case "raw":
		return applyRaw(f, index, events, []byte(strings.TrimSpace(strings.TrimPrefix(line, "raw"))))
	case "init-cluster":
		body = &initClusterCmd{ClusterID: kv["id"]}
	case "register-broker":
		n, _ := strconv.Atoi(kv["node"])
		p, _ := strconv.Atoi(kv["port"])
		_, unclean := kv["unclean"]
		body = &registerBrokerCmd{NodeID: int32(n), Host: kv["host"], Port: int32(p), Rack: kv["rack"], Unclean: unclean}
	case "create-topic":
		c := &createTopicCmd{Name: kv["name"], ID: testID(kv["id"]), Replicas: parseReplicas(kv["replicas"])}
		_, c.Internal = kv["internal"]
		for _, a := range args {
			if rest, ok := strings.CutPrefix(a, "config."); ok {
				k, v, _ := strings.Cut(rest, "=")
				if c.Configs == nil {
					c.Configs = map[string]string{}
				}
				c.Configs[k] = v
			}
		}
		body = c
	case "delete-topic":
		c := &deleteTopicCmd{Name: kv["name"]}
		if id, ok := kv["id"]; ok {
			c.ID = testID(id)
		}
		body = c
	case "create-partitions":
		n, _ := strconv.Atoi(kv["total"])
		body = &createPartitionsCmd{Name: kv["name"], ID: testID(kv["id"]), Total: int32(n), Replicas: parseReplicas(kv["replicas"])}
	case "alter-topic-configs":
		ops, replace := parseOps(args)
		body = &alterTopicConfigsCmd{Name: kv["name"], Ops: toConfigOps(ops), Replace: replace}
	case "set-broker-configs":
		ops, replace := parseOps(args)
		body = &setBrokerConfigsCmd{Ops: toConfigOps(ops), Replace: replace}
	case "fence-broker", "unfence-broker", "controlled-shutdown":
		n, _ := strconv.Atoi(kv["node"])
		e, _ := strconv.ParseInt(kv["epoch"], 10, 64)
		switch verb {
		case "fence-broker":
			body = &fenceBrokerCmd{NodeID: int32(n), Epoch: e}
		case "unfence-broker":
			body = &unfenceBrokerCmd{NodeID: int32(n), Epoch: e}
		default:
			body = &controlledShutdownCmd{NodeID: int32(n), Epoch: e}
		}
	case "alter-partition":
		atoi := func(k string) int32 { n, _ := strconv.Atoi(kv[k]); return int32(n) }
		be, _ := strconv.ParseInt(kv["bepoch"], 10, 64)
		c := &alterPartitionCmd{Topic: kv["topic"], Partition: atoi("p"), BrokerID: atoi("broker"), BrokerEpoch: be,
			LeaderEpoch: atoi("le"), PartitionEpoch: atoi("pe")}
		if id, ok := kv["id"]; ok {
			c.TopicID = testID(id)
		}
		if r := parseReplicas(kv["isr"]); len(r) > 0 {
			c.ISR = r[0]
		}
		body = c
	case "elect-leaders":
		c := &electLeadersCmd{}
		switch kv["type"] {
		case "preferred":
		case "unclean":
			c.Type = int8(ElectUnclean)
		default:
			n, _ := strconv.Atoi(kv["type"])
			c.Type = int8(n)
		}
		for _, ref := range strings.Split(kv["parts"], ",") {
			tp, ps, _ := strings.Cut(ref, ":")
			n, _ := strconv.Atoi(ps)
			c.Partitions = append(c.Partitions, partitionRef{Topic: tp, Partition: int32(n)})
		}
		body = c
	case "reassign":
		// reassign t:0=1,2,3 t:1=cancel [keep-rf]
		c := &reassignCmd{}
		_, keepRF := kv["keep-rf"]
		for _, a := range args {
			if a == "keep-rf" {
				continue
			}
			ref, target, _ := strings.Cut(a, "=")
			tp, ps, _ := strings.Cut(ref, ":")
			n, _ := strconv.Atoi(ps)
			it := reassignItem{Topic: tp, Partition: int32(n), KeepRF: keepRF}
			if target == "cancel" {
				it.Cancel = true
			} else if r := parseReplicas(target); len(r) > 0 {
				it.Replicas = r[0]
			}
			c.Items = append(c.Items, it)
		}
		body = c
	case "allocate-producer-ids":
		n, _ := strconv.Atoi(kv["count"])
		data, err := encodeCommand(&allocateProducerIDsCmd{Count: int32(n)})
		if err != nil {
			t.Fatal(err)
		}
		*index++
		res := f.Apply(&raft.Log{Index: *index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
		if res.err != nil {
			return "error: " + KafkaMessage(res.err)
		}
		return fmt.Sprintf("first=%d", res.first)
	default:
		t.Fatalf("unknown golden command %q", verb)
	}
	data, err := encodeCommand(body)
	if err != nil {
		t.Fatal(err)
	}
	return applyRaw(f, index, events, data)
}

func applyRaw(f *fsm, index *uint64, events *[]Event, data []byte) string {
	*index++
	res := f.Apply(&raft.Log{Index: *index, Term: 1, Type: raft.LogCommand, Data: data}).(applyResult)
	var b strings.Builder
	for i, err := range res.perPart {
		if err == nil {
			fmt.Fprintf(&b, "item %d: ok\n", i)
			continue
		}
		var ke *kerr.Error
		errors.As(err, &ke)
		fmt.Fprintf(&b, "item %d: %s [%s]\n", i, KafkaMessage(err), ke.Message)
	}
	if res.part != nil {
		fmt.Fprintf(&b, "result: %s\n", fmtPartition(*res.part))
	}
	if res.err != nil {
		fmt.Fprintf(&b, "error: %s", KafkaMessage(res.err))
		var ke *kerr.Error
		if errors.As(res.err, &ke) {
			fmt.Fprintf(&b, " [%s]", ke.Message)
		}
		if errors.Is(res.err, ErrUnknownCommand) {
			b.WriteString(" [unknown command]")
		}
		return b.String()
	}
	for _, ev := range *events {
		fmt.Fprintf(&b, "event: %s", ev.Kind)
		if ev.Topic != "" {
			fmt.Fprintf(&b, " topic=%s", ev.Topic)
		}
		switch ev.Kind {
		case BrokerRegistered, BrokerFenced, BrokerUnfenced, BrokerControlledShutdown:
			fmt.Fprintf(&b, " node=%d", ev.NodeID)
		case PartitionChanged:
			fmt.Fprintf(&b, " p=%d", ev.Partition)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "ok"
	}
	return strings.TrimRight(b.String(), "\n")
}

func fmtMap(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func dumpState(f *fsm) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster-id: %q\n", f.clusterID())
	for _, br := range f.brokers() {
		fmt.Fprintf(&b, "broker %d %s:%d rack=%q epoch=%d", br.NodeID, br.Host, br.Port, br.Rack, br.Epoch)
		if br.Fenced {
			b.WriteString(" fenced")
		}
		if br.InControlledShutdown {
			b.WriteString(" shutting-down")
		}
		if br.UncleanRestart {
			b.WriteString(" unclean-restart")
		}
		b.WriteString("\n")
	}
	for _, tp := range f.topics() {
		fmt.Fprintf(&b, "topic %s id=%d internal=%v configs=%s\n", tp.Name, tp.ID[15], tp.Internal, fmtMap(tp.Configs))
		for _, p := range tp.Partitions {
			fmt.Fprintf(&b, "  %s\n", fmtPartition(p))
		}
	}
	fmt.Fprintf(&b, "broker-configs: %s", fmtMap(f.brokerConfigs()))
	f.mu.RLock()
	if n := f.mu.st.nextProducerID; n != 0 {
		fmt.Fprintf(&b, "\nnext-producer-id: %d", n)
	}
	f.mu.RUnlock()
	return b.String()
}

func fmtPartition(p Partition) string {
	s := fmt.Sprintf("p%d leader=%d epoch=%d pepoch=%d replicas=%v isr=%v", p.ID, p.Leader, p.LeaderEpoch, p.PartitionEpoch, p.Replicas, p.ISR)
	if len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0 {
		s += fmt.Sprintf(" adding=%v removing=%v", p.AddingReplicas, p.RemovingReplicas)
	}
	return s
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

// snapshotRoundtrip persists f's snapshot, restores it into a fresh FSM and
// reports the events the restore produced and whether the states match.
func snapshotRoundtrip(t *testing.T, f *fsm) string {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	var evs []Event
	g := newFSM(func(ev []Event) { evs = append(evs, ev...) })
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "restore-event: %s topic=%q node=%d", ev.Kind, ev.Topic, ev.NodeID)
		if ev.Kind == PartitionChanged {
			fmt.Fprintf(&b, " p=%d", ev.Partition)
		}
		b.WriteString("\n")
	}
	if a, c := dumpState(f), dumpState(g); a != c {
		fmt.Fprintf(&b, "MISMATCH:\n%s\n--- vs ---\n%s", a, c)
	} else {
		b.WriteString("identical")
	}
	return b.String()
}

// TestRestoreDiffEvents: restoring a snapshot over a newer state (a
// follower installing the leader's snapshot) tells subscribers what
// changed, partition by partition.
func TestRestoreDiffEvents(t *testing.T) {
	var events []Event
	f := newFSM(func(ev []Event) { events = append(events, ev...) })
	var index uint64
	apply := func(body any) {
		t.Helper()
		data, err := encodeCommand(body)
		if err != nil {
			t.Fatal(err)
		}
		index++
		if res := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(applyResult); res.err != nil {
			t.Fatal(res.err)
		}
	}
	apply(&registerBrokerCmd{NodeID: 1, Host: "a", Port: 1})
	apply(&registerBrokerCmd{NodeID: 2, Host: "b", Port: 1})
	apply(&createTopicCmd{Name: "t", ID: testID("1"), Replicas: [][]int32{{1, 2}, {2, 1}}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	// The "leader's" state moves on: broker 2 fenced.
	g := newFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g.appliedIndex() != index {
		t.Fatalf("restored applied index %d, want %d", g.appliedIndex(), index)
	}
	apply(&fenceBrokerCmd{NodeID: 2, Epoch: 2})
	snap2, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink2 memSink
	if err := snap2.Persist(&sink2); err != nil {
		t.Fatal(err)
	}
	var got []string
	g.notify = func(ev []Event) {
		for _, e := range ev {
			got = append(got, fmt.Sprintf("%s %s %d %d", e.Kind, e.Topic, e.Partition, e.NodeID))
		}
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink2.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want := []string{"BrokerFenced  0 2", "PartitionChanged t 0 0", "PartitionChanged t 1 0"}
	if !slices.Equal(got, want) {
		t.Fatalf("restore events %q, want %q", got, want)
	}
	if dumpState(f) != dumpState(g) || g.appliedIndex() != index {
		t.Fatalf("states differ after restore")
	}
}
