// Package protocol is Sluice's Kafka wire layer: framing, request headers,
// response serialization and the zero-copy Fetch response writer. Request
// and response types are franz-go's kmsg; this package only frames them,
// except for the Fetch response body, which it encodes by hand so that
// record data can stay in the storage engine's files.
//
// # Reading requests
//
// A connection loop reads one request at a time:
//
//	frame, err := protocol.ReadFrame(conn, maxBytes, buf) // size checked before allocating
//	h, body, err := protocol.ParseHeader(frame)           // header v0/v1/v2 from (key, version)
//	req, err := protocol.DecodeBody(h, body)              // kmsg; lengths checked against the bytes left
//
// A connection keeps a HeaderParser and calls its Parse instead of
// ParseHeader: it returns the same client id string while the client sends
// the same one, so parsing a header allocates nothing.
//
// ReadFrame errors (ErrFrameTooLarge, ErrBadFrameSize, I/O errors) and
// ParseHeader/DecodeBody errors wrapping ErrMalformed or ErrUnknownKey mean
// the connection should be closed. ErrUnsupportedVersion can be answered
// with UNSUPPORTED_VERSION. Decoded requests alias the frame's bytes (for
// example Produce records), so a frame buffer is reused only after the
// request is done with.
//
// Decoding cannot be made to allocate without bound: kmsg allocates an array
// only after checking that at least one byte per element remains, so the
// memory a body can cost is a bounded multiple of its length (the tests
// measure that multiple), and the frame itself is bounded by
// socket.request.max.bytes.
//
// # Writing responses
//
// A response is a Message: a size prefix, the response header and the body,
// as a list of parts that are either bytes or file Regions.
// AppendResponse serializes any kmsg response. EncodeFetchResponse writes a
// Fetch response whose partitions' records are file regions: the bytes on
// the wire equal kmsg.FetchResponse.AppendTo with the region contents in
// RecordBatches, for every version (a test checks this byte for byte), but
// the records are never read into memory.
//
// A Sender writes a Message to a connection. A message of at most
// SmallMessageLimit (64 KiB) bytes that has regions is gathered into one
// pooled buffer, its regions read with pread, and written with a single
// write: for the small answers of long polls this is one syscall pair
// instead of writev + sendfile + writev, and cheaper than sendfile's page
// pinning below that size (BenchmarkSendSmall: −65% at 1 KiB, −34% at
// 16 KiB, a tie at 64 KiB). Larger messages on a *net.TCPConn (Linux) send
// their byte parts with writev and their regions with sendfile(2) at
// explicit offsets, so concurrent readers of a segment file never share a
// file position: every fetch response above 64 KiB is zero-copy. For TLS
// connections, or with ForceCopy, larger regions are read with pread into a
// pooled buffer and written. SendStats counts the bytes of each path
// (CopiedBytes for gathered and copied regions, SendfileBytes for
// sendfile).
//
// A region whose file is already shorter than the region fails the send
// with ErrRegionTruncated before anything is written: the gathering and the
// copy paths (up to the copy buffer's 256 KiB) read every region before the
// first write; the sendfile path first checks each distinct file's size
// with one fstat. After a failed Send the connection must be closed: part
// of a frame may have gone out (for instance when a segment was truncated
// during a sendfile, ErrRegionTruncated).
//
// Messages can be handed back with Release after sending to recycle their
// buffers; this is optional.
package protocol
