package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-io/sluice/internal/broker"
)

// serveOptions are the serve command's own options (not Kafka settings).
type serveOptions struct {
	listen, advertise, dataDir, adminListen string
	controllerListen, controllerVoters      string
	nodeID                                  int32
	logLevel, logFormat                     string
	shutdownTimeout                         time.Duration
	settings                                map[string]string
}

// Option names as they appear in the YAML file and, upper-cased with
// SLUICE_ and underscores, in the environment.
const (
	optListen      = "listen"
	optAdvertise   = "advertise"
	optDataDir     = "data-dir"
	optAdminListen = "admin-listen"
	optNodeID      = "node-id"
	optLogLevel    = "log-level"
	optLogFormat   = "log-format"
	optCtrlListen  = "controller-listen"
	optCtrlVoters  = "controller-voters"
)

func defaultServeOptions() serveOptions {
	return serveOptions{
		listen:          "localhost:9092",
		dataDir:         "sluice-data",
		adminListen:     "localhost:9644",
		nodeID:          1,
		logLevel:        "info",
		logFormat:       "text",
		shutdownTimeout: 30 * time.Second,
		settings:        map[string]string{},
	}
}

// envName is the environment variable for an option or Kafka setting:
// SLUICE_ + upper case, with '.' and '-' as '_' (log.retention.ms ->
// SLUICE_LOG_RETENTION_MS).
func envName(key string) string {
	return "SLUICE_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// set applies one key=value from the config file or the environment.
func (o *serveOptions) set(key, value string) error {
	switch key {
	case optListen:
		o.listen = value
	case optAdvertise:
		o.advertise = value
	case optDataDir:
		o.dataDir = value
	case optAdminListen:
		o.adminListen = value
	case optNodeID, "node.id":
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: not a node id", key, value)
		}
		o.nodeID = int32(n)
	case optCtrlListen:
		o.controllerListen = value
	case optCtrlVoters, "controller.quorum.voters":
		o.controllerVoters = value
	case optLogLevel:
		o.logLevel = value
	case optLogFormat:
		o.logFormat = value
	default:
		o.settings[key] = value
	}
	return nil
}

// loadFile applies a YAML file of flat keys: serve options (listen,
// data-dir, ...) and Kafka settings (log.retention.ms: 86400000).
func (o *serveOptions) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
		case int, int64, uint64, float64, bool:
			v = fmt.Sprint(x)
		case nil:
			return fmt.Errorf("config %s: %s has no value", path, k)
		default:
			return fmt.Errorf("config %s: %s: want a scalar value, got %T", path, k, x)
		}
		if err := o.set(k, v); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	return nil
}

// loadEnv applies SLUICE_* variables for every option and known setting.
func (o *serveOptions) loadEnv(getenv func(string) string) error {
	keys := []string{optListen, optAdvertise, optDataDir, optAdminListen, optNodeID, optLogLevel, optLogFormat, optCtrlListen, optCtrlVoters}
	for _, d := range broker.BrokerSettings() {
		keys = append(keys, d.Name)
	}
	for _, k := range keys {
		if v := getenv(envName(k)); v != "" {
			if err := o.set(k, v); err != nil {
				return fmt.Errorf("environment %s: %w", envName(k), err)
			}
		}
	}
	return nil
}

// settingFlag collects repeated --set key=value flags.
type settingFlag map[string]string

func (s settingFlag) String() string { return "" }

func (s settingFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	s[k] = val
	return nil
}

