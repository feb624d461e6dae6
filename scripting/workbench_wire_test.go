package scripting

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestDisableOverTheWire: behind a real chat server, a message handler
// failing [scripting] disable_after times in a row has each of those
// messages refused (on_failure = "refuse"), then is disabled: a member
// with the admin role, in another room, is told through the Host, a
// member without it is not, and the next message goes through.
func TestDisableOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{
			"f.lua": `chat.on("message", function(msg) if msg.text:find("bad") then error("broken filter") end end)`,
			// /admin gives its caller the admin role for the session.
			"op.lua": `chat.command("admin", function(user) assert(chat.grant(user, "admin")) return "you are admin" end)`,
		}),
		HookTimeout:  5 * time.Second,
		DisableAfter: 2,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)

	root := ts.Dial(t, "/chat/ops?name=root", "")
	root.SkipUntil("* root joined")
	root.Send("/admin")
	root.SkipUntil("* you are admin")
	alice := ts.Dial(t, "/chat/lobby?name=alice", "")
	alice.SkipUntil("* alice joined")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")

	for range 2 {
		alice.Send("bad word")
		alice.SkipUntil("* message not sent: a server script failed")
	}
	notice := root.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* script f.lua:") })
	if !strings.Contains(notice, "failed 2 times in a row and is disabled until the scripts are reloaded") || !strings.Contains(notice, "broken filter") {
		t.Errorf("root told %q", notice)
	}
	alice.Send("bad again")
	// bob sees the message, and nothing about scripts before it.
	if got := bob.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* script") || strings.HasPrefix(s, "alice:") }); got != "alice: bad again" {
		t.Errorf("bob got %q, want alice's message (and no notice)", got)
	}
}

// TestShadowOverTheWire: behind a real chat server, a shadow filter that
// would drop a message and tell its sender changes nothing anyone sees;
// its decision is counted.
func TestShadowOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{
			"new.lua": `chat.on("message", function(msg)
  if msg.text:find("heck") then
    chat.send(msg.user, "shadow: please keep it clean")
    chat.broadcast(msg.room, "shadow: someone swore")
    return false, "language"
  end
end)`,
		}),
		Shadow:      []string{"new.lua"},
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
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	alice.Send("what the heck")
	alice.Send("fine")
	for _, c := range []*chattest.Client{alice, bob} {
		for _, want := range []string{"alice: what the heck", "alice: fine"} {
			if got := c.SkipTo(func(s string) bool { return strings.HasPrefix(s, "alice:") || strings.HasPrefix(s, "* shadow") }); got != want {
				t.Errorf("got %q, want %q (the shadow script reached the room)", got, want)
			}
		}
	}
	fams := gather(t, e)
	wantSample(t, fams, 1, "moonchat_script_shadow_decisions_total", "script", "new.lua", "decision", "drop")
	wantSample(t, fams, 1, "moonchat_script_shadow_decisions_total", "script", "new.lua", "decision", "pass")
}
