package main

// sluice consume: a console consumer in the manner of `kcat -C` and
// kafka-console-consumer.sh, on kgo.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startSpec is the parsed -o flag.
type startSpec struct {
	kind string // beginning, end, offset, relative, timestamp
	n    int64  // offset; records back from the end; milliseconds
}

func parseStart(s string) (startSpec, error) {
	switch {
	case s == "beginning" || s == "earliest" || s == "start":
		return startSpec{kind: "beginning"}, nil
	case s == "end" || s == "latest":
		return startSpec{kind: "end"}, nil
	case strings.HasPrefix(s, "@"):
		ms, err := strconv.ParseInt(s[1:], 10, 64)
		if err == nil && ms >= 0 {
			return startSpec{kind: "timestamp", n: ms}, nil
		}
	default:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n < 0 {
				return startSpec{kind: "relative", n: -n}, nil
			}
			return startSpec{kind: "offset", n: n}, nil
		}
	}
	return startSpec{}, errUsage{fmt.Sprintf("-o %q: want beginning, end, an offset, -N (N before the end) or @<timestamp-ms>", s)}
}

// kgoOffset is the spec as a kgo reset offset (for groups without a commit).
func (s startSpec) kgoOffset() kgo.Offset {
	switch s.kind {
	case "beginning":
		return kgo.NewOffset().AtStart()
	case "offset":
		return kgo.NewOffset().At(s.n)
	case "relative":
		return kgo.NewOffset().AtEnd().Relative(-s.n)
	case "timestamp":
		return kgo.NewOffset().AfterMilli(s.n)
	}
	return kgo.NewOffset().AtEnd()
}

// resolve computes the exact start offset of every partition of topics.
func (s startSpec) resolve(ctx context.Context, adm *kadm.Client, starts, ends kadm.ListedOffsets, topics []string) (map[string]map[int32]int64, error) {
	var byTime kadm.ListedOffsets
	if s.kind == "timestamp" {
		var err error
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, s.n, topics...); err != nil {
			return nil, err
		}
	}
	out := map[string]map[int32]int64{}
	var errs multiErr
	ends.Each(func(e kadm.ListedOffset) {
		st, _ := starts.Lookup(e.Topic, e.Partition)
		if e.Err != nil || st.Err != nil {
			errs = append(errs, kafkaErr(fmt.Sprintf("topic %q partition %d", e.Topic, e.Partition), errors.Join(e.Err, st.Err), ""))
			return
		}
		var at int64
		switch s.kind {
		case "beginning":
			at = st.Offset
		case "end":
			at = e.Offset
		case "offset":
			at = s.n
		case "relative":
			at = e.Offset - s.n
		case "timestamp":
			at = e.Offset
			if t, ok := byTime.Lookup(e.Topic, e.Partition); ok && t.Err == nil && t.Offset >= 0 {
				at = t.Offset
			}
		}
		if out[e.Topic] == nil {
			out[e.Topic] = map[int32]int64{}
		}
		out[e.Topic][e.Partition] = max(st.Offset, min(at, e.Offset))
	})
	return out, errs.err()
}

