package main

// sluice group list|describe|delete|seek, in the manner of
// kafka-consumer-groups.sh, through kadm.

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

func runGroup(ctx context.Context, args []string, env cmdEnv) error {
	return family("group", []subcommand{
		{"list", "list consumer groups", runGroupList},
		{"describe", "members, committed offsets and lag of groups", runGroupDescribe},
		{"delete", "delete groups (no active members)", runGroupDelete},
		{"seek", "reset a group's committed offsets (no active members)", runGroupSeek},
	})(ctx, args, env)
}

func runGroupList(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("group list", "group list [--state state]...", env)
	cf.register(fs, true)
	var states stringsFlag
	fs.Var(&states, "state", "only groups in these states (Empty, Stable, PreparingRebalance, ...), repeatable")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage{fmt.Sprintf("unexpected arguments: %v", pos)}
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	groups, err := adm.ListGroups(ctx, states...)
	if err != nil {
		return err
	}
	type row struct {
		Group        string `json:"group"`
		State        string `json:"state"`
		ProtocolType string `json:"protocol_type"`
		Coordinator  int32  `json:"coordinator"`
	}
	rows := []row{}
	for _, g := range groups.Sorted() {
		rows = append(rows, row{g.Group, g.State, g.ProtocolType, g.Coordinator})
	}
	if cf.json() {
		return writeJSON(env.stdout, rows)
	}
	t := newTable(env.stdout, "GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR")
	for _, r := range rows {
		t.row(r.Group, r.State, r.ProtocolType, r.Coordinator)
	}
	return t.flush()
}

// groupDescription is `group describe`'s JSON shape.
type groupDescription struct {
	Group        string             `json:"group"`
	State        string             `json:"state"`
	ProtocolType string             `json:"protocol_type"`
	Protocol     string             `json:"protocol"`
	Coordinator  int32              `json:"coordinator"`
	Members      []groupMember      `json:"members"`
	Offsets      []groupPartitionAt `json:"offsets"`
	TotalLag     int64              `json:"total_lag"`
	Error        string             `json:"error,omitempty"`
}

type groupMember struct {
	MemberID   string  `json:"member_id"`
	InstanceID *string `json:"instance_id,omitempty"`
	ClientID   string  `json:"client_id"`
	ClientHost string  `json:"client_host"`
	Assigned   string  `json:"assigned"`
}

