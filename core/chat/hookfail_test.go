package chat

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// failingHooks fail on cue: a message "stuck" times out, "broken" raises
// an error; joins named "late" find the scripts busy, "crash" raise; every
// leave and rename fails.
func failingHooks() *testHooks {
	return &testHooks{
		join: func(u User) JoinResult {
			switch u.Name {
			case "late":
				return JoinResult{Err: &HookError{Reason: HookFailBusy, Err: errors.New("scripts busy")}}
			case "crash":
				return JoinResult{Err: &HookError{Reason: HookFailError, Err: errors.New("ban.lua:3: boom")}}
			}
			return JoinResult{}
		},
		message: func(u User, m *Message) MessageResult {
			switch m.Text {
			case "stuck":
				return MessageResult{Err: &HookError{Reason: HookFailTimeout, Err: errors.New("filter.lua:2: script time limit exceeded")}}
			case "broken":
				// What the hooks decided before failing: a replacement.
				return MessageResult{Replace: true, Text: "half-filtered", Err: errors.New("not a HookError")}
			case "/cmd":
				return MessageResult{Drop: true, Reason: "command /cmd failed", Err: &HookError{Reason: HookFailError, Err: errors.New("cmd.lua:1: oops")}}
			}
			return MessageResult{}
		},
		leave:  func(User) error { return &HookError{Reason: HookFailTimeout, Err: errors.New("leave timed out")} },
		rename: func(User, string) error { return &HookError{Reason: HookFailError, Err: errors.New("rename raised")} },
	}
}

// By default a hook that did not complete fails closed: the message is
// neither delivered nor stored and its sender is told why; a join is
// refused. Every failure is logged and counted.
func TestHookFailureFailsClosed(t *testing.T) {
	hist := newMemHistory()
	var logs lockedBuffer
	ts := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, failingHooks(), hist)

	a := ts.dial(t, "/chat/r?name=alice", "")
	a.expect("* alice joined")
	j := ts.dial(t, "/chat/r?name=jay", SubprotocolJSON)
	j.skipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	a.expect("* jay joined")

	a.send("stuck")
	a.expect("* message not sent: a server script took too long")
	j.send(`{"type":"message","text":"broken"}`)
	if e := j.expectEvent("error"); e.str("code") != "hook_failed" || e.str("text") != "message not sent: a server script failed" {
		t.Fatalf("error event %v", e)
	}
	a.send("/cmd")
	a.expect("* command /cmd failed")
	// Nothing of the above reached the room: the next line is the next
	// message.
	a.send("fine")
	a.expect("alice: fine")
	if e := j.expectEvent("message"); e.str("text") != "fine" {
		t.Fatalf("jay got %v, want only the message that passed", e)
	}
	if got := hist.all("r"); len(got) != 1 || got[0].Text != "fine" {
		t.Fatalf("stored %+v, want only \"fine\"", got)
	}

	late := ts.dial(t, "/chat/r?name=late", SubprotocolJSON)
	if e := late.expectEvent("error"); e.str("code") != "hook_failed" || e.str("text") != "join refused: the server's scripts are busy, try again" {
		t.Fatalf("error event %v", e)
	}
	late.expectClose(1013, "join refused: the server's scripts are busy, try again")
	crash := ts.dial(t, "/chat/r?name=crash", "")
	crash.expect("* join refused: a server script failed")
	crash.expectClose(1011, "join refused: a server script failed")

	if _, err := ts.srv.Rename(ts.srv.Users("r")[0].SessionID, "alicia"); err != nil {
		t.Fatal(err)
	}
	a.expect("* alice is now known as alicia")
	j.c.Close()
	a.expect("* jay left")

	want := []string{
		`moonchat_hook_failures_total{hook="message",reason="timeout"} 1`,
		`moonchat_hook_failures_total{hook="message",reason="error"} 2`,
		`moonchat_hook_failures_total{hook="join",reason="busy"} 1`,
		`moonchat_hook_failures_total{hook="join",reason="error"} 1`,
		`moonchat_hook_failures_total{hook="rename",reason="error"} 1`,
		`moonchat_hook_failures_total{hook="leave",reason="timeout"} 1`,
		`moonchat_hook_failures_total{hook="join",reason="timeout"} 0`,
		`moonchat_messages_dropped_total{reason="hook"} 3`,
	}
	eventually(t, "every failure counted", func() bool {
		_, body, _ := ts.get(t, "/metrics")
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	})
	for _, w := range []string{
		`msg="chat: message hook failed; message refused" room=r user=alice reason=timeout err="hook failed (timeout): filter.lua:2: script time limit exceeded"`,
		`msg="chat: join hook failed; join refused" room=r user=late reason=busy`,
		`msg="chat: leave hook failed; the member has left regardless" room=r user=jay reason=timeout`,
		`msg="chat: rename hook failed; the rename stands regardless" room=r user=alicia reason=error`,
	} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %s\nlog:\n%s", w, logs.String())
		}
	}
}

// With DeliverOnHookFailure ([scripting] on_failure = "deliver") the room
// carries on with what the hooks decided; failures are still counted.
func TestHookFailureDeliver(t *testing.T) {
	hist := newMemHistory()
	ts := startServer(t, Config{DeliverOnHookFailure: true}, failingHooks(), hist)
	late := ts.dial(t, "/chat/r?name=late", "")
	late.expect("* late joined")
	late.send("stuck")
	late.expect("late: stuck")
	late.send("broken")
	late.expect("late: half-filtered")
	late.send("/cmd") // a command is never chat text, failed or not
	late.expect("* command /cmd failed")
	if got := hist.all("r"); len(got) != 2 || got[0].Text != "stuck" || got[1].Text != "half-filtered" {
		t.Fatalf("stored %+v", got)
	}
	_, body, _ := ts.get(t, "/metrics")
	for _, w := range []string{
		`moonchat_hook_failures_total{hook="join",reason="busy"} 1`,
		`moonchat_hook_failures_total{hook="message",reason="timeout"} 1`,
		`moonchat_hook_failures_total{hook="message",reason="error"} 2`,
	} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("metrics lack %s", w)
		}
	}
}

// The leave hooks run at Shutdown for the members still connected are
// counted when they fail, like any other.
func TestHookFailureAtShutdownCounted(t *testing.T) {
	ts := startServer(t, Config{}, failingHooks(), nil)
	a := ts.dial(t, "/chat/r?name=alice", "")
	a.expect("* alice joined")
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	timeout := slices.Index(hookFailReasons[:], HookFailTimeout)
	if n := ts.srv.metrics.hookFailures[hookKindLeave][timeout].Load(); n != 1 {
		t.Fatalf("leave failures at shutdown counted %d, want 1", n)
	}
}