func runConsume(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("consume", "consume -t topic [-o beginning|end|<offset>|-N|@<ms>] [-g group] [-n count] [-e] [-f format | --format json]", env)
	cf.register(fs, false)
	var topics stringsFlag
	fs.Var(&topics, "t", "topic, repeatable or comma-separated (required)")
	startFlag := fs.String("o", "", "where to start: beginning, end, an offset, -N (N records before the end), @<unix-ms> (default: end; for a group, its committed offsets, else end)")
	partition := fs.Int("p", -1, "consume only this partition (not with -g)")
	group := fs.String("g", "", "consume as a member of this group, committing what was printed")
	count := fs.Int64("n", 0, "exit after this many records")
	exitAtEnd := fs.Bool("e", false, "exit at the end of every partition (the end offsets when the command started)")
	format := fs.String("f", "", "kcat-style format: %t topic, %p partition, %o offset, %k key, %v or %s value, %T timestamp (ms), %h headers, %K %S key and value sizes, \\n \\t (default \"%v\\n\")")
	output := fs.String("format", "text", "text (-f format) or json (one object per line)")
	isolation := fs.String("isolation", "read_uncommitted", "read_uncommitted or read_committed")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("unexpected arguments: %v", pos)}
	}
	if len(topics) == 0 {
		return errUsage{"-t topic is required"}
	}
	if *output != "text" && *output != "json" {
		return errUsage{fmt.Sprintf("--format %q: want text or json", *output)}
	}
	if *output == "json" && *format != "" {
		return errUsage{"give -f or --format json, not both"}
	}
	if *group != "" && *partition >= 0 {
		return errUsage{"-p cannot be used with -g"}
	}
	if *format == "" {
		*format = `%v\n`
	}
	spec := startSpec{kind: "end"}
	if *startFlag != "" {
		if spec, err = parseStart(*startFlag); err != nil {
			return err
		}
	}
	opts, err := cf.kgoOpts(env)
	if err != nil {
		return err
	}
	var readCommitted bool
	switch *isolation {
	case "read_uncommitted":
	case "read_committed":
		readCommitted = true
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	default:
		return errUsage{fmt.Sprintf("--isolation %q: want read_uncommitted or read_committed", *isolation)}
	}

	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	tds, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return err
	}
	for _, t := range topics {
		if td, ok := tds[t]; !ok {
			return fmt.Errorf("topic %q: not in metadata", t)
		} else if td.Err != nil {
			return kafkaErr(fmt.Sprintf("topic %q", t), td.Err, "")
		}
		if *partition >= 0 {
			if _, ok := tds[t].Partitions[int32(*partition)]; !ok {
				return fmt.Errorf("topic %q has no partition %d", t, *partition)
			}
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	listEnd := adm.ListEndOffsets
	if readCommitted {
		listEnd = adm.ListCommittedOffsets
	}
	ends, err := listEnd(ctx, topics...)
	if err != nil {
		return err
	}
	if *partition >= 0 {
		ends.Each(func(o kadm.ListedOffset) {
			if o.Partition != int32(*partition) {
				delete(ends[o.Topic], o.Partition)
			}
		})
	}
	positions, err := spec.resolve(ctx, adm, starts, ends, topics)
	if err != nil {
		return err
	}
	if *group != "" {
		opts = append(opts, kgo.ConsumerGroup(*group), kgo.ConsumeTopics(topics...),
			kgo.ConsumeResetOffset(spec.kgoOffset()), kgo.AutoCommitMarks())
		// Where the group really starts: its commits, else the reset point.
		committed, err := fetchOffsets(ctx, adm, *group)
		if err != nil {
			return err
		}
		committed.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil && o.At >= 0 && positions[o.Topic] != nil {
				if _, ok := positions[o.Topic][o.Partition]; ok {
					positions[o.Topic][o.Partition] = o.At
				}
			}
		})
	} else {
		exact := map[string]map[int32]kgo.Offset{}
		for t, ps := range positions {
			exact[t] = map[int32]kgo.Offset{}
			for p, at := range ps {
				exact[t][p] = kgo.NewOffset().At(at)
			}
		}
		opts = append(opts, kgo.ConsumePartitions(exact))
	}
	// remaining counts the partitions not yet at their end offset (-e).
	remaining := 0
	for t, ps := range positions {
		for p, at := range ps {
			if e, _ := ends.Lookup(t, p); at < e.Offset {
				remaining++
			}
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	w := bufio.NewWriter(env.stdout)
	defer w.Flush()
	var printed int64
	done := func() bool {
		return (*count > 0 && printed >= *count) || (*exitAtEnd && remaining == 0)
	}
	for !done() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		iter := fetches.RecordIter()
		for !iter.Done() && !done() {
			r := iter.Next()
			if err := writeRecord(w, r, *format, *output == "json"); err != nil {
				return err
			}
			printed++
			if *group != "" {
				cl.MarkCommitRecords(r)
			}
			if e, ok := ends.Lookup(r.Topic, r.Partition); ok {
				if at := positions[r.Topic][r.Partition]; at < e.Offset && r.Offset+1 >= e.Offset {
					remaining--
				}
				positions[r.Topic][r.Partition] = r.Offset + 1
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if *group != "" {
		// Commit what was printed, with a live context even after Ctrl-C.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			return fmt.Errorf("commit for group %q: %w", *group, err)
		}
	}
	return w.Flush()
}

// writeRecord prints r in a kcat-style format or as one JSON line.
func writeRecord(w io.Writer, r *kgo.Record, format string, asJSON bool) error {
	if asJSON {
		type header struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		var key *string
		if r.Key != nil {
			k := string(r.Key)
			key = &k
		}
		hs := make([]header, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = header{h.Key, string(h.Value)}
		}
		b, err := json.Marshal(struct {
			Topic     string   `json:"topic"`
			Partition int32    `json:"partition"`
			Offset    int64    `json:"offset"`
			Timestamp int64    `json:"timestamp"`
			Key       *string  `json:"key"`
			Value     string   `json:"value"`
			Headers   []header `json:"headers"`
		}{r.Topic, r.Partition, r.Offset, r.Timestamp.UnixMilli(), key, string(r.Value), hs})
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	var b []byte
	for i := 0; i < len(format); i++ {
		c := format[i]
		if (c != '%' && c != '\\') || i+1 == len(format) {
			b = append(b, c)
			continue
		}
		i++
		if c == '\\' {
			switch format[i] {
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			case '\\':
				b = append(b, '\\')
			default:
				b = append(b, '\\', format[i])
			}
			continue
		}
		switch format[i] {
		case 't':
			b = append(b, r.Topic...)
		case 'p':
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		case 'o':
			b = strconv.AppendInt(b, r.Offset, 10)
		case 'k':
			b = append(b, r.Key...)
		case 'v', 's':
			b = append(b, r.Value...)
		case 'K':
			b = strconv.AppendInt(b, int64(len(r.Key)), 10)
		case 'S':
			b = strconv.AppendInt(b, int64(len(r.Value)), 10)
		case 'T':
			b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
		case 'h':
			for j, h := range r.Headers {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, h.Key...)
				b = append(b, '=')
				b = append(b, h.Value...)
			}
		case '%':
			b = append(b, '%')
		default:
			b = append(b, '%', format[i])
		}
	}
	_, err := w.Write(b)
	return err
}
