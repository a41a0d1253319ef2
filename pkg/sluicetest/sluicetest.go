// Package sluicetest starts a real in-process Sluice broker for Go tests: a
// random loopback port, a temporary data directory, and cleanup through
// t.Cleanup. Point any Kafka client at Broker.Addr().
//
//	func TestX(t *testing.T) {
//		b := sluicetest.New(t, sluicetest.Topic("events", 8))
//		cl, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
//		...
//	}
package sluicetest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sluice-io/sluice/internal/broker"
)

// Broker is a running in-process broker.
type Broker struct {
	*broker.Broker
	t   testing.TB
	cfg broker.Config
}

// Option configures New.
type Option func(*options)

type options struct {
	cfg    broker.Config
	topics []topicSpec
}

type topicSpec struct {
	name       string
	partitions int32
	configs    map[string]string
}

// Setting sets a Kafka broker setting (e.g. Setting("num.partitions", "3")).
func Setting(key, value string) Option {
	return func(o *options) {
		if o.cfg.Settings == nil {
			o.cfg.Settings = map[string]string{}
		}
		o.cfg.Settings[key] = value
	}
}

// Dir uses dir as the data directory instead of a fresh temporary one
// (to restart a broker on the same data).
func Dir(dir string) Option { return func(o *options) { o.cfg.DataDir = dir } }

// Topic creates a topic with the given partitions (and optional
// key=value config pairs) before New returns.
func Topic(name string, partitions int32, configs ...string) Option {
	return func(o *options) {
		m := map[string]string{}
		for i := 0; i+1 < len(configs); i += 2 {
			m[configs[i]] = configs[i+1]
		}
		o.topics = append(o.topics, topicSpec{name, partitions, m})
	}
}

// Advertise makes the broker tell clients to connect to addr (host:port)
// instead of its listener, e.g. a proxy in the test that sits in front of
// it.
func Advertise(addr string) Option { return func(o *options) { o.cfg.Advertise = addr } }

// AdminListen enables the admin HTTP listener on a random loopback port.
func AdminListen() Option { return func(o *options) { o.cfg.AdminListen = "127.0.0.1:0" } }

// ForceCopy makes fetch responses go through the user-space copy path.
func ForceCopy() Option { return func(o *options) { o.cfg.ForceCopy = true } }

// Logger sends the broker's logs to l (default: discarded unless
// SLUICE_TEST_LOG is set, then to stderr at debug level).
func Logger(l *slog.Logger) Option { return func(o *options) { o.cfg.Logger = l } }

// New starts a broker on 127.0.0.1:0 and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	// Like Kafka's own test harness, groups rebalance at once instead of
	// waiting group.initial.rebalance.delay.ms for more members.
	o := options{cfg: broker.Config{Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}}}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cfg.DataDir == "" {
		o.cfg.DataDir = t.TempDir()
	}
	o.cfg.Listen = "127.0.0.1:0"
	if o.cfg.Logger == nil && os.Getenv("SLUICE_TEST_LOG") != "" {
		o.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := broker.Start(o.cfg)
	if err != nil {
		t.Fatalf("sluicetest: start broker: %v", err)
	}
	sb := &Broker{Broker: b, t: t, cfg: o.cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sb.Broker.Shutdown(ctx); err != nil {
			t.Errorf("sluicetest: shutdown: %v", err)
		}
	})
	for _, tp := range o.topics {
		if err := b.CreateTopic(context.Background(), tp.name, tp.partitions, tp.configs); err != nil {
			t.Fatalf("sluicetest: create topic %s: %v", tp.name, err)
		}
	}
	return sb
}

// Addr is the broker's host:port, for a client's seed brokers.
func (b *Broker) Addr() string { return b.Broker.Addr().String() }

// DataDir is the broker's data directory.
func (b *Broker) DataDir() string { return b.cfg.DataDir }

// Restart stops the broker cleanly and starts a new one on the same data
// directory and the same port, so clients reconnect by themselves. Options
// change the new broker's configuration (e.g. a Setting).
func (b *Broker) Restart(opts ...Option) *Broker {
	b.t.Helper()
	o := options{cfg: b.cfg}
	for _, opt := range opts {
		opt(&o)
	}
	b.cfg = o.cfg
	b.cfg.Listen = b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Broker.Shutdown(ctx); err != nil {
		b.t.Fatalf("sluicetest: shutdown for restart: %v", err)
	}
	nb, err := broker.Start(b.cfg)
	if err != nil {
		b.t.Fatalf("sluicetest: restart: %v", err)
	}
	b.Broker = nb
	return b
}
