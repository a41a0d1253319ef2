package broker_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// readResponse reads one response frame and returns its correlation id and
// the rest (response header tags, if any, and body).
func readResponse(t *testing.T, br *bufio.Reader) (int32, []byte) {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(br, size[:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(br, buf); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(buf)), buf[4:]
}

// Responses that are ready at once are written by the reader goroutine only
// while nothing is queued: behind a parked fetch they must wait their turn.
// One write carries a long-poll Fetch and three ApiVersions; the Fetch
// (which times out empty) is answered first, then the three in order; then
// requests one at a time (the inline path) are answered too.
func TestInlineWritesKeepOrderBehindParkedFetch(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("empty", 1))
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.ReplicaID = -1
	fetch.MaxWaitMillis = 300
	fetch.MinBytes = 1
	fetch.MaxBytes = 1 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "empty"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	fp.CurrentLeaderEpoch = -1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	versions := kmsg.NewPtrApiVersionsRequest()
	versions.Version = 3
	versions.ClientSoftwareName = "t"
	versions.ClientSoftwareVersion = "1"

	// (AppendRequest writes its size prefix at dst[0]: one call per slice.)
	batch := reqFormatter.AppendRequest(nil, fetch, 0)
	for i := int32(1); i <= 3; i++ {
		batch = append(batch, reqFormatter.AppendRequest(nil, versions, i)...)
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for want := int32(0); want <= 3; want++ {
		corr, body := readResponse(t, br)
		if corr != want {
			t.Fatalf("response %d has correlation id %d", want, corr)
		}
		if want == 0 {
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = 11
			if err := resp.ReadFrom(body); err != nil {
				t.Fatal(err)
			}
			if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
				t.Fatalf("fetch: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
			}
		}
	}
	for i := int32(10); i < 20; i++ {
		if _, err := c.Write(reqFormatter.AppendRequest(nil, versions, i)); err != nil {
			t.Fatal(err)
		}
		if corr, _ := readResponse(t, br); corr != i {
			t.Fatalf("correlation id %d, want %d", corr, i)
		}
	}
}

// Produce frames of every pooled size class and beyond (1 KiB to 2 MiB),
// pipelined with other requests on one connection, are all appended
// intact: the pooled frame buffers are not reused while still in use.
func TestPooledFramesOfAllSizes(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("sizes", 1, "max.message.bytes", "4194304"))
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	sizes := []int{1 << 10, 3 << 10, 15 << 10, 60 << 10, 200 << 10, 900 << 10, 2 << 20, 100, 500 << 10}
	values := make([][]byte, len(sizes))
	versions := kmsg.NewPtrApiVersionsRequest()
	var batch []byte
	for i, size := range sizes {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(j*31 + i*7 + j>>9)
		}
		values[i] = v
		req := produceV9("sizes", 1, 10000, oneRecordBatch(v))
		batch = append(batch, reqFormatter.AppendRequest(nil, req, int32(2*i))...)
		batch = append(batch, reqFormatter.AppendRequest(nil, versions, int32(2*i+1))...)
	}
	written := make(chan error, 1)
	go func() { _, err := c.Write(batch); written <- err }()
	br := bufio.NewReader(c)
	for i := range sizes {
		corr, body := readResponse(t, br)
		if corr != int32(2*i) {
			t.Fatalf("response has correlation id %d, want %d", corr, 2*i)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body[1:]); err != nil {
			t.Fatal(err)
		}
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(i) {
			t.Fatalf("produce %d: error %d base offset %d", i, p.ErrorCode, p.BaseOffset)
		}
		if corr, _ := readResponse(t, br); corr != int32(2*i+1) {
			t.Fatalf("response has correlation id %d, want %d", corr, 2*i+1)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("sizes"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 30*time.Second)
	for got := 0; got < len(sizes); {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		for _, r := range fs.Records() {
			if r.Offset != int64(got) || !bytes.Equal(r.Value, values[got]) {
				t.Fatalf("record at offset %d (want %d) differs from what was produced", r.Offset, got)
			}
			got++
		}
	}
}
