package scripting

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Members of the moderation tests, besides alice, bob (guests in lobby)
// and carol (a guest in dev): mia moderates every room under the rules
// modRig sets, dana is an account without that role, root is an admin.
var (
	mia  = chat.User{SessionID: 4, Name: "mia", Room: "lobby", ID: "u-mia", Roles: []string{"user", "mod"}}
	dana = chat.User{SessionID: 5, Name: "dana", Room: "lobby", ID: "u-dana", Roles: []string{"user"}}
	root = chat.User{SessionID: 6, Name: "root", Room: "lobby", ID: "u-root", Roles: []string{"user", "admin"}}
)

// modRig is a rig whose room rules let the role "mod" moderate every room.
func modRig(t *testing.T, r *rig) *rig {
	t.Helper()
	rules, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "*", Read: []string{"*"}, Post: []string{"*"}, Moderate: []string{"mod"}}})
	if err != nil {
		t.Fatal(err)
	}
	r.host.mu.Lock()
	r.host.rules = rules
	r.host.users = append(r.host.users, mia, dana, root)
	r.host.mu.Unlock()
	return r
}

// run runs src as the body of a /t command for u and returns what the
// command returned (its notice or its refusal).
func (r *rig) run(t *testing.T, u chat.User, src string) string {
	t.Helper()
	res := r.say(u, "/t")
	if res.Err != nil {
		t.Fatalf("/t failed: %v\n%s", res.Err, r.log.String())
	}
	if res.Reason != "" {
		return res.Reason
	}
	for _, c := range r.host.take() {
		if c.Method == "Send" && c.ID == u.SessionID {
			return c.Text
		}
	}
	return ""
}

func luaCommand(src string) map[string]string {
	return map[string]string{"t.lua": "chat.command('t', function(user, args)\n" + src + "\nend)"}
}

func TestChatBanBindings(t *testing.T) {
	tests := []struct {
		name, src string
		want      string
		restrict  *chat.Restriction // what the host holds afterwards
		d         time.Duration
	}{
		{"guest by name, 10m", `return tostring(chat.ban("lobby", chat.users("lobby")[2], {duration = "10m", reason = "spam", by = user}))`,
			"true", &chat.Restriction{Kind: chat.KindBan, Room: "lobby", Target: chat.Target{Name: "bob"}, By: "mia (u-mia)", Reason: "spam"}, 10 * time.Minute},
		{"account by id, seconds", `return tostring(chat.mute("lobby", {session = 5, name = "dana", id = "u-dana"}, {duration = 90}))`,
			"true", &chat.Restriction{Kind: chat.KindMute, Room: "lobby", Target: chat.Target{Account: "u-dana"}, By: "t.lua"}, 90 * time.Second},
		{"address prefix, every room, 2d", `return tostring(chat.ban("", {addr = "203.0.113.0/24"}, {duration = "2d", by = "ops"}))`,
			"true", &chat.Restriction{Kind: chat.KindBan, Target: chat.Target{Addr: "203.0.113.0/24"}, By: "ops"}, 48 * time.Hour},
		{"until lifted", `return tostring(chat.ban("lobby", {account = "u-x"}))`,
			"true", &chat.Restriction{Kind: chat.KindBan, Room: "lobby", Target: chat.Target{Account: "u-x"}, By: "t.lua"}, 0},
		{"bad duration", `local ok, err = chat.ban("lobby", {name = "x"}, {duration = "10x"}) return tostring(ok) .. " " .. err`,
			`nil invalid duration "10x": want seconds, or a whole number and one of s, m, h, d, w (90, 10m, 2h, 7d; at most 3650d)`, nil, 0},
		{"negative duration", `local ok, err = chat.mute("lobby", {name = "x"}, {duration = -5}) return tostring(ok) .. " " .. err`,
			`nil invalid duration "-5": want seconds, or a whole number and one of s, m, h, d, w (90, 10m, 2h, 7d; at most 3650d)`, nil, 0},
		{"too long", `local ok, err = chat.ban("lobby", {name = "x"}, {duration = "3651d"}) return tostring(ok)`, "nil", nil, 0},
		{"bad address", `local ok, err = chat.ban("lobby", {addr = "203.0.113.x"}) return tostring(ok) .. " " .. err`,
			`nil invalid address "203.0.113.x": want an IP address or a CIDR prefix (203.0.113.7, 2001:db8::/48)`, nil, 0},
		{"bad room", `local ok, err = chat.ban("no room!", {name = "x"}) return tostring(ok)`, "nil", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := modRig(t, newRig(t, luaCommand(tt.src)))
			if got := r.run(t, mia, tt.src); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			list := r.host.restrictions
			if tt.restrict == nil {
				if len(list) != 0 {
					t.Errorf("restrictions %+v, want none", list)
				}
				return
			}
			if len(list) != 1 {
				t.Fatalf("restrictions %+v", list)
			}
			got := list[0]
			if d := got.Expires.Sub(got.Created); got.Expires.IsZero() && tt.d != 0 || !got.Expires.IsZero() && d != tt.d {
				t.Errorf("lasts %v, want %v", d, tt.d)
			}
			got.Created, got.Expires = time.Time{}, time.Time{}
			if got != *tt.restrict {
				t.Errorf("restriction %+v, want %+v", got, *tt.restrict)
			}
		})
	}
}

