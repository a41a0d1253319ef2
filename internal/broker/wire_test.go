package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// expectClosed reads from c until EOF or reset and fails if the broker
// keeps the connection open longer than d.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestHostileFrames sends frames no client would: huge and negative size
// prefixes, an HTTP request, a TLS ClientHello, garbage headers. Each
// connection is closed quickly without allocating what the prefix claims,
// and the broker keeps serving a real client.
func TestHostileFrames(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("ok", 1))
	before := heapInUse()
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cases := map[string][]byte{
		"size 1 GiB":       append(be32(1<<30), 0, 18, 0, 0),
		"size 0x7FFFFFFF":  append(be32(0x7FFFFFFF), 0, 18, 0, 0),
		"size -1":          append(be32(0xFFFFFFFF), 0, 18, 0, 0),
		"size 0x80000000":  be32(0x80000000),
		"size 0":           be32(0),
		"http request":     []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
		"tls client hello": {0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03},
		"garbage header":   append(be32(6), 0x7f, 0x7f, 0, 0, 0, 0),
		"truncated body":   append(be32(14), 0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 9),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c, 5*time.Second)
		})
	}
	if grew := int64(heapInUse()) - int64(before); grew > 64<<20 {
		t.Fatalf("heap grew by %d bytes after hostile frames", grew)
	}
	// Everyone else is still served.
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("ok"))
	if err := cl.ProduceSync(testCtx(t, 30*time.Second), &kgo.Record{Value: []byte("still here")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// rawRequest writes one request on c and returns the response body.
func rawRequest(t *testing.T, c net.Conn, corr int32, req kmsg.Request) []byte {
	t.Helper()
	frame := reqFormatter.AppendRequest(nil, req, corr)
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if got := int32(binary.BigEndian.Uint32(buf)); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	return buf[4:]
}

func TestUnsupportedVersions(t *testing.T) {
	b := sluicetest.New(t)
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// ApiVersions newer than we know: a v0 response with UNSUPPORTED_VERSION
	// and our ApiVersions range (KIP-511).
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = binary.BigEndian.AppendUint16(frame, 18)
	frame = binary.BigEndian.AppendUint16(frame, 99)
	frame = binary.BigEndian.AppendUint32(frame, 7)
	frame = append(frame, 0xff, 0xff, 0) // null client id, empty tags
	frame = append(frame, 0, 0, 0)       // compact strings + tags of a v3+ body
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(buf[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != 18 {
		t.Fatalf("ApiVersions v99 answered %+v", resp)
	}

	// Pipelined requests are answered in order on one connection.
	for i := int32(0); i < 20; i++ {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = int16(i % 13)
		body := rawRequest(t, c, 100+i, req)
		mr := req.ResponseKind()
		if err := mr.ReadFrom(skipRespHeader(body, req)); err != nil {
			t.Fatalf("metadata v%d: %v", req.Version, err)
		}
	}

	// Produce v2 (message sets) is below our range: UNSUPPORTED_VERSION has
	// no top-level field there, so the connection is closed.
	preq := kmsg.NewPtrProduceRequest()
	preq.Version = 2
	if _, err := c.Write(reqFormatter.AppendRequest(nil, preq, 1)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, 5*time.Second)
}

func skipRespHeader(body []byte, req kmsg.Request) []byte {
	if req.IsFlexible() && req.Key() != 18 {
		return body[1:] // empty tagged fields
	}
	return body
}

// TestPipelinedProduceOrder sends many produce requests without waiting,
// acks=all, and checks responses come back in request order with
// increasing offsets.
func TestPipelinedProduceOrder(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("pipe", 1))
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 50
	for i := 0; i < n; i++ {
		req := produceV9("pipe", -1, 10000, oneRecordBatch([]byte("v")))
		if _, err := c.Write(reqFormatter.AppendRequest(nil, req, int32(i))); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(c)
	for i := 0; i < n; i++ {
		var size [4]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatal(err)
		}
		if corr := int32(binary.BigEndian.Uint32(buf)); corr != int32(i) {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(buf[5:]); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(i) {
			t.Fatalf("response %d: error %d base offset %d", i, p.ErrorCode, p.BaseOffset)
		}
	}
}

// produceV9 is a Produce v9 request of records (a record batch) to
// partition 0 of topic.
func produceV9(topic string, acks int16, timeoutMillis int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = acks
	req.TimeoutMillis = timeoutMillis
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// oneRecordBatch builds a valid uncompressed batch of one record.
func oneRecordBatch(value []byte) []byte {
	rec := kmsg.NewRecord()
	rec.Value = value
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	rb := kmsg.NewRecordBatch()
	rb.Magic = 2
	rb.ProducerID = -1
	rb.ProducerEpoch = -1
	rb.FirstSequence = -1
	rb.FirstTimestamp = time.Now().UnixMilli()
	rb.MaxTimestamp = rb.FirstTimestamp
	rb.NumRecords = 1
	rb.Records = rec.AppendTo(nil)
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32c(raw[21:]))
	return raw
}

// TestBadBatchesRefused sends corrupt and oversized batches; each gets its
// Kafka error code and nothing is written.
func TestBadBatchesRefused(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("bad", 1, "max.message.bytes", "1024"))
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := oneRecordBatch([]byte("ok"))
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 0xff
	big := oneRecordBatch(make([]byte, 4096))
	for i, tc := range []struct {
		records []byte
		want    *kerr.Error
	}{
		{flipped, kerr.CorruptMessage},
		{big, kerr.MessageTooLarge},
		{good[:30], kerr.CorruptMessage},
		{good, nil},
	} {
		req := produceV9("bad", 1, 5000, tc.records)
		body := rawRequest(t, c, int32(i), req)
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body[1:]); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); err != tc.want && !(tc.want == nil && err == nil) {
			t.Fatalf("case %d: error %v, want %v", i, err, tc.want)
		}
		if tc.want == nil && p.BaseOffset != 0 {
			t.Fatalf("good batch after refused ones got offset %d, want 0 (nothing of the bad ones written)", p.BaseOffset)
		}
	}
}

func TestGracefulShutdownAnswersParkedFetch(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("sd", 1))
	cons := newClient(t, b.Addr(), kgo.ConsumeTopics("sd"), kgo.FetchMaxWait(30*time.Second))
	ctx := testCtx(t, time.Minute)
	go cons.PollFetches(ctx)
	waitFor(t, 10*time.Second, func() bool { return b.FetchesParked() > 0 })
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v with a parked fetch", d)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var reqFormatter = kmsg.NewRequestFormatter(kmsg.FormatterClientID("sluice-test"))

func apiVersionsReq() *kmsg.ApiVersionsRequest {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "sluice-test"
	req.ClientSoftwareVersion = "1"
	return req
}
