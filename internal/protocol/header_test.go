package protocol

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// allKeys returns every API key kmsg knows.
func allKeys() []int16 {
	var keys []int16
	for k := int16(0); k < 1000; k++ {
		if kmsg.RequestForKey(k) != nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// encodeRequest returns a full frame (with size prefix) for req as a client
// would send it.
func encodeRequest(req kmsg.Request, clientID *string, corr int32) []byte {
	if req.Key() == 7 && req.GetVersion() == 0 {
		// kmsg's formatter writes neither size nor body for this header-v0
		// request; build it by hand.
		b := kbin.AppendInt16(make([]byte, 4), 7)
		b = kbin.AppendInt16(b, 0)
		b = kbin.AppendInt32(b, corr)
		b = req.AppendTo(b)
		kbin.AppendInt32(b[:0], int32(len(b)-4))
		return b
	}
	var f *kmsg.RequestFormatter
	if clientID == nil {
		f = kmsg.NewRequestFormatter()
	} else {
		f = kmsg.NewRequestFormatter(kmsg.FormatterClientID(*clientID))
	}
	return f.AppendRequest(nil, req, corr)
}

// TestParseHeaderAllKeys round-trips random requests of every key and
// version through ReadFrame, ParseHeader and DecodeBody.
func TestParseHeaderAllKeys(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	keys := allKeys()
	if len(keys) < 50 {
		t.Fatalf("only %d keys", len(keys))
	}
	for _, key := range keys {
		maxV := kmsg.RequestForKey(key).MaxVersion()
		for v := int16(0); v <= maxV; v++ {
			for i := 0; i < 3; i++ {
				req := kmsg.RequestForKey(key)
				fillRandom(rng, reflect.ValueOf(req), 0)
				req.SetVersion(v)
				var id *string
				if i > 0 {
					id = kmsg.StringPtr("client-" + string(rune('a'+i)))
				}
				frame, err := ReadFrame(bytes.NewReader(encodeRequest(req, id, int32(v)*7)), 0, nil)
				if err != nil {
					t.Fatalf("key %d v%d: ReadFrame: %v", key, v, err)
				}
				h, body, err := ParseHeader(frame)
				if err != nil {
					t.Fatalf("key %d v%d: ParseHeader: %v", key, v, err)
				}
				wantID := id
				if key == 7 && v == 0 {
					wantID = nil // header v0
				}
				if h.Key != key || h.Version != v || h.CorrelationID != int32(v)*7 || !reflect.DeepEqual(h.ClientID, wantID) {
					t.Fatalf("key %d v%d: header %+v", key, v, h)
				}
				if want := req.AppendTo(nil); !bytes.Equal(body, want) {
					t.Fatalf("key %d v%d: body %x, want %x", key, v, body, want)
				}
				got, err := DecodeBody(h, body)
				if err != nil {
					t.Fatalf("key %d v%d: DecodeBody: %v", key, v, err)
				}
				if again := got.AppendTo(nil); !bytes.Equal(again, body) {
					t.Fatalf("key %d v%d: decoded request re-encodes differently", key, v)
				}
			}
		}
	}
}

func TestParseHeaderTaggedFields(t *testing.T) {
	// Metadata v12 is flexible: header v2 with two tagged fields.
	frame := kbin.AppendInt16(nil, 3)
	frame = kbin.AppendInt16(frame, 12)
	frame = kbin.AppendInt32(frame, 99)
	frame = kbin.AppendNullableString(frame, kmsg.StringPtr("c"))
	frame = append(frame, 2, 5, 1, 0xAA, 6, 0)
	body := kmsg.NewPtrMetadataRequest()
	body.Version = 12
	frame = body.AppendTo(frame)
	h, rest, err := ParseHeader(frame)
	if err != nil || h.CorrelationID != 99 || *h.ClientID != "c" {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := DecodeBody(h, rest); err != nil {
		t.Fatal(err)
	}
	// A tag whose size runs past the end.
	bad := append(frame[:13:13], 1, 5, 100)
	if _, _, err := ParseHeader(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized tag: %v", err)
	}
}

func TestParseHeaderApiVersionsNewerThanKnown(t *testing.T) {
	maxV := kmsg.NewPtrApiVersionsRequest().MaxVersion()
	for _, v := range []int16{maxV + 1, 99, 0x7FFF} {
		frame := kbin.AppendInt16(nil, 18)
		frame = kbin.AppendInt16(frame, v)
		frame = kbin.AppendInt32(frame, 5)
		frame = kbin.AppendNullableString(frame, kmsg.StringPtr("java"))
		frame = append(frame, 0)                // no header tags
		frame = append(frame, 1, 1, 0xFF, 0xFE) // a body from the future
		h, _, err := ParseHeader(frame)
		if err != nil || h.Version != v || h.CorrelationID != 5 {
			t.Fatalf("v%d: %+v %v", v, h, err)
		}
		if _, err := DecodeBody(h, nil); !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("v%d: DecodeBody: %v", v, err)
		}
		// The broker answers with a v0 ApiVersions response: header v0.
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ErrorCode = 35
		m := AppendResponse(h, resp)
		b := messageBytes(t, m)
		want := append(kbin.AppendInt32(kbin.AppendInt32(nil, int32(4+len(resp.AppendTo(nil)))), 5), resp.AppendTo(nil)...)
		if !bytes.Equal(b, want) {
			t.Fatalf("response %x, want %x", b, want)
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	frame := kbin.AppendInt16(nil, 999)
	frame = kbin.AppendInt16(frame, 3)
	frame = kbin.AppendInt32(frame, 42)
	frame = kbin.AppendNullableString(frame, kmsg.StringPtr("who"))
	h, _, err := ParseHeader(frame)
	if !errors.Is(err, ErrUnknownKey) || h.Key != 999 || h.Version != 3 || h.CorrelationID != 42 || h.ClientID == nil || *h.ClientID != "who" {
		t.Fatalf("unknown key: %+v %v", h, err)
	}
	for _, bad := range [][]byte{
		{0, 3},                                   // short
		{0, 3, 0, 1, 0, 0, 0, 1, 0, 10, 'a'},     // client id longer than frame
		{0, 3, 0, 12, 0, 0, 0, 1, 0xFF, 0xFF},    // flexible, tags missing
		{0, 3, 0, 12, 0, 0, 0, 1, 0xFF, 0xFF, 1}, // one tag, no key
	} {
		if _, _, err := ParseHeader(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: %v", bad, err)
		}
	}
	if _, err := DecodeBody(Header{Key: 0, Version: 9}, []byte{0, 1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short body: %v", err)
	}
	if _, err := DecodeBody(Header{Key: 0, Version: -1}, nil); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("negative version: %v", err)
	}
}

func TestAppendResponseHeaders(t *testing.T) {
	h := Header{CorrelationID: 0x01020304}
	for _, tc := range []struct {
		resp kmsg.Response
		hdr  []byte
	}{
		{&kmsg.MetadataResponse{Version: 8}, []byte{1, 2, 3, 4}},
		{&kmsg.MetadataResponse{Version: 9}, []byte{1, 2, 3, 4, 0}},
		{&kmsg.ApiVersionsResponse{Version: 4}, []byte{1, 2, 3, 4}},
		{&kmsg.ProduceResponse{Version: 9}, []byte{1, 2, 3, 4, 0}},
	} {
		b := messageBytes(t, AppendResponse(h, tc.resp))
		want := append(append(kbin.AppendInt32(nil, int32(len(tc.hdr)+len(tc.resp.AppendTo(nil)))), tc.hdr...), tc.resp.AppendTo(nil)...)
		if !bytes.Equal(b, want) {
			t.Fatalf("%T v%d: %x want %x", tc.resp, tc.resp.GetVersion(), b, want)
		}
	}
}
