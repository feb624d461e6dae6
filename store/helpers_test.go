package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// TestMain runs a helper child's job when the binary was started as one
// (crash_test.go), and otherwise the tests; it then removes the benchmark
// fixture (built at most once per run).
func TestMain(m *testing.M) {
	if code, ok := helperMain(); ok {
		os.Exit(code)
	}
	code := m.Run()
	removeFixture()
	os.Exit(code)
}

// fakeClock is an injectable clock for retention tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data", "moonchat.db")
}

// openAt opens path and closes it at the end of the test.
func openAt(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 200 * time.Millisecond
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func openTemp(t testing.TB, opts Options) *DB {
	return openAt(t, tempPath(t), opts)
}

// appendText appends one message and returns it with its ID.
func appendText(t testing.TB, db *DB, room, user, text string) chat.Message {
	t.Helper()
	m := &chat.Message{Room: room, User: user, Text: text}
	if err := db.Append(context.Background(), []*chat.Message{m}); err != nil {
		t.Fatalf("Append(%s %s %q): %v", room, user, text, err)
	}
	return *m
}

// fill appends n messages "msg 1".."msg n" from user u to room.
func fill(t testing.TB, db *DB, room, u string, n int) []chat.Message {
	t.Helper()
	out := make([]chat.Message, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, appendText(t, db, room, u, fmt.Sprintf("msg %d", i)))
	}
	return out
}

func ids(msgs []chat.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// msgsOf builds one message per text for Append.
func msgsOf(room string, texts ...string) []*chat.Message {
	out := make([]*chat.Message, len(texts))
	for i, s := range texts {
		out[i] = &chat.Message{Room: room, User: "u", Text: s}
	}
	return out
}
