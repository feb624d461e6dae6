package chat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
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

// checkName checks a requested nickname of at most max characters and
// returns the name to display, which has the properties listed at
// nameTable (all but uniqueness), or an error wrapping ErrInvalidName that
// says why in words a user understands.
func checkName(name string, max int) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: "+format, append([]any{ErrInvalidName}, args...)...)
	}
	if name == "" {
		return bad("empty")
	}
	if !utf8.ValidString(name) {
		return bad("not UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > max {
		return bad("longer than %d characters", max)
	}
	if name[0] == '*' {
		return bad("must not start with '*'")
	}
	for _, r := range name {
		if why := badNameRune(r); why != "" {
			return bad("%s", why)
		}
		if r < utf8.RuneSelf {
			continue
		}
		// A compatibility character may become something the rules
		// forbid ("´" U+00B4 is a space and a combining accent after
		// NFKC, "：" a colon): blame the character the user typed.
		if n := norm.NFKC.String(string(r)); n != string(r) {
			for _, c := range n {
				if c == ':' || badNameRune(c) != "" {
					return bad("%s not allowed", describeRune(r))
				}
			}
		}
	}
	first, _ := utf8.DecodeRuneInString(name)
	if unicode.Is(unicode.M, first) {
		return bad("must not start with a combining mark")
	}
	enforced, err := precis.Nickname.String(name)
	if err != nil {
		for _, r := range name {
			if _, err := precis.Nickname.String(string(r)); err != nil {
				return bad("%s not allowed", describeRune(r))
			}
		}
		return bad("not allowed by the nickname rules (RFC 8266)")
	}
	// Re-check what enforcement produced: the display name must keep the
	// invariants whatever the mapping did (fail closed).
	if enforced == "" || utf8.RuneCountInString(enforced) > max {
		return bad("longer than %d characters once normalised", max)
	}
	if enforced[0] == '*' {
		return bad("must not start with '*'")
	}
	for _, r := range enforced {
		if r == ':' {
			return bad("':' not allowed")
		}
		if why := badNameRune(r); why != "" {
			return bad("%s", why)
		}
	}
	if scripts, ok := singleScript(enforced); !ok {
		return bad("mixes scripts (%s): use letters of one script", strings.Join(scripts, " and "))
	}
	if lookKey(enforced) == "" {
		return bad("nothing visible in it")
	}
	return enforced, nil
}

// badNameRune says why r cannot be part of a name, or "" when it can.
func badNameRune(r rune) string {
	switch {
	case r == utf8.RuneError:
		return "not UTF-8"
	case isBidiControl(r):
		return "bidi control character " + runeCode(r) + " not allowed"
	case unicode.IsControl(r):
		return "control character " + runeCode(r) + " not allowed"
	case unicode.IsSpace(r):
		return "white space not allowed"
	case r == ':':
		return "':' not allowed"
	case isInvisible(r):
		return "invisible character " + runeCode(r) + " not allowed"
	}
	return ""
}

// isBidiControl reports the characters that change the direction of the
// text around them (Unicode Bidi_Control): embeddings and overrides
// U+202A–202E, isolates U+2066–2069, the marks U+200E, U+200F and U+061C.
func isBidiControl(r rune) bool {
	return unicode.Is(unicode.Bidi_Control, r)
}

// isInvisible reports characters that show nothing where they stand:
// format characters (Cf: zero-width space and joiners, soft hyphen, …),
// the other default-ignorable code points (Hangul fillers U+115F, U+1160,
// U+3164, U+FFA0, the combining grapheme joiner, …), variation selectors,
// and U+2800, the blank braille pattern.
func isInvisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r) ||
		r == '\u2800'
}

// runeCode is "U+XXXX".
func runeCode(r rune) string { return fmt.Sprintf("U+%04X", r) }

// describeRune names r for an error message: "'´' (U+00B4)".
func describeRune(r rune) string {
	if unicode.IsGraphic(r) && !unicode.Is(unicode.M, r) {
		return "'" + string(r) + "' (" + runeCode(r) + ")"
	}
	return runeCode(r)
}

