package chat

import "testing"

// TestPrefixedName: Config.GuestPrefix+name is shortened to fit the
// longest name, normalised like any name, and refused (the caller falls
// back to the usual variant) when it is no valid name.
func TestPrefixedName(t *testing.T) {
	for _, tc := range []struct {
		prefix, name string
		max          int
		want         string
		ok           bool
	}{
		{"guest-", "alice", 24, "guest-alice", true},
		{"~", "alice", 24, "~alice", true},
		{"guest-", "abcdefghijklmnopqrstuvwx", 24, "guest-abcdefghijklmnopqr", true},
		{"ｇ-", "alice", 24, "g-alice", true},                 // full-width prefix, normalised
		{"guest ", "alice", 24, "", false},                   // white space
		{"гость-", "alice", 24, "", false},                   // mixes Cyrillic and Latin
		{"a-very-long-guest-prefix", "alice", 24, "", false}, // no room left for the name
	} {
		got, ok := prefixedName(tc.prefix, tc.name, tc.max)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefixedName(%q, %q, %d) = %q, %v; want %q, %v", tc.prefix, tc.name, tc.max, got, ok, tc.want, tc.ok)
		}
	}
}
