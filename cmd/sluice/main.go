// Command sluice is the Sluice broker, its admin CLI and its load generator
// in one binary.
//
//	sluice serve                      start a broker (localhost:9092, ./sluice-data)
//	sluice serve --help               every flag; settings by --set, --config or SLUICE_*
//	sluice topic|group|cluster|offsets admin commands (kadm) against -X brokers= or SLUICE_BROKERS
//	sluice produce|consume            console producer and consumer (kgo)
//	sluice bench produce|consume|e2e  load generator
//	sluice version                    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env cmdEnv) error
}

// cmdEnv is what a subcommand may touch of the outside world, so tests can
// run subcommands in-process.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func commands() []command {
	return []command{
		{"serve", "start a broker", runServe},
		{"topic", "create, list, describe, delete and configure topics", runTopic},
		{"group", "list, describe, delete consumer groups; seek their offsets", runGroup},
		{"cluster", "brokers and controller of a cluster", runCluster},
		{"offsets", "start and end offsets of partitions; a group's committed offsets and lag", runOffsets},
		{"produce", "produce lines from stdin", runProduce},
		{"consume", "consume records to stdout", runConsume},
		{"bench", "load generator: produce, consume, end-to-end latency", runBench},
		{"version", "print the version", func(_ context.Context, _ []string, env cmdEnv) error {
			_, err := fmt.Fprintf(env.stdout, "sluice %s\n", version)
			return err
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Sluice: a streaming log broker that speaks the Kafka protocol.")
	fmt.Fprintln(w, "\nUsage: sluice <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'sluice <command> --help' for a command's flags.")
}

// errUsage marks a usage error (exit code 2).
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	env := cmdEnv{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		if err := c.run(ctx, args[1:], env); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "sluice %s: %v\n", c.name, err)
			if ue := (errUsage{}); errors.As(err, &ue) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
