package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
	"time"
)

// testBatch builds an uncompressed v2 batch of n records with values of
// valueSize bytes; record i has timestamp ts+i. Built by hand (magic 2,
// CRC-32C via hash/crc32) so the tests do not depend on the code under test.
func testBatch(n, valueSize int, ts int64) []byte {
	var recs []byte
	for i := range n {
		var body []byte
		body = append(body, 0)                             // attributes
		body = binary.AppendVarint(body, int64(i))         // timestampDelta
		body = binary.AppendVarint(body, int64(i))         // offsetDelta
		body = binary.AppendVarint(body, -1)               // key: null
		body = binary.AppendVarint(body, int64(valueSize)) // value length
		for j := range valueSize {
			body = append(body, byte(i+j))
		}
		body = binary.AppendVarint(body, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := make([]byte, 61, 61+len(recs))
	binary.BigEndian.PutUint64(b[0:], 0)
	binary.BigEndian.PutUint32(b[8:], uint32(49+len(recs)))
	binary.BigEndian.PutUint32(b[12:], 0xffffffff) // partitionLeaderEpoch -1
	b[16] = 2
	binary.BigEndian.PutUint16(b[21:], 0)
	binary.BigEndian.PutUint32(b[23:], uint32(n-1))
	binary.BigEndian.PutUint64(b[27:], uint64(ts))
	binary.BigEndian.PutUint64(b[35:], uint64(ts+int64(n)-1))
	binary.BigEndian.PutUint64(b[43:], 0xffffffffffffffff) // producerId -1
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], 0xffffffff)
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	b = append(b, recs...)
	fixCRC(b)
	return b
}

func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// testManager opens a Manager on a temp dir (or dir if given) and closes it
// at cleanup unless the test already did.
func testManager(t testing.TB, dir string, mod ...func(*ManagerConfig)) *Manager {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := ManagerConfig{Dir: dir}
	for _, f := range mod {
		f(&cfg)
	}
	m, err := OpenManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Logf("manager close: %v", err)
		}
	})
	return m
}

func openPart(t testing.TB, m *Manager, cfg Config) *Partition {
	t.Helper()
	p, err := m.Open("t", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustAppend(t testing.TB, p *Partition, b []byte) AppendResult {
	t.Helper()
	res, err := p.Append(b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readAll reads the regions of r into one buffer.
func readRegions(t testing.TB, r ReadResult) []byte {
	t.Helper()
	var out []byte
	for _, reg := range r.Regions {
		b := make([]byte, reg.Len)
		if _, err := reg.File.ReadAt(b, reg.Pos); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	if int64(len(out)) != r.Bytes {
		t.Fatalf("regions hold %d bytes, Bytes says %d", len(out), r.Bytes)
	}
	return out
}

// readBatchBytes returns the stored bytes of the batch holding offset.
func readBatchBytes(t testing.TB, p *Partition, offset int64) []byte {
	t.Helper()
	r, err := p.Read(offset, 1, p.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	return readRegions(t, r)
}

// eventually waits for cond with a deadline (no sleeps as synchronization:
// it polls a condition and fails after the deadline).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func withBase(b []byte, base int64) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint64(c, uint64(base))
	return c
}
