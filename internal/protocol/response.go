package protocol

import (
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AppendResponseHeader appends the response header for a response with the
// given key and flexibility: v0 (correlation id only), or v1 (plus an empty
// tagged-field section) for flexible responses other than ApiVersions, whose
// response header is always v0.
func AppendResponseHeader(dst []byte, key int16, flexible bool, correlationID int32) []byte {
	dst = kbin.AppendInt32(dst, correlationID)
	if flexible && key != apiVersionsKey {
		dst = append(dst, 0) // no tagged fields
	}
	return dst
}

// AppendResponse serializes resp into a Message: the size prefix, the
// response header (correlation id from h; v1 where resp's version is
// flexible, except for ApiVersions, which always uses v0) and the kmsg body.
//
// The body is encoded at resp's own version, which the caller sets (kmsg's
// Request.ResponseKind does); this lets the broker answer an ApiVersions
// request of an unknown version with a v0 response.
func AppendResponse(h Header, resp kmsg.Response) *Message {
	m := newMessage()
	m.buf = AppendResponseHeader(m.buf, resp.Key(), resp.IsFlexible(), h.CorrelationID)
	m.buf = resp.AppendTo(m.buf)
	m.finish(0)
	return m
}
