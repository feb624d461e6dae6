package scripting

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

func TestAPIFunctions(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 250e6, time.UTC)
	tests := []struct {
		name   string
		body   string // body of command /t (user = alice)
		answer string // what /t sends back to alice (its return value), "" = nothing
		calls  []hostCall
	}{
		{"send user table", `chat.send(user, "hi")`, "", []hostCall{{Method: "Send", ID: 1, Text: "hi"}}},
		{"send session number", `chat.send(2, 42)`, "", []hostCall{{Method: "Send", ID: 2, Text: "42"}}},
		{"broadcast", `chat.broadcast("dev", "hello dev")`, "", []hostCall{{Method: "Broadcast", Room: "dev", Text: "hello dev"}}},
		{"rename returns given name", `return chat.rename(user, "bob")`, "bob-2",
			[]hostCall{{Method: "Rename", ID: 1, Text: "bob"}, {Method: "Send", ID: 1, Text: "bob-2"}}},
		{"kick", `chat.kick(user, "out")`, "", []hostCall{{Method: "Kick", ID: 1, Text: "out"}}},
		{"kick without reason", `chat.kick({session = 2})`, "", []hostCall{{Method: "Kick", ID: 2}}},
		{"users", `local s = {} for i, u in ipairs(chat.users("lobby")) do s[i] = u.name .. "/" .. u.session .. "/" .. u.room .. "/" .. u.addr end return table.concat(s, " ")`,
			"alice/1/lobby/127.0.0.1:5001 bob/2/lobby/127.0.0.1:5002", nil},
		{"users of empty room", `return tostring(#chat.users("nowhere"))`, "0", nil},
		{"rooms", `return table.concat(chat.rooms(), ",")`, "lobby,dev", nil},
		{"history", `local s = {} for i, m in ipairs(chat.history("lobby", 2)) do s[i] = m.id .. m.room .. m.user .. m.text .. "@" .. string.format("%.3f", m.ts) end return table.concat(s, " ")`,
			"6lobbybobtwo@1795341600.250 7lobbyalicethree@1795341600.250", []hostCall{{Method: "History", Room: "lobby", N: 2}}},
		{"history default n", `chat.history("lobby")`, "", []hostCall{{Method: "History", Room: "lobby", N: 20}}},
		{"history capped n", `chat.history("lobby", 1e9)`, "", []hostCall{{Method: "History", Room: "lobby", N: maxHistory}}},
		{"redact", `chat.redact("lobby", 6)`, "", []hostCall{{Method: "Redact", Room: "lobby", N: 6}}},
		{"commands", `local s = {} for i, c in ipairs(chat.commands()) do s[i] = c.name .. "=" .. c.help .. "@" .. c.script end return table.concat(s, ",")`,
			"t=test@a.lua", nil},
		{"log", `chat.log("x", 1, true, nil) print("printed")`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, map[string]string{"a.lua": "chat.command('t', function(user, args)\n" + tt.body + "\nend, 'test')"})
			r.host.history = []chat.Message{
				{ID: 5, Room: "lobby", User: "alice", Text: "one", Time: t0},
				{ID: 6, Room: "lobby", User: "bob", Text: "two", Time: t0},
				{ID: 9, Room: "dev", User: "carol", Text: "elsewhere", Time: t0},
				{ID: 7, Room: "lobby", User: "alice", Text: "three", Time: t0},
			}
			res := r.say(alice, "/t")
			if res != (chat.MessageResult{Drop: true}) {
				t.Fatalf("result %+v (log: %s)", res, r.log.String())
			}
			want := tt.calls
			if tt.answer != "" && (len(want) == 0 || want[len(want)-1].Method != "Send") {
				want = append(append([]hostCall(nil), want...), hostCall{Method: "Send", ID: 1, Text: tt.answer})
			}
			if got := r.host.take(); !reflect.DeepEqual(got, want) {
				t.Fatalf("calls %v\nwant  %v\nlog: %s", got, want, r.log.String())
			}
		})
	}
}

