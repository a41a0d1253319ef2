package broker_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

func TestAdminEndpoints(t *testing.T) {
	b := sluicetest.New(t, sluicetest.AdminListen(), sluicetest.Topic("m", 1))
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("m"))
	if err := cl.ProduceSync(testCtx(t, 30*time.Second), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + b.AdminAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		return string(body)
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Fatalf("/healthz = %q", got)
	}
	metrics := get("/metrics")
	for _, want := range []string{
		`sluice_requests_total{api="Produce"} 1`,
		`sluice_request_duration_seconds_bucket{api="Produce"`,
		`sluice_partition_log_end_offset{partition="0",topic="m"} 1`,
		`sluice_produce_records_total 1`,
		"sluice_connections ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(get("/debug/pprof/"), "goroutine") {
		t.Error("pprof index not served")
	}
}

func TestConnectionLimit(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("max.connections", "2"))
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Both are accepted (a request on each is answered) ...
	for i, c := range conns {
		req := apiVersionsReq()
		rawRequest(t, c, int32(i), req)
	}
	// ... and a third is closed at once.
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c, 5*time.Second)
}

func TestIdleConnectionClosed(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Setting("connections.max.idle.ms", "200"))
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c, 10*time.Second)
}
