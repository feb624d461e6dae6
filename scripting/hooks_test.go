package scripting

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

func TestMessageReturnConventions(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "replace" then return "replaced" end
  if msg.text == "drop" then return false end
  if msg.text == "why" then return false, "not here" end
  if msg.text == "true" then return true end
  if msg.text == "number" then return 42 end
  if msg.text == "same" then return "same" end
end)`})
	tests := []struct {
		in   string
		want chat.MessageResult
	}{
		{"hello", chat.MessageResult{}},
		{"replace", chat.MessageResult{Text: "replaced", Replace: true}},
		{"drop", chat.MessageResult{Drop: true}},
		{"why", chat.MessageResult{Drop: true, Reason: "not here"}},
		{"true", chat.MessageResult{}},
		{"number", chat.MessageResult{}},
		{"same", chat.MessageResult{}},
	}
	for _, tt := range tests {
		if got := r.say(alice, tt.in); got != tt.want {
			t.Errorf("Message(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestMessageFields(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg)
  return msg.user.name .. "|" .. msg.user.room .. "|" .. msg.user.session .. "|" .. msg.user.addr .. "|" .. msg.room .. "|" .. msg.text .. "|" .. tostring(msg.session)
end)`})
	got := r.say(bob, "hi")
	if want := "bob|lobby|2|127.0.0.1:5002|lobby|hi|nil"; got.Text != want {
		t.Fatalf("text = %q, want %q", got.Text, want)
	}
}

// TestMessageUserSameShape (issue 11.9): a message handler gets the sender
// as the same user table a join handler and a command get, so it can be
// handed to chat.send or chat.kick as it is.
func TestMessageUserSameShape(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
local function shape(u)
  local keys = {}
  for k, v in pairs(u) do
    if k == "roles" then v = table.concat(v, "+") end
    keys[#keys + 1] = k .. "=" .. tostring(v)
  end
  table.sort(keys)
  return table.concat(keys, ",")
end
chat.on("join", function(user) chat.kv.set("join", shape(user)) end)
chat.command("shape", function(user) chat.kv.set("command", shape(user)) end)
chat.on("message", function(msg)
  chat.kv.set("message", shape(msg.user))
  chat.send(msg.user, "seen")
end)`})
	r.e.Join(t.Context(), alice)
	r.say(alice, "/shape")
	r.say(alice, "hello")
	want := "addr=127.0.0.1:5001,name=alice,roles=guest,room=lobby,session=1"
	for _, k := range []string{"join", "command", "message"} {
		if v, _, _ := r.kv.Get("a.lua", k); v != want {
			t.Errorf("%s handler's user = %q, want %q", k, v, want)
		}
	}
	if calls := r.host.take(); len(calls) != 1 || calls[0].Method != "Send" || calls[0].ID != 1 {
		t.Fatalf("chat.send(msg.user) = %v", calls)
	}
}

func TestMessagePriorityAndChain(t *testing.T) {
	// Load order a.lua, b.lua; priorities decide; equal ones keep load order.
	r := newRig(t, map[string]string{
		"a.lua": `
chat.on("message", function(msg) return msg.text .. ">a0" end)
chat.on("message", function(msg) return msg.text .. ">a5" end, 5)`,
		"b.lua": `
chat.on("message", function(msg) return msg.text .. ">b0" end)
chat.on("message", function(msg)
  if msg.text == "stop>a5" then return false, "stopped" end
  return msg.text .. ">b10"
end, 10)
chat.on("message", function(msg) msg.text = "ignored in-place edit" end, 7)`,
	})
	if got := r.say(alice, "x"); got.Text != "x>b10>a5>a0>b0" || !got.Replace {
		t.Fatalf("chain = %+v, want x>b10>a5>a0>b0", got)
	}
	// A drop stops the chain: the a5 handler would have changed the text.
	if got := r.say(alice, "stop>a5"); got != (chat.MessageResult{Drop: true, Reason: "stopped"}) {
		t.Fatalf("drop = %+v", got)
	}
}

func TestDropStopsLaterHandlers(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg) return false end, 1)
chat.on("message", function(msg) chat.kv.set("ran", "yes") end)`})
	r.say(alice, "x")
	if _, ok, _ := r.kv.Get("a.lua", "ran"); ok {
		t.Fatal("handler after a drop ran")
	}
}

