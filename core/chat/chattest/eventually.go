package chattest

import (
	"slices"
	"testing"
	"time"
)

// Wait bounds every "should eventually happen" in tests that use this
// package. It is generous because test machines are shared and -race is
// slow; a test that passes never waits for it.
const Wait = 10 * time.Second

// Eventually polls cond until it holds, failing the test after Wait. It is
// for what must happen; a test never uses a wait to show that something
// does not happen (inject a clock instead).
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ApplyPresence applies a presence delta the way docs/protocol.md tells
// clients to: remove the left names, then add the joined ones not there.
func ApplyPresence(list, left, joined []string) []string {
	for _, n := range left {
		list = slices.DeleteFunc(list, func(x string) bool { return x == n })
	}
	for _, n := range joined {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}
