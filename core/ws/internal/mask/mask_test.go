package mask

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// simple is the byte-at-a-time definition from RFC 6455 section 5.3.
func simple(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

func TestApplyMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for n := 0; n < 200; n++ {
		for pos := 0; pos < 4; pos++ {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			want := bytes.Clone(src)
			wp := simple(key, pos, want)
			got := bytes.Clone(src)
			gp := Apply(key, pos, got)
			if !bytes.Equal(got, want) || gp != wp {
				t.Fatalf("n=%d pos=%d: got %x/%d want %x/%d", n, pos, got, gp, want, wp)
			}
		}
	}
}

// TestApplySplit checks that masking a payload in arbitrary pieces, carrying
// the returned position, equals masking it whole (frames arrive split).
func TestApplySplit(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	src := []byte("Hello, masked WebSocket world! 0123456789abcdefghijklmnop")
	want := bytes.Clone(src)
	simple(key, 0, want)
	for cut := 0; cut <= len(src); cut++ {
		got := bytes.Clone(src)
		p := Apply(key, 0, got[:cut])
		Apply(key, p, got[cut:])
		if !bytes.Equal(got, want) {
			t.Fatalf("cut %d: mismatch", cut)
		}
	}
}

// The RFC 6455 section 5.7 example: "Hello" masked with 37 fa 21 3d.
func TestApplyRFCExample(t *testing.T) {
	b := []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58}
	Apply([4]byte{0x37, 0xfa, 0x21, 0x3d}, 0, b)
	if string(b) != "Hello" {
		t.Fatalf("got %q", b)
	}
}

func benchSizes() []int { return []int{16, 512, 4096, 65536} }

func BenchmarkApply(b *testing.B) {
	for _, n := range benchSizes() {
		buf := make([]byte, n)
		b.Run(itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				Apply([4]byte{1, 2, 3, 4}, 1, buf)
			}
		})
	}
}

// BenchmarkCopy is the yardstick for BenchmarkApply: a plain copy of the same
// number of bytes.
func BenchmarkCopy(b *testing.B) {
	for _, n := range benchSizes() {
		src, dst := make([]byte, n), make([]byte, n)
		b.Run(itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}

// BenchmarkSimple is the byte-at-a-time definition, to show what the word
// loop buys.
func BenchmarkSimple(b *testing.B) {
	for _, n := range benchSizes() {
		buf := make([]byte, n)
		b.Run(itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				simple([4]byte{1, 2, 3, 4}, 1, buf)
			}
		})
	}
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}