func TestJoinConventions(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("join", function(u)
  if u.name == "mallory" then return false, "go away" end
  if u.name == "silent" then return false end
  if u.name == "Alice" then return "alice_" end
end, 1)
chat.on("join", function(u)
  -- sees the name given by the handler before it
  if u.name == "alice_" then return u.name .. u.session .. u.room .. u.addr end
end)`})
	tests := []struct {
		name string
		want chat.JoinResult
	}{
		{"bob", chat.JoinResult{}},
		{"mallory", chat.JoinResult{Refuse: true, Reason: "go away"}},
		{"silent", chat.JoinResult{Refuse: true}},
		{"Alice", chat.JoinResult{Name: "alice_7lobby10.0.0.1:9"}},
	}
	for _, tt := range tests {
		got := r.e.Join(context.Background(), chat.User{SessionID: 7, Name: tt.name, Room: "lobby", Addr: "10.0.0.1:9"})
		if got != tt.want {
			t.Errorf("Join(%s) = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestLeaveAndRename(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("leave", function(u) chat.broadcast(u.room, "bye " .. u.name) end)
chat.on("rename", function(u, old, new)
  chat.broadcast(u.room, old .. "->" .. new .. "=" .. u.name)
end)`})
	r.e.Leave(context.Background(), alice)
	r.e.Rename(context.Background(), chat.User{SessionID: 2, Name: "robert", Room: "lobby"}, "bob")
	want := []hostCall{
		{Method: "Broadcast", Room: "lobby", Text: "bye alice"},
		{Method: "Broadcast", Room: "lobby", Text: "bob->robert=robert"},
	}
	if got := r.host.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestCommands(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("echo", function(u, args) return u.name .. " said " .. args end, "/echo TEXT")
chat.command("Deny", function(u, args) return false, "no: " .. args end)
chat.command("quiet", function(u, args) end)
chat.command("boom", function(u, args) error("kaput") end)
chat.command("help", function(u) end)
chat.on("message", function(msg) chat.kv.set("seen", msg.text) end)`})
	tests := []struct {
		in    string
		want  chat.MessageResult
		calls []hostCall
	}{
		{"/echo  hi there ", chat.MessageResult{Drop: true}, []hostCall{{Method: "Send", ID: 1, Text: "alice said hi there"}}},
		{"/ECHO x", chat.MessageResult{Drop: true}, []hostCall{{Method: "Send", ID: 1, Text: "alice said x"}}},
		{"/deny it", chat.MessageResult{Drop: true, Reason: "no: it"}, nil},
		{"/quiet", chat.MessageResult{Drop: true}, nil},
		{"/boom", chat.MessageResult{Drop: true, Reason: "command /boom failed"}, nil}, // Err checked below
		{"/nope a b", chat.MessageResult{Drop: true, Reason: "unknown command /nope — try /help", Code: "unknown_command"}, nil},
		// Not commands: they go through the message handlers.
		{"/ smile", chat.MessageResult{}, nil},
		{"//x", chat.MessageResult{}, nil},
		{"/", chat.MessageResult{}, nil},
	}
	for _, tt := range tests {
		got := r.say(alice, tt.in)
		if tt.in == "/boom" {
			if !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), "a.lua:5") || !strings.Contains(got.Err.Error(), "kaput") {
				t.Errorf("failed command's error %v lacks file:line and message", got.Err)
			}
			got.Err = nil
		}
		if got != tt.want {
			t.Errorf("%q: result %+v, want %+v", tt.in, got, tt.want)
		}
		if calls := r.host.take(); !reflect.DeepEqual(calls, tt.calls) {
			t.Errorf("%q: calls %v, want %v", tt.in, calls, tt.calls)
		}
	}
	if v, _, _ := r.kv.Get("a.lua", "seen"); v != "/" {
		t.Errorf("message handler saw %q last, want %q (commands must not reach it)", v, "/")
	}
	want := []Command{{Name: "boom", Script: "a.lua"}, {Name: "deny", Script: "a.lua"}, {Name: "echo", Help: "/echo TEXT", Script: "a.lua"}, {Name: "help", Script: "a.lua"}, {Name: "quiet", Script: "a.lua"}}
	if got := r.e.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("Commands() = %+v\nwant %+v", got, want)
	}
}

func TestUnknownCommandWithoutHelp(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `-- no commands`})
	if got := r.say(alice, "/foo"); got != (chat.MessageResult{Drop: true, Reason: "unknown command /foo", Code: "unknown_command"}) {
		t.Fatalf("got %+v", got)
	}
}

func TestRegistrationErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"event", `chat.on("mesage", function() end)`, `a.lua:1: chat.on: unknown event "mesage"`},
		{"not a function", `chat.on("message", 42)`, `a.lua:1:`},
		{"duplicate command", "chat.command('x', function() end)\nchat.command('x', function() end)", `a.lua:2: chat.command: /x is already registered by a.lua:1`},
		{"bad command name", `chat.command("9lives", function() end)`, `bad command name`},
		{"every too fast", `chat.every(0, function() end)`, `chat.every: interval must be`},
		{"late registration", `chat.on("message", function() chat.on("join", function() end) end)`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), Options{FS: scriptFS(map[string]string{"a.lua": tt.src})})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLateRegistrationFails(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function() chat.on("join", function() end) end)`})
	got := r.say(alice, "x")
	if got.Err == nil || !strings.Contains(got.Err.Error(), "can only be called while the script loads") {
		t.Fatalf("result %+v", got)
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in, name, args string
		ok             bool
	}{
		{"/nick bob", "nick", "bob", true},
		{"/who", "who", "", true},
		{"/me  waves  hello ", "me", "waves  hello", true},
		{"/me\twaves", "me", "waves", true},
		{"hello", "", "", false},
		{"/", "", "", false},
		{"/1", "", "", false},
		{"/ x", "", "", false},
	}
	for _, tt := range tests {
		name, args, ok := parseCommand(tt.in)
		if name != tt.name || args != tt.args || ok != tt.ok {
			t.Errorf("parseCommand(%q) = %q, %q, %v", tt.in, name, args, ok)
		}
	}
}

