package scripting

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestGrantRevoke: chat.grant and chat.revoke go to Host.Grant and
// Host.Revoke; the server's refusals come back as nil, err; the user table
// given is updated at once, and later hook calls (which get their users
// from the server) see the change.
func TestGrantRevoke(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
local function show(user) return table.concat(user.roles, ",") .. ";" .. tostring(chat.has_role(user, "mod")) end
chat.command("op", function(user, args)
  local ok, err = chat.grant(user, args)
  return tostring(ok) .. ";" .. tostring(err) .. ";" .. show(user)
end)
chat.command("deop", function(user, args)
  local ok, err = chat.revoke(user, args)
  return tostring(ok) .. ";" .. tostring(err) .. ";" .. show(user)
end)
chat.command("opsession", function(user, args)
  return tostring(chat.grant(tonumber(args), "mod"))
end)
chat.command("bad", function(user)
  local out = {}
  for _, f in ipairs({
    function() return chat.grant(user) end,
    function() return chat.grant(user, 5) end,
    function() return chat.grant("x", "mod") end,
    function() return chat.revoke(user, string.rep("r", 300)) end,
  }) do
    local ok, err = pcall(f)
    out[#out + 1] = ok and "ok" or tostring(err):match("chat%.%a+: [^\n]*")
  end
  return table.concat(out, "|")
end)
chat.on("message", function(msg) return show(msg.user) end)`})

	r.say(alice, "/op mod")
	if got := reply(t, r); got != "true;nil;guest,mod;true" {
		t.Errorf("/op mod: %q", got)
	}
	// The next message comes with the member as the server has it now.
	if got := r.say(r.host.user(alice.SessionID), "hi"); got.Text != "guest,mod;true" {
		t.Errorf("message after the grant: %+v", got)
	}
	r.say(alice, "/op mod") // held already: not an error
	if got := reply(t, r); got != "true;nil;guest,mod;true" {
		t.Errorf("second /op mod: %q", got)
	}
	r.say(r.host.user(alice.SessionID), "/deop mod")
	if got := reply(t, r); got != "true;nil;guest;false" {
		t.Errorf("/deop mod: %q", got)
	}
	if got := r.say(r.host.user(alice.SessionID), "hi"); got.Text != "guest;false" {
		t.Errorf("message after the revoke: %+v", got)
	}
	r.say(alice, "/op user")
	if got := reply(t, r); got != "nil;"+chat.ErrBuiltinRole.Error()+";guest;false" {
		t.Errorf("/op user: %q", got)
	}
	r.say(alice, "/deop guest")
	if got := reply(t, r); got != "nil;"+chat.ErrBuiltinRole.Error()+";guest;false" {
		t.Errorf("/deop guest: %q", got)
	}
	r.say(alice, "/opsession 99")
	if got := reply(t, r); got != "nil" {
		t.Errorf("/opsession of a member who left: %q", got)
	}
	r.say(alice, "/opsession 2")
	if got := reply(t, r); got != "true" {
		t.Errorf("/opsession 2: %q", got)
	}
	if u := r.host.user(bob.SessionID); !reflect.DeepEqual(u.Roles, []string{"guest", "mod"}) {
		t.Errorf("bob's roles on the host: %v", u.Roles)
	}
	r.say(alice, "/bad")
	parts := strings.Split(reply(t, r), "|")
	if len(parts) != 4 {
		t.Fatalf("/bad: %v", parts)
	}
	for i, want := range []string{"chat.grant: argument #2", "chat.grant: argument #2", "chat.grant: argument #1", "chat.revoke: role too long"} {
		if !strings.HasPrefix(parts[i], want) {
			t.Errorf("/bad[%d] = %q, want %q…", i, parts[i], want)
		}
	}
}

// reply returns the text of the one Send a command's answer made, among
// the other host calls (Grant, Revoke) it made.
func reply(t *testing.T, r *rig) string {
	t.Helper()
	var sends []string
	for _, c := range r.host.take() {
		if c.Method == "Send" {
			sends = append(sends, c.Text)
		}
	}
	if len(sends) != 1 {
		t.Fatalf("sends = %q, want one", sends)
	}
	return sends[0]
}

// TestGrantInMessageHook: a grant on msg.user shows in that handler's
// table but not in the next message's table until the server says so;
// the cached msg.user.roles is not corrupted.
func TestGrantInMessageHook(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "op" then chat.grant(msg.user, "mod") end
  return table.concat(msg.user.roles, ",")
end)`})
	if got := r.say(alice, "op"); got.Text != "guest,mod" {
		t.Errorf("op: %+v", got)
	}
	// alice as the caller had her before the grant: the handler sees what
	// the server says, not what the last handler did to the table.
	if got := r.say(alice, "x"); got.Text != "guest" {
		t.Errorf("x with the old roles: %+v", got)
	}
	if got := r.say(r.host.user(alice.SessionID), "x"); got.Text != "guest,mod" {
		t.Errorf("x with the server's roles: %+v", got)
	}
}