func TestChatBanBadArgumentsRaise(t *testing.T) {
	for _, src := range []string{
		`chat.ban("lobby", "bob")`,
		`chat.ban("lobby", {name = "bob", addr = "1.2.3.4"})`,
		`chat.ban("lobby", {nick = "bob"})`,
		`chat.ban("lobby", {name = "bob"}, {expires = 5})`,
		`chat.ban("lobby", {name = "bob"}, {duration = true})`,
		`chat.mute(nil, {name = "bob"})`,
		`chat.unban("lobby", {name = "bob"}, 5)`,
		`chat.set_room_settings("lobby", {title = "x"})`,
		`chat.audit("lobby", {since = "yesterday"})`,
		`chat.may(user, "delete")`,
		`chat.may(4, "moderate")`,
	} {
		r := modRig(t, newRig(t, luaCommand(src)))
		if res := r.say(mia, "/t"); res.Err == nil {
			t.Errorf("%s did not raise: %+v", src, res)
		}
	}
}

func TestChatUnbanAndRestrictions(t *testing.T) {
	src := `
chat.ban("lobby", {name = "bob"}, {duration = "1h", reason = "spam", by = user})
chat.mute("", {account = "u-dana"})
local out = {}
for _, r in ipairs(chat.restrictions("lobby")) do
  out[#out + 1] = r.kind .. ":" .. (r.target.name or r.target.account) .. ":" .. r.room .. ":" .. r.by .. ":" .. r.reason
    .. ":" .. tostring(r.expires ~= nil and r.expires - r.created == 3600) .. ":" .. type(r.created)
end
-- An entry's room and target lift it as they are.
local r = chat.restrictions("lobby")[1]
out[#out + 1] = tostring(chat.unban(r.room, r.target, user))
out[#out + 1] = tostring(chat.unban(r.room, r.target, user))
out[#out + 1] = #chat.restrictions("lobby")
out[#out + 1] = #chat.restrictions("dev")
return table.concat(out, " ")`
	r := modRig(t, newRig(t, luaCommand(src)))
	want := "ban:bob:lobby:mia (u-mia):spam:true:number mute:u-dana::t.lua::false:number true false 1 1"
	if got := r.run(t, mia, src); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if a := r.host.audit; len(a) != 3 || a[2].Action != "unban" || a[2].By != "mia (u-mia)" {
		t.Errorf("audit %+v", a)
	}
}

