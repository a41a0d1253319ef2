package protocol

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestHeaderParserReusesClientID checks that a HeaderParser parses like
// ParseHeader and returns the same *string for repeated client ids (no
// allocation per request), a new one when the id changes, nil for a null
// id, and that parsing a header then allocates nothing.
func TestHeaderParserReusesClientID(t *testing.T) {
	a, b := "client-a", "client-b"
	frame := func(id *string, req kmsg.Request) []byte { return encodeRequest(req, id, 5)[4:] }
	produce := kmsg.NewPtrProduceRequest()
	produce.Version = 9
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 4

	var p HeaderParser
	var prev *string
	for i, tc := range []struct {
		id      *string
		req     kmsg.Request
		newPtr  bool
		wantNil bool
	}{
		{id: &a, req: produce, newPtr: true},
		{id: &a, req: fetch},
		{id: &a, req: produce},
		{id: &b, req: produce, newPtr: true},
		{id: nil, req: fetch, wantNil: true},
		{id: &b, req: fetch},
	} {
		f := frame(tc.id, tc.req)
		h, body, err := p.Parse(f)
		wh, wbody, werr := ParseHeader(f)
		if err != nil || werr != nil {
			t.Fatalf("%d: %v / %v", i, err, werr)
		}
		if h.Key != wh.Key || h.Version != wh.Version || h.CorrelationID != wh.CorrelationID || len(body) != len(wbody) {
			t.Fatalf("%d: parser %+v (%d body bytes), ParseHeader %+v (%d)", i, h, len(body), wh, len(wbody))
		}
		switch {
		case tc.wantNil:
			if h.ClientID != nil {
				t.Fatalf("%d: client id %q, want null", i, *h.ClientID)
			}
			continue
		case h.ClientID == nil || *h.ClientID != *tc.id:
			t.Fatalf("%d: client id %v, want %q", i, h.ClientID, *tc.id)
		case tc.newPtr == (h.ClientID == prev):
			t.Fatalf("%d: new pointer %v, want %v", i, h.ClientID != prev, tc.newPtr)
		}
		prev = h.ClientID
	}

	f := frame(&a, produce)
	if _, _, err := p.Parse(f); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = p.Parse(f) }); n != 0 {
		t.Fatalf("%v allocations per header", n)
	}
}
