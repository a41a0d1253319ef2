package main

// sluice cluster info: the cluster id, the controller, the metadata quorum
// (voters and broker-only observers, through DescribeQuorum) and the
// brokers with their state, through kadm.
//
// sluice cluster add-voter / remove-voter: change the metadata quorum's
// voters with the cluster up (KIP-853's AddRaftVoter and RemoveRaftVoter,
// as kafka-metadata-quorum.sh add-controller / remove-controller), sent
// with kgo (kadm has no call for them).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func runCluster(ctx context.Context, args []string, env cmdEnv) error {
	return family("cluster", []subcommand{
		{"info", "cluster id, controller, voters, brokers (live or fenced) and the APIs they support", runClusterInfo},
		{"add-voter", "make a broker-only node a controller voter (AddRaftVoter)", runClusterAddVoter},
		{"remove-voter", "remove a controller voter from the metadata quorum (RemoveRaftVoter)", runClusterRemoveVoter},
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
		Voter      bool    `json:"voter"`
		// Fenced: a quorum member that is not a live broker (missed its
		// heartbeats, or shut down): it leads no partition.
		Fenced bool  `json:"fenced"`
		APIs   []api `json:"apis,omitempty"`
	}
	out := struct {
		ClusterID  string   `json:"cluster_id"`
		Controller int32    `json:"controller"`
		Voters     []int32  `json:"voters"`
		Observers  []int32  `json:"observers"`
		Brokers    []broker `json:"brokers"`
		Topics     int      `json:"topics"`
		Partitions int      `json:"partitions"`
	}{ClusterID: md.Cluster, Controller: md.Controller, Voters: []int32{}, Observers: []int32{}, Brokers: []broker{}, Topics: len(tds)}
	for _, td := range tds {
		out.Partitions += len(td.Partitions)
	}
	voters, observers, err := describeQuorum(ctx, &cf, env)
	if err != nil {
		return err
	}
	out.Voters, out.Observers = voters, observers
	isVoter := map[int32]bool{}
	for _, v := range voters {
		isVoter[v] = true
	}
	listed := map[int32]bool{}
	for _, b := range md.Brokers {
		listed[b.NodeID] = true
		out.Brokers = append(out.Brokers, broker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack, Controller: b.NodeID == md.Controller, Voter: isVoter[b.NodeID]})
	}
	// Quorum members missing from the live brokers are fenced.
	for _, id := range append(append([]int32{}, voters...), observers...) {
		if !listed[id] {
			listed[id] = true
			out.Brokers = append(out.Brokers, broker{NodeID: id, Port: -1, Controller: id == md.Controller, Voter: isVoter[id], Fenced: true})
		}
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
	fmt.Fprintf(env.stdout, "Voters: %v  Observers: %v\n", out.Voters, out.Observers)
	t := newTable(env.stdout, "NODE", "HOST", "PORT", "RACK", "CONTROLLER", "VOTER", "STATE")
	for _, b := range out.Brokers {
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		state := "live"
		if b.Fenced {
			state = "fenced"
		}
		t.row(b.NodeID, b.Host, b.Port, rack, b.Controller, b.Voter, state)
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

// describeQuorum asks for the metadata quorum's voters and observers
// (DescribeQuorum on __cluster_metadata/0). A broker without the API (an
// older Sluice, or Kafka's broker listener) gives empty lists.
func describeQuorum(ctx context.Context, cf *clientFlags, env cmdEnv) (voters, observers []int32, err error) {
	voters, observers = []int32{}, []int32{}
	opts, err := cf.kgoOpts(env)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rp := kmsg.NewDescribeQuorumRequestTopicPartition()
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		if errors.Is(err, kerr.UnsupportedVersion) {
			return voters, observers, nil
		}
		return nil, nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, nil, kafkaErr("DescribeQuorum", err, "")
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, nil, kafkaErr("DescribeQuorum", err, "")
			}
			for _, v := range p.CurrentVoters {
				voters = append(voters, v.ReplicaID)
			}
			for _, o := range p.Observers {
				observers = append(observers, o.ReplicaID)
			}
		}
	}
	sort.Slice(voters, func(i, j int) bool { return voters[i] < voters[j] })
	sort.Slice(observers, func(i, j int) bool { return observers[i] < observers[j] })
	return voters, observers, nil
}

