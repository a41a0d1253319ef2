package log

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// writeFileAtomic replaces path with data: write a temp file, fsync it,
// rename it over path, fsync the directory. A crash leaves either the old or
// the new contents, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that entries created, renamed or removed
// in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

// maxCheckpointFile bounds the size of a checkpoint file read into memory.
const maxCheckpointFile = 64 << 20

// readCheckpointFile reads a checkpoint file and parses it with parse. A
// missing file yields (nil, os.ErrNotExist wrapped).
func readCheckpointFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxCheckpointFile {
		return nil, corruptionf("checkpoint %s: %d bytes is too large", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// parseCheckpoint parses the common text format: a version line, a count
// line, then count lines of exactly fields space-separated fields. The
// count is checked against the lines present before anything is allocated.
func parseCheckpoint(b []byte, fields int) ([][]string, error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, corruptionf("checkpoint does not end in a newline")
	}
	lines := bytes.Split(b[:len(b)-1], []byte{'\n'})
	if len(lines) < 2 {
		return nil, corruptionf("checkpoint has %d lines", len(lines))
	}
	if string(lines[0]) != strconv.Itoa(checkpointVersion) {
		return nil, corruptionf("checkpoint version %q", lines[0])
	}
	n, err := strconv.Atoi(string(lines[1]))
	if err != nil || n < 0 {
		return nil, corruptionf("checkpoint count %q", lines[1])
	}
	if n != len(lines)-2 {
		return nil, corruptionf("checkpoint count %d, %d entries present", n, len(lines)-2)
	}
	out := make([][]string, 0, n)
	for i, l := range lines[2:] {
		fs := strings.Split(string(l), " ")
		if len(fs) != fields {
			return nil, corruptionf("checkpoint line %d: %q", i+3, l)
		}
		out = append(out, fs)
	}
	return out, nil
}

// offsetCheckpoint is the per-data-directory map of partition -> offset
// (recovery points, log start offsets).
type offsetCheckpoint map[TopicPartition]int64

func parseOffsetCheckpoint(b []byte) (offsetCheckpoint, error) {
	rows, err := parseCheckpoint(b, 3)
	if err != nil {
		return nil, err
	}
	m := make(offsetCheckpoint, len(rows))
	for _, r := range rows {
		p, err1 := strconv.ParseInt(r[1], 10, 32)
		off, err2 := strconv.ParseInt(r[2], 10, 64)
		if r[0] == "" || err1 != nil || err2 != nil || p < 0 || off < 0 {
			return nil, corruptionf("checkpoint entry %q", strings.Join(r, " "))
		}
		m[TopicPartition{Topic: r[0], Partition: int32(p)}] = off
	}
	return m, nil
}

func (c offsetCheckpoint) encode() []byte {
	keys := make([]TopicPartition, 0, len(c))
	for tp := range c {
		keys = append(keys, tp)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Topic != keys[j].Topic {
			return keys[i].Topic < keys[j].Topic
		}
		return keys[i].Partition < keys[j].Partition
	})
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	fmt.Fprintf(w, "%d\n%d\n", checkpointVersion, len(keys))
	for _, tp := range keys {
		fmt.Fprintf(w, "%s %d %d\n", tp.Topic, tp.Partition, c[tp])
	}
	w.Flush()
	return b.Bytes()
}

// loadOffsetCheckpoint reads an offset checkpoint; a missing file is empty.
func loadOffsetCheckpoint(path string) (offsetCheckpoint, error) {
	b, err := readCheckpointFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return offsetCheckpoint{}, nil
	}
	if err != nil {
		return offsetCheckpoint{}, err
	}
	c, err := parseOffsetCheckpoint(b)
	if err != nil {
		return offsetCheckpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// epochEntry says leader epoch Epoch starts at StartOffset.
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

func parseEpochCheckpoint(b []byte) ([]epochEntry, error) {
	rows, err := parseCheckpoint(b, 2)
	if err != nil {
		return nil, err
	}
	es := make([]epochEntry, 0, len(rows))
	for _, r := range rows {
		e, err1 := strconv.ParseInt(r[0], 10, 32)
		off, err2 := strconv.ParseInt(r[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || off < 0 {
			return nil, corruptionf("epoch checkpoint entry %q", strings.Join(r, " "))
		}
		if n := len(es); n > 0 && (int32(e) <= es[n-1].Epoch || off < es[n-1].StartOffset) {
			return nil, corruptionf("epoch checkpoint entry %q not increasing", strings.Join(r, " "))
		}
		es = append(es, epochEntry{Epoch: int32(e), StartOffset: off})
	}
	return es, nil
}

func encodeEpochCheckpoint(es []epochEntry) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(es))
	for _, e := range es {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.Bytes()
}
