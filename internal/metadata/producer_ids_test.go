package metadata

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestAllocateProducerIDsDurable: blocks are consecutive and a reopened
// store continues after the last block handed out.
func TestAllocateProducerIDsDurable(t *testing.T) {
	dir := t.TempDir()
	s1 := openStore(t, Config{Dir: dir})
	ctx := ctxT(t)
	var firsts []int64
	for range 3 {
		first, err := s1.AllocateProducerIDs(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		firsts = append(firsts, first)
	}
	if firsts[0] != 0 || firsts[1] != 1000 || firsts[2] != 2000 {
		t.Fatalf("blocks start at %v, want [0 1000 2000]", firsts)
	}
	_, err := s1.AllocateProducerIDs(ctx, 0)
	wantKerr(t, err, kerr.InvalidRequest)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, Config{Dir: dir})
	first, err := s2.AllocateProducerIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if first != 3000 {
		t.Fatalf("after reopen, block starts at %d, want 3000", first)
	}
}
