package protocol

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// messageBytes returns what m puts on the wire, read through WriteTo.
func messageBytes(t testing.TB, m *Message) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := m.WriteTo(&b)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != m.Len() || int64(b.Len()) != m.Len() {
		t.Fatalf("WriteTo wrote %d (buffer %d), Len %d", n, b.Len(), m.Len())
	}
	return b.Bytes()
}

// tempFile creates a file holding data and returns it open for reading.
func tempFile(t testing.TB, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "segment.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fillRandom fills the exported fields of v (a pointer) with random values:
// slices of 0-2 elements, nil-or-set pointers, random bytes. Fields named
// Version are left alone.
func fillRandom(rng *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			if rng.IntN(3) == 0 {
				return
			}
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillRandom(rng, v.Elem(), depth)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Name == "Version" {
				continue
			}
			fillRandom(rng, v.Field(i), depth+1)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if rng.IntN(4) == 0 {
				return
			}
			b := make([]byte, rng.IntN(20))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			v.SetBytes(b)
			return
		}
		if depth > 6 {
			return
		}
		n := rng.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fillRandom(rng, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fillRandom(rng, v.Index(i), depth)
		}
	case reflect.String:
		const letters = "abcdefghijklmnopqrstuvwxyz-._"
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch rng.IntN(4) {
		case 0:
			v.SetInt(-1)
		case 1:
			v.SetInt(0)
		default:
			v.SetInt(int64(rng.Uint64()) >> (64 - v.Type().Bits() + 1))
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64() >> (64 - v.Type().Bits()))
	case reflect.Float64:
		v.SetFloat(rng.Float64())
	}
}