// highlyRestrictive lists the sets of scripts that UTS #39 section 5.2
// allows together in one identifier besides a single script: Japanese,
// Chinese and Korean writing mix Han with their own scripts and Latin.
var highlyRestrictive = [...][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// singleScript reports whether the letters of name come from one script
// (Common and Inherited characters, such as digits, '-' and combining
// marks, go with any) or from a highly restrictive combination. When they
// do not, it returns the scripts found, in order of appearance.
func singleScript(name string) ([]string, bool) {
	var found []string
	for _, r := range name {
		sc := scriptOf(r)
		if sc == "" || sc == "Common" || sc == "Inherited" {
			continue
		}
		if !containsString(found, sc) {
			found = append(found, sc)
		}
	}
	if len(found) <= 1 {
		return found, true
	}
	for _, set := range highlyRestrictive {
		all := true
		for _, sc := range found {
			all = all && containsString(set, sc)
		}
		if all {
			return found, true
		}
	}
	return found, false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scriptOf returns the Unicode script of r ("" when none is listed).
func scriptOf(r rune) string {
	switch {
	case r < utf8.RuneSelf:
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return "Common"
	case unicode.Is(unicode.Latin, r):
		return "Latin"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}

// lookKey is what a reader sees of s: its UTS #39 confusables skeleton
// (which maps look-alikes such as Cyrillic "а" to Latin "a" and "m" to
// "rn"), without combining marks, so that "ádmin" looks like "admin".
func lookKey(s string) string {
	sk := confusables.Skeleton(s) // NFD
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, sk)
}

// nameKeys returns the keys under which a checked name is registered in a
// room: its look-alike key as typed, and that of its case-folded form
// (PRECIS Nickname comparison, RFC 8266 section 2.3). Two names collide when
// they share a key: "Admin" and "admin" (case), "ɑdmin" and "admin"
// (confusables), "ádmin" and "admin" (marks), but also "Il" and "ll" (in
// many fonts, capital I and small l look the same), which a case-folded
// comparison alone would miss.
func nameKeys(name string) []string {
	k1 := lookKey(name)
	folded, err := precis.Nickname.CompareKey(name)
	if err != nil {
		// Not reached for a checked name; fold by hand so that the name
		// still collides with its other cases.
		folded = strings.ToLower(name)
	}
	k2 := lookKey(folded)
	if k1 == k2 {
		return []string{k1}
	}
	return []string{k1, k2}
}

// nameTable indexes a room's member names by nameKeys: it is how a room
// knows which names are taken.
//
// Invariants of every name in it (a member's name):
//
//   - it was returned by checkName (or is a server-made guest-N), then
//     made unique by uniqueName against this table, under room.mu;
//   - it is valid UTF-8, 1 to max characters, in the form the PRECIS
//     Nickname profile (RFC 8266) enforces: NFKC, so full-width and other
//     compatibility forms are already replaced ("ａｄｍｉｎ" is shown as
//     "admin"). Case is kept as typed;
//   - it is one plain-text token that cannot be mistaken for wire syntax:
//     no white space, no ':' (the separator of "NICK: TEXT"), no leading '*'
//     (system notices), no control, format or bidi control character
//     (U+202A–202E, U+2066–2069, U+200E/F, U+061C could reorder the line
//     around it);
//   - nothing in it is invisible: no default-ignorable code point (Hangul
//     fillers such as U+3164, variation selectors, zero-width characters),
//     no blank-looking symbol (U+2800), and it does not start with a
//     combining mark;
//   - its letters come from one script, or from one of the combinations
//     that UTS #39 section 5.2 calls "highly restrictive" (Latin with Han
//     and Hiragana/Katakana, Bopomofo or Hangul): "аdmin" with a Cyrillic
//     "а" mixes Latin and Cyrillic and is refused;
//   - no two members' names look alike: each key maps to the one member
//     whose name has that key, and the names of two members never share a
//     key. Names are compared as a reader sees them, not byte by byte.
type nameTable map[string]*member

// taken reports whether name, or a name that looks like it, is used.
func (t nameTable) taken(name string) bool {
	for _, k := range nameKeys(name) {
		if _, ok := t[k]; ok {
			return true
		}
	}
	return false
}

// add registers name for m.
func (t nameTable) add(name string, m *member) {
	for _, k := range nameKeys(name) {
		t[k] = m
	}
}

// remove unregisters name if it is m's.
func (t nameTable) remove(name string, m *member) {
	for _, k := range nameKeys(name) {
		if t[k] == m {
			delete(t, k)
		}
	}
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
