package chat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRoomLength bounds room names (docs/protocol.md).
const maxRoomLength = 32

// ValidRoomName reports why room is not a valid room name: 1-32 characters
// from A-Z a-z 0-9 - _ . (nil when it is valid).
func ValidRoomName(room string) error {
	if room == "" {
		return fmt.Errorf("%w: empty", ErrInvalidRoom)
	}
	if len(room) > maxRoomLength {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidRoom, maxRoomLength)
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: only A-Z a-z 0-9 - _ . allowed", ErrInvalidRoom)
		}
	}
	return nil
}

// validName reports why name is not a valid nickname of at most max
// characters (nil when it is valid). The rules keep the plain-text format
// unambiguous: no white space or control characters (a name is one token),
// no ':' (the separator of "NICK: TEXT"), no leading '*' (system notices).
func validName(name string, max int) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	}
	if n := utf8.RuneCountInString(name); n > max {
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidName, max)
	}
	if name[0] == '*' {
		return fmt.Errorf("%w: must not start with '*'", ErrInvalidName)
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("%w: control characters not allowed", ErrInvalidName)
		case unicode.IsSpace(r):
			return fmt.Errorf("%w: white space not allowed", ErrInvalidName)
		case r == ':':
			return fmt.Errorf("%w: ':' not allowed", ErrInvalidName)
		}
	}
	return nil
}

// uniqueName returns name, or name with the smallest numeric suffix ("-2",
// "-3", ...) that taken does not report as used. The base is shortened
// (by characters) when the suffix would push the name past max.
func uniqueName(name string, max int, taken func(string) bool) string {
	if !taken(name) {
		return name
	}
	for i := 2; ; i++ {
		suffix := "-" + strconv.Itoa(i)
		base := name
		if room := max - utf8.RuneCountInString(suffix); utf8.RuneCountInString(base) > room {
			base = truncateRunes(base, room)
		}
		if cand := base + suffix; !taken(cand) {
			return cand
		}
	}
}

// truncateRunes returns the first n characters of s.
func truncateRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// foldName is the key under which names are compared: "Alice" and "alice"
// are the same person to a reader, so they collide.
func foldName(name string) string { return strings.ToLower(name) }
