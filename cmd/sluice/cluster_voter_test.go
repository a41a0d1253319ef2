package main

import (
	"testing"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestClusterVoterCommands: the flags of cluster add-voter / remove-voter
// and their refusals by a single broker (a lone voter), with the Kafka
// error's name on stderr. The voter changes themselves run against a real
// cluster in internal/clustertest (TestVoterAddRemoveWithCLI).
func TestClusterVoterCommands(t *testing.T) {
	b := sluicetest.New(t)
	c := cli{t, b.Addr()}

	c.fails(2, "--node-id is required", "cluster", "add-voter", "--controller-address", "127.0.0.1:9093")
	c.fails(2, "want host:port", "cluster", "add-voter", "--node-id", "2")
	c.fails(2, "want host:port", "cluster", "add-voter", "--node-id", "2", "--controller-address", "127.0.0.1")
	c.fails(2, "positive duration", "cluster", "add-voter", "--node-id", "2", "--controller-address", "127.0.0.1:9093", "--timeout", "0s")
	c.fails(2, "--node-id is required", "cluster", "remove-voter")
	c.fails(2, "unexpected arguments", "cluster", "remove-voter", "--node-id", "2", "extra")

	c.fails(1, "DUPLICATE_VOTER", "cluster", "add-voter", "--node-id", "1", "--controller-address", "127.0.0.1:9093")
	c.fails(1, "UNSUPPORTED_VERSION", "cluster", "add-voter", "--node-id", "2", "--controller-address", "127.0.0.1:9093")
	c.fails(1, "VOTER_NOT_FOUND", "cluster", "remove-voter", "--node-id", "42")
	c.fails(1, "last voter", "cluster", "remove-voter", "--node-id", "1")

	// cluster info still works and shows the quorum unchanged.
	out := c.ok("", "cluster", "info")
	mustContain(t, "cluster info", out, "Voters: [1]", "Observers: []")
}
