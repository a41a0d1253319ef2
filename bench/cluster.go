package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clusterNodes is the size of the sluice-cluster server: three nodes, each
// a broker and a controller voter (combined mode), as in README.md's
// "A cluster on one machine".
const clusterNodes = 3

// clusterReadyTimeout bounds the start of a cluster: every node waits for a
// quorum before it is ready, then registers with the controller.
const clusterReadyTimeout = 60 * time.Second

// clusterSettings are the broker settings of every cluster node, those of
// internal/clustertest without its fast fencing (a 2 s session timeout
// there): under full load on a 2-core machine a broker's heartbeats may be
// late, and a fenced broker mid-scenario would measure the fencing, not the
// replication. No scenario uses a consumer group or a transaction, so the
// internal topics are never created; their partition counts are kept small
// all the same.
var clusterSettings = []string{
	"group.initial.rebalance.delay.ms=0",
	"offsets.topic.num.partitions=6",
	"transaction.state.log.num.partitions=6",
	"log.segment.delete.delay.ms=0", // as for one sluice (server.go)
}

// startCluster starts clusterNodes sluice processes as one cluster (node ids
// 1..3, every node a voter, free loopback ports, one data directory each
// under a new directory of tmp) in kind's durability mode, and waits until
// every node has logged "ready" and the metadata lists every broker. The
// returned server has no process of its own: its peers are the three
// nodes, its addr is node 1's Kafka listener, seeds lists all three, cpu
// sums all three, and stop stops all three (SIGTERM at once, by PID).
func startCluster(bins binaries, kind serverKind, tmp string) (*server, error) {
	dir, err := os.MkdirTemp(tmp, kind.Name+"-"+kind.Mode+"-")
	if err != nil {
		return nil, err
	}
	kafka := make([]string, clusterNodes)
	ctrl := make([]string, clusterNodes)
	var voters []string
	for i := range clusterNodes {
		if kafka[i], err = freeAddr(); err == nil {
			ctrl[i], err = freeAddr()
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, ctrl[i]))
	}
	nodes := make([]*server, clusterNodes)
	found := make([]<-chan error, clusterNodes)
	head := &server{kind: kind, dir: dir}
	for i := range clusterNodes {
		args := []string{"serve",
			"--node-id", strconv.Itoa(i + 1),
			"--listen", kafka[i],
			"--controller-listen", ctrl[i],
			"--controller-voters", strings.Join(voters, ","),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("node-%d", i+1)),
			"--admin-listen", "off",
			// Nothing is in flight when the harness stops a cluster, and
			// a node whose peers stop at the same time cannot complete its
			// controlled shutdown: it would wait the whole timeout.
			"--shutdown-timeout", "2s",
			"--log-format", "json", "--log-level", "info"}
		for _, kv := range clusterSettings {
			args = append(args, "--set", kv)
		}
		if kind.Mode == "pagecache" {
			args = append(args, "--set", "log.write.caching=true")
		}
		n := &server{kind: kind, done: make(chan error, 1), logs: &tailBuffer{}}
		n.cmd = exec.Command(bins.sluice, args...)
		ready, err := n.cmd.StderrPipe()
		if err == nil {
			found[i], err = n.launch(ready, n.parseSluiceReady)
		}
		if err != nil {
			head.peers = nodes[:i]
			head.stop()
			return nil, fmt.Errorf("%v node %d: %w", kind, i+1, err)
		}
		nodes[i] = n
	}
	head.peers = nodes
	fail := func(format string, a ...any) (*server, error) {
		err := fmt.Errorf("%v: %s\n%s", kind, fmt.Sprintf(format, a...), head.logTail())
		head.stop()
		return nil, err
	}
	deadline := time.Now().Add(clusterReadyTimeout)
	for i, f := range found {
		select {
		case err := <-f:
			if err != nil {
				return fail("node %d: %v", i+1, err)
			}
		case <-time.After(time.Until(deadline)):
			return fail("node %d not ready after %v", i+1, clusterReadyTimeout)
		}
	}
	head.addr = nodes[0].addr
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := waitBrokers(ctx, head.seeds(), clusterNodes); err != nil {
		return fail("%v", err)
	}
	return head, nil
}

// waitBrokers polls the cluster's metadata until it lists n brokers. Each
// poll uses a new client: kadm's BrokerMetadata answers from the client's
// broker list, which a client never refreshes by itself once it has one.
func waitBrokers(ctx context.Context, seeds []string, n int) error {
	var last string
	for {
		md, err := brokerMetadata(ctx, seeds)
		if err == nil && len(md.Brokers) == n {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("brokers %v", md.Brokers.NodeIDs())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("metadata does not list %d brokers: %s", n, last)
		case <-time.After(50 * time.Millisecond): // polling other processes' state
		}
	}
}

// brokerMetadata is kadm's BrokerMetadata from a new client.
func brokerMetadata(ctx context.Context, seeds []string) (kadm.Metadata, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return kadm.Metadata{}, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return kadm.NewClient(cl).BrokerMetadata(rctx)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (the kernel's choice for :0). The controller voters' addresses must
// be known before any node starts, so the ports cannot be chosen by the
// nodes themselves.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