func TestLogGoesToSlog(t *testing.T) {
	r := newRig(t, map[string]string{"greet.lua": `chat.log("hello", 42, nil, true) print("from print")`})
	out := r.log.String()
	for _, want := range []string{`level=INFO msg="hello 42 nil true" script=greet.lua`, `msg="from print" script=greet.lua`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestAPIErrors checks that bad arguments (the script's bug) become Lua
// errors with clear messages, which pcall can catch.
func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name, call, want string
	}{
		{"send bad user", `chat.send("alice", "x")`, "chat.send: argument #1 must be a user table or a session number, got string"},
		{"send table without session", `chat.send({}, "x")`, "argument #1 must be a user table"},
		{"send bad text", `chat.send(1, {})`, "chat.send: text must be a string, got table"},
		{"send too long", `chat.send(1, string.rep("x", 70000))`, "chat.send: text too long (70000 bytes"},
		{"redact bad id", `chat.redact("lobby", 1.5)`, "chat.redact: bad message id 1.5"},
		{"kv bad key", `chat.kv.set({}, "v")`, "chat.kv.set: key must be a string, got table"},
		{"kv empty key", `chat.kv.get("")`, "chat.kv.get: empty key"},
		{"kv bad value", `chat.kv.set("k", true)`, "chat.kv.set: value must be a string, got boolean"},
		{"kv value too long", `chat.kv.set("k", string.rep("v", 65537))`, "chat.kv.set: value too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRigOpts(t, Options{KV: failingKV{}, FS: scriptFS(map[string]string{"a.lua": `
chat.command("t", function(user)
  local ok, err = pcall(function() ` + tt.call + ` end)
  assert(not ok, "no error")
  return err
end)`})})
			r.say(alice, "/t")
			var calls []hostCall
			for _, c := range r.host.take() {
				if c.Method == "Send" {
					calls = append(calls, c)
				}
			}
			if len(calls) != 1 || calls[0].Method != "Send" {
				t.Fatalf("calls %v; log %s", calls, r.log.String())
			}
			// The message carries the caller's position and the reason.
			if got := calls[0].Text; !strings.HasPrefix(got, "a.lua:3: ") || !strings.Contains(got, tt.want) {
				t.Fatalf("error %q, want a.lua:3: ... %q", got, tt.want)
			}
		})
	}
}

// TestAPIFailuresReturnNilErr (issue 11.9): what can fail in the ordinary
// course of a chat — a member who left, a refused name, no history, a
// store error — returns nil and the reason instead of raising, and a
// success returns something other than nil.
func TestAPIFailuresReturnNilErr(t *testing.T) {
	tests := []struct {
		name, call, want string
	}{
		{"send to gone user", `chat.send(99, "x")`, "no such user"},
		{"broadcast refused", `chat.broadcast("closed", "x")`, "the server is shutting down"},
		{"action gone user", `chat.action(99, "waves")`, "no such user"},
		{"rename gone", `chat.rename(99, "x")`, "no such user"},
		{"rename refused", `chat.rename(1, "a b")`, "bad name"},
		{"kick gone", `chat.kick(99)`, "no such user"},
		{"history error", `chat.history("lobby", 5)`, "no history"},
		{"redact error", `chat.redact("lobby", 5)`, "no such message"},
		{"kv get store error", `chat.kv.get("k")`, "disk on fire"},
		{"kv set store error", `chat.kv.set("k", "v")`, "disk on fire"},
		{"kv set nil store error", `chat.kv.set("k", nil)`, "disk on fire"},
		{"kv delete store error", `chat.kv.delete("k")`, "disk on fire"},
		{"kv keys store error", `chat.kv.keys()`, "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRigOpts(t, Options{KV: failingKV{}, FS: scriptFS(map[string]string{"a.lua": `
chat.command("t", function(user)
  local n = select("#", ` + tt.call + `)
  local v, err = ` + tt.call + `
  return n .. "|" .. tostring(v) .. "|" .. tostring(err)
end)`})})
			r.host.histErr = errors.New("no history")
			r.host.redactErr = errors.New("no such message")
			r.host.broadcastErr = errors.New("the server is shutting down")
			if res := r.say(alice, "/t"); res.Err != nil {
				t.Fatalf("the call raised: %v", res.Err)
			}
			var got string
			for _, c := range r.host.take() {
				if c.Method == "Send" && c.ID == 1 {
					got = c.Text
				}
			}
			if want := "2|nil|" + tt.want; got != want {
				t.Fatalf("results %q, want %q", got, want)
			}
		})
	}
}

// TestAPISuccessResults: functions with nothing to return give true, so
// "local ok, err = chat.x(...)" reads the same for all of them.
func TestAPISuccessResults(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("t", function(user)
  local r = {}
  for _, v in ipairs({
    chat.send(user, "x"), chat.broadcast("lobby", "x"), chat.action(user, "waves"),
    chat.kick(2), chat.redact("lobby", 5), chat.kv.set("k", "v"),
    chat.kv.delete("k"), chat.kv.set("k", nil),
  }) do r[#r + 1] = tostring(v) end
  r[#r + 1] = chat.rename(user, "alicia")
  r[#r + 1] = tostring(chat.kv.get("nothing"))
  r[#r + 1] = tostring(select("#", chat.kv.get("nothing")))
  return table.concat(r, ",")
end)`})
	r.say(alice, "/t")
	calls := r.host.take()
	if last := calls[len(calls)-1]; last.Text != "true,true,true,true,true,true,true,true,alicia,nil,1" {
		t.Fatalf("results %q", last.Text)
	}
}

// failingKV fails every call except for keys starting with "k" on Set.
type failingKV struct{}

var errDisk = errors.New("disk on fire")

func (failingKV) Get(string, string) (string, bool, error) { return "", false, errDisk }
func (failingKV) Set(string, string, string) error         { return errDisk }
func (failingKV) Delete(string, string) error              { return errDisk }
func (failingKV) Keys(string) ([]string, error)            { return nil, errDisk }

func TestKV(t *testing.T) {
	kv := NewMemKV()
	files := map[string]string{
		"counter.lua": `
chat.command("count", function(user)
  local n = tonumber(chat.kv.get("n") or "0") + 1
  chat.kv.set("n", n)
  return "count " .. chat.kv.get("n")
end)
chat.command("keys", function(user)
  chat.kv.set("b", "2") chat.kv.set("a", "1") chat.kv.set("gone", "x")
  chat.kv.delete("gone") chat.kv.set("n", nil)
  return table.concat(chat.kv.keys(), ",") .. " " .. tostring(chat.kv.get("gone"))
end)`,
		"other.lua": `chat.command("other", function(user) return tostring(chat.kv.get("n")) end)`,
	}
	r := newRigOpts(t, Options{KV: kv, FS: scriptFS(files)})
	r.say(alice, "/count")
	r.say(alice, "/count")
	r.say(alice, "/other") // a different namespace
	want := []hostCall{{Method: "Send", ID: 1, Text: "count 1"}, {Method: "Send", ID: 1, Text: "count 2"}, {Method: "Send", ID: 1, Text: "nil"}}
	if got := r.host.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if v, ok, _ := kv.Get("counter.lua", "n"); !ok || v != "2" {
		t.Fatalf("stored n = %q, %v; want 2 in namespace counter.lua", v, ok)
	}
	// The values survive the engine: a new engine on the same KV sees them.
	r.e.Close()
	r2 := newRigOpts(t, Options{KV: kv, FS: scriptFS(files)})
	r2.say(alice, "/count")
	r2.say(alice, "/keys")
	want = []hostCall{{Method: "Send", ID: 1, Text: "count 3"}, {Method: "Send", ID: 1, Text: "a,b nil"}}
	if got := r2.host.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

// TestKVNamespaceFollowsRegistrant: a handler registered by one script
// uses that script's namespace even when called with another's data.
func TestKVNamespaceFollowsRegistrant(t *testing.T) {
	r := newRig(t, map[string]string{
		"a.lua": `chat.on("message", function(msg) chat.kv.set("last", msg.text) end)`,
		"b.lua": `chat.on("join", function(u) chat.kv.set("joined", u.name) end) chat.kv.set("loaded", "1")`,
	})
	r.say(alice, "hey")
	r.e.Join(t.Context(), bob)
	for _, c := range []struct{ ns, k, v string }{{"a.lua", "last", "hey"}, {"b.lua", "joined", "bob"}, {"b.lua", "loaded", "1"}} {
		if v, ok, _ := r.kv.Get(c.ns, c.k); !ok || v != c.v {
			t.Errorf("%s %s = %q, %v; want %q", c.ns, c.k, v, ok, c.v)
		}
	}
	if _, ok, _ := r.kv.Get("b.lua", "last"); ok {
		t.Error("a.lua's key leaked into b.lua's namespace")
	}
}

func TestBeforeBindHostIsNoop(t *testing.T) {
	e, err := New(t.Context(), Options{FS: scriptFS(map[string]string{"a.lua": `
chat.send(1, "x") chat.broadcast("lobby", "x") chat.kick(1)
assert(chat.rename(1, "zed") == "zed")
assert(#chat.users("lobby") == 0 and #chat.rooms() == 0 and #chat.history("lobby", 5) == 0)
chat.redact("lobby", 1)`})})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}
