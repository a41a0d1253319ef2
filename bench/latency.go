package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

// Names of the latency floors: 1 KiB messages at the e2e scenario's rate
// and pacing over loopback TCP to a second process (kfakeserver -echo).
const (
	limRoundTrip = "loopback round trip, 1 KiB at e2e pacing"
	limOneWay    = "loopback via a 2nd process, 1 KiB at e2e pacing"
)

// latencyFloorNames are the latency floors, in table order.
var latencyFloorNames = []string{limRoundTrip, limOneWay}

// floorWarmup is the number of unmeasured messages sent (and received)
// before a latency floor is measured, as the e2e scenario's warm-up
// records.
const floorWarmup = 16

// runLatencyFloors measures what the machine allows for the e2e
// scenario's latency: the harness sends lim.e2eRecords messages of 1 KiB
// at lim.e2eRate, paced exactly as runE2E paces its Produce calls
// (time.Sleep to the record's slot), to a relay process, and records the
// time from just before each write to the moment a reader goroutine has
// read the whole message back. Round trip: one connection, the relay
// echoes. Via a 2nd process: the e2e shape, the relay reads from one
// connection and writes to another one back to the harness (the broker
// reads a Produce on one connection and answers a Fetch on another).
// The relay does a read and a write per chunk from a goroutine, as a Go
// broker would, but no Kafka work: this is the floor of client + network +
// scheduling of two Go processes on this machine.
func runLatencyFloors(bins binaries, lim limits) (map[string]figures, error) {
	out := map[string]figures{}
	for _, name := range latencyFloorNames {
		f, err := runLatencyFloor(bins, lim, name == limOneWay)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = f
	}
	return out, nil
}

// runLatencyFloor is one latency floor: oneWay sends on one connection and
// receives on another (relay 'f' to 'o'), otherwise one echoing
// connection.
func runLatencyFloor(bins binaries, lim limits, oneWay bool) (figures, error) {
	relay, addr, err := startRelay(bins.kfake)
	if err != nil {
		return nil, err
	}
	defer relay.stop()
	dial := func(mode byte) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte{mode}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	var send, recv net.Conn
	if oneWay {
		if recv, err = dial('o'); err != nil {
			return nil, err
		}
		defer recv.Close()
		// The relay pairs the 'f' connection with this 'o' one (its
		// forwarder waits for the 'o' if it is accepted first).
		if send, err = dial('f'); err != nil {
			return nil, err
		}
	} else {
		if send, err = dial('e'); err != nil {
			return nil, err
		}
		recv = send
	}
	defer send.Close()

	const size = 1024
	total := floorWarmup + lim.e2eRecords
	var (
		lat      latencyRecorder
		received atomic.Int64
		rerr     = make(chan error, 1)
	)
	go func() {
		buf := make([]byte, size)
		for i := int64(0); i < total; i++ {
			if _, err := io.ReadFull(recv, buf); err != nil {
				rerr <- fmt.Errorf("received %d of %d messages: %w", i, total, err)
				return
			}
			now := time.Now()
			if buf[8] == 1 {
				lat.add(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(buf)))))
			}
			received.Add(1)
		}
		rerr <- nil
	}()
	msg := payload(size)
	write := func(kind byte) error {
		binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		msg[8] = kind
		_, err := send.Write(msg)
		return err
	}
	for i := 0; i < floorWarmup; i++ {
		if err := write(0); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < floorWarmup {
		if time.Now().After(deadline) {
			return nil, errors.New("warm-up messages not received after 30s")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	runtime.GC() // as runE2E: the garbage of earlier work is not measured
	start := time.Now()
	for i := int64(0); i < lim.e2eRecords; i++ {
		if d := time.Until(start.Add(time.Duration(float64(i) / lim.e2eRate * float64(time.Second)))); d > 0 {
			time.Sleep(d) // the pacing of runE2E
		}
		if err := write(1); err != nil {
			return nil, err
		}
	}
	select {
	case err := <-rerr:
		if err != nil {
			return nil, err
		}
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("received %d of %d messages after 60s", received.Load(), total)
	}
	f := figures{}
	lat.into(f)
	return f, nil
}

// startRelay starts `kfakeserver -echo` and returns it with its address.
func startRelay(kfake string) (*server, string, error) {
	s := &server{kind: serverKind{"kfake", "echo"}, done: make(chan error, 1), logs: &tailBuffer{}}
	s.cmd = exec.Command(kfake, "-echo")
	s.cmd.Stderr = s.logs
	ready, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	found, err := s.launch(ready, func(line string) bool {
		a, ok := strings.CutPrefix(line, "ready ")
		if ok {
			s.addr = a
		}
		return ok
	})
	if err != nil {
		return nil, "", err
	}
	select {
	case err := <-found:
		if err != nil {
			s.stop()
			return nil, "", fmt.Errorf("kfakeserver -echo: %v\n%s", err, s.logs)
		}
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, "", fmt.Errorf("kfakeserver -echo: not ready after 30s\n%s", s.logs)
	}
	return s, s.addr, nil
}
