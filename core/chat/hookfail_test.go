package chat_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
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
func failingHooks() *chattest.Hooks {
	return &chattest.Hooks{
		OnJoin: func(u chat.User) chat.JoinResult {
			switch u.Name {
			case "late":
				return chat.JoinResult{Err: &chat.HookError{Reason: chat.HookFailBusy, Err: errors.New("scripts busy")}}
			case "crash":
				return chat.JoinResult{Err: &chat.HookError{Reason: chat.HookFailError, Err: errors.New("ban.lua:3: boom")}}
			}
			return chat.JoinResult{}
		},
		OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
			switch m.Text {
			case "stuck":
				return chat.MessageResult{Err: &chat.HookError{Reason: chat.HookFailTimeout, Err: errors.New("filter.lua:2: script time limit exceeded")}}
			case "broken":
				// What the hooks decided before failing: a replacement.
				return chat.MessageResult{Replace: true, Text: "half-filtered", Err: errors.New("not a HookError")}
			case "/cmd":
				return chat.MessageResult{Drop: true, Reason: "command /cmd failed", Err: &chat.HookError{Reason: chat.HookFailError, Err: errors.New("cmd.lua:1: oops")}}
			}
			return chat.MessageResult{}
		},
		OnLeave: func(chat.User) error {
			return &chat.HookError{Reason: chat.HookFailTimeout, Err: errors.New("leave timed out")}
		},
		OnRename: func(chat.User, string) error {
			return &chat.HookError{Reason: chat.HookFailError, Err: errors.New("rename raised")}
		},
	}
}

// By default a hook that did not complete fails closed: the message is
// neither delivered nor stored and its sender is told why; a join is
// refused. Every failure is logged and counted.
func TestHookFailureFailsClosed(t *testing.T) {
	hist := chattest.NewHistory()
	var logs lockedBuffer
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, failingHooks(), hist)

	a := ts.Dial(t, "/chat/r?name=alice", "")
	a.Expect("* alice joined")
	j := ts.Dial(t, "/chat/r?name=jay", chat.SubprotocolJSON)
	j.SkipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	a.Expect("* jay joined")

	a.Send("stuck")
	a.Expect("* message not sent: a server script took too long")
	j.Send(`{"type":"message","text":"broken"}`)
	if e := j.ExpectEvent("error"); e.Str("code") != "hook_failed" || e.Str("text") != "message not sent: a server script failed" {
		t.Fatalf("error event %v", e)
	}
	a.Send("/cmd")
	a.Expect("* command /cmd failed")
	// Nothing of the above reached the room: the next line is the next
	// message.
	a.Send("fine")
	a.Expect("alice: fine")
	if e := j.ExpectEvent("message"); e.Str("text") != "fine" {
		t.Fatalf("jay got %v, want only the message that passed", e)
	}
	if got := hist.All("r"); len(got) != 1 || got[0].Text != "fine" {
		t.Fatalf("stored %+v, want only \"fine\"", got)
	}

	late := ts.Dial(t, "/chat/r?name=late", chat.SubprotocolJSON)
	if e := late.ExpectEvent("error"); e.Str("code") != "hook_failed" || e.Str("text") != "join refused: the server's scripts are busy, try again" {
		t.Fatalf("error event %v", e)
	}
	late.ExpectCloseReason(1013, "join refused: the server's scripts are busy, try again")
	crash := ts.Dial(t, "/chat/r?name=crash", "")
	crash.Expect("* join refused: a server script failed")
	crash.ExpectCloseReason(1011, "join refused: a server script failed")

	if _, err := ts.Chat.Rename(ts.Chat.Users("r")[0].SessionID, "alicia"); err != nil {
		t.Fatal(err)
	}
	a.Expect("* alice is now known as alicia")
	j.Conn.Close()
	a.Expect("* jay left")

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
	chattest.Eventually(t, "every failure counted", func() bool {
		_, body, _ := ts.Get(t, "/metrics")
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
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{DeliverOnHookFailure: true}, failingHooks(), hist)
	late := ts.Dial(t, "/chat/r?name=late", "")
	late.Expect("* late joined")
	late.Send("stuck")
	late.Expect("late: stuck")
	late.Send("broken")
	late.Expect("late: half-filtered")
	late.Send("/cmd") // a command is never chat text, failed or not
	late.Expect("* command /cmd failed")
	if got := hist.All("r"); len(got) != 2 || got[0].Text != "stuck" || got[1].Text != "half-filtered" {
		t.Fatalf("stored %+v", got)
	}
	_, body, _ := ts.Get(t, "/metrics")
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
	ts := chattest.Start(t, chat.Config{}, failingHooks(), nil)
	a := ts.Dial(t, "/chat/r?name=alice", "")
	a.Expect("* alice joined")
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	if err := ts.Chat.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// /metrics still answers after Shutdown (the listener is the test's).
	want := `moonchat_hook_failures_total{hook="leave",reason="timeout"} 1` + "\n"
	if _, body, _ := ts.Get(t, "/metrics"); !strings.Contains(body, want) {
		t.Fatalf("leave failures at shutdown not counted once: /metrics lacks %q\n%s", want, body)
	}
}