// parseServe resolves options: defaults < --config file < SLUICE_*
// environment < flags.
func parseServe(args []string, env cmdEnv) (serveOptions, error) {
	o := defaultServeOptions()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var (
		configPath = fs.String("config", "", "YAML file of options and Kafka settings (flat keys)")
		listen     = fs.String(optListen, "", "Kafka listener address (default localhost:9092)")
		advertise  = fs.String(optAdvertise, "", "host:port advertised to clients (default: the listener's)")
		dataDir    = fs.String(optDataDir, "", "data directory (default ./sluice-data)")
		admin      = fs.String(optAdminListen, "", "admin HTTP listener: /metrics, /healthz, /debug/pprof (default localhost:9644; \"off\" disables)")
		nodeID     = fs.Int(optNodeID, -1, "node.id (default 1)")
		logLevel   = fs.String(optLogLevel, "", "debug, info, warn or error (default info)")
		logFormat  = fs.String(optLogFormat, "", "text or json (default text)")
		ctrlListen = fs.String(optCtrlListen, "", "controller listener host:port: the metadata quorum's Raft and forwarding traffic (default: this node's entry in --controller-voters; none on a single node)")
		ctrlVoters = fs.String(optCtrlVoters, "", "controller.quorum.voters, id@host:port,... e.g. 1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293; a node not listed joins as a broker-only node (default: a single node)")
		shutdown   = fs.Duration("shutdown-timeout", 30*time.Second, "how long SIGINT/SIGTERM waits for in-flight requests")
		sets       = settingFlag{}
	)
	fs.Var(sets, "set", "a Kafka broker setting key=value, repeatable (e.g. --set num.partitions=3)")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: sluice serve [flags]\n\nStarts a broker. Settings come from defaults, then --config, then SLUICE_* environment\nvariables (SLUICE_DATA_DIR, SLUICE_LOG_RETENTION_MS, ...), then flags.\n\nFlags:")
		fs.PrintDefaults()
		fmt.Fprintln(env.stderr, "\nBroker settings (--set key=value):")
		for _, d := range broker.BrokerSettings() {
			fmt.Fprintf(env.stderr, "  %-44s default %s\n", d.Name, d.Default)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, errUsage{err.Error()}
	}
	if fs.NArg() > 0 {
		return o, errUsage{fmt.Sprintf("unexpected arguments: %v", fs.Args())}
	}
	if *configPath != "" {
		if err := o.loadFile(*configPath); err != nil {
			return o, err
		}
	}
	if err := o.loadEnv(env.getenv); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case optListen:
			o.listen = *listen
		case optAdvertise:
			o.advertise = *advertise
		case optDataDir:
			o.dataDir = *dataDir
		case optAdminListen:
			o.adminListen = *admin
		case optNodeID:
			o.nodeID = int32(*nodeID)
		case optLogLevel:
			o.logLevel = *logLevel
		case optLogFormat:
			o.logFormat = *logFormat
		case optCtrlListen:
			o.controllerListen = *ctrlListen
		case optCtrlVoters:
			o.controllerVoters = *ctrlVoters
		case "shutdown-timeout":
			o.shutdownTimeout = *shutdown
		}
	})
	for k, v := range sets {
		o.settings[k] = v
	}
	if o.adminListen == "off" {
		o.adminListen = ""
	}
	return o, nil
}

func (o serveOptions) logger(env cmdEnv) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(env.stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(env.stderr, hopts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", o.logFormat)
}

func runServe(ctx context.Context, args []string, env cmdEnv) error {
	o, err := parseServe(args, env)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger, err := o.logger(env)
	if err != nil {
		return errUsage{err.Error()}
	}
	start := time.Now()
	b, err := broker.Start(broker.Config{
		NodeID:      o.nodeID,
		Listen:      o.listen,
		Advertise:   o.advertise,
		AdminListen: o.adminListen,
		DataDir:     o.dataDir,
		Settings:    o.settings,
		Logger:      logger,

		ControllerListen: o.controllerListen,
		ControllerVoters: o.controllerVoters,
	})
	if err != nil {
		return err
	}
	logger.Info("ready", "kafka", b.Addr().String(), "admin", addrString(b.AdminAddr()), "startup", time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	logger.Info("signal received; shutting down", "timeout", o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	return b.Shutdown(sctx)
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return "off"
	}
	return a.String()
}
