package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}

// fetchMessage builds a two-topic Fetch response whose records are regions
// of f (a few MiB in total) and returns it with the region byte count.
func fetchMessage(f regionFile, size int64) (*Message, int64) {
	resp := kmsg.NewPtrFetchResponse()
	for t := range 2 {
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "t" + string(rune('0'+t))
		for p := range 2 {
			part := kmsg.NewFetchResponseTopicPartition()
			part.Partition = int32(p)
			topic.Partitions = append(topic.Partitions, part)
		}
		resp.Topics = append(resp.Topics, topic)
	}
	q := size / 4
	regions := func(t, p int) []Region {
		i := int64(2*t + p)
		if i == 3 { // two regions back to back
			return []Region{{File: f.f, Pos: i * q, Len: q / 2}, {File: f.f, Pos: i*q + q/2, Len: q - q/2}}
		}
		return []Region{{File: f.f, Pos: i * q, Len: q}}
	}
	return EncodeFetchResponse(Header{Key: 1, Version: 13, CorrelationID: 1}, resp, regions), 4 * q
}

func sendAndReceive(t testing.TB, s *Sender, conn net.Conn, peer net.Conn, m *Message) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, m.Len())
		_, err := io.ReadFull(peer, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	if err := s.Send(conn, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return <-got
}

func TestSenderSendfile(t *testing.T) {
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	f := regionFile{tempFile(t, data)}
	client, server := tcpPair(t)

	for _, force := range []bool{false, true} {
		var stats SendStats
		s := &Sender{ForceCopy: force, Stats: &stats}
		m, regionBytes := fetchMessage(f, int64(len(data)))
		want := messageBytes(t, m)
		got := sendAndReceive(t, s, server, client, m)
		if !bytes.Equal(got, want) {
			t.Fatalf("force=%v: received bytes differ", force)
		}
		header := m.Len() - regionBytes
		if force {
			if stats.CopiedBytes.Load() != regionBytes || stats.SendfileBytes.Load() != 0 {
				t.Fatalf("copy path: copied %d sendfile %d, want %d/0", stats.CopiedBytes.Load(), stats.SendfileBytes.Load(), regionBytes)
			}
		} else if runtime.GOOS == "linux" {
			if stats.SendfileBytes.Load() != regionBytes || stats.CopiedBytes.Load() != 0 {
				t.Fatalf("sendfile path: sendfile %d copied %d, want %d/0", stats.SendfileBytes.Load(), stats.CopiedBytes.Load(), regionBytes)
			}
		}
		if stats.HeaderBytes.Load() != header {
			t.Fatalf("header bytes %d, want %d", stats.HeaderBytes.Load(), header)
		}
		m.Release()
	}
	// The file's own position is never used or moved.
	if pos, err := f.f.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		t.Fatalf("file position %d, %v", pos, err)
	}
}

// Non-TCP connections (TLS, pipes) take the copy path.
func TestSenderPipeCopies(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 1<<15)
	f := regionFile{tempFile(t, data)}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var stats SendStats
	m, regionBytes := fetchMessage(f, int64(len(data)))
	got := sendAndReceive(t, &Sender{Stats: &stats}, a, b, m)
	if !bytes.Equal(got, messageBytes(t, m)) || stats.CopiedBytes.Load() != regionBytes {
		t.Fatalf("copied %d of %d", stats.CopiedBytes.Load(), regionBytes)
	}
}

func TestSenderTruncatedRegion(t *testing.T) {
	f := regionFile{tempFile(t, make([]byte, 1000))}
	client, server := tcpPair(t)
	resp := kmsg.NewPtrFetchResponse()
	resp.Topics = []kmsg.FetchResponseTopic{{Partitions: []kmsg.FetchResponseTopicPartition{kmsg.NewFetchResponseTopicPartition()}}}
	beyond := []Region{{File: f.f, Pos: 900, Len: 200}}
	m := EncodeFetchResponse(Header{Key: 1, Version: 12}, resp, func(int, int) []Region { return beyond })
	for _, force := range []bool{false, true} {
		if err := (&Sender{ForceCopy: force}).Send(server, m); !errors.Is(err, ErrRegionTruncated) {
			t.Fatalf("force=%v: %v", force, err)
		}
	}
	// Nothing was written: the file was short before the send started.
	server.Close()
	if n, _ := io.Copy(io.Discard, client); n != 0 {
		t.Fatalf("%d bytes written for a failed send", n)
	}
}

// Messages up to SmallMessageLimit are gathered (regions read with pread,
// one write); larger ones send their regions with sendfile. Both put the
// same bytes on the wire, and the stats say which path the regions took.
func TestSenderSmallMessagesGathered(t *testing.T) {
	data := make([]byte, 2*SmallMessageLimit)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f := regionFile{tempFile(t, data)}
	client, server := tcpPair(t)
	for _, size := range []int64{SmallMessageLimit / 4, SmallMessageLimit + 4096} {
		var stats SendStats
		s := &Sender{Stats: &stats}
		m, regionBytes := fetchMessage(f, size)
		got := sendAndReceive(t, s, server, client, m)
		if !bytes.Equal(got, messageBytes(t, m)) {
			t.Fatalf("message of %d bytes: received bytes differ", m.Len())
		}
		gathered := m.Len() <= SmallMessageLimit
		if gathered != (size < SmallMessageLimit) {
			t.Fatalf("message of %d bytes for regions of %d: test sizes are off", m.Len(), size)
		}
		switch {
		case gathered && (stats.CopiedBytes.Load() != regionBytes || stats.SendfileBytes.Load() != 0):
			t.Fatalf("small message: copied %d sendfile %d, want %d/0", stats.CopiedBytes.Load(), stats.SendfileBytes.Load(), regionBytes)
		case !gathered && runtime.GOOS == "linux" && (stats.SendfileBytes.Load() != regionBytes || stats.CopiedBytes.Load() != 0):
			t.Fatalf("large message: sendfile %d copied %d, want %d/0", stats.SendfileBytes.Load(), stats.CopiedBytes.Load(), regionBytes)
		}
		if stats.HeaderBytes.Load() != m.Len()-regionBytes {
			t.Fatalf("header bytes %d, want %d", stats.HeaderBytes.Load(), m.Len()-regionBytes)
		}
		m.Release()
	}
}

