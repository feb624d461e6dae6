package scripting

import (
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/defaults"
)

// The default msg.lua (with nick.lua, quit.lua and wordfilter.lua) behind
// a real chat server: /msg reaches the other user in another room as
// "[dm] alice: hi" and the sender as "[dm to bob] alice: hi", is filtered
// by the word filter, a direct message's "/nick x" or "quit" is text and
// not a command, unknown names and usage are answered, and nobody else
// sees any of it.
func TestDirectOverTheWire(t *testing.T) {
	files := map[string]string{}
	for _, name := range []string{"msg.lua", "nick.lua", "quit.lua", "wordfilter.lua"} {
		src, err := fs.ReadFile(defaults.Scripts(), name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(src)
	}
	e, err := New(t.Context(), Options{
		FS:          scriptFS(files),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)
	alice := ts.Dial(t, "/chat/lobby?name=alice", "")
	alice.SkipUntil("* alice joined")
	carol := ts.Dial(t, "/chat/lobby?name=carol", "")
	carol.SkipUntil("* carol joined")
	bob := ts.Dial(t, "/chat/dev?name=bob", "")
	bob.SkipUntil("* bob joined")
	isDM := func(s string) bool { return strings.HasPrefix(s, "[dm") }

	alice.Send("/msg bob hi")
	if got := bob.SkipTo(isDM); got != "[dm] alice: hi" {
		t.Errorf("bob got %q", got)
	}
	if got := alice.SkipTo(isDM); got != "[dm to bob] alice: hi" {
		t.Errorf("alice got %q", got)
	}
	alice.Send("/msg bob what the heck")
	if got := bob.SkipTo(isDM); got != "[dm] alice: what the ****" {
		t.Errorf("bob got %q", got)
	}
	// Sent as direct messages, "/nick x" and "quit" are text: alice keeps
	// her name (the next line is still from alice) and her connection.
	alice.Send("/msg bob /nick x")
	if got := bob.SkipTo(isDM); got != "[dm] alice: /nick x" {
		t.Errorf("bob got %q", got)
	}
	alice.Send("/msg bob quit")
	if got := bob.SkipTo(isDM); got != "[dm] alice: quit" {
		t.Errorf("bob got %q", got)
	}
	// A plain-text client replies with /msg.
	bob.Send("/msg alice hey")
	if got := alice.SkipTo(func(s string) bool { return strings.HasPrefix(s, "[dm] ") }); got != "[dm] bob: hey" {
		t.Errorf("alice got %q", got)
	}
	alice.Send("/msg zed hi")
	if got := alice.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* no such user") }); !strings.Contains(got, "zed") {
		t.Errorf("alice got %q", got)
	}
	alice.Send("/msg bob")
	alice.SkipUntil("* usage: /msg NICK text")
	// The room saw none of it: carol's next chat line is alice's.
	alice.Send("still here")
	if got := carol.SkipTo(func(s string) bool { return strings.Contains(s, ": ") && !strings.HasPrefix(s, "* ") }); got != "alice: still here" {
		t.Errorf("carol got %q", got)
	}
}

// With [scripts.msg] guests = false, msg.lua's message handler refuses a
// guest's direct message however it is sent: a moonchat.v1 "direct"
// event gets a "dropped" error with the reason, /msg the reason as a
// notice, and the recipient gets nothing.
func TestDirectGuestsOffOverTheWire(t *testing.T) {
	src, err := fs.ReadFile(defaults.Scripts(), "msg.lua")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), Options{
		FS:            scriptFS(map[string]string{"msg.lua": string(src)}),
		ScriptOptions: ScriptOptions{"msg": {"guests": false}},
		HookTimeout:   5 * time.Second,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)
	bob := ts.Dial(t, "/chat/dev?name=bob", "")
	bob.SkipUntil("* bob joined")
	alice := ts.Dial(t, "/chat/lobby?name=alice", "moonchat.v1")
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "hi"})
	for {
		ev := alice.ReadEvent()
		if ev.Str("type") != "error" {
			continue
		}
		if ev.Str("code") != "dropped" || ev.Str("text") != "guests may not send direct messages here" {
			t.Errorf("alice got %v", ev)
		}
		break
	}
	plain := ts.Dial(t, "/chat/lobby?name=dana", "")
	plain.SkipUntil("* dana joined")
	plain.Send("/msg bob hi")
	plain.SkipUntil("* guests may not send direct messages here")
	bob.Send("marker")
	if got := bob.SkipTo(func(s string) bool { return strings.Contains(s, ": ") && !strings.HasPrefix(s, "* ") }); got != "bob: marker" {
		t.Errorf("bob got %q", got)
	}
}
