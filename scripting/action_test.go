package scripting

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// act runs the message hook for an action of u (what chat.action posts).
func (r *rig) act(u chat.User, text string) chat.MessageResult {
	return r.e.Message(context.Background(), u, &chat.Message{Room: u.Room, User: u.Name, Text: text, Time: time.Now(), Action: true})
}

func TestAPIAction(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("t", function(user, args)
  if args == "long" then
    chat.action(user, string.rep("x", 70000))
  elseif args == "gone" then
    -- A member who left is the ordinary course: nil and the reason.
    local ok, err = chat.action(99, "waves")
    return tostring(ok) .. ": " .. err
  else
    chat.action(user, "waves")
  end
end)`})
	if res := r.say(alice, "/t"); res != (chat.MessageResult{Drop: true}) {
		t.Fatalf("result %+v (log: %s)", res, r.log.String())
	}
	if got, want := r.host.take(), []hostCall{{Method: "Action", ID: 1, Text: "waves"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if res := r.say(alice, "/t gone"); res.Err != nil || !res.Drop {
		t.Errorf("/t gone: result %+v", res)
	}
	if got, want := r.host.take(), []hostCall{{Method: "Send", ID: 1, Text: "nil: no such user"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("/t gone: calls %v, want %v", got, want)
	}
	for args, why := range map[string]string{"long": "chat.action: text too long"} {
		res := r.say(alice, "/t "+args)
		// Where the failure is reported (the result or the log) is the
		// engine's business; that it names chat.action's reason is ours.
		if said := fmt.Sprintf("%+v", res) + r.log.String(); !res.Drop || !strings.Contains(said, why) {
			t.Errorf("/t %s: result %+v, want the command to fail with %q", args, res, why)
		}
		if calls := r.host.take(); len(calls) != 0 {
			t.Errorf("/t %s: calls %v", args, calls)
		}
	}
}

// An action goes through the message handlers, marked msg.action, and its
// text is never a command: "/me /quit" must not run /quit.
func TestActionReachesMessageHandlers(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("quit", function(user) chat.kick(user, "bye") end)
chat.on("message", function(msg)
  return msg.text .. " action=" .. tostring(msg.action)
end)`})
	if got := r.act(alice, "/quit now"); got != (chat.MessageResult{Text: "/quit now action=true", Replace: true}) {
		t.Fatalf("action: %+v (log: %s)", got, r.log.String())
	}
	if calls := r.host.take(); len(calls) != 0 {
		t.Fatalf("an action's text ran as a command: %v", calls)
	}
	// The next message gets a clean msg table.
	if got := r.say(alice, "hi"); got != (chat.MessageResult{Text: "hi action=nil", Replace: true}) {
		t.Fatalf("message after an action: %+v", got)
	}
}

// The default scripts: /me posts an action, and "/me quit" does not quit.
func TestDefaultMeAndQuit(t *testing.T) {
	r := defaultRig(t)
	if got := r.say(bob, "/me waves"); got != (chat.MessageResult{Drop: true}) {
		t.Fatalf("/me: %+v", got)
	}
	if got, want := r.host.take(), []hostCall{{Method: "Action", ID: 2, Text: "waves"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("/me calls %v, want %v", got, want)
	}
	if got := r.act(bob, "quit"); got != (chat.MessageResult{}) {
		t.Fatalf("action quit: %+v", got)
	}
	if calls := r.host.take(); len(calls) != 0 {
		t.Fatalf("the action \"quit\" made bob quit: %v", calls)
	}
	// The word filter applies to actions too.
	if got := r.act(bob, "says darn"); got != (chat.MessageResult{Text: "says ****", Replace: true}) {
		t.Fatalf("filtered action: %+v", got)
	}
}

func TestHistoryMarksActions(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("t", function(user)
  local s = {}
  for i, m in ipairs(chat.history("lobby", 5)) do s[i] = m.text .. "=" .. tostring(m.action) end
  return table.concat(s, " ")
end)`})
	r.host.history = []chat.Message{
		{ID: 1, Room: "lobby", User: "alice", Text: "hi"},
		{ID: 2, Room: "lobby", User: "alice", Text: "waves", Action: true},
	}
	r.say(alice, "/t")
	calls := r.host.take()
	if len(calls) != 2 || calls[1].Text != "hi=nil waves=true" {
		t.Fatalf("calls %v", calls)
	}
}
