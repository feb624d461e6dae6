package store

import (
	"os"
	"testing"
)

// TestFreshFileSmall: a new, empty history — and one holding a single
// message — is a few pages, not the 16 MB bbolt preallocates when the
// initial mapping is larger than its allocation step (issue 10.19).
func TestFreshFileSmall(t *testing.T) {
	const limit = 64 << 10
	path := tempPath(t)
	db := openAt(t, path, Options{})
	size := func(when string) {
		t.Helper()
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > limit {
			t.Errorf("%s: the file is %d bytes, want at most %d", when, info.Size(), limit)
		}
		t.Logf("%s: %d bytes", when, info.Size())
	}
	size("fresh, open")
	appendText(t, db, "lobby", "ann", "hello")
	size("one message")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	size("closed")
}
