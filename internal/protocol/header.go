package protocol

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Header is a parsed request header (v0-v2).
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string // nil when absent (header v0) or null
}

// apiVersionsKey is ApiVersions' api key; it gets special header treatment.
const apiVersionsKey = 18

// ParseHeader parses the request header of a frame (as returned by
// ReadFrame) and returns the body bytes that follow it, after the tagged
// fields of a flexible (v2) header. The body aliases frame.
//
// The header version follows from the key and version: v2 where kmsg says
// the request version is flexible, v0 for ControlledShutdown v0, v1
// otherwise. The client id is a non-compact nullable string in v1 and v2.
// An ApiVersions request of a version newer than kmsg knows still parses
// (as flexible from v3 on) so the broker can answer UNSUPPORTED_VERSION with
// a v0 response, as Kafka does.
//
// For an unknown key it returns ErrUnknownKey together with the key,
// version and correlation id (and the client id if a v1 header parses), so
// the caller can log them. Other failures wrap ErrMalformed.
//
// A connection parsing many frames uses a HeaderParser instead, which does
// not allocate the client id again for every request.
func ParseHeader(frame []byte) (Header, []byte, error) {
	var p HeaderParser
	return p.Parse(frame)
}

// HeaderParser is ParseHeader for the frames of one connection. It keeps
// the last client id it returned and hands back the same *string while the
// client sends the same id, so a header costs no allocation. The zero
// value is ready; it is not safe for concurrent use. The returned ClientID
// must not be written through.
type HeaderParser struct {
	clientID *string
}

// Parse is ParseHeader.
func (p *HeaderParser) Parse(frame []byte) (Header, []byte, error) {
	var h Header
	if len(frame) < MinFrameSize {
		return h, nil, fmt.Errorf("%w: %d-byte header", ErrMalformed, len(frame))
	}
	b := kbin.Reader{Src: frame}
	h.Key = b.Int16()
	h.Version = b.Int16()
	h.CorrelationID = b.Int32()

	info, known := requestInfoFor(h.Key)
	if !known {
		// Best effort: assume a v1 header so the client id can be logged.
		if id, ok := p.readClientID(&b); ok {
			h.ClientID = id
		}
		return h, nil, fmt.Errorf("%w: %d (version %d)", ErrUnknownKey, h.Key, h.Version)
	}
	if h.Key == 7 && h.Version == 0 { // ControlledShutdown v0: header v0
		return h, b.Src, nil
	}
	var flexible bool
	if h.Key == apiVersionsKey && h.Version > info.maxVersion {
		flexible = h.Version >= 3
	} else {
		flexible = info.flexibleFrom >= 0 && h.Version >= info.flexibleFrom
	}
	id, ok := p.readClientID(&b)
	if !ok {
		return h, nil, fmt.Errorf("%w: client id", ErrMalformed)
	}
	h.ClientID = id
	if flexible {
		if !skipTags(&b) {
			return h, nil, fmt.Errorf("%w: header tagged fields", ErrMalformed)
		}
	}
	return h, b.Src, nil
}

// readClientID reads the header's nullable (int16-length) client id,
// reusing the previous one when the bytes are equal.
func (p *HeaderParser) readClientID(b *kbin.Reader) (*string, bool) {
	l := b.Int16()
	if l < 0 {
		return nil, b.Ok()
	}
	raw := b.Span(int(l))
	if !b.Ok() {
		return nil, false
	}
	if p.clientID != nil && *p.clientID == string(raw) { // no allocation
		return p.clientID, true
	}
	id := string(raw)
	p.clientID = &id
	return p.clientID, true
}

// requestInfo is what header parsing needs to know of an API key: its
// highest version in kmsg and the first flexible version (-1: none).
type requestInfo struct {
	maxVersion   int16
	flexibleFrom int16
	known        bool
}

// requestInfos is indexed by API key, computed once from kmsg so that
// parsing a header does not build a request value to ask it.
var requestInfos = func() (t [kmsg.MaxKey + 1]requestInfo) {
	for key := range t {
		req := kmsg.RequestForKey(int16(key))
		if req == nil {
			continue
		}
		info := requestInfo{maxVersion: req.MaxVersion(), flexibleFrom: -1, known: true}
		for v := int16(0); v <= info.maxVersion; v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				info.flexibleFrom = v
				break
			}
		}
		t[key] = info
	}
	return t
}()

func requestInfoFor(key int16) (requestInfo, bool) {
	if key < 0 || int(key) >= len(requestInfos) {
		return requestInfo{}, false
	}
	info := requestInfos[key]
	return info, info.known
}

// skipTags skips a tagged-field section, checking every size against what
// remains.
func skipTags(b *kbin.Reader) bool {
	for n := b.Uvarint(); n > 0 && b.Ok(); n-- {
		b.Uvarint() // tag
		size := b.Uvarint()
		if !b.Ok() || uint64(size) > uint64(len(b.Src)) {
			return false
		}
		b.Span(int(size))
	}
	return b.Ok()
}

// DecodeBody decodes the request body for h.Key at h.Version with kmsg.
//
// Every length read from the bytes is checked against what remains before
// anything is allocated (kmsg's reader does this; an array claims at least a
// byte per element). Byte fields of the result, such as Produce records,
// alias body: keep the frame buffer alive and unmodified while the request
// is in use. Errors wrap ErrUnknownKey, ErrUnsupportedVersion or
// ErrMalformed.
func DecodeBody(h Header, body []byte) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKey, h.Key)
	}
	if h.Version < 0 || h.Version > req.MaxVersion() {
		return nil, fmt.Errorf("%w: key %d version %d (max %d)", ErrUnsupportedVersion, h.Key, h.Version, req.MaxVersion())
	}
	req.SetVersion(h.Version)
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: key %d version %d: %v", ErrMalformed, h.Key, h.Version, err) //nolint:errorlint // kmsg's error is only a detail; the class is ErrMalformed
	}
	return req, nil
}
