package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// serveEcho is -echo: the other process of the harness's loopback latency
// floor (bench/latency.go). It listens on 127.0.0.1 on an ephemeral port,
// prints "ready <host:port>", and serves each connection by its first byte:
//
//	'e'  echo: every byte read is written back on the same connection
//	'o'  out: the connection is kept as the destination of the next 'f'
//	'f'  forward: every byte read is written to the last 'o' connection
//
// Relaying is a plain read and write per chunk from one goroutine per
// connection, as a Go broker reads a request and writes a response: no
// splice, no batching beyond what one read returns.
func serveEcho() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	outs := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(c, outs)
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	fmt.Printf("ready %s\n", ln.Addr())
	<-sigs
	return ln.Close()
}

// relay serves one connection of serveEcho.
func relay(c net.Conn, outs chan net.Conn) {
	defer c.Close()
	var mode [1]byte
	if _, err := c.Read(mode[:]); err != nil {
		return
	}
	dst := c
	switch mode[0] {
	case 'e':
	case 'o':
		outs <- c
		// Keep c open (the forwarder writes to it) until its peer closes.
		_, _ = c.Read(mode[:])
		return
	case 'f':
		dst = <-outs
	default:
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if dst != c {
				dst.Close()
			}
			return
		}
	}
}
