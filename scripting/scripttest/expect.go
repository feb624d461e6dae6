package scripttest

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// expectSpec is one t:expect_… method: from its arguments, which events
// satisfy it, how to describe it, and whether it asserts that none
// happened (negate).
type expectSpec struct {
	// args reads the arguments (after the server): match reports whether
	// an event satisfies the expectation.
	args func(L *lua.LState, ls *luaServer) (match func(*Event) bool, desc string)
	// kind is the kind of events shown when it fails.
	kind string
	// negate: no event (matched or not) may satisfy it.
	negate bool
}

// expectations are the event expectations. A positive one takes the
// first event that satisfies it and no earlier expectation took, so that
// two identical expectations need two events; a negative one (expect_no_…)
// looks at every event since the server started.
var expectations = map[string]expectSpec{
	// t:expect_broadcast(room, line): room's members saw line ("alice: hi",
	// "* alice waves", "* a notice").
	"expect_broadcast":    {args: roomLine, kind: KindLine},
	"expect_no_broadcast": {args: roomLine, kind: KindLine, negate: true},
	// t:expect_send(user, text): a notice to user alone (chat.send, a
	// command's answer).
	"expect_send":    {args: userText(KindSend), kind: KindSend},
	"expect_no_send": {args: userText(KindSend), kind: KindSend, negate: true},
	// t:expect_received(user, line): anything user's client printed:
	// room lines (not from someone they ignore), their notices ("* TEXT"),
	// direct messages ("[dm] bob: hi", "[dm to bob] alice: hi").
	"expect_received":     {args: userText(KindReceived), kind: KindReceived},
	"expect_not_received": {args: userText(KindReceived), kind: KindReceived, negate: true},
	// t:expect_refused(user [, reason]): a message, command or join of
	// user's was refused (with reason).
	"expect_refused":    {args: userText(KindRefused), kind: KindRefused},
	"expect_no_refused": {args: userText(KindRefused), kind: KindRefused, negate: true},
	// t:expect_dropped(user [, text]): a message dropped without a reason.
	"expect_dropped": {args: userText(KindDropped), kind: KindDropped},
	// t:expect_kick(user [, reason]).
	"expect_kick":    {args: userText(KindKick), kind: KindKick},
	"expect_no_kick": {args: userText(KindKick), kind: KindKick, negate: true},
	// t:expect_rename(old, new): a member called old was renamed new.
	"expect_rename": {args: rename, kind: KindRename},
	// t:expect_stored(room, line): a message stored in room's history.
	"expect_stored":     {args: stored, kind: KindStored},
	"expect_not_stored": {args: stored, kind: KindStored, negate: true},
	// t:expect_direct(from, to, text): a direct message delivered.
	"expect_direct":    {args: direct, kind: KindDirect},
	"expect_no_direct": {args: direct, kind: KindDirect, negate: true},
	// t:expect_kv_write(script, key [, value]): chat.kv.set (or, value
	// nil, a delete) happened.
	"expect_kv_write": {args: kvWrite, kind: KindKV},
	// t:expect_audit(action [, target]): a moderation action in the audit
	// log ("ban name:bob", "kick bob", "topic").
	"expect_audit": {args: audit, kind: KindModerate},
	// t:expect_error(text): a script failure whose message contains text
	// (file:line included). Errors no expectation takes fail the test.
	"expect_error": {args: contains(KindError), kind: KindError},
	// t:expect_log(text): chat.log or print wrote text.
	"expect_log": {args: contains(KindLog), kind: KindLog},
}

func roomLine(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
	room, line := L.CheckString(2), L.CheckString(3)
	return func(e *Event) bool { return e.Kind == KindLine && e.Room == room && e.Text == line },
		fmt.Sprintf("line in %s %q", room, line)
}

// userText: (user [, text]) for events of kind about one member.
func userText(kind string) func(L *lua.LState, ls *luaServer) (func(*Event) bool, string) {
	return func(L *lua.LState, ls *luaServer) (func(*Event) bool, string) {
		id := ls.userSession(L, 2)
		u, _ := ls.s.User(id)
		text, any := L.OptString(3, ""), L.Get(3) == lua.LNil
		desc := fmt.Sprintf(userDesc[kind], u.Name)
		if !any {
			desc += fmt.Sprintf(" %q", text)
		}
		return func(e *Event) bool { return e.Kind == kind && e.Session == id && (any || e.Text == text) }, desc
	}
}

func rename(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
	old, to := L.CheckString(2), L.CheckString(3)
	return func(e *Event) bool { return e.Kind == KindRename && e.User == old && e.Text == to },
		fmt.Sprintf("rename of %s to %s", old, to)
}

func stored(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
	room, line := L.CheckString(2), L.CheckString(3)
	return func(e *Event) bool { return e.Kind == KindStored && e.Room == room && e.Text == line },
		fmt.Sprintf("message stored in %s %q", room, line)
}

