package utf8

import (
	"strings"
	"testing"
	stdutf8 "unicode/utf8"
)

func TestValidTable(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		// failAt is the number of bytes after which Write must already
		// report false (fail fast); -1 when the input is valid or only
		// incomplete.
		failAt int
	}{
		{"empty", "", true, -1},
		{"ascii", "hello, world 0123456789", true, -1},
		{"two byte", "\xc2\xa9", true, -1},
		{"three byte", "\xe2\x82\xac", true, -1},
		{"four byte", "\xf0\x9f\x98\x80", true, -1},
		{"max code point", "\xf4\x8f\xbf\xbf", true, -1},
		{"Hello-µ@ßöäüàá-UTF-8!!", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", true, -1},
		{"lone continuation", "\x80", false, 1},
		{"C0 overlong", "\xc0\xaf", false, 1},
		{"C1 overlong", "\xc1\xbf", false, 1},
		{"E0 overlong", "\xe0\x80\xaf", false, 2},
		{"surrogate", "\xed\xa0\x80", false, 2},
		{"F0 overlong", "\xf0\x8f\xbf\xbf", false, 2},
		{"above max", "\xf4\x90\x80\x80", false, 2},
		{"F5", "\xf5", false, 1},
		{"FF", "\xff", false, 1},
		{"truncated", "\xe2\x82", false, -1},
		{"ascii after lead", "\xe2a", false, 2},
		{"bad after long ascii", strings.Repeat("a", 37) + "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", false, 37 + 11 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid([]byte(tt.in)); got != tt.ok {
				t.Fatalf("Valid = %v, want %v", got, tt.ok)
			}
			if got := stdutf8.ValidString(tt.in); got != tt.ok {
				t.Fatalf("test table disagrees with unicode/utf8")
			}
			// Byte by byte: the first false must come exactly at failAt.
			var v Validator
			for i := 0; i < len(tt.in); i++ {
				ok := v.Write([]byte{tt.in[i]})
				if !ok {
					if tt.failAt != i+1 {
						t.Fatalf("failed after %d bytes, want %d", i+1, tt.failAt)
					}
					return
				}
			}
			if tt.failAt != -1 {
				t.Fatalf("never failed, want failure after %d bytes", tt.failAt)
			}
			if v.Complete() != tt.ok {
				t.Fatalf("Complete = %v, want %v", v.Complete(), tt.ok)
			}
		})
	}
}

// TestAgainstStdlib compares every split of many inputs with unicode/utf8.
func TestAgainstStdlib(t *testing.T) {
	inputs := []string{"κόσμε", "\xf0\x90\x80\x80abc", "abcdefgh\xe0\xa0\x80ijklmnop", "\xed\x9f\xbf", "\xee\x80\x80"}
	// All 1-3 byte strings over interesting bytes.
	bs := []byte{0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xf0, 0xf1, 0xf4, 0xf5, 0xff}
	for _, a := range bs {
		for _, b := range bs {
			for _, c := range bs {
				inputs = append(inputs, string([]byte{a, b, c}), string([]byte{a, b, c, 0x80}), string([]byte{a, b}))
			}
		}
	}
	for _, in := range inputs {
		want := stdutf8.ValidString(in)
		for cut := 0; cut <= len(in); cut++ {
			var v Validator
			ok := v.Write([]byte(in[:cut])) && v.Write([]byte(in[cut:])) && v.Complete()
			if ok != want {
				t.Fatalf("%x cut %d: got %v want %v", in, cut, ok, want)
			}
		}
	}
}

func FuzzValidator(f *testing.F) {
	f.Add([]byte("hello"), 2)
	f.Add([]byte("\xf0\x9f\x98\x80"), 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		var v Validator
		ok := v.Write(b[:cut]) && v.Write(b[cut:]) && v.Complete()
		if ok != stdutf8.Valid(b) {
			t.Fatalf("%x: got %v", b, ok)
		}
	})
}

func BenchmarkValidASCII(b *testing.B) {
	p := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		var v Validator
		v.Write(p)
	}
}

func BenchmarkValidMultibyte(b *testing.B) {
	p := []byte(strings.Repeat("κόσμε ünïcödé 日本語テキスト 😀 ", 100))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		var v Validator
		v.Write(p)
	}
}

func BenchmarkStdlibASCII(b *testing.B) {
	p := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		stdutf8.Valid(p)
	}
}

func BenchmarkStdlibMultibyte(b *testing.B) {
	p := []byte(strings.Repeat("κόσμε ünïcödé 日本語テキスト 😀 ", 100))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		stdutf8.Valid(p)
	}
}