type groupPartitionAt struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: no commit
	End       int64  `json:"end_offset"`
	Lag       int64  `json:"lag"`
	MemberID  string `json:"member_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

func assignedString(m kadm.DescribedGroupMember) string {
	ca, ok := m.Assigned.AsConsumer()
	if !ok {
		return ""
	}
	var parts []string
	for _, t := range ca.Topics {
		ps := make([]int32, len(t.Partitions))
		copy(ps, t.Partitions)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		parts = append(parts, t.Topic+":"+joinInt32(ps))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func runGroupDescribe(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("group describe", "group describe <group>...", env)
	cf.register(fs, true)
	groups, err := parseNames(fs, args, "group")
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	lags, err := retryCoordinator(ctx, func() (kadm.DescribedGroupLags, error) { return adm.Lag(ctx, groups...) },
		func(ls kadm.DescribedGroupLags) error { return ls.Error() })
	if err != nil {
		return err
	}
	var errs multiErr
	var out []groupDescription
	for _, name := range groups {
		l, ok := lags[name]
		d := groupDescription{Group: name, Members: []groupMember{}, Offsets: []groupPartitionAt{}}
		if !ok {
			d.Error = "no answer"
			errs = append(errs, fmt.Errorf("group %q: no answer", name))
			out = append(out, d)
			continue
		}
		if l.DescribeErr != nil {
			d.Error = errString(l.DescribeErr)
			errs = append(errs, kafkaErr(fmt.Sprintf("group %q", name), l.DescribeErr, ""))
			out = append(out, d)
			continue
		}
		if l.State == "Dead" && len(l.Members) == 0 && len(l.Lag) == 0 {
			d.Error = "group does not exist"
			errs = append(errs, fmt.Errorf("group %q does not exist", name))
			out = append(out, d)
			continue
		}
		if l.FetchErr != nil {
			errs = append(errs, kafkaErr(fmt.Sprintf("offsets of group %q", name), l.FetchErr, ""))
		}
		d.State, d.ProtocolType, d.Protocol, d.Coordinator = l.State, l.ProtocolType, l.Protocol, l.Coordinator.NodeID
		for _, m := range l.Members {
			d.Members = append(d.Members, groupMember{m.MemberID, m.InstanceID, m.ClientID, m.ClientHost, assignedString(m)})
		}
		for _, ml := range l.Lag.Sorted() {
			p := groupPartitionAt{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At,
				End: ml.End.Offset, Lag: ml.Lag, Error: errString(ml.Err)}
			if ml.Member != nil {
				p.MemberID = ml.Member.MemberID
			}
			d.Offsets = append(d.Offsets, p)
			if ml.Lag > 0 {
				d.TotalLag += ml.Lag
			}
		}
		out = append(out, d)
	}
	if cf.json() {
		if err := writeJSON(env.stdout, out); err != nil {
			return err
		}
		return errs.err()
	}
	for i, d := range out {
		if d.Error != "" {
			continue
		}
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		fmt.Fprintf(env.stdout, "Group: %s  State: %s  Protocol: %s/%s  Coordinator: %d  Members: %d  Lag: %d\n",
			d.Group, d.State, d.ProtocolType, d.Protocol, d.Coordinator, len(d.Members), d.TotalLag)
		if len(d.Members) > 0 {
			t := newTable(env.stdout, "MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "ASSIGNED")
			for _, m := range d.Members {
				inst := ""
				if m.InstanceID != nil {
					inst = *m.InstanceID
				}
				t.row(m.MemberID, inst, m.ClientID, m.ClientHost, m.Assigned)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
		if len(d.Offsets) > 0 {
			t := newTable(env.stdout, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER-ID", "ERROR")
			for _, p := range d.Offsets {
				committed := "-"
				if p.Committed >= 0 {
					committed = strconv.FormatInt(p.Committed, 10)
				}
				t.row(p.Topic, p.Partition, committed, p.End, p.Lag, p.MemberID, p.Error)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return errs.err()
}

func runGroupDelete(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("group delete", "group delete <group>...", env)
	cf.register(fs, true)
	groups, err := parseNames(fs, args, "group")
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	resps, err := retryCoordinator(ctx, func() (kadm.DeleteGroupResponses, error) { return adm.DeleteGroups(ctx, groups...) },
		func(rs kadm.DeleteGroupResponses) error { return rs.Error() })
	if err != nil {
		return err
	}
	type row struct {
		Group string `json:"group"`
		Error string `json:"error,omitempty"`
	}
	var rows []row
	var errs multiErr
	for _, g := range groups {
		r, ok := resps[g]
		if !ok {
			errs = append(errs, fmt.Errorf("group %q: no answer", g))
			rows = append(rows, row{g, "no answer"})
			continue
		}
		if err := kafkaErr(fmt.Sprintf("group %q", g), r.Err, r.ErrMessage); err != nil {
			errs = append(errs, err)
		}
		rows = append(rows, row{g, errString(r.Err)})
	}
	if cf.json() {
		if err := writeJSON(env.stdout, rows); err != nil {
			return err
		}
		return errs.err()
	}
	t := newTable(env.stdout, "GROUP", "STATUS")
	for _, r := range rows {
		status := "deleted"
		if r.Error != "" {
			status = r.Error
		}
		t.row(r.Group, status)
	}
	if err := t.flush(); err != nil {
		return err
	}
	return errs.err()
}

// seekTarget is where `group seek` moves offsets.
type seekTarget struct {
	kind   string // earliest, latest, offset, timestamp, shift
	offset int64  // for offset; the shift for shift
	millis int64  // for timestamp
}

func parseSeekTarget(to string, shift int64, shiftSet bool) (seekTarget, error) {
	if shiftSet {
		if to != "" {
			return seekTarget{}, errUsage{"give --to or --shift-by, not both"}
		}
		return seekTarget{kind: "shift", offset: shift}, nil
	}
	switch {
	case to == "":
		return seekTarget{}, errUsage{"give --to earliest|latest|<offset>|@<timestamp-ms> or --shift-by N"}
	case to == "earliest" || to == "beginning" || to == "start":
		return seekTarget{kind: "earliest"}, nil
	case to == "latest" || to == "end":
		return seekTarget{kind: "latest"}, nil
	case strings.HasPrefix(to, "@"):
		ms, err := strconv.ParseInt(to[1:], 10, 64)
		if err != nil || ms < 0 {
			return seekTarget{}, errUsage{fmt.Sprintf("--to %s: want @<unix milliseconds>", to)}
		}
		return seekTarget{kind: "timestamp", millis: ms}, nil
	}
	n, err := strconv.ParseInt(to, 10, 64)
	if err != nil || n < 0 {
		return seekTarget{}, errUsage{fmt.Sprintf("--to %q: want earliest, latest, an offset or @<timestamp-ms>", to)}
	}
	return seekTarget{kind: "offset", offset: n}, nil
}

type seekPlan struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"` // -1: no commit
	New       int64  `json:"new"`
}

