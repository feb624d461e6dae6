package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/defaults"
)

// directHost is a fakeHost that sends direct messages (chat.Directer) as
// the chat server's checks at call time would answer them: an unknown
// sender is ErrNoSuchUser, an unknown recipient ErrNoSuchRecipient, a
// text with control characters a wrapped ErrInvalidText; err, when set,
// is returned instead. It records Direct(sender, to, text) calls with the
// recipient in Room.
type directHost struct {
	*fakeHost
	err error
}

func (h *directHost) Direct(sessionID uint64, to, text string) error {
	if h.err != nil {
		return h.err
	}
	if !h.known(sessionID) {
		return chat.ErrNoSuchUser
	}
	if strings.ContainsAny(text, "\x00\x1b") {
		return fmt.Errorf("%w: control characters", chat.ErrInvalidText)
	}
	h.mu.Lock()
	found := false
	for _, u := range h.users {
		found = found || strings.EqualFold(u.Name, to)
	}
	h.mu.Unlock()
	if !found {
		return chat.ErrNoSuchRecipient
	}
	h.record(hostCall{Method: "Direct", ID: sessionID, Room: to, Text: text})
	return nil
}

var _ chat.Directer = (*directHost)(nil)

// directRig is a rig whose host is a directHost.
func directRig(t testing.TB, opts Options) (*rig, *directHost) {
	t.Helper()
	r := newRigOpts(t, opts)
	dh := &directHost{fakeHost: r.host}
	r.e.Bind(dh)
	return r, dh
}

// dm runs the message hook for a direct message from u to the user
// called to, as the chat server does: Message.To set, Room the
// conversation's key (not the sender's room).
func (r *rig) dm(u chat.User, to, text string) chat.MessageResult {
	return r.e.Message(context.Background(), u, &chat.Message{Room: chat.ConversationKey("acct-a", "acct-b"), User: u.Name, Text: text, Time: time.Now(), To: to})
}