// runClusterAddVoter sends AddRaftVoter for a node that already follows
// the metadata quorum as an observer (a broker-only node).
func runClusterAddVoter(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("cluster add-voter", "cluster add-voter --node-id N --controller-address host:port [--timeout 30s]", env)
	cf.register(fs, false)
	nodeID := fs.Int("node-id", -1, "id of the node to make a voter (it must run as a broker-only node)")
	addr := fs.String("controller-address", "", "host:port of the node's controller listener (its --controller-listen)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the controller may take to add the voter")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage{fmt.Sprintf("unexpected arguments: %v", pos)}
	}
	if *nodeID < 0 || *nodeID > 1<<31-1 {
		return errUsage{"--node-id is required (a node id, 0 or more)"}
	}
	host, p, err := net.SplitHostPort(*addr)
	port, perr := strconv.ParseUint(p, 10, 16)
	if err != nil || perr != nil || host == "" || port == 0 {
		return errUsage{fmt.Sprintf("--controller-address %q: want host:port", *addr)}
	}
	if *timeout <= 0 || *timeout > time.Duration(1<<31-1)*time.Millisecond {
		return errUsage{fmt.Sprintf("--timeout %v: want a positive duration", *timeout)}
	}
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.VoterID = int32(*nodeID)
	req.TimeoutMillis = int32(*timeout / time.Millisecond)
	l := kmsg.NewAddRaftVoterRequestListener()
	l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(port)
	req.Listeners = append(req.Listeners, l)
	resp, err := sendQuorumRequest(ctx, &cf, env, req)
	if err != nil {
		return fmt.Errorf("AddRaftVoter: %w", err)
	}
	r := resp.(*kmsg.AddRaftVoterResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return kafkaErr(fmt.Sprintf("adding voter %d", *nodeID), err, derefString(r.ErrorMessage))
	}
	_, err = fmt.Fprintf(env.stdout, "Node %d is a voter of the metadata quorum (controller address %s).\n", *nodeID, *addr)
	return err
}

// runClusterRemoveVoter sends RemoveRaftVoter.
func runClusterRemoveVoter(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	fs := newFlagSet("cluster remove-voter", "cluster remove-voter --node-id N", env)
	cf.register(fs, false)
	nodeID := fs.Int("node-id", -1, "id of the voter to remove")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage{fmt.Sprintf("unexpected arguments: %v", pos)}
	}
	if *nodeID < 0 || *nodeID > 1<<31-1 {
		return errUsage{"--node-id is required (a node id, 0 or more)"}
	}
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.VoterID = int32(*nodeID)
	resp, err := sendQuorumRequest(ctx, &cf, env, req)
	if err != nil {
		return fmt.Errorf("RemoveRaftVoter: %w", err)
	}
	r := resp.(*kmsg.RemoveRaftVoterResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return kafkaErr(fmt.Sprintf("removing voter %d", *nodeID), err, derefString(r.ErrorMessage))
	}
	_, err = fmt.Fprintf(env.stdout, "Node %d is no longer a voter of the metadata quorum.\n", *nodeID)
	return err
}

// sendQuorumRequest sends a quorum change to one of the brokers (any
// Sluice broker forwards it to the active controller). A broker that does
// not know the API (an older Sluice, or Kafka's broker listener, where
// these requests go to the controllers) fails with UNSUPPORTED_VERSION.
func sendQuorumRequest(ctx context.Context, cf *clientFlags, env cmdEnv, req kmsg.Request) (kmsg.Response, error) {
	opts, err := cf.kgoOpts(env)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return cl.Request(ctx, req)
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
