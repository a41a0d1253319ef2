package main

// sluice cluster info: the cluster id, controller and brokers, through kadm.

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func runCluster(ctx context.Context, args []string, env cmdEnv) error {
	return family("cluster", []subcommand{
		{"info", "cluster id, controller, brokers and the APIs they support", runClusterInfo},
	})(ctx, args, env)
}

func runClusterInfo(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("cluster info", "cluster info [--apis]", env)
	cf.register(fs, true)
	apis := fs.Bool("apis", false, "also list each broker's supported API versions")
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
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	tds, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return err
	}
	type api struct {
		Name string `json:"name"`
		Key  int16  `json:"key"`
		Min  int16  `json:"min"`
		Max  int16  `json:"max"`
	}
	type broker struct {
		NodeID     int32   `json:"node_id"`
		Host       string  `json:"host"`
		Port       int32   `json:"port"`
		Rack       *string `json:"rack,omitempty"`
		Controller bool    `json:"controller"`
		APIs       []api   `json:"apis,omitempty"`
	}
	out := struct {
		ClusterID  string   `json:"cluster_id"`
		Controller int32    `json:"controller"`
		Brokers    []broker `json:"brokers"`
		Topics     int      `json:"topics"`
		Partitions int      `json:"partitions"`
	}{ClusterID: md.Cluster, Controller: md.Controller, Brokers: []broker{}, Topics: len(tds)}
	for _, td := range tds {
		out.Partitions += len(td.Partitions)
	}
	for _, b := range md.Brokers {
		out.Brokers = append(out.Brokers, broker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack, Controller: b.NodeID == md.Controller})
	}
	sort.Slice(out.Brokers, func(i, j int) bool { return out.Brokers[i].NodeID < out.Brokers[j].NodeID })
	if *apis {
		vs, err := adm.ApiVersions(ctx)
		if err != nil {
			return err
		}
		for i, b := range out.Brokers {
			v, ok := vs[b.NodeID]
			if !ok {
				continue
			}
			if v.Err != nil {
				return kafkaErr(fmt.Sprintf("ApiVersions of broker %d", b.NodeID), v.Err, "")
			}
			v.EachKeySorted(func(key, minV, maxV int16) {
				out.Brokers[i].APIs = append(out.Brokers[i].APIs, api{kmsg.NameForKey(key), key, minV, maxV})
			})
		}
	}
	if cf.json() {
		return writeJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "Cluster: %s  Controller: %d  Topics: %d  Partitions: %d\n",
		out.ClusterID, out.Controller, out.Topics, out.Partitions)
	t := newTable(env.stdout, "NODE", "HOST", "PORT", "RACK", "CONTROLLER")
	for _, b := range out.Brokers {
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		t.row(b.NodeID, b.Host, b.Port, rack, b.Controller)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, b := range out.Brokers {
		if len(b.APIs) == 0 {
			continue
		}
		fmt.Fprintf(env.stdout, "\nAPIs of broker %d:\n", b.NodeID)
		t := newTable(env.stdout, "KEY", "API", "VERSIONS")
		for _, a := range b.APIs {
			t.row(a.Key, a.Name, fmt.Sprintf("%d-%d", a.Min, a.Max))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}