// A large message (sendfile path) whose second file is short fails before
// anything is written, like a small one: the size check covers every file,
// not only the first region's.
func TestSenderLargeTruncatedRegion(t *testing.T) {
	long := regionFile{tempFile(t, make([]byte, 2*SmallMessageLimit))}
	short := regionFile{tempFile(t, make([]byte, 1000))}
	client, server := tcpPair(t)
	resp := kmsg.NewPtrFetchResponse()
	topic := kmsg.NewFetchResponseTopic()
	topic.Partitions = []kmsg.FetchResponseTopicPartition{kmsg.NewFetchResponseTopicPartition(), kmsg.NewFetchResponseTopicPartition()}
	resp.Topics = []kmsg.FetchResponseTopic{topic}
	regions := [][]Region{
		{{File: long.f, Pos: 0, Len: SmallMessageLimit}, {File: long.f, Pos: SmallMessageLimit, Len: 100}},
		{{File: short.f, Pos: 0, Len: 1001}},
	}
	m := EncodeFetchResponse(Header{Key: 1, Version: 12}, resp, func(_, p int) []Region { return regions[p] })
	if m.Len() <= SmallMessageLimit {
		t.Fatalf("message of %d bytes is not large", m.Len())
	}
	for _, force := range []bool{false, true} {
		if err := (&Sender{ForceCopy: force}).Send(server, m); !errors.Is(err, ErrRegionTruncated) {
			t.Fatalf("force=%v: %v", force, err)
		}
	}
	server.Close()
	if n, _ := io.Copy(io.Discard, client); n != 0 {
		t.Fatalf("%d bytes written for a failed send", n)
	}
}

// A file that shrinks during the send (after the pre-check) fails the send
// instead of producing a short frame.
func TestSendRegionTruncatedMidway(t *testing.T) {
	f := regionFile{tempFile(t, make([]byte, 1000))}
	r := Region{File: f.f, Pos: 500, Len: 1000}
	client, server := tcpPair(t)
	go func() { _, _ = io.Copy(io.Discard, client) }()
	if runtime.GOOS == "linux" {
		n, err := sendfile(server, r)
		if !errors.Is(err, ErrRegionTruncated) || n != 500 {
			t.Fatalf("sendfile: %d, %v", n, err)
		}
	}
	cw := copyWriter{w: server}
	defer cw.release()
	cw.copyRegion(r)
	if !errors.Is(cw.err, ErrRegionTruncated) {
		t.Fatalf("copy: %v", cw.err)
	}
}

func BenchmarkSend(b *testing.B) {
	const size = 4 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	f := regionFile{tempFile(b, data)}
	for _, bc := range []struct {
		name  string
		force bool
	}{{"sendfile", false}, {"copy", true}} {
		b.Run(bc.name, func(b *testing.B) {
			client, server := tcpPair(b)
			done := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, client); close(done) }()
			s := &Sender{ForceCopy: bc.force}
			m, _ := fetchMessage(f, size)
			b.SetBytes(m.Len())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.Send(server, m); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			server.CloseWrite()
			<-done
		})
	}
}

// BenchmarkSendSmall sends a Fetch response whose records are one small
// region (the long-poll answers of a low-rate consumer) on loopback, with
// Send's default path choice: compare before/after changes to the
// small-region path with benchstat.
//
//	go test -run '^$' -bench BenchmarkSendSmall -count 6 ./internal/protocol
func BenchmarkSendSmall(b *testing.B) {
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i)
	}
	f := regionFile{tempFile(b, data)}
	for _, size := range []int64{1 << 10, 16 << 10, 64 << 10, 128 << 10} {
		b.Run(fmt.Sprintf("region=%dKiB", size>>10), func(b *testing.B) {
			client, server := tcpPair(b)
			done := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, client); close(done) }()
			var stats SendStats
			s := &Sender{Stats: &stats}
			resp := kmsg.NewPtrFetchResponse()
			topic := kmsg.NewFetchResponseTopic()
			topic.Topic = "t"
			topic.Partitions = append(topic.Partitions, kmsg.NewFetchResponseTopicPartition())
			resp.Topics = append(resp.Topics, topic)
			regions := []Region{{File: f.f, Pos: 4096, Len: size}}
			m := EncodeFetchResponse(Header{Key: 1, Version: 13, CorrelationID: 1}, resp, func(int, int) []Region { return regions })
			b.SetBytes(m.Len())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.Send(server, m); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(stats.SendfileBytes.Load())/float64(stats.SendfileBytes.Load()+stats.CopiedBytes.Load()), "sendfile-frac")
			server.CloseWrite()
			<-done
		})
	}
}
