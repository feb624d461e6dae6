package scripting

import (
	"log/slog"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
	cfg.FloodRate = -1
	return chattest.Start(t, cfg, e, nil).WS, e
}

// plainConn is a plain-text client.
type plainConn struct {
	t *testing.T
	c *websocket.Conn
}

func dialPlain(t *testing.T, url string) *plainConn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return &plainConn{t, c}
}

func (p *plainConn) send(text string) {
	p.t.Helper()
	if err := p.c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// expect reads the next frames and fails unless they are lines, in order.
func (p *plainConn) expect(lines ...string) {
	p.t.Helper()
	for _, want := range lines {
		_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := p.c.ReadMessage()
		if err != nil {
			p.t.Fatalf("read (want %q): %v", want, err)
		}
		if string(data) != want {
			p.t.Fatalf("got %q, want %q", data, want)
		}
	}
}

// expectClose reads until the connection closes and checks the close code.
func (p *plainConn) expectClose(code int) {
	p.t.Helper()
	for {
		_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := p.c.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, code) {
				p.t.Fatalf("closed with %v, want code %d", err, code)
			}
			return
		}
	}
}

// A stuck or busy script does not open the gate (issue 10.12): a message
// whose hook hit the time limit is not delivered, its sender is told; while
// the Lua state is busy another room's message is refused, not let through,
// and a join is refused with 1013.
func TestStuckScriptFailsClosed(t *testing.T) {
	url, e := serveFailing(t, chat.Config{})
	a := dialPlain(t, url+"/chat/r?name=alice")
	a.expect("* alice joined")
	b := dialPlain(t, url+"/chat/r?name=bob")
	b.expect("* bob joined")
	a.expect("* bob joined")

	a.send("loop")
	a.expect("* message not sent: a server script took too long")
	a.send("fine")
	a.expect("alice: fine")
	b.expect("alice: fine") // not "alice: loop"

	c := dialPlain(t, url+"/chat/other?name=carol")
	c.expect("* carol joined")
	e.sem <- struct{}{} // the Lua state is busy (as behind another room's slow hook)
	c.send("while busy")
	c.expect("* message not sent: the server's scripts are busy, try again")
	d := dialPlain(t, url+"/chat/other?name=dave")
	d.expect("* join refused: the server's scripts are busy, try again")
	d.expectClose(1013)
	<-e.sem
	c.send("after")
	c.expect("carol: after")

	// A join hook that hits its time limit refuses the newcomer (1013).
	l := dialPlain(t, url+"/chat/r?name=loopy")
	l.expect("* join refused: a server script took too long")
	l.expectClose(1013)
	a.send("still here")
	a.expect("alice: still here") // nobody joined in between
}

// [scripting] on_failure = "deliver" (chat.Config.DeliverOnHookFailure):
// the stuck hook's message is delivered, as before fail-closed existed.
func TestStuckScriptDeliverOption(t *testing.T) {
	url, _ := serveFailing(t, chat.Config{DeliverOnHookFailure: true})
	a := dialPlain(t, url+"/chat/r?name=alice")
	a.expect("* alice joined")
	a.send("loop")
	a.expect("alice: loop")
}