// TestMessageTableReuse: msg and msg.user are tables reused across
// messages (valid only during the call), yet nothing a handler adds to
// them, sets on them or changes in them reaches the next message, and
// each message sees its own fields.
func TestMessageTableReuse(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
local kept
chat.on("message", function(msg)
  if msg.text == "keep" then kept = msg; return end
  if msg.text == "tag" then msg.tag = "x"; return end
  if msg.text == "utag" then msg.user.tag = "x"; return end
  if msg.text == "rename" then msg.user.name = "mallory"; msg.user.session = 99; return end
  if msg.text == "meta" then setmetatable(msg, {}); return end
  if msg.text == "umeta" then setmetatable(msg.user, {}); return end
  if msg.text == "kept?" then return kept.user.name .. "|" .. kept.text end
  return msg.user.name .. "|" .. msg.room .. "|" .. msg.user.session .. "|" .. msg.text .. "|" .. tostring(msg.tag) .. "|" .. tostring(getmetatable(msg)) .. "|" .. tostring(msg.user.tag) .. "|" .. tostring(getmetatable(msg.user))
end)`})
	steps := []struct {
		u        chat.User
		in, want string
	}{
		{alice, "one", "alice|lobby|1|one|nil|nil|nil|nil"},
		{bob, "two", "bob|lobby|2|two|nil|nil|nil|nil"},
		{carol, "three", "carol|dev|3|three|nil|nil|nil|nil"},
		{alice, "tag", ""},
		{alice, "after tag", "alice|lobby|1|after tag|nil|nil|nil|nil"},
		{alice, "utag", ""},
		{alice, "after utag", "alice|lobby|1|after utag|nil|nil|nil|nil"},
		{alice, "rename", ""},
		{alice, "after rename", "alice|lobby|1|after rename|nil|nil|nil|nil"},
		{alice, "meta", ""},
		{bob, "after meta", "bob|lobby|2|after meta|nil|nil|nil|nil"},
		{alice, "umeta", ""},
		{bob, "after umeta", "bob|lobby|2|after umeta|nil|nil|nil|nil"},
		// A kept msg is the reused table: it shows the current message.
		{alice, "keep", ""},
		{bob, "kept?", "bob|kept?"},
	}
	for _, s := range steps {
		got := r.say(s.u, s.in)
		if s.want == "" {
			if got.Replace || got.Drop {
				t.Fatalf("%q: %+v", s.in, got)
			}
			continue
		}
		if got.Text != s.want {
			t.Fatalf("%q: text = %q, want %q", s.in, got.Text, s.want)
		}
	}
}

// TestMessageHookAllocs: the message path reuses msg and msg.user, so a
// message through a handler that does nothing allocates nothing (checking
// the reused tables once allocated a boxed key per field per message).
func TestMessageHookAllocs(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `chat.on("message", function(msg) end)`})
	m := &chat.Message{Room: "lobby", User: "alice", Text: "hello"}
	ctx := t.Context()
	if n := testing.AllocsPerRun(200, func() { r.e.Message(ctx, alice, m) }); n != 0 {
		t.Fatalf("%v allocations per message, want 0", n)
	}
}

// TestMessageTableReuseArraysAndActions: array items a handler puts in msg
// or msg.user, and an action's msg.action, do not reach the next message
// either, whether the table was new or reused when it happened.
func TestMessageTableReuseArraysAndActions(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "arr" then msg[1] = "x"; return end
  if msg.text == "uarr" then msg.user[1] = "x"; return end
  if msg.text == "far" then msg[7] = "x"; msg.user[true] = "x"; return end
  return tostring(msg[1]) .. tostring(msg.user[1]) .. tostring(msg[7]) .. tostring(msg.user[true]) .. tostring(msg.action)
end)`})
	const clean = "nilnilnilnilnil"
	for _, step := range []struct {
		action bool
		text   string
	}{{true, "first an action"}, {false, "x"}, {false, "arr"}, {false, "x"}, {false, "uarr"}, {false, "x"}, {false, "far"}, {false, "x"}, {true, "act"}, {false, "x"}} {
		var got chat.MessageResult
		if step.action {
			got = r.act(alice, step.text)
			if want := "nilnilnilniltrue"; got.Text != want {
				t.Fatalf("action %q: %+v, want %q", step.text, got, want)
			}
			continue
		}
		got = r.say(alice, step.text)
		if step.text == "x" && got.Text != clean {
			t.Fatalf("after the previous step: %q, want %q", got.Text, clean)
		}
	}
}
