package main

// sluice offsets: start and end offsets per partition and, with --group,
// the group's committed offsets and lag. kadm's ListOffsets and
// FetchOffsets.

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
)

type partitionOffsets struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start_offset"`
	End       int64  `json:"end_offset"`
	Committed *int64 `json:"committed,omitempty"` // with --group; nil: no commit
	Lag       *int64 `json:"lag,omitempty"`       // with --group: end - committed (end - start without a commit)
	Error     string `json:"error,omitempty"`
}

func runOffsets(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("offsets", "offsets [topic]... [-g group] [--read-committed]", env)
	cf.register(fs, true)
	group := fs.String("g", "", "also show this group's committed offsets and lag")
	fs.StringVar(group, "group", "", "same as -g")
	committedEnd := fs.Bool("read-committed", false, "end offsets are last stable offsets (read_committed)")
	topics, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()

	var committed kadm.OffsetResponses
	if *group != "" {
		if committed, err = fetchOffsets(ctx, adm, *group); err != nil {
			return err
		}
	}
	if len(topics) == 0 {
		if *group != "" {
			topics = committed.Partitions().Topics()
			if len(topics) == 0 {
				return fmt.Errorf("group %q has no committed offsets; name topics to list", *group)
			}
		} else {
			tds, err := adm.ListTopics(ctx)
			if err != nil {
				return err
			}
			topics = tds.Names()
		}
	}
	sort.Strings(topics)
	var errs multiErr
	var rows []partitionOffsets
	if len(topics) > 0 {
		// Unknown topics: ListOffsets is silent about them, metadata is not.
		tds, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return err
		}
		var known []string
		for _, t := range topics {
			if td, ok := tds[t]; !ok || td.Err != nil {
				var terr error = fmt.Errorf("not in metadata")
				if ok {
					terr = td.Err
				}
				errs = append(errs, kafkaErr(fmt.Sprintf("topic %q", t), terr, ""))
				continue
			}
			known = append(known, t)
		}
		if len(known) > 0 {
			starts, err := adm.ListStartOffsets(ctx, known...)
			if err != nil {
				return err
			}
			listEnd := adm.ListEndOffsets
			if *committedEnd {
				listEnd = adm.ListCommittedOffsets
			}
			ends, err := listEnd(ctx, known...)
			if err != nil {
				return err
			}
			ends.Each(func(e kadm.ListedOffset) {
				r := partitionOffsets{Topic: e.Topic, Partition: e.Partition, Start: -1, End: e.Offset, Error: errString(e.Err)}
				if s, ok := starts.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
					r.Start = s.Offset
				}
				if e.Err != nil {
					errs = append(errs, kafkaErr(fmt.Sprintf("topic %q partition %d", e.Topic, e.Partition), e.Err, ""))
				}
				if *group != "" {
					lag := e.Offset - r.Start
					if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At >= 0 {
						at := c.At
						r.Committed = &at
						lag = e.Offset - at
					}
					lag = max(lag, 0)
					r.Lag = &lag
				}
				rows = append(rows, r)
			})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Topic != rows[j].Topic {
			return rows[i].Topic < rows[j].Topic
		}
		return rows[i].Partition < rows[j].Partition
	})
	if cf.json() {
		if rows == nil {
			rows = []partitionOffsets{}
		}
		if err := writeJSON(env.stdout, rows); err != nil {
			return err
		}
		return errs.err()
	}
	header := []string{"TOPIC", "PARTITION", "START", "END", "RECORDS"}
	if *group != "" {
		header = append(header, "COMMITTED", "LAG")
	}
	t := newTable(env.stdout, header...)
	for _, r := range rows {
		cols := []any{r.Topic, r.Partition, r.Start, r.End, max(r.End-r.Start, 0)}
		if *group != "" {
			c := "-"
			if r.Committed != nil {
				c = strconv.FormatInt(*r.Committed, 10)
			}
			cols = append(cols, c, *r.Lag)
		}
		t.row(cols...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	return errs.err()
}
