package scripting

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestLimitsAPI: chat.limits(user) reads a member's flood limits as the
// host reports them; chat.limits(user, t) changes them (a field left out
// keeps its value) and returns true; what the host refuses (invalid
// limits, a member who left) is nil, err; a table that is not {rate,
// burst} with numbers raises.
func TestLimitsAPI(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
local function show(l) return l.rate .. "/" .. l.burst end
chat.on("message", function(msg)
  local u, a = msg.user, msg.text
  if a == "get" then return show(chat.limits(u)) end
  if a == "rate" then return tostring(chat.limits(u, {rate = 0.5})) .. " " .. show(chat.limits(u)) end
  if a == "both" then return tostring(chat.limits(u.session, {rate = 100, burst = 5})) .. " " .. show(chat.limits(u)) end
  if a == "negative" then local ok, err = chat.limits(u, {rate = -1}); return tostring(ok) .. " " .. err end
  if a == "gone" then local ok, err = chat.limits(99); return tostring(ok) .. " " .. err end
  if a == "typo" then chat.limits(u, {rat = 1}) end
  if a == "fraction" then chat.limits(u, {burst = 1.5}) end
  if a == "string" then chat.limits(u, {rate = "fast"}) end
  if a == "nottable" then chat.limits(u, 5) end
end)`})
	for _, tc := range []struct{ say, want string }{
		{"get", "10/20"},
		{"rate", "true 0.5/20"},
		{"both", "true 100/5"},
		{"negative", "nil invalid limits: rate -1"},
		{"gone", "nil no such user"},
	} {
		if got := r.say(alice, tc.say); got.Err != nil || !strings.HasPrefix(got.Text, tc.want) {
			t.Errorf("%s: %+v, want %q", tc.say, got, tc.want)
		}
	}
	if l := r.host.limits[alice.SessionID]; l != (chat.Limits{Rate: 100, Burst: 5}) {
		t.Errorf("host has %+v", l)
	}
	for say, want := range map[string]string{
		"typo":     "chat.limits: unknown field rat (want rate and burst)",
		"fraction": "chat.limits: burst must be a whole number, got 1.5",
		"string":   "chat.limits: rate must be a number (messages per second), got string",
		"nottable": "chat.limits: argument #2 must be a table",
	} {
		if got := r.say(alice, say); !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), want) {
			t.Errorf("%s: %+v, want a script error %q", say, got, want)
		}
	}
}

// TestLimitsOverTheWire: with the real chat server, a join handler that
// gives a suspicious guest less than the server's limits has that guest's
// second message refused with a flood error, while another member keeps
// the server's limits (and reads them with chat.limits).
func TestLimitsOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{"a.lua": `
chat.on("join", function(u)
  if u.name == "suspect" then assert(chat.limits(u, {rate = 0.001, burst = 1})) end
end)
chat.command("limits", function(user)
  local l = chat.limits(user)
  return l.rate .. "/" .. l.burst
end)`}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{FloodRate: 10, FloodBurst: 20, Clock: &chattest.Clock{}, Logger: slog.New(slog.DiscardHandler)}, e, nil)
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	readContaining(t, bob, "bob joined")
	suspect := ts.Dial(t, "/chat/lobby?name=suspect", "")
	readContaining(t, bob, "suspect joined")

	suspect.Send("one")
	suspect.Send("two")
	// The refusal is written at once, the message after its trip
	// through the room and the hooks: in either order.
	want := map[string]bool{"suspect: one": true, "* you are sending too fast; messages were dropped": true}
	for len(want) > 0 {
		got := suspect.Read()
		if strings.HasSuffix(got, "suspect: two") {
			t.Fatalf("the second message got through: %q", got)
		}
		delete(want, got)
	}
	bob.Send("/limits")
	readContaining(t, bob, "10/20")
	for _, s := range []string{"a", "b", "c"} {
		bob.Send(s)
		readContaining(t, bob, "bob: "+s)
	}
}