func runGroupSeek(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("group seek",
		"group seek <group> (--to earliest|latest|<offset>|@<timestamp-ms> | --shift-by N) [-t topic]... [--dry-run]", env)
	cf.register(fs, true)
	to := fs.String("to", "", "earliest, latest, an offset, or @<unix-ms> (the first offset at or after that time)")
	shift := fs.Int64("shift-by", 0, "move each committed offset by N (negative: back)")
	var topics stringsFlag
	fs.Var(&topics, "t", "topics to seek (default: every topic the group has committed offsets for), repeatable or comma-separated")
	dry := fs.Bool("dry-run", false, "print the plan, change nothing")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage{"name exactly one group"}
	}
	group := pos[0]
	shiftSet := false
	fs.Visit(func(f *flag.Flag) { shiftSet = shiftSet || f.Name == "shift-by" })
	target, err := parseSeekTarget(*to, *shift, shiftSet)
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()

	// Kafka's tool refuses to move the offsets of a group with members:
	// they would overwrite the new offsets with their next commit.
	dgs, err := retryCoordinator(ctx, func() (kadm.DescribedGroups, error) { return adm.DescribeGroups(ctx, group) },
		func(ds kadm.DescribedGroups) error { return ds.Error() })
	if err != nil {
		return err
	}
	if dg, ok := dgs[group]; ok {
		if dg.Err != nil {
			return kafkaErr(fmt.Sprintf("group %q", group), dg.Err, dg.ErrMessage)
		}
		if len(dg.Members) > 0 {
			return fmt.Errorf("group %q has %d active members (state %s): stop its consumers first", group, len(dg.Members), dg.State)
		}
	}
	committed, err := fetchOffsets(ctx, adm, group)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		topics = committed.Partitions().Topics()
		if len(topics) == 0 {
			return fmt.Errorf("group %q has no committed offsets: name the topics to seek with -t", group)
		}
	}
	sort.Strings(topics)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	var byTime kadm.ListedOffsets
	if target.kind == "timestamp" {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, target.millis, topics...); err != nil {
			return err
		}
	}
	var errs multiErr
	var plan []seekPlan
	var commit kadm.Offsets
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			errs = append(errs, kafkaErr(fmt.Sprintf("topic %q partition %d", e.Topic, e.Partition), e.Err, ""))
			return
		}
		s, _ := starts.Lookup(e.Topic, e.Partition)
		if s.Err != nil {
			errs = append(errs, kafkaErr(fmt.Sprintf("topic %q partition %d", e.Topic, e.Partition), s.Err, ""))
			return
		}
		cur := int64(-1)
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil {
			cur = c.At
		}
		var next int64
		switch target.kind {
		case "earliest":
			next = s.Offset
		case "latest":
			next = e.Offset
		case "offset":
			next = target.offset
		case "timestamp":
			next = e.Offset
			if t, ok := byTime.Lookup(e.Topic, e.Partition); ok && t.Err == nil && t.Offset >= 0 {
				next = t.Offset
			}
		case "shift":
			if cur < 0 {
				next = s.Offset
			} else {
				next = cur + target.offset
			}
		}
		next = max(s.Offset, min(next, e.Offset)) // as Kafka's tool: clamp into the log
		plan = append(plan, seekPlan{e.Topic, e.Partition, cur, next})
		commit.AddOffset(e.Topic, e.Partition, next, -1)
	})
	if err := errs.err(); err != nil {
		return err
	}
	if len(plan) == 0 {
		return fmt.Errorf("no partitions to seek in topics %s", strings.Join(topics, ","))
	}
	sort.Slice(plan, func(i, j int) bool {
		if plan[i].Topic != plan[j].Topic {
			return plan[i].Topic < plan[j].Topic
		}
		return plan[i].Partition < plan[j].Partition
	})
	if !*dry {
		resps, err := adm.CommitOffsets(ctx, group, commit)
		if err != nil {
			return kafkaErr(fmt.Sprintf("commit for group %q", group), err, "")
		}
		if err := resps.Error(); err != nil {
			return kafkaErr(fmt.Sprintf("commit for group %q", group), err, "")
		}
	}
	if cf.json() {
		return writeJSON(env.stdout, map[string]any{"group": group, "dry_run": *dry, "partitions": plan})
	}
	if *dry {
		fmt.Fprintf(env.stdout, "Dry run: group %s would move to:\n", group)
	} else {
		fmt.Fprintf(env.stdout, "Group %s moved to:\n", group)
	}
	t := newTable(env.stdout, "TOPIC", "PARTITION", "CURRENT", "NEW")
	for _, p := range plan {
		cur := "-"
		if p.Current >= 0 {
			cur = strconv.FormatInt(p.Current, 10)
		}
		t.row(p.Topic, p.Partition, cur, p.New)
	}
	return t.flush()
}