func direct(L *lua.LState, ls *luaServer) (func(*Event) bool, string) {
	fromID := ls.userSession(L, 2)
	from, _ := ls.s.User(fromID)
	to, text := L.CheckString(3), L.CheckString(4)
	if ud, ok := L.Get(3).(*lua.LUserData); ok {
		if id, ok := ud.Value.(uint64); ok {
			u, _ := ls.s.User(id)
			to = u.Name
		}
	}
	return func(e *Event) bool {
			return e.Kind == KindDirect && e.Session == fromID && strings.EqualFold(e.To, to) && e.Text == text
		},
		fmt.Sprintf("direct message %s → %s %q", from.Name, to, text)
}

func kvWrite(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
	script, key := scriptName(L.CheckString(2)), L.CheckString(3)
	if L.Get(4) == lua.LNil {
		return func(e *Event) bool { return e.Kind == KindKV && e.Script == script && e.Key == key && e.Deleted },
			fmt.Sprintf("kv delete %s %q", script, key)
	}
	val := lua.LVAsString(L.Get(4))
	return func(e *Event) bool {
			return e.Kind == KindKV && e.Script == script && e.Key == key && !e.Deleted && e.Text == val
		},
		fmt.Sprintf("kv write %s %q = %q", script, key, val)
}

func audit(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
	action := L.CheckString(2)
	target := L.OptString(3, "")
	want := strings.TrimSpace(action + " " + target)
	return func(e *Event) bool { return e.Kind == KindModerate && e.Text == want },
		fmt.Sprintf("audit entry %q", want)
}

func contains(kind string) func(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
	return func(L *lua.LState, _ *luaServer) (func(*Event) bool, string) {
		sub := L.CheckString(2)
		return func(e *Event) bool { return e.Kind == kind && strings.Contains(e.Text, sub) },
			fmt.Sprintf("%s containing %q", kind, sub)
	}
}

// expectation makes the Lua method of an expectSpec. It returns whether
// the expectation held; a failure is recorded at the calling line and
// the test goes on (like t.Errorf).
func (lt *luaTest) expectation(name string, sp expectSpec) lua.LGFunction {
	return func(L *lua.LState) int {
		ls := checkServer(L)
		match, desc := sp.args(L, ls)
		ok := false
		var seen []string
		ls.s.Lock(func() {
			for _, e := range ls.s.events {
				if sp.negate {
					if match(e) {
						seen = append(seen, describe(e))
					}
					continue
				}
				if !e.Matched && match(e) {
					e.Matched = true
					ok = true
					return
				}
			}
			if sp.negate {
				ok = len(seen) == 0
				return
			}
			for _, e := range ls.s.events {
				if e.Kind == sp.kind {
					seen = append(seen, describe(e))
				}
			}
		})
		if !ok {
			if sp.negate {
				lt.fail(L, "%s: want none, got %s", name, strings.Join(seen, "; "))
			} else {
				lt.fail(L, "%s: no %s; %s: %s", name, desc, kindLabel[sp.kind], listOrNone(seen))
			}
		}
		L.Push(lua.LBool(ok))
		return 1
	}
}

// maxShown bounds the events a failure lists.
const maxShown = 10

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	if len(s) > maxShown {
		return strings.Join(s[len(s)-maxShown:], "; ") + fmt.Sprintf(" (and %d earlier)", len(s)-maxShown)
	}
	return strings.Join(s, "; ")
}

// describe is an event as a failure message lists it.
func describe(e *Event) string {
	var b strings.Builder
	switch e.Kind {
	case KindLine, KindStored:
		fmt.Fprintf(&b, "%s %q", e.Room, e.Text)
	case KindDirect:
		fmt.Fprintf(&b, "%s → %s %q", e.User, e.To, e.Text)
	case KindKV:
		if e.Deleted {
			fmt.Fprintf(&b, "%s delete %q", e.Script, e.Key)
		} else {
			fmt.Fprintf(&b, "%s %q = %q", e.Script, e.Key, e.Text)
		}
	case KindRename:
		fmt.Fprintf(&b, "%s → %s", e.User, e.Text)
	case KindError, KindLog, KindModerate:
		fmt.Fprintf(&b, "%q", e.Text)
	default:
		fmt.Fprintf(&b, "%s %q", e.User, e.Text)
	}
	if e.Matched {
		b.WriteString(" (taken)")
	}
	return b.String()
}

// userDesc words what an expectation about one member looks for.
var userDesc = map[string]string{
	KindSend:     "notice to %s",
	KindReceived: "line received by %s",
	KindRefused:  "refusal for %s",
	KindDropped:  "message of %s dropped",
	KindKick:     "kick of %s",
}

// kindLabel names the events a failure lists.
var kindLabel = map[string]string{
	KindLine: "lines", KindSend: "notices", KindReceived: "received", KindStored: "stored",
	KindDirect: "direct messages", KindRefused: "refusals", KindDropped: "dropped", KindKick: "kicks",
	KindRename: "renames", KindKV: "kv writes", KindError: "errors", KindLog: "logs", KindModerate: "audit",
}
