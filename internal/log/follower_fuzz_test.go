package log

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzAppendAsFollower: any bytes a fetch could carry either append exactly
// as given (the log grows by them, byte for byte, with the leader's
// offsets) or are refused with a package error and change nothing. It never
// panics.
func FuzzAppendAsFollower(f *testing.F) {
	b0 := withEpoch(testBatch(3, 10, 1), 4)
	f.Add(b0, false)
	f.Add(append(withBase(testBatch(2, 5, 1), 0), withBase(testBatch(1, 5, 1), 9)...), true)
	f.Add(idemBatch(2, 5, 0, 0, 1), false)
	f.Add(txnBatch(2, 5, 0, 0, 1), true)
	f.Add([]byte{}, false)
	dirs := map[bool]*Partition{}
	m := testManager(f, f.TempDir())
	f.Fuzz(func(t *testing.T, b []byte, compact bool) {
		p := dirs[compact]
		if p == nil {
			cfg := Config{}
			if compact {
				cfg = compactCfg
			}
			var err error
			if p, err = m.Open("fuzz", map[bool]int32{false: 0, true: 1}[compact], cfg); err != nil {
				t.Fatal(err)
			}
			dirs[compact] = p
		}
		// Rebase the input to the log end, as a fetch would start there.
		if len(b) >= 8 {
			b = withBase(b, p.LogEndOffset())
		}
		leo, size := p.LogEndOffset(), p.Size()
		res, err := p.AppendAsFollower(bytes.Clone(b))
		if err != nil {
			if !errors.Is(err, ErrCorruptBatch) && !errors.Is(err, ErrInvalidRecord) && !errors.Is(err, ErrUnexpectedAppendOffset) {
				t.Fatalf("unmarked error %v", err)
			}
			if p.LogEndOffset() != leo || p.Size() != size {
				t.Fatalf("refused append changed the log: end %d -> %d, size %d -> %d", leo, p.LogEndOffset(), size, p.Size())
			}
			return
		}
		if res.FirstOffset != leo || p.Size() != size+int64(len(b)) {
			t.Fatalf("append %+v: log end %d -> %d, size %d -> %d (input %d bytes)", res, leo, p.LogEndOffset(), size, p.Size(), len(b))
		}
		if got := readBatchBytes(t, p, res.FirstOffset); !bytes.HasPrefix(b, got) {
			t.Fatal("stored bytes differ from the fetched ones")
		}
	})
}
