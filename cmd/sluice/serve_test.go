package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseServePrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte(`
listen: 127.0.0.1:1000
data-dir: /from/file
log.retention.ms: 1000
num.partitions: 4
auto.create.topics.enable: false
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := cmdEnv{stderr: io.Discard, getenv: envMap(map[string]string{
		"SLUICE_DATA_DIR":         "/from/env",
		"SLUICE_LOG_RETENTION_MS": "2000",
		"SLUICE_ADMIN_LISTEN":     "off",
	})}
	o, err := parseServe([]string{"--config", cfgPath, "--set", "num.partitions=8", "--listen", "127.0.0.1:3000"}, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"listen (flag over file)", o.listen, "127.0.0.1:3000"},
		{"data-dir (env over file)", o.dataDir, "/from/env"},
		{"admin-listen off", o.adminListen, ""},
		{"log.retention.ms (env over file)", o.settings["log.retention.ms"], "2000"},
		{"num.partitions (flag over file)", o.settings["num.partitions"], "8"},
		{"auto.create.topics.enable (file)", o.settings["auto.create.topics.enable"], "false"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestParseServeErrors(t *testing.T) {
	env := cmdEnv{stderr: io.Discard, getenv: envMap(nil)}
	if _, err := parseServe([]string{"--set", "novalue"}, env); err == nil {
		t.Fatal("--set without = accepted")
	}
	if _, err := parseServe([]string{"extra"}, env); err == nil {
		t.Fatal("positional argument accepted")
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--data-dir", t.TempDir(), "--set", "no.such.setting=1"}, nil, io.Discard, &stderr, envMap(nil))
	if code == 0 || !strings.Contains(stderr.String(), `unknown setting "no.such.setting"`) {
		t.Fatalf("unknown setting: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	code = run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--data-dir", t.TempDir(), "--set", "log.retention.ms=soon"}, nil, io.Discard, &stderr, envMap(nil))
	if code == 0 || !strings.Contains(stderr.String(), "log.retention.ms") {
		t.Fatalf("bad setting value: exit %d, stderr %q", code, stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for the logger and the test at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeCommand runs `sluice serve` in-process, produces and consumes
// through it, and stops it the way SIGTERM does.
func TestServeCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	done := make(chan int, 1)
	dataDir := t.TempDir()
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", dataDir},
			nil, io.Discard, &logs, envMap(nil))
	}()
	re := regexp.MustCompile(`msg=ready kafka=(\S+)`)
	var addr string
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("cli"), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("cli"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(pctx)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Fatalf("consumed %v (errors %v)", recs, fs.Errors())
	}
	cl.Close()
	cancel() // as SIGTERM does through signal.NotifyContext
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited with %d: %s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "broker stopped") {
		t.Fatalf("no clean stop in logs: %s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dataDir, "logs")); err != nil {
		t.Fatalf("data dir not used: %v", err)
	}
}
