package chat

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // the display name; "" = refused
		why  string // what the refusal says
	}{
		{"alice", "alice", ""},
		{"Zoë", "Zoë", ""},
		{"日本語", "日本語", ""},
		{"José", "José", ""},
		{"Алиса", "Алиса", ""},       // Cyrillic only
		{"tanakaさん", "tanakaさん", ""}, // Latin with Hiragana: highly restrictive
		{"김민준kim", "김민준kim", ""},     // Latin with Hangul
		{"bob_2", "bob_2", ""},
		{"b*t", "b*t", ""},
		{"👍🏽", "👍🏽", ""},
		{strings.Repeat("x", 24), strings.Repeat("x", 24), ""},
		{strings.Repeat("é", 24), strings.Repeat("é", 24), ""}, // characters, not bytes
		// PRECIS enforcement: the display name is the NFKC form.
		{"ａｄｍｉｎ", "admin", ""},
		{"ﬁx", "fix", ""},
		{"ｱﾘｽ", "アリス", ""},
		{"a\u0301dmin", "ádmin", ""}, // composed
		// Refused, with a reason a user understands.
		{strings.Repeat("x", 25), "", "longer than 24"},
		{"", "", "empty"},
		{"a b", "", "white space"},
		{"a\u3000b", "", "white space"},
		{"a\tb", "", "control character U+0009"},
		{"a\x00b", "", "control character U+0000"},
		{"bell\a", "", "control character U+0007"},
		{"a\x1b[31m", "", "control character U+001B"},
		{"a\u0085b", "", "control character U+0085"},
		{"a\u200bb", "", "invisible character U+200B"},
		{"ad\u3164min", "", "invisible character U+3164"}, // Hangul filler
		{"\u3164", "", "invisible character U+3164"},
		{"a\ufe0fb", "", "invisible character U+FE0F"},
		{"\u2800x", "", "invisible character U+2800"},
		{"a\u202eb", "", "bidi control character U+202E"},
		{"a\u2066b", "", "bidi control character U+2066"},
		{"a\u200fb", "", "bidi control character U+200F"},
		{"a\u061cb", "", "bidi control character U+061C"},
		{"\u0301a", "", "combining mark"},
		{"a´dmin", "", "'´' (U+00B4) not allowed"}, // NFKC: space + combining accent
		{"a:b", "", "':' not allowed"},
		{"a：b", "", "'：' (U+FF1A) not allowed"}, // full-width colon becomes ':'
		{"*bot", "", "'*'"},
		{"＊bot", "", "'*'"},
		{"\xff", "", "UTF-8"},
		{"аdmin", "", "mixes scripts (Cyrillic and Latin)"}, // Cyrillic а
		{"pаypal", "", "mixes scripts (Latin and Cyrillic)"},
		{"αlpha", "", "mixes scripts (Greek and Latin)"},
		{"abcא", "", "mixes scripts (Latin and Hebrew)"},
	} {
		got, err := checkName(tc.name, 24)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("checkName(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("checkName(%q) = %q, want refused (%s)", tc.name, got, tc.why)
			continue
		}
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("checkName(%q) = %v, want ErrInvalidName mentioning %q", tc.name, err, tc.why)
		}
		if !strings.HasPrefix(err.Error(), "invalid name: ") {
			t.Errorf("checkName(%q) = %q: want a user-facing text starting %q", tc.name, err, "invalid name: ")
		}
	}
}

// Names are compared as a reader sees them: with admin in the room, every
// look-alike counts as taken (the newcomer gets admin-2, or is refused
// when the name breaks a rule), and names that only look different are
// both allowed.
func TestLookAlikeNames(t *testing.T) {
	for _, tc := range []struct {
		present, asked string
		want           string // the name given; "" = refused by checkName
	}{
		{"admin", "admin", "admin-2"},
		{"admin", "Admin", "Admin-2"},
		{"admin", "ADMIN", "ADMIN-2"},
		{"admin", "ａｄｍｉｎ", "admin-2"},       // full-width
		{"admin", "a\u0301dmin", "ádmin-2"}, // combining acute accent
		{"admin", "ádmin", "ádmin-2"},       // precomposed
		{"admin", "adrnin", "adrnin-2"},     // rn looks like m
		{"admin", "аdmin", ""},              // Cyrillic а: mixed scripts
		{"admin", "ad\u3164min", ""},        // Hangul filler: invisible
		{"admin", "a´dmin", ""},             // spacing accent
		{"aeo", "аео", "аео-2"},             // all Cyrillic, looks Latin
		{"ll", "Il", "Il-2"},                // capital I looks like l
		{"bob0", "bobO", "bobO-2"},
		{"alice", "bob", "bob"},
		{"admin", "admins", "admins"},
		{"li", "ll", "ll"},
	} {
		present, err := checkName(tc.present, 24)
		if err != nil {
			t.Fatalf("checkName(%q): %v", tc.present, err)
		}
		table := nameTable{}
		table.add(present, &member{})
		asked, err := checkName(tc.asked, 24)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q with %q present: accepted as %q, want refused", tc.asked, tc.present, asked)
			}
			continue
		}
		if err != nil {
			t.Errorf("checkName(%q): %v", tc.asked, err)
			continue
		}
		if got := uniqueName(asked, 24, table.taken); got != tc.want {
			t.Errorf("%q with %q present: given %q, want %q", tc.asked, tc.present, got, tc.want)
		}
	}
}

func TestNameTableRemove(t *testing.T) {
	a, b := &member{}, &member{}
	table := nameTable{}
	table.add("Il", a)
	if !table.taken("ll") || !table.taken("il") {
		t.Fatal("Il does not hold ll and il")
	}
	table.remove("Il", b) // not b's: nothing happens
	if !table.taken("il") {
		t.Fatal("removing another member's name freed it")
	}
	table.remove("Il", a)
	if len(table) != 0 {
		t.Fatalf("table after remove: %v", table)
	}
}

func TestUniqueName(t *testing.T) {
	used := nameTable{}
	for _, tc := range []struct{ want, got string }{
		{"alice", "alice"}, {"alice", "alice-2"}, {"Alice", "Alice-3"}, {"alice-2", "alice-2-2"},
	} {
		got := uniqueName(tc.want, 24, used.taken)
		if got != tc.got {
			t.Fatalf("uniqueName(%q) = %q, want %q", tc.want, got, tc.got)
		}
		used.add(got, &member{})
	}
	// The suffix must fit into the length limit, counted in characters.
	long := strings.Repeat("é", 10)
	used = nameTable{}
	used.add(long, &member{})
	got := uniqueName(long, 10, used.taken)
	if got != strings.Repeat("é", 8)+"-2" {
		t.Fatalf("uniqueName(long) = %q", got)
	}
	if _, err := checkName(got, 10); err != nil {
		t.Fatalf("suffixed name invalid: %v", err)
	}
}

// What a join or rename spends on its name: the check, then the keys of
// a uniqueness test and of the registration.
func BenchmarkCheckNameAndKeys(b *testing.B) {
	for _, name := range []string{"alice", "Zoë", "ａｄｍｉｎ"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				n, err := checkName(name, 24)
				if err != nil {
					b.Fatal(err)
				}
				_ = nameKeys(n)
				_ = nameKeys(n)
			}
		})
	}
}
