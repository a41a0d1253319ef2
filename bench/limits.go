package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Names of the physical-limit measurements.
const (
	limAppend     = "file append, buffered"
	limAppendSync = "file append, fdatasync per MiB"
	limSendfile   = "sendfile, page cache to loopback TCP"
	limCopy       = "read+write, page cache to loopback TCP"
)

// rusageThread is RUSAGE_THREAD (Linux): the calling thread only.
const rusageThread = 1

// threadCPU is the user+system CPU time of the calling OS thread.
func threadCPU() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, err
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
}

// runLimits measures what the machine allows for total bytes of 1 KiB
// records: sequential appends to a file (buffered, and with an fdatasync
// after every MiB), then sending that page-cached file to a loopback TCP
// socket with sendfile(2) and with read(2)+write(2). CPU is the sending
// (or writing) thread's only; the receiver is another goroutine.
func runLimits(dir string, total int64) (map[string]figures, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const chunk = 1 << 20
	buf := bytes.Repeat(payload(1024), chunk/1024)
	total = max(chunk, total/chunk*chunk)
	out := map[string]figures{}
	path := filepath.Join(dir, "limits.data")
	defer os.Remove(path)
	// Warm-up: write the whole file once unmeasured. On this machine (a
	// Firecracker VM) the first use of a guest page costs several times
	// the copy; the brokers' page cache is warm in the same way after the
	// first scenarios.
	if err := func() error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		for n := int64(0); n < total; n += chunk {
			if _, err := f.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}(); err != nil {
		return nil, err
	}
	for _, sync := range []bool{false, true} {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		c0, err := threadCPU()
		if err != nil {
			f.Close()
			return nil, err
		}
		var syncs latencyRecorder
		start := time.Now()
		for n := int64(0); n < total; n += chunk {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return nil, err
			}
			if sync {
				t := time.Now()
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					f.Close()
					return nil, err
				}
				syncs.add(time.Since(t))
			}
		}
		secs := time.Since(start).Seconds()
		c1, _ := threadCPU()
		if err := f.Close(); err != nil {
			return nil, err
		}
		name := limAppend
		if sync {
			name = limAppendSync
		}
		out[name] = figures{figMB: float64(total) / secs / 1e6, figCPU: (c1 - c0) / (float64(total) / 1e9)}
		if sync {
			syncs.into(out[name]) // the latency of one fdatasync of 1 MiB
		}
	}
	// The file was just written: it is in the page cache. Read it once
	// more to be sure.
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		return nil, err
	}
	for _, sendfile := range []bool{true, false} {
		secs, cpu, err := sendToLoopback(f, total, sendfile)
		if err != nil {
			return nil, err
		}
		name := limSendfile
		if !sendfile {
			name = limCopy
		}
		out[name] = figures{figMB: float64(total) / secs / 1e6, figCPU: cpu / (float64(total) / 1e9)}
	}
	return out, nil
}

// sendToLoopback sends the first total bytes of f over a blocking loopback
// TCP socket from the calling (locked) thread, in 1 MiB calls, while a
// goroutine reads and discards them. It returns the seconds taken and the
// sending thread's CPU seconds.
func sendToLoopback(f *os.File, total int64, sendfile bool) (secs, cpu float64, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	recvd := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recvd <- err
			return
		}
		defer c.Close()
		b := make([]byte, 1<<20)
		var n int64
		for n < total {
			k, err := c.Read(b)
			n += int64(k)
			if err != nil {
				recvd <- fmt.Errorf("received %d of %d: %w", n, total, err)
				return
			}
		}
		recvd <- nil
	}()
	sock, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Close(sock)
	port := ln.Addr().(*net.TCPAddr).Port
	if err := syscall.Connect(sock, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 1<<20)
	c0, err := threadCPU()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var off int64
	for off < total {
		want := int(min(total-off, 1<<20))
		if sendfile {
			n, err := syscall.Sendfile(sock, int(f.Fd()), &off, want)
			if err != nil && err != syscall.EINTR && err != syscall.EAGAIN {
				return 0, 0, fmt.Errorf("sendfile: %w", err)
			}
			if n == 0 && err == nil {
				return 0, 0, fmt.Errorf("sendfile: no progress at %d", off)
			}
			continue
		}
		n, err := syscall.Pread(int(f.Fd()), buf[:want], off)
		if err != nil {
			return 0, 0, err
		}
		for w := 0; w < n; {
			k, err := syscall.Write(sock, buf[w:n])
			if err != nil && err != syscall.EINTR && err != syscall.EAGAIN {
				return 0, 0, err
			}
			w += max(k, 0)
		}
		off += int64(n)
	}
	c1, _ := threadCPU()
	if err := <-recvd; err != nil {
		return 0, 0, err
	}
	return time.Since(start).Seconds(), c1 - c0, nil
}
