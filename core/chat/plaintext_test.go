package chat

import (
	"strings"
	"testing"
)

// Tests of the plain-text line encoder and the text rules (docs/protocol.md,
// "Plain text"); the end-to-end ones are in plaintext_e2e_test.go.

func TestAppendPlainText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", "hello"},
		{"", ""},
		{"hi all\n* alice is now known as admin\nadmin: paste your password", "hi all ⏎ * alice is now known as admin ⏎ admin: paste your password"},
		{"a\r\nb\rc\nd", "a ⏎ b ⏎ c ⏎ d"},
		{"a\vb\fc", "a ⏎ b ⏎ c"},
		{"a\u0085b\u2028c\u2029d", "a ⏎ b ⏎ c ⏎ d"},
		{"tab\there", "tab here"},
		{"esc\x1b[2Jbell\a nul\x00 del\x7f", "esc\ufffd[2Jbell\ufffd nul\ufffd del\ufffd"},
		{"c1\u009b31m", "c1\ufffd31m"},
		{"bad \xff utf8 \xc3", "bad \ufffd utf8 \ufffd"},
		{"evil\u202etxt.exe", "eviltxt.exe"},
		{"\u2066a\u2069\u200e\u200f\u061c\u202a\u202b\u202c\u202d", "a"},
		{"emoji 😀 é ⏎", "emoji 😀 é ⏎"},
	} {
		if got := string(appendPlainText(nil, tc.in)); got != tc.want {
			t.Errorf("appendPlainText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTextProblem(t *testing.T) {
	for _, tc := range []struct{ text, why string }{
		{"hello", ""},
		{"multi\nline\r\nwith\ttab", ""},
		{"é 😀 \u202e", ""},
		{"\x00", "control character U+0000"},
		{"a\x1b[31m", "control character U+001B"},
		{"bell\a", "control character U+0007"},
		{"del\x7f", "control character U+007F"},
		{"c1 \u009b", "control character U+009B"},
		{"nel \u0085", "control character U+0085"},
	} {
		got := textProblem(tc.text)
		if tc.why == "" && got != "" || !strings.Contains(got, tc.why) {
			t.Errorf("textProblem(%q) = %q, want %q", tc.text, got, tc.why)
		}
	}
}

// The line rules cost a scan of each text, once per message and batch
// (the frame is shared by every plain member). Compare with
// BenchmarkAppendRaw, the copy the encoder did before.
func BenchmarkAppendPlainMessage(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"ascii", strings.Repeat("hello world, ", 8)},
		{"accents", strings.Repeat("héllo wörld, ", 8)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				buf = appendPlainMessage(buf[:0], "alice", bc.text)
			}
		})
	}
}

func BenchmarkAppendRaw(b *testing.B) {
	text := strings.Repeat("hello world, ", 8)
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		buf = append(append(append(buf[:0], "alice"...), ": "...), text...)
	}
}

// printableASCIIPrefix must never claim a byte outside 0x20–0x7E, in any
// position of a word.
func TestPrintableASCIIPrefix(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			s := []byte(strings.Repeat("a", 17))
			s[pos] = byte(c)
			n := printableASCIIPrefix(string(s))
			printable := c >= 0x20 && c < 0x7f
			if printable && n != len(s) || !printable && n > pos {
				t.Fatalf("byte %#x at %d: prefix %d", c, pos, n)
			}
		}
	}
}
