package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text that reaches the operator's terminal may come from chat users
// (history, nicknames), from scripts or from a server's answers. A terminal
// acts on some characters instead of showing them: C0 controls such as ESC
// (escape sequences: colours, cursor moves, window titles, OSC 52 clipboard
// writes), BEL and NUL; DEL; the C1 controls U+0080-U+009F (U+009B is CSI
// on terminals that honour C1); and the Unicode bidi controls, which reorder
// what is shown (U+202E makes "txt.exe" look like "exe.txt"). Every
// terminal-facing output of the CLI passes through escapeLine, escapeText
// or escapeJSON, which show such characters as visible escapes instead.

// termUnsafe reports whether r must not reach a terminal raw.
func termUnsafe(r rune) bool {
	switch {
	case r < 0x20 || r == 0x7f: // C0, DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1
		return true
	case r == '\u2028' || r == '\u2029': // line and paragraph separators
		return true
	}
	// U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069.
	return unicode.Is(unicode.Bidi_Control, r)
}

// escapeLine returns s as one line for a terminal: \n, \r and \t as those
// two-character escapes, other C0 controls, DEL and bytes that are not
// UTF-8 as \xHH, C1, bidi and separator characters as \uHHHH, and a
// backslash as \\ (so that an escape in the output always stands for an
// escaped character, never for text someone typed). For message text,
// nicknames and room names.
func escapeLine(s string) string {
	return escapeTerm(s, false)
}

// escapeText is escapeLine for multi-line messages of our own (errors):
// \n and \t stay, and a backslash stays as it is.
func escapeText(s string) string {
	return escapeTerm(s, true)
}

func escapeTerm(s string, keepLines bool) string {
	clean := func(r rune, size int) bool {
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if keepLines && (r == '\n' || r == '\t') {
			return true
		}
		return !termUnsafe(r) && (keepLines || r != '\\')
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !clean(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s // the common case: nothing to escape, no allocation
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case clean(r, size):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// escapeJSON makes encoding/json output safe for a terminal. The encoder
// already writes C0 controls and U+2028/U+2029 as \u escapes (and invalid
// UTF-8 as U+FFFD), but leaves DEL, C1 and bidi controls raw; this writes
// them as \u escapes too. Outside strings JSON holds only ASCII punctuation,
// so every such character is inside a string, and the escaped document
// decodes to the same values.
func escapeJSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if termUnsafe(r) && r >= 0x20 {
			break
		}
		i += size
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+12)
	out = append(out, b[:i]...)
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if termUnsafe(r) && r >= 0x20 {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
