package protocol

// CONTRACT STUB. This file fixes the exported API that internal/broker is
// written against. The protocol implementer replaces these stubs with the real
// implementation (split into frame.go, header.go, fetch_writer.go,
// sendfile.go ... and deletes this file), keeping every exported name and
// signature below. New exported API may be added freely.

import (
	"errors"
	"io"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxFrameSize is socket.request.max.bytes' default (100 MiB).
const DefaultMaxFrameSize = 100 << 20

var (
	// ErrFrameTooLarge: the size prefix exceeds the limit (checked before any allocation).
	ErrFrameTooLarge = errors.New("protocol: frame larger than socket.request.max.bytes")
	// ErrBadFrameSize: a negative or too-small size prefix.
	ErrBadFrameSize = errors.New("protocol: invalid frame size")
	// ErrMalformed: a header or body that does not decode.
	ErrMalformed = errors.New("protocol: malformed request")
	// ErrUnknownKey: an API key kmsg does not know.
	ErrUnknownKey = errors.New("protocol: unknown api key")
)

// ReadFrame reads one size-prefixed frame from r. The size is checked
// against limit before anything is allocated; buf is reused when it has the
// capacity. The returned slice excludes the 4-byte size prefix.
func ReadFrame(r io.Reader, limit int32, buf []byte) ([]byte, error) { panic("unimplemented") }

// Header is a parsed request header (v0-v2).
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
}

// ParseHeader parses the request header of a frame and returns the body
// bytes that follow it (after tagged fields for flexible versions). It needs
// only the key and version to decide the header version; for an ApiVersions
// request of a version newer than kmsg knows it still succeeds (so the
// broker can answer UNSUPPORTED_VERSION with a v0 response as Kafka does).
func ParseHeader(frame []byte) (Header, []byte, error) { panic("unimplemented") }

// DecodeBody decodes a request body for h.Key / h.Version with kmsg. Every
// length read from the bytes is checked against what remains (kmsg does;
// wrap errors as ErrMalformed).
func DecodeBody(h Header, body []byte) (kmsg.Request, error) { panic("unimplemented") }

// Message is one serialized response ready for the socket: bytes interleaved
// with file regions (for Fetch). Build it with AppendResponse or
// EncodeFetchResponse; send it with a Sender.
type Message struct{}

// Len is the total size including the 4-byte size prefix.
func (m *Message) Len() int64 { panic("unimplemented") }

// Region is a file range holding whole record batches. The broker converts
// the storage engine's regions to this type.
type Region struct {
	File *os.File
	Pos  int64
	Len  int64
}

// AppendResponse serializes a response (size prefix, response header of the
// right version: v0 for ApiVersions, flexible v1 where the request version is
// flexible, then the body) into a Message.
func AppendResponse(h Header, resp kmsg.Response) *Message { panic("unimplemented") }

// EncodeFetchResponse serializes a Fetch response for h.Version. For every
// partition, the Records field is not taken from resp: regions(t, p) gives
// the file regions for resp.Topics[t].Partitions[p] (nil for none), and the
// records length prefix is written from their total length. Must produce
// byte-for-byte what kmsg.FetchResponse.AppendTo would with those bytes in
// Records, for every version 4..max.
func EncodeFetchResponse(h Header, resp *kmsg.FetchResponse, regions func(t, p int) []Region) *Message {
	panic("unimplemented")
}

// SendStats counts bytes sent, split by path.
type SendStats struct {
	SendfileBytes int64 // region bytes that went through sendfile(2)
	CopiedBytes   int64 // region bytes copied through user space
	HeaderBytes   int64 // non-region bytes
}

// Sender writes Messages to a connection. The zero value sends regions with
// sendfile(2) when the connection is a *net.TCPConn (explicit file offsets,
// safe with concurrent readers of the same file) and copies otherwise (TLS).
type Sender struct {
	// ForceCopy makes every region go through a user-space copy (the TLS path;
	// benchmarks compare both).
	ForceCopy bool
	// Stats, if non-nil, is incremented (atomically) per send.
	Stats *SendStats
}

// Send writes m to conn: header bytes with writev where there are several
// buffers, regions with sendfile.
func (s *Sender) Send(conn net.Conn, m *Message) error { panic("unimplemented") }
