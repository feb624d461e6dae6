package scripting

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// authFunc is a chat.Authenticator double.
type authFunc func(r *http.Request, room string) (chat.Identity, bool, error)

func (f authFunc) Authenticate(r *http.Request, room string) (chat.Identity, bool, error) {
	return f(r, room)
}

// identityScript describes a user table as "id=...;roles=a,b;mod=bool".
const identityScript = `
local function desc(u)
  return "id=" .. tostring(u.id) .. ";roles=" .. table.concat(u.roles, ",") ..
    ";mod=" .. tostring(chat.has_role(u, "mod"))
end
chat.on("join", function(user) chat.send(user, "join:" .. desc(user)) end)
chat.on("message", function(msg) return msg.text .. " msg:" .. desc(msg.user) end)
`

// TestIdentityOverTheWire: join and message handlers see an account's id
// and roles (from a chat.Authenticator), and nil / {"guest"} for a guest,
// and chat.has_role answers from them.
func TestIdentityOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS:          scriptFS(map[string]string{"a.lua": identityScript}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{
		Logger: slog.New(slog.DiscardHandler),
		Authenticator: authFunc(func(r *http.Request, room string) (chat.Identity, bool, error) {
			if r.URL.Query().Get("acct") == "" {
				return chat.Identity{}, false, nil // a guest
			}
			return chat.Identity{ID: "u-alice", Name: "alice", Roles: []string{"mod"}}, true, nil
		}),
	}, e, nil)

	for _, tc := range []struct {
		name, path, want string
	}{
		{"account", "/chat/lobby?name=alice&acct=1", "id=u-alice;roles=user,mod;mod=true"},
		{"guest", "/chat/lobby?name=visitor", "id=nil;roles=guest;mod=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.Dial(t, tc.path, "")
			readContaining(t, c, "join:"+tc.want)
			c.Send("hi")
			readContaining(t, c, "hi msg:"+tc.want)
		})
	}
}

// readContaining reads frames until one contains want.
func readContaining(t *testing.T, c *chattest.Client, want string) {
	t.Helper()
	for i := 0; i < 20; i++ {
		if got := c.Read(); strings.Contains(got, want) {
			return
		}
	}
	t.Fatalf("no frame contains %q", want)
}

// TestHasRole: chat.has_role on user tables from the rig, and its
// argument errors.
func TestHasRole(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("has", function(user, args) return tostring(chat.has_role(user, args)) end)
chat.command("bad", function(user, args)
  local calls = {
    function() return chat.has_role() end,
    function() return chat.has_role(1, "user") end,
    function() return chat.has_role(user) end,
    function() return chat.has_role(user, 5) end,
    function() return chat.has_role({name = "x"}, "user") end,
  }
  local out = {}
  for i, f in ipairs(calls) do
    local ok, err = pcall(f)
    out[#out + 1] = ok and "ok" or tostring(err):match("chat%.has_role: [^\n]*")
  end
  return table.concat(out, "|")
end)`})
	acct := chat.User{SessionID: bob.SessionID, Name: "ann", Room: "lobby", ID: "u-ann", Roles: []string{"user", "mod"}}
	for _, tc := range []struct {
		u    chat.User
		role string
		want string
	}{
		{acct, "mod", "true"}, {acct, "user", "true"}, {acct, "guest", "false"}, {acct, "Mod", "false"},
		{alice, "guest", "true"}, {alice, "user", "false"},
	} {
		r.say(tc.u, "/has "+tc.role)
		if got := answer(t, r); got != tc.want {
			t.Errorf("%s has_role(%q) = %s, want %s", tc.u.Name, tc.role, got, tc.want)
		}
	}
	r.say(alice, "/bad")
	got := answer(t, r)
	parts := strings.Split(got, "|")
	if len(parts) != 5 {
		t.Fatalf("/bad answered %q", got)
	}
	for _, part := range parts {
		if !strings.HasPrefix(part, "chat.has_role: ") {
			t.Errorf("argument error not raised: %q (all: %q)", part, got)
		}
	}
}

// answer returns the text of the one Send a command's answer made.
func answer(t *testing.T, r *rig) string {
	t.Helper()
	calls := r.host.take()
	if len(calls) != 1 || calls[0].Method != "Send" {
		t.Fatalf("host calls = %v, want one Send", calls)
	}
	return calls[0].Text
}

// TestMessageUserIdentityReuse: msg.user.id and msg.user.roles follow the
// sender from message to message, a handler's changes to them (in place,
// or a field added to roles) do not reach the next message, and an
// account's message costs no allocation either.
func TestMessageUserIdentityReuse(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg)
  local u = msg.user
  local d = tostring(u.id) .. ";" .. table.concat(u.roles, ",") .. ";" .. tostring(u.roles.x)
  if msg.text == "spoil" then u.roles[1] = "admin"; u.roles[3] = "root"; u.id = "forged" end
  if msg.text == "field" then u.roles.x = "y" end
  return d
end)`})
	acct := chat.User{SessionID: bob.SessionID, Name: "ann", Room: "lobby", ID: "u-ann", Roles: []string{"user", "mod"}}
	for i, step := range []struct {
		u          chat.User
		text, want string
	}{
		{alice, "x", "nil;guest;nil"},
		{acct, "spoil", "u-ann;user,mod;nil"},
		{acct, "x", "u-ann;user,mod;nil"},
		{alice, "spoil", "nil;guest;nil"},
		{alice, "x", "nil;guest;nil"},
		{alice, "field", "nil;guest;nil"},
		{alice, "x", "nil;guest;nil"},
		{acct, "x", "u-ann;user,mod;nil"},
	} {
		if got := r.say(step.u, step.text); got.Text != step.want {
			t.Fatalf("step %d (%s %q): %q, want %q", i, step.u.Name, step.text, got.Text, step.want)
		}
	}
	r2 := newRig(t, map[string]string{"a.lua": `chat.on("message", function(msg) end)`})
	m := &chat.Message{Room: "lobby", User: "ann", Text: "hello"}
	ctx := t.Context()
	if n := testing.AllocsPerRun(200, func() { r2.e.Message(ctx, acct, m) }); n != 0 {
		t.Fatalf("%v allocations per account message, want 0", n)
	}
}