// TestDirectFunction: chat.direct hands the message to Host.Direct and
// answers true, or nil and an error a script can show the sender.
func TestDirectFunction(t *testing.T) {
	r, dh := directRig(t, Options{FS: scriptFS(map[string]string{"a.lua": `
chat.command("t", function(user, args)
  local to, text = args:match("^(%S*) ?(.*)$")
  if to == "-" then to = "" end
  if to == "long" then to = string.rep("x", 300) end
  local ok, err = chat.direct(user, to, text)
  local res = "true"
  if ok ~= true then res = "nil, " .. tostring(err) end
  chat.kv.set("last", res)
  return res
end)
chat.command("bad", function(user, args)
  if args == "to" then chat.direct(user, {}, "hi") end
  if args == "text" then chat.direct(user, "bob", nil) end
  if args == "user" then chat.direct("alice", "bob", "hi") end
end)`})})
	answer := func(u chat.User, args string) string {
		t.Helper()
		r.host.take()
		if res := r.say(u, "/t "+args); res != (chat.MessageResult{Drop: true}) {
			t.Fatalf("/t %s → %+v", args, res)
		}
		for _, c := range r.host.take() {
			if c.Method == "Send" {
				return c.Text
			}
		}
		t.Fatalf("/t %s: no answer", args)
		return ""
	}
	if got := answer(alice, "bob hi there"); got != "true" {
		t.Errorf("to bob: %q", got)
	}
	r.host.take()
	r.say(alice, "/t Bob hi")
	if got, want := r.host.take(), []hostCall{{Method: "Direct", ID: 1, Room: "Bob", Text: "hi"}, {Method: "Send", ID: 1, Text: "true"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	for _, tc := range []struct {
		args string
		err  error // what the host returns, when set
		want string
	}{
		{"zed hi", nil, "nil, no such user: zed"},
		{"- hi", nil, "nil, no recipient given"},
		{"long hi", nil, "nil, no such user: " + strings.Repeat("x", maxNameBytes)},
		{"bob a\x1bb", nil, "nil, invalid text: control characters"},
		// The server's detail naming the user is kept; a wrap that does
		// not name them is worded as the sentinel.
		{"bob hi", fmt.Errorf("%w: bob is ambiguous (2 guests in other rooms)", chat.ErrNoSuchRecipient), "nil, no such user: bob is ambiguous (2 guests in other rooms)"},
		{"bob hi", fmt.Errorf("lookup: %w", chat.ErrNoSuchRecipient), "nil, no such user: bob"},
		{"bob hi", chat.ErrMuted, "nil, you are muted"},
		{"bob hi", chat.ErrServerClosed, "nil, the server is shutting down"},
	} {
		dh.err = tc.err
		if got := answer(alice, tc.args); got != tc.want {
			t.Errorf("/t %q (host: %v) → %q, want %q", tc.args, tc.err, got, tc.want)
		}
	}
	dh.err = nil
	// The sender has left: their own absence, not the recipient's.
	gone := chat.User{SessionID: 99, Name: "gone", Room: "lobby", Roles: []string{"guest"}}
	r.e.Message(context.Background(), gone, &chat.Message{Room: "lobby", User: "gone", Text: "/t bob hi"})
	if calls := dh.take(); len(calls) != 0 {
		t.Errorf("gone: calls %v", calls) // the answer cannot reach them either
	}
	if v, _, _ := r.kv.Get("a.lua", "last"); v != "nil, you are no longer connected" {
		t.Errorf("gone: %q", v)
	}
	// Wrong arguments are the script's bug: they raise.
	for _, args := range []string{"to", "text", "user"} {
		if res := r.say(alice, "/bad "+args); res.Err == nil || res.Reason != "command /bad failed" {
			t.Errorf("/bad %s → %+v", args, res)
		} else if !strings.Contains(res.Err.Error(), "chat.direct: ") {
			t.Errorf("/bad %s: %v", args, res.Err)
		}
	}
	if calls := dh.take(); len(calls) != 0 {
		t.Errorf("bad arguments: calls %v", calls)
	}

	// A host that does not send direct messages: nil, err.
	r.e.Bind(r.host)
	if got := answer(alice, "bob hi"); got != "nil, this server does not send direct messages" {
		t.Errorf("no Directer: %q", got)
	}
}

// TestDirectMessageHook: a direct message reaches the message handlers
// with msg.to set and msg.room the sender's room; its text is never a
// command; replace and drop work as for room messages; and nothing of a
// direct message (msg.to) is left on the table for the next message.
func TestDirectMessageHook(t *testing.T) {
	r, dh := directRig(t, Options{FS: scriptFS(map[string]string{"a.lua": `
chat.on("message", function(msg)
  chat.kv.set("seen", tostring(msg.to) .. "|" .. msg.room .. "|" .. msg.user.room .. "|" .. msg.user.name .. "|" .. msg.text)
  if msg.text == "drop me" then return false, "dropped: " .. tostring(msg.to) end
  if msg.text == "shout" then return "SHOUT" end
end)
chat.command("nick", function(user, args) chat.rename(user, args) end)
chat.command("quit", function(user) chat.kick(user, "bye") end)`})})
	seen := func() string {
		v, _, _ := r.kv.Get("a.lua", "seen")
		return v
	}
	if got := r.dm(alice, "carol", "hi"); got != (chat.MessageResult{}) {
		t.Errorf("dm hi → %+v", got)
	}
	if got, want := seen(), "carol|lobby|lobby|alice|hi"; got != want {
		t.Errorf("handler saw %q, want %q", got, want)
	}
	// "/nick x" and "/quit" sent to someone are text for them: handlers
	// see them, no command runs.
	for _, text := range []string{"/nick x", "/quit", "/nosuch"} {
		if got := r.dm(alice, "bob", text); got != (chat.MessageResult{}) {
			t.Errorf("dm %q → %+v", text, got)
		}
		if got, want := seen(), "bob|lobby|lobby|alice|"+text; got != want {
			t.Errorf("handler saw %q, want %q", got, want)
		}
	}
	if calls := dh.take(); len(calls) != 0 {
		t.Errorf("a direct message ran a command: %v", calls)
	}
	if got := r.dm(bob, "alice", "shout"); got != (chat.MessageResult{Text: "SHOUT", Replace: true}) {
		t.Errorf("replace → %+v", got)
	}
	if got := r.dm(carol, "alice", "drop me"); got != (chat.MessageResult{Drop: true, Reason: "dropped: alice"}) {
		t.Errorf("drop → %+v", got)
	}
	if got, want := seen(), "alice|dev|dev|carol|drop me"; got != want {
		t.Errorf("handler saw %q, want %q", got, want)
	}
	// The next room message has no msg.to, and its room is the message's.
	if got := r.say(bob, "plain"); got != (chat.MessageResult{}) {
		t.Errorf("room message → %+v", got)
	}
	if got, want := seen(), "nil|lobby|lobby|bob|plain"; got != want {
		t.Errorf("handler saw %q, want %q", got, want)
	}
	// A room message's commands still run.
	r.say(alice, "/nick x")
	if calls, want := dh.take(), []hostCall{{Method: "Rename", ID: 1, Text: "x"}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("room /nick: %v, want %v", calls, want)
	}
}

// TestDirectMessageNoHandlers: without message handlers a direct message
// passes as it is, even one that looks like a command.
func TestDirectMessageNoHandlers(t *testing.T) {
	r, dh := directRig(t, Options{FS: scriptFS(map[string]string{"a.lua": `
chat.command("nick", function(user, args) chat.rename(user, args) end)`})})
	if got := r.dm(alice, "bob", "/nick x"); got != (chat.MessageResult{}) {
		t.Errorf("dm /nick x → %+v", got)
	}
	if calls := dh.take(); len(calls) != 0 {
		t.Errorf("calls %v", calls)
	}
}

// TestDefaultScriptsDirect: the default scripts and direct messages —
// /msg sends one (and answers usage and errors), the word filter filters
// them, and a direct message's text is never a command nor a "quit".
func TestDefaultScriptsDirect(t *testing.T) {
	r, dh := directRig(t, Options{FS: defaults.Scripts()})
	tests := []struct {
		name  string
		res   chat.MessageResult
		calls []hostCall
		err   error // what Direct returns, when set
	}{
		{"/msg bob hi there", chat.MessageResult{Drop: true}, []hostCall{{Method: "Direct", ID: 1, Room: "bob", Text: "hi there"}}, nil},
		{"/msg carol  two  spaces ", chat.MessageResult{Drop: true}, []hostCall{{Method: "Direct", ID: 1, Room: "carol", Text: "two  spaces"}}, nil},
		{"/MSG bob x", chat.MessageResult{Drop: true}, []hostCall{{Method: "Direct", ID: 1, Room: "bob", Text: "x"}}, nil},
		{"/msg", chat.MessageResult{Drop: true, Reason: "usage: /msg NICK text"}, nil, nil},
		{"/msg bob", chat.MessageResult{Drop: true, Reason: "usage: /msg NICK text"}, nil, nil},
		{"/msg zed hi", chat.MessageResult{Drop: true, Reason: "no such user: zed"}, nil, nil},
		{"/msg bob hi", chat.MessageResult{Drop: true, Reason: "message to bob not sent: you are muted"}, nil, chat.ErrMuted},
	}
	for _, tt := range tests {
		dh.err = tt.err
		dh.take()
		if got := r.say(alice, tt.name); got != tt.res {
			t.Errorf("%q → %+v, want %+v", tt.name, got, tt.res)
		}
		if calls := dh.take(); !reflect.DeepEqual(calls, tt.calls) {
			t.Errorf("%q: calls %v, want %v", tt.name, calls, tt.calls)
		}
	}
	dh.err = nil

	// What /msg sent comes back through the hooks as a direct message.
	for _, tt := range []struct {
		text string
		res  chat.MessageResult
	}{
		{"what the heck", chat.MessageResult{Text: "what the ****", Replace: true}},
		{"/nick x", chat.MessageResult{}},
		{"/quit", chat.MessageResult{}},
		{"quit", chat.MessageResult{}},
		{"/msg carol psst", chat.MessageResult{}},
	} {
		if got := r.dm(alice, "bob", tt.text); got != tt.res {
			t.Errorf("dm %q → %+v, want %+v", tt.text, got, tt.res)
		}
	}
	if calls := dh.take(); len(calls) != 0 {
		t.Errorf("direct messages acted: %v", calls)
	}
	// Guests may send them by default.
	if got := r.dm(carol, "alice", "hello"); got != (chat.MessageResult{}) {
		t.Errorf("a guest's dm → %+v", got)
	}
}

// TestMsgGuestsOption: [scripts.msg] guests = false refuses guests'
// direct messages in the message hook (so every way of sending one),
// and only theirs; a value that is not a boolean stops the script.
func TestMsgGuestsOption(t *testing.T) {
	r, dh := directRig(t, Options{FS: defaults.Scripts(), ScriptOptions: decodeOptions(t, `
[scripts.msg]
guests = false`)})
	refused := chat.MessageResult{Drop: true, Reason: "guests may not send direct messages here"}
	if got := r.dm(alice, "bob", "hi"); got != refused {
		t.Errorf("guest's dm → %+v, want %+v", got, refused)
	}
	// A guest granted roles is still a guest.
	granted := alice
	granted.Roles = []string{"guest", "helper"}
	if got := r.dm(granted, "bob", "hi"); got != refused {
		t.Errorf("granted guest's dm → %+v", got)
	}
	member := chat.User{SessionID: 8, Name: "dana", Room: "lobby", ID: "u-dana", Roles: []string{"user"}}
	if got := r.dm(member, "alice", "hi heck"); got != (chat.MessageResult{Text: "hi ****", Replace: true}) {
		t.Errorf("account's dm → %+v", got)
	}
	// Room messages of guests are not affected.
	if got := r.say(alice, "hi"); got != (chat.MessageResult{}) {
		t.Errorf("guest's room message → %+v", got)
	}
	// /msg itself still hands the message over: the hook decides when it
	// comes back, whichever way it was sent.
	r.say(alice, "/msg bob hi")
	if calls, want := dh.take(), []hostCall{{Method: "Direct", ID: 1, Room: "bob", Text: "hi"}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}

	_, err := New(t.Context(), Options{FS: defaults.Scripts(), HookTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler),
		ScriptOptions: ScriptOptions{"msg": {"guests": "no"}}})
	if err == nil || !strings.Contains(err.Error(), "msg.lua") || !strings.Contains(err.Error(), "[scripts.msg] guests must be true or false") {
		t.Fatalf("guests as a string: %v", err)
	}
}
