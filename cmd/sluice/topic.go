package main

// sluice topic create|list|describe|delete|alter-config|add-partitions,
// in the manner of kafka-topics.sh and kafka-configs.sh, through kadm.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func runTopic(ctx context.Context, args []string, env cmdEnv) error {
	return family("topic", []subcommand{
		{"create", "create topics", runTopicCreate},
		{"list", "list topics", runTopicList},
		{"describe", "partitions, leaders, offsets and configs of topics", runTopicDescribe},
		{"delete", "delete topics", runTopicDelete},
		{"alter-config", "set, delete, append to or subtract from topic configs", runTopicAlterConfig},
		{"add-partitions", "add partitions to topics", runTopicAddPartitions},
	})(ctx, args, env)
}

func runTopicCreate(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("topic create", "topic create <topic>... [-p partitions] [-r replicas] [-c key=value]...", env)
	cf.register(fs, true)
	partitions := fs.Int("p", -1, "partitions (default: the broker's num.partitions)")
	replicas := fs.Int("r", -1, "replication factor (default: the broker's default.replication.factor)")
	configs := settingFlag{}
	fs.Var(configs, "c", "topic config key=value, repeatable (e.g. -c retention.ms=3600000)")
	dry := fs.Bool("dry-run", false, "validate only")
	topics, err := parseNames(fs, args, "topic")
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	cfgs := make(map[string]*string, len(configs))
	for k, v := range configs {
		cfgs[k] = &v
	}
	create := adm.CreateTopics
	if *dry {
		create = adm.ValidateCreateTopics
	}
	resps, err := create(ctx, int32(*partitions), int16(*replicas), cfgs, topics...)
	if err != nil {
		return err
	}
	type row struct {
		Topic             string `json:"topic"`
		ID                string `json:"id,omitempty"`
		Partitions        int32  `json:"partitions"`
		ReplicationFactor int16  `json:"replication_factor"`
		Error             string `json:"error,omitempty"`
	}
	var rows []row
	var errs multiErr
	for _, r := range resps.Sorted() {
		rw := row{Topic: r.Topic, Partitions: r.NumPartitions, ReplicationFactor: r.ReplicationFactor}
		if r.ID != (kadm.TopicID{}) {
			rw.ID = r.ID.String()
		}
		if err := kafkaErr(fmt.Sprintf("topic %q", r.Topic), r.Err, r.ErrMessage); err != nil {
			rw.Error = errString(r.Err)
			errs = append(errs, err)
		}
		rows = append(rows, rw)
	}
	if cf.json() {
		if err := writeJSON(env.stdout, rows); err != nil {
			return err
		}
	} else {
		t := newTable(env.stdout, "TOPIC", "ID", "PARTITIONS", "REPLICAS", "ERROR")
		for _, r := range rows {
			t.row(r.Topic, r.ID, r.Partitions, r.ReplicationFactor, r.Error)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return errs.err()
}

func runTopicList(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("topic list", "topic list [--internal]", env)
	cf.register(fs, true)
	internal := fs.Bool("internal", false, "include internal topics (__consumer_offsets, ...)")
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
	list := adm.ListTopics
	if *internal {
		list = adm.ListTopicsWithInternal
	}
	tds, err := list(ctx)
	if err != nil {
		return err
	}
	type row struct {
		Topic             string `json:"topic"`
		ID                string `json:"id"`
		Partitions        int    `json:"partitions"`
		ReplicationFactor int    `json:"replication_factor"`
		Internal          bool   `json:"internal,omitempty"`
	}
	rows := []row{}
	for _, td := range tds.Sorted() {
		rows = append(rows, row{td.Topic, td.ID.String(), len(td.Partitions), td.Partitions.NumReplicas(), td.IsInternal})
	}
	if cf.json() {
		return writeJSON(env.stdout, rows)
	}
	t := newTable(env.stdout, "TOPIC", "PARTITIONS", "REPLICAS", "ID")
	for _, r := range rows {
		t.row(r.Topic, r.Partitions, r.ReplicationFactor, r.ID)
	}
	return t.flush()
}

// topicDescription is `topic describe`'s JSON shape.
type topicDescription struct {
	Topic      string            `json:"topic"`
	ID         string            `json:"id"`
	Internal   bool              `json:"internal"`
	Partitions []partitionInfo   `json:"partitions"`
	Configs    map[string]string `json:"configs"` // non-default configs (all with --all-configs)
	Error      string            `json:"error,omitempty"`
}

type partitionInfo struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Start       int64   `json:"start_offset"`
	End         int64   `json:"end_offset"`
	Error       string  `json:"error,omitempty"`
}

func runTopicDescribe(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("topic describe", "topic describe <topic>... [--all-configs]", env)
	cf.register(fs, true)
	all := fs.Bool("all-configs", false, "list every config, not only those set on the topic or the broker")
	topics, err := parseNames(fs, args, "topic")
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	tds, err := adm.ListTopicsWithInternal(ctx, topics...)
	if err != nil {
		return err
	}
	var errs multiErr
	var known []string
	for _, name := range topics {
		td, ok := tds[name]
		if !ok {
			errs = append(errs, fmt.Errorf("topic %q: not in the metadata response", name))
		} else if td.Err != nil {
			errs = append(errs, kafkaErr(fmt.Sprintf("topic %q", name), td.Err, ""))
		} else {
			known = append(known, name)
		}
	}
	var starts, ends kadm.ListedOffsets
	var rcs kadm.ResourceConfigs
	if len(known) > 0 {
		if starts, err = adm.ListStartOffsets(ctx, known...); err != nil {
			return err
		}
		if ends, err = adm.ListEndOffsets(ctx, known...); err != nil {
			return err
		}
		if rcs, err = adm.DescribeTopicConfigs(ctx, known...); err != nil {
			return err
		}
	}
	var out []topicDescription
	for _, name := range topics {
		td, ok := tds[name]
		d := topicDescription{Topic: name, Partitions: []partitionInfo{}, Configs: map[string]string{}}
		if !ok || td.Err != nil {
			if ok {
				d.Error = errString(td.Err)
			}
			out = append(out, d)
			continue
		}
		d.ID, d.Internal = td.ID.String(), td.IsInternal
		for _, p := range td.Partitions.Sorted() {
			pi := partitionInfo{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: p.Replicas, ISR: p.ISR, Start: -1, End: -1, Error: errString(p.Err)}
			if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
				pi.Start = o.Offset
			}
			if o, ok := ends.Lookup(name, p.Partition); ok && o.Err == nil {
				pi.End = o.Offset
			}
			d.Partitions = append(d.Partitions, pi)
		}
		if rc, err := rcs.On(name, nil); err == nil {
			if rc.Err != nil {
				errs = append(errs, kafkaErr(fmt.Sprintf("configs of topic %q", name), rc.Err, rc.ErrMessage))
			}
			for _, c := range rc.Configs {
				if !*all && c.Source != kmsg.ConfigSourceDynamicTopicConfig &&
					c.Source != kmsg.ConfigSourceStaticBrokerConfig && c.Source != kmsg.ConfigSourceDynamicBrokerConfig &&
					c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
					continue
				}
				v := "(sensitive)"
				if c.Value != nil {
					v = *c.Value
				} else if !c.Sensitive {
					v = ""
				}
				d.Configs[c.Key] = v
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
		fmt.Fprintf(env.stdout, "Topic: %s  ID: %s  Partitions: %d  Internal: %v\n", d.Topic, d.ID, len(d.Partitions), d.Internal)
		if len(d.Configs) > 0 {
			keys := make([]string, 0, len(d.Configs))
			for k := range d.Configs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var kv []string
			for _, k := range keys {
				kv = append(kv, k+"="+d.Configs[k])
			}
			fmt.Fprintf(env.stdout, "Configs: %s\n", strings.Join(kv, ", "))
		}
		t := newTable(env.stdout, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "START", "END", "ERROR")
		for _, p := range d.Partitions {
			t.row(p.Partition, p.Leader, p.LeaderEpoch, joinInt32(p.Replicas), joinInt32(p.ISR), p.Start, p.End, p.Error)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return errs.err()
}

func runTopicDelete(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("topic delete", "topic delete <topic>...", env)
	cf.register(fs, true)
	topics, err := parseNames(fs, args, "topic")
	if err != nil {
		return err
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	resps, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return err
	}
	var errs multiErr
	type row struct {
		Topic string `json:"topic"`
		Error string `json:"error,omitempty"`
	}
	var rows []row
	for _, name := range topics {
		r, ok := resps[name]
		if !ok {
			errs = append(errs, fmt.Errorf("topic %q: no answer", name))
			rows = append(rows, row{name, "no answer"})
			continue
		}
		if err := kafkaErr(fmt.Sprintf("topic %q", name), r.Err, r.ErrMessage); err != nil {
			errs = append(errs, err)
		}
		rows = append(rows, row{name, errString(r.Err)})
	}
	if cf.json() {
		if err := writeJSON(env.stdout, rows); err != nil {
			return err
		}
	} else {
		t := newTable(env.stdout, "TOPIC", "STATUS")
		for _, r := range rows {
			status := "deleted"
			if r.Error != "" {
				status = r.Error
			}
			t.row(r.Topic, status)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return errs.err()
}

// alterOps collects --set/--delete/--append/--subtract into incremental
// config operations, in command-line order.
type alterOps struct {
	op  kadm.IncrementalOp
	ops *[]kadm.AlterConfig
}

func (a alterOps) String() string { return "" }

func (a alterOps) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if a.op == kadm.DeleteConfig {
		if ok {
			return errors.New("want a key without a value")
		}
		*a.ops = append(*a.ops, kadm.AlterConfig{Op: a.op, Name: k})
		return nil
	}
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	*a.ops = append(*a.ops, kadm.AlterConfig{Op: a.op, Name: k, Value: &val})
	return nil
}

func runTopicAlterConfig(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("topic alter-config",
		"topic alter-config <topic>... [--set key=value] [--delete key] [--append key=value] [--subtract key=value] [--dry-run]", env)
	cf.register(fs, true)
	var ops []kadm.AlterConfig
	fs.Var(alterOps{kadm.SetConfig, &ops}, "set", "set a config key=value, repeatable")
	fs.Var(alterOps{kadm.DeleteConfig, &ops}, "delete", "remove a config override (back to the default), repeatable")
	fs.Var(alterOps{kadm.AppendConfig, &ops}, "append", "append to a list config key=value, repeatable")
	fs.Var(alterOps{kadm.SubtractConfig, &ops}, "subtract", "remove from a list config key=value, repeatable")
	dry := fs.Bool("dry-run", false, "validate only")
	topics, err := parseNames(fs, args, "topic")
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return errUsage{"nothing to alter: give --set, --delete, --append or --subtract"}
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	alter := adm.AlterTopicConfigs
	if *dry {
		alter = adm.ValidateAlterTopicConfigs
	}
	resps, err := alter(ctx, ops, topics...)
	if err != nil {
		return err
	}
	type row struct {
		Topic string `json:"topic"`
		Error string `json:"error,omitempty"`
	}
	var rows []row
	var errs multiErr
	got := map[string]kadm.AlterConfigsResponse{}
	for _, r := range resps {
		got[r.Name] = r
	}
	for _, name := range topics {
		r, ok := got[name]
		if !ok {
			errs = append(errs, fmt.Errorf("topic %q: no answer", name))
			rows = append(rows, row{name, "no answer"})
			continue
		}
		if err := kafkaErr(fmt.Sprintf("topic %q", name), r.Err, r.ErrMessage); err != nil {
			errs = append(errs, err)
		}
		rows = append(rows, row{name, errString(r.Err)})
	}
	if cf.json() {
		if err := writeJSON(env.stdout, rows); err != nil {
			return err
		}
		return errs.err()
	}
	t := newTable(env.stdout, "TOPIC", "STATUS")
	for _, r := range rows {
		status := "altered"
		if *dry {
			status = "valid"
		}
		if r.Error != "" {
			status = r.Error
		}
		t.row(r.Topic, status)
	}
	if err := t.flush(); err != nil {
		return err
	}
	return errs.err()
}

func runTopicAddPartitions(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("topic add-partitions", "topic add-partitions <topic>... (-n add | --total n) [--dry-run]", env)
	cf.register(fs, true)
	add := fs.Int("n", 0, "partitions to add")
	total := fs.Int("total", 0, "raise the topic to this many partitions")
	dry := fs.Bool("dry-run", false, "validate only")
	topics, err := parseNames(fs, args, "topic")
	if err != nil {
		return err
	}
	if (*add > 0) == (*total > 0) {
		return errUsage{"give exactly one of -n (partitions to add) or --total (a positive count)"}
	}
	adm, err := cf.newAdmin(env)
	if err != nil {
		return err
	}
	defer adm.Close()
	var resps kadm.CreatePartitionsResponses
	switch {
	case *add > 0 && *dry:
		resps, err = adm.ValidateCreatePartitions(ctx, *add, topics...)
	case *add > 0:
		resps, err = adm.CreatePartitions(ctx, *add, topics...)
	case *dry:
		resps, err = adm.ValidateUpdatePartitions(ctx, *total, topics...)
	default:
		resps, err = adm.UpdatePartitions(ctx, *total, topics...)
	}
	if err != nil {
		return err
	}
	var errs multiErr
	type row struct {
		Topic      string `json:"topic"`
		Partitions int    `json:"partitions,omitempty"`
		Error      string `json:"error,omitempty"`
	}
	var rows []row
	var ok []string
	for _, name := range topics {
		r, found := resps[name]
		if !found {
			errs = append(errs, fmt.Errorf("topic %q: no answer", name))
			rows = append(rows, row{Topic: name, Error: "no answer"})
			continue
		}
		if err := kafkaErr(fmt.Sprintf("topic %q", name), r.Err, r.ErrMessage); err != nil {
			errs = append(errs, err)
		} else {
			ok = append(ok, name)
		}
		rows = append(rows, row{Topic: name, Error: errString(r.Err)})
	}
	// Report the partition counts as the cluster now sees them.
	if len(ok) > 0 && !*dry {
		if tds, err := adm.ListTopics(ctx, ok...); err == nil {
			for i := range rows {
				if td, found := tds[rows[i].Topic]; found && td.Err == nil {
					rows[i].Partitions = len(td.Partitions)
				}
			}
		}
	}
	if cf.json() {
		if err := writeJSON(env.stdout, rows); err != nil {
			return err
		}
		return errs.err()
	}
	t := newTable(env.stdout, "TOPIC", "PARTITIONS", "ERROR")
	for _, r := range rows {
		t.row(r.Topic, r.Partitions, r.Error)
	}
	if err := t.flush(); err != nil {
		return err
	}
	return errs.err()
}
