// Command kfakeserver runs franz-go's kfake (a single in-process fake
// Kafka broker) as its own process, so that the benchmark harness in
// ../ can drive it over loopback exactly as it drives `sluice serve`.
//
// It listens on 127.0.0.1 on an ephemeral port, prints "ready <host:port>"
// on stdout once it accepts connections, and exits on SIGTERM or SIGINT.
//
//	kfakeserver                        in memory, no storage
//	kfakeserver -data-dir DIR          on-disk persistence, page cache (fsync on roll and shutdown)
//	kfakeserver -data-dir DIR -sync    on-disk persistence with an fsync per produced batch
//	kfakeserver -echo                  no Kafka: the loopback latency floor's relay (echo.go)
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	dataDir := flag.String("data-dir", "", "persist to this directory (empty: in memory only)")
	sync := flag.Bool("sync", false, "fsync every produced batch (needs -data-dir)")
	echo := flag.Bool("echo", false, "be the relay of the bench's loopback latency floor instead of a broker")
	flag.Parse()

	if *echo {
		if err := serveEcho(); err != nil {
			fmt.Fprintln(os.Stderr, "kfakeserver:", err)
			os.Exit(1)
		}
		return
	}

	opts := []kfake.Opt{kfake.Ports(0), kfake.DefaultNumPartitions(1)}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *sync {
		if *dataDir == "" {
			fmt.Fprintln(os.Stderr, "kfakeserver: -sync needs -data-dir")
			os.Exit(2)
		}
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfakeserver:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	fmt.Printf("ready %s\n", c.ListenAddrs()[0])
	<-sigs
	c.Close()
}
