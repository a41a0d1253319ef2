package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// allocFactor bounds the bytes that decoding a body of key may allocate per
// body byte. kmsg allocates an array of n elements only if n bytes remain,
// so a byte can be claimed once per nesting level: the sum of the sizes of
// every element type reachable from the request is an upper bound for a
// claim chain, doubled for the elements' own allocations, plus a constant
// for strings, string pointers and tag maps (a 3-byte tag costs a map entry).
func allocFactor(key int16) uint64 {
	allocFactorsOnce.Do(func() {
		allocFactors = make(map[int16]uint64)
		for _, k := range allKeys() {
			seen := make(map[reflect.Type]bool)
			var sum uintptr
			var walk func(reflect.Type)
			walk = func(ty reflect.Type) {
				if seen[ty] {
					return
				}
				seen[ty] = true
				switch ty.Kind() {
				case reflect.Struct:
					for i := range ty.NumField() {
						walk(ty.Field(i).Type)
					}
				case reflect.Slice:
					sum += ty.Elem().Size()
					walk(ty.Elem())
				case reflect.Pointer:
					walk(ty.Elem())
				}
			}
			walk(reflect.TypeOf(kmsg.RequestForKey(k)).Elem())
			allocFactors[k] = 2*uint64(sum) + 64
		}
	})
	return allocFactors[key]
}

var (
	allocFactorsOnce sync.Once
	allocFactors     map[int16]uint64
)

// allocBaseline is allocation allowed regardless of size: the request
// struct itself, error values, runtime noise.
const allocBaseline = 64 << 10

// decodeAllocs runs ParseHeader and DecodeBody on frame and returns the
// bytes allocated meanwhile (approximate: the whole process is counted).
func decodeAllocs(frame []byte) (key int16, allocated uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h, body, err := ParseHeader(frame)
	if err == nil {
		_, _ = DecodeBody(h, body)
	}
	runtime.ReadMemStats(&after)
	return h.Key, after.TotalAlloc - before.TotalAlloc
}

// seedFrames returns real encoded requests for every key and version kmsg
// knows (random contents), with their size prefixes.
func seedFrames(perVersion int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for _, key := range allKeys() {
		maxV := kmsg.RequestForKey(key).MaxVersion()
		for v := int16(0); v <= maxV; v++ {
			for range perVersion {
				req := kmsg.RequestForKey(key)
				fillRandom(rng, reflect.ValueOf(req), 0)
				req.SetVersion(v)
				out = append(out, encodeRequest(req, kmsg.StringPtr("fuzz"), 1))
			}
		}
	}
	return out
}

// FuzzParseRequest feeds arbitrary bytes through the request path: frame,
// header, body, for every key kmsg knows. Invariants: no panic, and
// header+body decoding allocates at most allocFactor(key) bytes per input
// byte plus allocBaseline.
func FuzzParseRequest(f *testing.F) {
	for i, frame := range seedFrames(1) {
		f.Add(frame)
		if i%4 == 0 { // partial frames: cut prefix, cut header, cut body
			for _, n := range []int{2, 6, 11, len(frame) / 2, len(frame) - 1} {
				if n > 0 && n < len(frame) {
					f.Add(frame[:n])
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := ReadFrame(bytes.NewReader(data), 1<<20, nil)
		if err != nil {
			return
		}
		key, allocated := decodeAllocs(frame)
		if limit := allocFactor(key)*uint64(len(frame)) + allocBaseline; allocated > limit {
			t.Fatalf("key %d: %d-byte frame allocated %d bytes (limit %d)", key, len(frame), allocated, limit)
		}
	})
}

// TestDecodeHugeArrayClaims measures the heap cost of the worst inputs we
// can construct cheaply: a real request of every key and version, with an
// array length (int32 or uvarint) planted at each offset claiming every
// remaining byte, followed by padding. kmsg must reject or decode them
// within the allocFactor bound.
func TestDecodeHugeArrayClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("slow-ish")
	}
	const pad = 8 << 10
	var worst float64
	var worstKey int16
	for _, frame := range seedFrames(1) {
		frame = frame[4:]
		for _, fill := range []byte{0x00, 0x01} {
			for i := 8; i < len(frame) && i < 48; i++ {
				for _, uvar := range []bool{false, true} {
					b := append([]byte(nil), frame...)
					b = append(b, bytes.Repeat([]byte{fill}, pad)...)
					claim := uint32(len(b) - i - 4)
					if uvar {
						b = append(b[:i:i], append(kbin.AppendUvarint(nil, claim), b[i+5:]...)...)
					} else {
						binary.BigEndian.PutUint32(b[i:], claim)
					}
					key, allocated := decodeAllocs(b)
					if limit := allocFactor(key)*uint64(len(b)) + allocBaseline; allocated > limit {
						t.Fatalf("key %d: %d bytes allocated %d (limit %d)", key, len(b), allocated, limit)
					}
					if r := float64(allocated) / float64(len(b)); r > worst {
						worst, worstKey = r, key
					}
				}
			}
		}
	}
	t.Logf("worst observed: key %d allocated %.1f bytes per input byte", worstKey, worst)
}

// TestKmsgTagCountSpin guards the patch in third_party/kmsg: a flexible
// request whose tagged-field count is a huge uvarint must stop decoding when
// the input ends. Unpatched kmsg v1.15.0 loops once per claimed tag (2^32-1
// of them: about a minute of CPU for a 7-byte ApiVersions v3 body).
func TestKmsgTagCountSpin(t *testing.T) {
	body := kbin.AppendUvarint([]byte{1, 1}, 1<<32-1) // two empty compact strings, then the count
	done := make(chan error, 1)
	go func() {
		_, err := DecodeBody(Header{Key: 18, Version: 3}, body)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("decoding a claimed 2^32-1 tagged fields did not stop at the end of the input (is third_party/kmsg's patch in place?)")
	}
}
