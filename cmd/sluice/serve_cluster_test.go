package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestParseServeClusterFlags: --controller-listen and --controller-voters
// from flags, YAML (also Kafka's controller.quorum.voters) and the
// environment, and the broker.* settings through --set.
func TestParseServeClusterFlags(t *testing.T) {
	const voters = "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
	env := cmdEnv{stderr: io.Discard, getenv: envMap(nil)}
	o, err := parseServe([]string{"--node-id", "2", "--controller-listen", "127.0.0.1:9193", "--controller-voters", voters,
		"--set", "broker.rack=r1", "--set", "broker.session.timeout.ms=3000", "--set", "broker.heartbeat.interval.ms=500"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.nodeID != 2 || o.controllerListen != "127.0.0.1:9193" || o.controllerVoters != voters ||
		o.settings["broker.rack"] != "r1" || o.settings["broker.session.timeout.ms"] != "3000" || o.settings["broker.heartbeat.interval.ms"] != "500" {
		t.Fatalf("options %+v", o)
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte("controller.quorum.voters: "+voters+"\ncontroller-listen: 0.0.0.0:9093\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err = parseServe([]string{"--config", cfgPath}, cmdEnv{stderr: io.Discard, getenv: envMap(map[string]string{
		"SLUICE_CONTROLLER_LISTEN": "127.0.0.1:9093",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if o.controllerVoters != voters || o.controllerListen != "127.0.0.1:9093" {
		t.Fatalf("from file and environment: %+v", o)
	}
}
