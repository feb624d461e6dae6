package chat_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// goroutineStacks returns every goroutine's stack (runtime.Stack).
func goroutineStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// refreshGoroutines counts the goroutines running a token refresh: those
// with a frame of chat.(*Server).refresh (expiry.go).
func refreshGoroutines() int {
	return strings.Count(goroutineStacks(), "core/chat.(*Server).refresh(")
}

// refreshInFlight starts a server whose TokenRefresher blocks in Refresh
// until release is closed (then refuses the token), connects an account
// with expiring credentials and sends a token event; it returns once
// Refresh is running.
func refreshInFlight(t *testing.T, release <-chan struct{}) (*chattest.Server, *chattest.Client) {
	t.Helper()
	started := make(chan struct{}, 1)
	auth := refresher{authFunc(memberAuth), func(token, room string) (chat.Identity, error) {
		started <- struct{}{}
		<-release
		return chat.Identity{}, &chat.AuthError{Status: 401, Reason: "refused after the wait"}
	}}
	ts := chattest.Start(t, chat.Config{Authenticator: auth}, nil, nil)
	c := ts.Dial(t, "/chat/lobby?as=u-alice&ttl=1h", chat.SubprotocolJSON)
	c.ExpectEvent("welcome")
	c.SendJSON(map[string]string{"type": "token", "token": "tok-new"})
	select {
	case <-started:
	case <-time.After(chattest.Wait):
		t.Fatal("Refresh never called")
	}
	if n := refreshGoroutines(); n != 1 {
		t.Fatalf("%d refresh goroutines running, want 1", n)
	}
	return ts, c
}

// Shutdown waits for a token refresh in flight: with the connections
// closed and the rooms done, it is still waiting (in refreshGroup.wait,
// seen in the goroutine stacks) and has not returned while Refresh
// blocks; once Refresh returns, so does Shutdown, without error, and no
// refresh goroutine is left.
func TestShutdownAwaitsTokenRefresh(t *testing.T) {
	release := make(chan struct{})
	ts, c := refreshInFlight(t, release)
	done := make(chan error, 1)
	go func() { done <- ts.Chat.Shutdown(context.Background()) }()
	c.ExpectClose(1001)
	chattest.Eventually(t, "Shutdown waiting for the refresh", func() bool {
		return strings.Contains(goroutineStacks(), "core/chat.(*refreshGroup).wait(")
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a token refresh in flight", err)
	default:
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(chattest.Wait):
		t.Fatal("Shutdown did not return once the refresh ended")
	}
	chattest.Eventually(t, "no refresh goroutine left", func() bool { return refreshGoroutines() == 0 })
}

// When Shutdown's context ends with a refresh still blocked in Refresh
// (which takes no context), Shutdown returns an error saying so; the
// goroutine ends by itself once Refresh returns.
func TestShutdownDeadlineWithRefreshInFlight(t *testing.T) {
	release := make(chan struct{})
	ts, _ := refreshInFlight(t, release)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ts.Chat.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 token refresh(es) still running") {
		t.Errorf("Shutdown with a refresh in flight past its context: %v", err)
	}
	close(release)
	chattest.Eventually(t, "the refresh goroutine ended", func() bool { return refreshGoroutines() == 0 })
}