// TestGrantOverTheWire: with the real chat server as the host, a role
// chat.grant gives is in user.roles at the member's next message, and
// gone after chat.revoke; a built-in role is refused with the server's
// error.
func TestGrantOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{"a.lua": `
local function change(user, args, fn, what)
  for _, u in ipairs(chat.users(user.room)) do
    if u.name == args then
      local ok, err = fn(u, "mod")
      if not ok then return "refused: " .. err end
      return args .. " " .. what
    end
  end
  return "no " .. args
end
chat.command("op", function(user, args) return change(user, args, chat.grant, "opped") end)
chat.command("deop", function(user, args) return change(user, args, chat.revoke, "deopped") end)
chat.command("builtin", function(user) local _, err = chat.grant(user, "user"); return "refused: " .. err end)
chat.on("message", function(msg) return msg.text .. " roles=" .. table.concat(msg.user.roles, ",") .. "|" end)`}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)
	alice := ts.Dial(t, "/chat/lobby?name=alice", "")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	readContaining(t, alice, "bob joined")

	bob.Send("before")
	readContaining(t, bob, "bob: before roles=guest|")
	// Each step waits for the command's answer before bob speaks: the
	// change is made by then.
	alice.Send("/op bob")
	readContaining(t, alice, "bob opped")
	bob.Send("hi")
	readContaining(t, bob, "bob: hi roles=guest,mod|")
	alice.Send("/deop bob")
	readContaining(t, alice, "bob deopped")
	bob.Send("bye")
	readContaining(t, bob, "bob: bye roles=guest|")
	alice.Send("/builtin")
	readContaining(t, alice, "refused: "+chat.ErrBuiltinRole.Error())
}

// TestHistoryOnBehalfOverTheWire: chat.history(room, n, user) reads as that
// user — a room the room rules keep from the user's roles is refused with
// the server's reason, and the same room reads for a user granted the role
// (and for chat.history without a user, which reads as the server).
func TestHistoryOnBehalfOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{"a.lua": `
chat.command("peek", function(user, room)
  local msgs, err = chat.history(room, 10, user)
  if not msgs then return "refused: " .. err end
  return "read " .. #msgs .. " from " .. room
end)
chat.command("peekserver", function(user, room)
  local msgs, err = chat.history(room, 10)
  if not msgs then return "refused: " .. err end
  return "server read " .. #msgs
end)
chat.command("op", function(user)
  assert(chat.grant(user, "staff"))
  return "opped"
end)`}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	rules, err := chat.NewRoomRules([]chat.RoomRule{
		{Pattern: "staff", Read: []string{"staff"}, Post: []string{"staff"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hist := chattest.NewHistory()
	if err := hist.Append(t.Context(), []*chat.Message{
		{Room: "staff", User: "boss", Text: "secret plan", Time: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler), RoomRules: rules}, e, hist)
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	readContaining(t, bob, "joined")

	bob.Send("/peek staff")
	readContaining(t, bob, "refused: not allowed: you may not read staff")
	bob.Send("/peekserver staff")
	readContaining(t, bob, "server read 1")
	bob.Send("/op")
	readContaining(t, bob, "opped")
	bob.Send("/peek staff")
	readContaining(t, bob, "read 1 from staff")
}