func TestChatRoomSettings(t *testing.T) {
	src := `
local s = chat.room_settings("lobby")
local out = {tostring(s.topic == ""), s.slow, tostring(s.topic_since)}
assert(chat.set_room_settings("lobby", {topic = "be kind"}, user))
assert(chat.set_room_settings("lobby", {slow = "30s"}))
s = chat.room_settings("lobby")
out[#out + 1] = s.topic .. "/" .. s.topic_by .. "/" .. s.slow .. "/" .. type(s.topic_since)
local ok, err = chat.set_room_settings("lobby", {slow = "fast"})
out[#out + 1] = tostring(ok)
assert(chat.set_room_settings("lobby", {topic = "", slow = 0}, "ops"))
s = chat.room_settings("lobby")
out[#out + 1] = s.topic .. "/" .. tostring(s.topic_by) .. "/" .. s.slow
return table.concat(out, " ", 1, 6)`
	r := modRig(t, newRig(t, luaCommand(src)))
	if got, want := r.run(t, mia, src), "true 0 nil be kind/mia (u-mia)/30/number nil /nil/0"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestChatAudit(t *testing.T) {
	src := `
chat.ban("lobby", {name = "bob"}, {reason = "spam", by = user})
chat.mute("dev", {name = "carol"})
local out = {}
for _, e in ipairs(chat.audit("lobby", {since = os.time() - 60, n = 5})) do
  out[#out + 1] = e.action .. ":" .. e.target .. ":" .. e.by .. ":" .. e.reason .. ":" .. e.room .. ":" .. type(e.time)
end
out[#out + 1] = #chat.audit("")
out[#out + 1] = #chat.audit("", {n = 1})
out[#out + 1] = #chat.audit("", {since = os.time() + 3600})
return table.concat(out, " ")`
	r := modRig(t, newRig(t, luaCommand(src)))
	if res := r.say(mia, "/t"); res.Err != nil {
		t.Fatal(res.Err)
	}
	var audits []hostCall
	for _, c := range r.host.take() {
		switch c.Method {
		case "Audit":
			audits = append(audits, c)
		case "Send":
			if want := "ban:bob:mia (u-mia):spam:lobby:number 2 1 0"; c.Text != want {
				t.Errorf("got  %q\nwant %q", c.Text, want)
			}
		}
	}
	if len(audits) != 4 || audits[0].Room != "lobby" || audits[0].N != 5 || audits[1].N != 20 || audits[2].N != 1 || audits[1].Text != fmt.Sprint(time.Time{}.Unix()) {
		t.Errorf("Audit calls %v", audits)
	}
}

func TestChatMay(t *testing.T) {
	src := `return table.concat({tostring(chat.may(user, "moderate")), tostring(chat.may(user, "post")),
  tostring(chat.may(user.session, "moderate", "dev")), tostring(chat.may({session = 99, room = "lobby"}, "read"))}, " ")`
	r := modRig(t, newRig(t, luaCommand(src)))
	if got, want := r.run(t, mia, src), "true true true nil"; got != want {
		t.Errorf("mia: %q, want %q", got, want)
	}
	if got, want := r.run(t, dana, src), "false true false nil"; got != want {
		t.Errorf("dana: %q, want %q", got, want)
	}
	// Without room rules nobody moderates.
	r2 := newRig(t, luaCommand(src))
	r2.host.users = append(r2.host.users, mia)
	if got, want := r2.run(t, mia, src), "false true false nil"; got != want {
		t.Errorf("no rules: %q, want %q", got, want)
	}
}

// TestModerationCommands runs the default moderation.lua: each command is
// allowed for a moderator (by the room rules, or the role admin),
// refused for a member, and answers for a target that does not exist.
func TestModerationCommands(t *testing.T) {
	r := modRig(t, defaultRig(t))
	type step struct {
		u     chat.User
		text  string
		want  string // the refusal, or "" when allowed
		calls []string
	}
	steps := []step{
		{dana, "/ban bob", "only moderators may /ban", nil},
		{alice, "/kick bob", "only moderators may /kick", nil},
		{dana, "/mute bob 10m", "only moderators may /mute", nil},
		{dana, "/unban bob", "only moderators may /unban", nil},
		{dana, "/bans", "only moderators may /bans", nil},
		{dana, "/slow 30", "only moderators may change /slow", nil},
		{dana, "/topic hello", "only moderators may change the /topic", nil},
		{mia, "/ban zed 1h", "nobody called zed is in lobby", nil},
		{mia, "/kick zed", "nobody called zed is in lobby", nil},
		{mia, "/unban zed", "zed is not banned in lobby", nil},
		{mia, "/ban", "usage: /ban NICK [duration] [reason]", nil},
		{mia, "/ban bob 3651d", "cannot ban bob: " + errBadDuration("3651d").Error(), nil},
		{mia, "/ban Bob 1h spam and more", "", []string{
			`Restrict(0,"lobby","ban bob spam and more",3600)`,
			`Broadcast(0,"lobby","bob was banned by mia for 1h: spam and more",0)`}},
		{mia, "/ban dana 2d", "", []string{
			`Restrict(0,"lobby","ban u-dana ",172800)`,
			`Broadcast(0,"lobby","dana was banned by mia for 2d",0)`}},
		{root, "/mute alice 90", "", []string{
			`Restrict(0,"lobby","mute alice ",90)`,
			`Broadcast(0,"lobby","alice was muted by root for 90",0)`}},
		{mia, "/mute addr:203.0.113.0/24 flood", "", []string{
			`Restrict(0,"lobby","mute 203.0.113.0/24 flood",0)`,
			`Broadcast(0,"lobby","addr:203.0.113.0/24 was muted by mia: flood",0)`}},
		{mia, "/unban dana", "", []string{
			`Lift(0,"lobby","ban u-dana",0)`,
			`Broadcast(0,"lobby","dana (account u-dana) is no longer banned (mia)",0)`}},
		{mia, "/unmute alice", "", []string{
			`Lift(0,"lobby","mute alice",0)`,
			`Broadcast(0,"lobby","alice is no longer muted (mia)",0)`}},
		{mia, "/kick alice be nice", "", []string{
			`KickBy(1,"","kicked by mia: be nice by mia (u-mia)",0)`,
			`Broadcast(0,"lobby","alice was kicked by mia: be nice",0)`}},
		{mia, "/slow 30", "", []string{`SetRoomSettings(0,"lobby","",30)`}},
		{dana, "/slow", "", []string{`Send(5,"","slow mode: one message per 30s",0)`}},
		{mia, "/slow off", "", []string{`SetRoomSettings(0,"lobby","",0)`}},
		{mia, "/slow fast", "usage: /slow SECONDS|off", nil},
		{mia, "/topic be kind", "", []string{`SetRoomSettings(0,"lobby","be kind",0)`}},
		{dana, "/topic", "", []string{`Send(5,"","topic: be kind",0)`}},
	}
	for _, s := range steps {
		got := r.say(s.u, s.text)
		if got.Err != nil || !got.Drop || got.Reason != s.want {
			t.Errorf("%s %s: %+v, want refusal %q", s.u.Name, s.text, got, s.want)
		}
		var calls []string
		for _, c := range r.host.take() {
			if c.Method != "Audit" {
				calls = append(calls, c.String())
			}
		}
		if !reflect.DeepEqual(calls, s.calls) {
			t.Errorf("%s %s: calls\n%v\nwant\n%v", s.u.Name, s.text, strings.Join(calls, "\n"), strings.Join(s.calls, "\n"))
		}
	}
	// /bans lists what is left, with the account's nick remembered.
	r.say(mia, "/bans")
	var lines []string
	for _, c := range r.host.take() {
		lines = append(lines, c.Text)
	}
	until := r.host.restrictions[0].Expires.UTC().Format("2006-01-02 15:04")
	if len(lines) != 2 || lines[0] != "ban bob until "+until+" UTC by mia (u-mia): spam and more" ||
		lines[1] != "mute 203.0.113.0/24 by mia (u-mia): flood" {
		t.Errorf("/bans: %q", lines)
	}
	if t.Failed() {
		t.Log(r.log.String())
	}
}

// TestModerationEveryRoomBan: a ban of every room (the admin API's) is
// lifted only by an admin.
func TestModerationEveryRoomBan(t *testing.T) {
	r := modRig(t, defaultRig(t))
	if err := r.host.Restrict(chat.KindBan, "", chat.Target{Name: "zed"}, 0, "", "admin"); err != nil {
		t.Fatal(err)
	}
	if got := r.say(mia, "/unban zed"); got.Reason != "zed is banned in every room: only an admin may lift it" {
		t.Errorf("mia: %+v", got)
	}
	if got := r.say(root, "/unban zed"); got.Reason != "" || len(r.host.restrictions) != 0 {
		t.Errorf("root: %+v, restrictions %+v", got, r.host.restrictions)
	}
}

// TestDeleteCommand: /delete ID asks the server (chat.delete →
// Host.DeleteMessage) for the caller's session and room, which decides
// who may delete what ([chat] delete_own_window, moderators: core/chat
// TestDeleteOwnMessage); its refusals reach the caller.
func TestDeleteCommand(t *testing.T) {
	r := modRig(t, defaultRig(t))
	for _, s := range []struct {
		u    chat.User
		text string
		err  error
		want string
		call string
	}{
		{dana, "/delete 10", nil, "", fmt.Sprintf(`DeleteMessage(%d,"lobby","",10)`, dana.SessionID)},
		{dana, "/delete #11", chat.ErrTooLate, "cannot delete message 11: " + chat.ErrTooLate.Error(), fmt.Sprintf(`DeleteMessage(%d,"lobby","",11)`, dana.SessionID)},
		{alice, "/delete 12", chat.ErrNotYours, "cannot delete message 12: " + chat.ErrNotYours.Error(), fmt.Sprintf(`DeleteMessage(%d,"lobby","",12)`, alice.SessionID)},
		{alice, "/delete x", nil, "usage: /delete ID", ""},
		{alice, "/delete 0", nil, "usage: /delete ID", ""},
	} {
		r.host.deleteErr = s.err
		got := r.say(s.u, s.text)
		if got.Err != nil || got.Reason != s.want {
			t.Errorf("%s %s: %+v, want %q", s.u.Name, s.text, got, s.want)
		}
		var calls []string
		for _, c := range r.host.take() {
			if c.Method == "DeleteMessage" || c.Method == "RedactBy" || c.Method == "Redact" {
				calls = append(calls, c.String())
			}
		}
		if want := []string{s.call}; s.call == "" && len(calls) != 0 || s.call != "" && !reflect.DeepEqual(calls, want) {
			t.Errorf("%s %s: %v, want %v", s.u.Name, s.text, calls, s.call)
		}
	}
}

// TestHelpHidesModeratorCommands: /help lists the moderator commands only
// to moderators.
func TestHelpHidesModeratorCommands(t *testing.T) {
	r := modRig(t, defaultRig(t))
	count := func(u chat.User) (all, mod int) {
		r.say(u, "/help")
		for _, c := range r.host.take() {
			all++
			if strings.HasPrefix(c.Text, "(moderators)") {
				mod++
			}
		}
		return
	}
	if all, mod := count(dana); mod != 0 || all != 11 { // ignore.lua adds /ignore and /unignore, msg.lua /msg
		t.Errorf("dana sees %d commands, %d for moderators", all, mod)
	}
	for _, u := range []chat.User{mia, root} {
		if all, mod := count(u); mod != 6 || all != 17 {
			t.Errorf("%s sees %d commands, %d for moderators", u.Name, all, mod)
		}
	}
}
