package scripting

import (
	"log/slog"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// failScripts: a message hook that loops on "loop", a join hook (so joins
// need the Lua state).
var failScripts = map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "loop" then while true do end end
end)
chat.on("join", function(u)
  if u.name == "loopy" then while true do end end
end)
`}

// serveFailing runs the engine behind a chat server with cfg; the returned
// engine lets a test hold the Lua state.
func serveFailing(t *testing.T, cfg chat.Config) (string, *Engine) {
	t.Helper()
	e, err := New(t.Context(), Options{
		FS: scriptFS(failScripts),
		// Generous, so that a loaded machine does not make a trivial hook
		// miss its limit; the looping hooks take this long.
		HookTimeout: 500 * time.Millisecond,
		LockWait:    200 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	cfg.Logger = slog.New(slog.DiscardHandler)
	return chattest.Start(t, cfg, e, nil).WS, e
}

// A stuck or busy script does not open the gate (issue 10.12): a message
// whose hook hit the time limit is not delivered, its sender is told; while
// the Lua state is busy another room's message is refused, not let through,
// and a join is refused with 1013.
func TestStuckScriptFailsClosed(t *testing.T) {
	url, e := serveFailing(t, chat.Config{})
	a := chattest.Dial(t, url+"/chat/r?name=alice", "")
	a.Expect("* alice joined")
	b := chattest.Dial(t, url+"/chat/r?name=bob", "")
	b.Expect("* bob joined")
	a.Expect("* bob joined")

	a.Send("loop")
	a.Expect("* message not sent: a server script took too long")
	a.Send("fine")
	a.Expect("alice: fine")
	b.Expect("alice: fine") // not "alice: loop"

	c := chattest.Dial(t, url+"/chat/other?name=carol", "")
	c.Expect("* carol joined")
	e.sem <- struct{}{} // the Lua state is busy (as behind another room's slow hook)
	c.Send("while busy")
	c.Expect("* message not sent: the server's scripts are busy, try again")
	d := chattest.Dial(t, url+"/chat/other?name=dave", "")
	d.Expect("* join refused: the server's scripts are busy, try again")
	d.ExpectClose(1013)
	<-e.sem
	c.Send("after")
	c.Expect("carol: after")

	// A join hook that hits its time limit refuses the newcomer (1013).
	l := chattest.Dial(t, url+"/chat/r?name=loopy", "")
	l.Expect("* join refused: a server script took too long")
	l.ExpectClose(1013)
	a.Send("still here")
	a.Expect("alice: still here") // nobody joined in between
}

// [scripting] on_failure = "deliver" (chat.Config.DeliverOnHookFailure):
// the stuck hook's message is delivered, as before fail-closed existed.
func TestStuckScriptDeliverOption(t *testing.T) {
	url, _ := serveFailing(t, chat.Config{DeliverOnHookFailure: true})
	a := chattest.Dial(t, url+"/chat/r?name=alice", "")
	a.Expect("* alice joined")
	a.Send("loop")
	a.Expect("alice: loop")
}
