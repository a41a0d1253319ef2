package main

// Shared plumbing of the client-side commands (topic, group, cluster,
// offsets, produce, consume, bench): connection settings (-X key=value,
// SLUICE_BROKERS), interspersed flag parsing, tables and JSON output.
// Everything on the wire is franz-go's kgo and kadm.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const defaultBrokers = "localhost:9092"

// clientFlags are the flags every client-side command takes.
type clientFlags struct {
	settings settingFlag // -X key=value
	format   string      // --format text|json
}

func (c *clientFlags) register(fs *flag.FlagSet, withFormat bool) {
	c.settings = settingFlag{}
	fs.Var(c.settings, "X", "client setting key=value, repeatable: brokers (or bootstrap.servers), client.id, request.timeout.ms, dial.timeout.ms")
	if withFormat {
		fs.StringVar(&c.format, "format", "text", "output format: text (tables) or json")
	}
}

// clientSettingKeys are the -X keys we understand, with their synonyms.
var clientSettingKeys = map[string]string{
	"brokers":              "brokers",
	"bootstrap.servers":    "brokers",
	"metadata.broker.list": "brokers",
	"client.id":            "client.id",
	"request.timeout":      "request.timeout.ms",
	"request.timeout.ms":   "request.timeout.ms",
	"dial.timeout":         "dial.timeout.ms",
	"dial.timeout.ms":      "dial.timeout.ms",
}

// kgoOpts turns the connection settings into kgo options: -X brokers, else
// SLUICE_BROKERS, else localhost:9092.
func (c *clientFlags) kgoOpts(env cmdEnv) ([]kgo.Opt, error) {
	if c.format == "" {
		c.format = "text"
	}
	if c.format != "text" && c.format != "json" {
		return nil, errUsage{fmt.Sprintf("--format %q: want text or json", c.format)}
	}
	brokers := defaultBrokers
	if env.getenv != nil && env.getenv("SLUICE_BROKERS") != "" {
		brokers = env.getenv("SLUICE_BROKERS")
	}
	clientID := "sluice"
	var opts []kgo.Opt
	keys := make([]string, 0, len(c.settings))
	for k := range c.settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.settings[k]
		switch clientSettingKeys[k] {
		case "brokers":
			brokers = v
		case "client.id":
			clientID = v
		case "request.timeout.ms", "dial.timeout.ms":
			d, err := parseMillis(v)
			if err != nil {
				return nil, errUsage{fmt.Sprintf("-X %s=%s: %v", k, v, err)}
			}
			if clientSettingKeys[k] == "dial.timeout.ms" {
				opts = append(opts, kgo.DialTimeout(d))
			} else {
				opts = append(opts, kgo.RequestTimeoutOverhead(d))
			}
		default:
			return nil, errUsage{fmt.Sprintf("-X %s: unknown client setting (known: brokers, client.id, request.timeout.ms, dial.timeout.ms)", k)}
		}
	}
	var seeds []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, errUsage{"no brokers given"}
	}
	return append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID(clientID)}, opts...), nil
}

// parseMillis reads a duration as Go syntax ("5s") or plain milliseconds.
func parseMillis(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("want milliseconds or a duration such as 5s")
	}
	return d, nil
}

// newAdmin returns a kadm client for the settings; close it with Close.
func (c *clientFlags) newAdmin(env cmdEnv, extra ...kgo.Opt) (*kadm.Client, error) {
	opts, err := c.kgoOpts(env)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

func (c *clientFlags) json() bool { return c.format == "json" }

// parseNames is parseInterspersed for commands that need at least one
// positional name (topics, groups): none is a usage error.
func parseNames(fs *flag.FlagSet, args []string, what string) ([]string, error) {
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errUsage{"name at least one " + what}
	}
	return names, nil
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments (`topic create foo -p 3`), returning the positional
// ones. A flag error is a usage error; -h returns flag.ErrHelp.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse consumed a "--" if that is what stopped it: everything
		// after it is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a flag set that prints its usage to stderr with a
// one-line synopsis.
func newFlagSet(name, synopsis string, env cmdEnv) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: sluice %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// subcommand is one verb of a command family (topic create, group list).
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env cmdEnv) error
}

// family dispatches `sluice <family> <verb> ...` to its subcommands.
func family(name string, subs []subcommand) func(context.Context, []string, cmdEnv) error {
	return func(ctx context.Context, args []string, env cmdEnv) error {
		help := func(w io.Writer) {
			fmt.Fprintf(w, "Usage: sluice %s <command> [flags]\n\nCommands:\n", name)
			for _, s := range subs {
				fmt.Fprintf(w, "  %-15s %s\n", s.name, s.summary)
			}
			fmt.Fprintf(w, "\nRun 'sluice %s <command> --help' for a command's flags.\n", name)
		}
		if len(args) == 0 {
			help(env.stderr)
			return errUsage{"missing command"}
		}
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			help(env.stdout)
			return nil
		}
		for _, s := range subs {
			if s.name == args[0] {
				if err := s.run(ctx, args[1:], env); err != nil && !errors.Is(err, flag.ErrHelp) {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				return nil
			}
		}
		help(env.stderr)
		return errUsage{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(anySlice(header)...)
	}
	return t
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (t *table) row(cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errString is "" for nil, else a Kafka error's name and message.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// kafkaErr wraps a per-item error with what it is about: `topic "x":
// UNKNOWN_TOPIC_OR_PARTITION: This server does not host this
// topic-partition.`
func kafkaErr(what string, err error, msg string) error {
	if err == nil {
		return nil
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("%s: %w (%s)", what, err, msg)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// multiErr joins the errors of several items into one, nil if none.
type multiErr []error

func (m multiErr) err() error {
	switch len(m) {
	case 0:
		return nil
	case 1:
		return m[0]
	}
	return errors.Join(m...)
}

// joinInt32 formats broker ids as "1,2,3".
func joinInt32(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// stringsFlag collects repeatable, comma-separated values (-t a,b -t c).
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// coordinatorWait bounds how long a command waits for a group coordinator
// that is not available yet: a fresh cluster creates __consumer_offsets on
// the first FindCoordinator and answers COORDINATOR_NOT_AVAILABLE
// meanwhile, which kadm's sharded group requests do not retry.
const coordinatorWait = 15 * time.Second

// retryCoordinator calls fn until its error (or itemErr of its result) is
// not a transient coordinator error, or coordinatorWait passes.
func retryCoordinator[T any](ctx context.Context, fn func() (T, error), itemErr func(T) error) (T, error) {
	deadline := time.Now().Add(coordinatorWait)
	for {
		v, err := fn()
		check := err
		if check == nil && itemErr != nil {
			check = itemErr(v)
		}
		transient := errors.Is(check, kerr.CoordinatorNotAvailable) || errors.Is(check, kerr.CoordinatorLoadInProgress) ||
			errors.Is(check, kerr.NotCoordinator)
		if !transient || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fetchOffsets is kadm's FetchOffsets, waiting out a loading coordinator.
func fetchOffsets(ctx context.Context, adm *kadm.Client, group string) (kadm.OffsetResponses, error) {
	os, err := retryCoordinator(ctx, func() (kadm.OffsetResponses, error) { return adm.FetchOffsets(ctx, group) },
		kadm.OffsetResponses.Error)
	if err == nil {
		err = os.Error()
	}
	if err != nil {
		return nil, kafkaErr(fmt.Sprintf("offsets of group %q", group), err, "")
	}
	return os, nil
}
