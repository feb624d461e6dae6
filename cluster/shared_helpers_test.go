package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// The helpers of the key-value tests (state, presence, script KV, lease):
// nodes as Logs of their own on one NATS server, and appliers that record
// what they are told.

// openNode opens a Log for node name on url.
func openNode(t testing.TB, url, name string) *Log {
	t.Helper()
	cfg := testConfig(url)
	cfg.Node = name
	return openLog(t, cfg)
}

// recorder records calls as one line each ("stored ban r acct=x").
type recorder struct{ ch chan string }

func newRecorder() *recorder { return &recorder{ch: make(chan string, 100000)} }

func (r *recorder) add(format string, args ...any) { r.ch <- fmt.Sprintf(format, args...) }

func target(t chat.Target) string {
	return fmt.Sprintf("a=%s n=%s i=%s", t.Account, t.Name, t.Addr)
}

func (r *recorder) RestrictionStored(x chat.Restriction) {
	r.add("stored %s %q %s by=%s", x.Kind, x.Room, target(x.Target), x.By)
}
func (r *recorder) RestrictionRemoved(k chat.RestrictionKind, room string, t chat.Target) {
	r.add("removed %s %q %s", k, room, target(t))
}
func (r *recorder) RoomSettingsStored(room string, rs chat.RoomSettings) {
	r.add("settings %q topic=%q slow=%v", room, rs.Topic, rs.Slow)
}
func (r *recorder) NameOwnerStored(id, name string) { r.add("owner %s=%s", id, name) }
func (r *recorder) IgnoreListStored(account string, ignored []string) {
	r.add("ignore %s=[%s]", account, strings.Join(ignored, ","))
}
func (r *recorder) RemoteJoined(room string, e chat.PresenceEntry) {
	r.add("joined %s %s/%d %s [%s] acct=%s", room, e.Node, e.Session, e.Name, strings.Join(e.Keys, ","), e.Account)
}
func (r *recorder) RemoteLeft(room, node string, session uint64) {
	r.add("left %s %s/%d", room, node, session)
}

// expect reads lines until want arrives in order (other lines in between
// are allowed when skip is true), or fails after a bounded wait.
func (r *recorder) expect(t testing.TB, skip bool, want ...string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for _, w := range want {
		for {
			select {
			case got := <-r.ch:
				if got == w {
					goto next
				}
				if !skip {
					t.Fatalf("got %q, want %q", got, w)
				}
			case <-deadline:
				t.Fatalf("timed out waiting for %q", w)
			}
		}
	next:
	}
}

// run runs f in a goroutine until the test ends, and checks that it ended
// as cancelled.
func run(t testing.TB, f func(ctx context.Context) error) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled && err != ErrClosed {
				t.Errorf("ended with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("did not end after its context")
		}
	}
	t.Cleanup(stop)
	return stop
}
