package replica

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// localEpochs is a follower's EndOffsetForEpoch over a fixed cache and
// log end (Kafka's LeaderEpochFileCache.endOffsetFor).
func localEpochs(es []epochEntry, leo int64) func(int32) (int32, int64) {
	fl := &fakeLog{leo: leo, epochs: es}
	return fl.EndOffsetForEpoch
}

func TestTruncationTarget(t *testing.T) {
	// Follower: epoch 1 at 0, epoch 3 at 40, log end 70.
	follower := []epochEntry{{1, 0}, {3, 40}}
	cases := []struct {
		name   string
		es     []epochEntry
		leo    int64
		leader EpochEndOffset
		want   int64
		done   bool
	}{
		{"KIP-101: leader ends our epoch 3 earlier", follower, 70, EpochEndOffset{3, 55}, 55, true},
		{"leader has more of epoch 3", follower, 70, EpochEndOffset{3, 90}, 70, true},
		{"same end", follower, 70, EpochEndOffset{3, 70}, 70, true},
		{"leader never had epoch 3: ends at its epoch 2", follower, 70, EpochEndOffset{2, 45}, 40, false},
		{"leader epoch 1 ends before ours", follower, 70, EpochEndOffset{1, 30}, 30, true},
		{"leader's answer above our end", follower, 30, EpochEndOffset{1, 35}, 30, true},
		{"leader end unknown", follower, 70, EpochEndOffset{-1, -1}, 70, true},
		{"old protocol: epoch unknown", follower, 70, EpochEndOffset{-1, 50}, 50, true},
		{"follower has no epochs", nil, 70, EpochEndOffset{3, 20}, 20, true},
		{"leader epoch below all ours", []epochEntry{{4, 10}}, 70, EpochEndOffset{2, 5}, 5, true},
	}
	for _, c := range cases {
		got, done := truncationTarget(c.leo, localEpochs(c.es, c.leo), c.leader)
		if got != c.want || done != c.done {
			t.Errorf("%s: truncate to %d (done %v), want %d (done %v)", c.name, got, done, c.want, c.done)
		}
	}
}

func TestWholeBatches(t *testing.T) {
	mk := func(n int) []byte {
		b := make([]byte, n)
		binary.BigEndian.PutUint32(b[8:], uint32(n-12))
		return b
	}
	a, b := mk(70), mk(100)
	both := append(append([]byte{}, a...), b...)
	cases := []struct {
		name string
		in   []byte
		want int
	}{
		{"empty", nil, 0},
		{"two whole", both, 170},
		{"second cut", both[:150], 70},
		{"header cut", both[:75], 70},
		{"first cut", both[:50], 0},
	}
	for _, c := range cases {
		if got := wholeBatches(c.in); len(got) != c.want || !bytes.Equal(got, c.in[:c.want]) {
			t.Errorf("%s: %d bytes, want %d", c.name, len(got), c.want)
		}
	}
}
