package scripttest

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
	lua "github.com/yuin/gopher-lua"
)

// luaTest is what the Lua side of one test file sees: the servers its
// tests made (closed at each test's end) and the failures so far.
type luaTest struct {
	ctx     context.Context
	fsys    fs.FS  // where the file's scripts are read (its directory)
	file    string // the test file's name, for the default script
	name    string // the test running
	servers []*luaServer
	fails   []Failure
}

// luaServer is one chat.testing.new server.
type luaServer struct {
	s *Server
}

const (
	serverType = "moonchat.testing.server"
	userType   = "moonchat.testing.user"
)

// fail records a failure at the calling Lua line.
func (lt *luaTest) fail(L *lua.LState, format string, args ...any) {
	lt.failAt(where(L), format, args...)
}

func (lt *luaTest) failAt(at, format string, args ...any) {
	file, line := splitWhere(at)
	if file == "" {
		file = lt.file
	}
	lt.fails = append(lt.fails, Failure{File: file, Line: line, Test: lt.name, Msg: fmt.Sprintf(format, args...)})
}

// where is the position of the Lua code that called the running Go
// function: "file:line".
func where(L *lua.LState) string {
	return strings.TrimSuffix(L.Where(1), ":")
}

func splitWhere(at string) (string, int) {
	i := strings.LastIndexByte(at, ':')
	if i < 0 {
		return at, 0
	}
	var n int
	if _, err := fmt.Sscan(at[i+1:], &n); err != nil {
		return at, 0
	}
	return at[:i], n
}

// install puts chat.testing.new and the server and user types into L.
func (lt *luaTest) install(L *lua.LState) {
	chatT := L.NewTable()
	testing := L.NewTable()
	testing.RawSetString("new", L.NewFunction(lt.newServer))
	chatT.RawSetString("testing", testing)
	L.SetGlobal("chat", chatT)

	smt := L.NewTypeMetatable(serverType)
	L.SetField(smt, "__index", L.SetFuncs(L.NewTable(), lt.serverMethods()))
	umt := L.NewTypeMetatable(userType)
	L.SetField(umt, "__index", L.NewFunction(lt.userIndex))
}

// newServer is chat.testing.new{scripts = {...}, options = {...},
// moderate = {...}}.
func (lt *luaTest) newServer(L *lua.LState) int {
	opts := L.OptTable(1, L.NewTable())
	var cfg Config
	cfg.FS = lt.fsys
	if v, ok := opts.RawGetString("scripts").(*lua.LTable); ok {
		cfg.Scripts = stringList(L, v, "scripts")
	} else if def := strings.TrimSuffix(lt.file, "_test.lua") + ".lua"; def != lt.file {
		cfg.Scripts = []string{baseName(def)}
	}
	if v, ok := opts.RawGetString("moderate").(*lua.LTable); ok {
		cfg.Moderate = stringList(L, v, "moderate")
	}
	if v, ok := opts.RawGetString("options").(*lua.LTable); ok {
		cfg.Options = scripting.ScriptOptions{}
		v.ForEach(func(k, tv lua.LValue) {
			t, ok := tv.(*lua.LTable)
			if !ok {
				L.RaiseError("chat.testing.new: options.%s must be a table (config.toml's [scripts.%s])", k, k)
			}
			m, _ := toGo(t).(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			cfg.Options[strings.TrimSuffix(lua.LVAsString(k), ".lua")] = m
		})
	}
	s, err := New(lt.ctx, cfg)
	if err != nil {
		L.RaiseError("chat.testing.new: %v", err)
	}
	ls := &luaServer{s: s}
	lt.servers = append(lt.servers, ls)
	ud := L.NewUserData()
	ud.Value = ls
	L.SetMetatable(ud, L.GetTypeMetatable(serverType))
	L.Push(ud)
	return 1
}

func baseName(p string) string { return p[strings.LastIndexAny(p, `/\`)+1:] }

// stringList reads an array of strings.
func stringList(L *lua.LState, t *lua.LTable, what string) []string {
	var out []string
	for i := 1; i <= t.Len(); i++ {
		s, ok := t.RawGetInt(i).(lua.LString)
		if !ok {
			L.RaiseError("chat.testing.new: %s[%d] must be a string", what, i)
		}
		out = append(out, string(s))
	}
	return out
}

// toGo turns a Lua value into what a TOML decoder gives (chat.options).
func toGo(v lua.LValue) any {
	switch v := v.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		if f := float64(v); f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return float64(v)
	case *lua.LTable:
		if n := v.Len(); n > 0 {
			out := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				out = append(out, toGo(v.RawGetInt(i)))
			}
			return out
		}
		m := map[string]any{}
		v.ForEach(func(k, x lua.LValue) { m[lua.LVAsString(k)] = toGo(x) })
		return m
	}
	return nil
}

func checkServer(L *lua.LState) *luaServer {
	ud := L.CheckUserData(1)
	ls, ok := ud.Value.(*luaServer)
	if !ok {
		L.ArgError(1, "a test server expected (call its methods with t:method)")
	}
	return ls
}

// userSession reads a user argument: a user object, or a name.
func (ls *luaServer) userSession(L *lua.LState, n int) uint64 {
	switch v := L.Get(n).(type) {
	case *lua.LUserData:
		if id, ok := v.Value.(uint64); ok {
			return id
		}
	case lua.LString:
		ls.s.mu.Lock()
		defer ls.s.mu.Unlock()
		for _, m := range ls.s.members {
			if m.user.Name == string(v) {
				return m.user.SessionID
			}
		}
		for id, m := range ls.s.gone {
			if m.user.Name == string(v) {
				return id
			}
		}
		L.RaiseError("no user called %q in this test server", string(v))
	}
	L.ArgError(n, "a user (from t:join) or a user's name expected")
	return 0
}

// newUser is the Lua object of a member: a userdata of its session; its
// fields read the member as they are now (userIndex).
func (lt *luaTest) newUser(L *lua.LState, ls *luaServer, id uint64) lua.LValue {
	ud := L.NewUserData()
	ud.Value = id
	// Each user knows its server through a per-user metatable field.
	mt := L.NewTable()
	base := L.GetTypeMetatable(userType).(*lua.LTable)
	mt.RawSetString("__index", base.RawGetString("__index"))
	srv := L.NewUserData()
	srv.Value = ls
	mt.RawSetString("server", srv)
	L.SetMetatable(ud, mt)
	return ud
}

// userIndex serves u.name, u.room, u.session, u.id, u.roles and the
// methods u:say, u:action, u:direct and u:leave.
func (lt *luaTest) userIndex(L *lua.LState) int {
	ud := L.CheckUserData(1)
	key := L.CheckString(2)
	id, _ := ud.Value.(uint64)
	mt, _ := L.GetMetatable(ud).(*lua.LTable)
	srvUD, _ := mt.RawGetString("server").(*lua.LUserData)
	ls := srvUD.Value.(*luaServer)
	u, _ := ls.s.User(id)
	switch key {
	case "name":
		L.Push(lua.LString(u.Name))
	case "room":
		L.Push(lua.LString(u.Room))
	case "session":
		L.Push(lua.LNumber(id))
	case "id":
		if u.ID == "" {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(u.ID))
		}
	case "roles":
		t := L.NewTable()
		for _, r := range u.Roles {
			t.Append(lua.LString(r))
		}
		L.Push(t)
	case "connected":
		_, ok := ls.s.User(id)
		L.Push(lua.LBool(ok))
	case "say":
		L.Push(L.NewFunction(func(L *lua.LState) int {
			return lt.post(L, ls, id, L.CheckString(2), false, "")
		}))
	case "action":
		L.Push(L.NewFunction(func(L *lua.LState) int {
			return lt.post(L, ls, id, L.CheckString(2), true, "")
		}))
	case "direct":
		L.Push(L.NewFunction(func(L *lua.LState) int {
			return lt.post(L, ls, id, L.CheckString(3), false, L.CheckString(2))
		}))
	case "leave":
		L.Push(L.NewFunction(func(L *lua.LState) int {
			ls.s.SetWhere(where(L))
			if err := ls.s.Leave(id); err != nil {
				L.RaiseError("%s cannot leave: %v", u.Name, err)
			}
			return 0
		}))
	default:
		L.Push(lua.LNil)
	}
	return 1
}

// post is u:say, u:action and u:direct: true, or false and the reason.
func (lt *luaTest) post(L *lua.LState, ls *luaServer, id uint64, text string, action bool, to string) int {
	ls.s.SetWhere(where(L))
	var ok bool
	var reason string
	var err error
	switch {
	case to != "":
		ok, reason, err = ls.s.SendDirect(id, to, text)
	case action:
		ok, reason, err = ls.s.post(id, text, true, "")
	default:
		ok, reason, err = ls.s.Say(id, text)
	}
	if err != nil {
		L.RaiseError("cannot send: %v (the user has left)", err)
	}
	L.Push(lua.LBool(ok))
	if ok {
		return 1
	}
	L.Push(lua.LString(reason))
	return 2
}

// serverMethods are the methods of a test server (t:join, t:expect_…).
func (lt *luaTest) serverMethods() map[string]lua.LGFunction {
	m := map[string]lua.LGFunction{
		"join":      lt.tJoin,
		"advance":   lt.tAdvance,
		"seed":      lt.tSeed,
		"history":   lt.tHistory,
		"users":     lt.tUsers,
		"kv":        lt.tKV,
		"events":    lt.tEvents,
		"topic":     lt.tTopic,
		"audit":     lt.tAudit,
		"expect":    lt.tExpect,
		"expect_eq": lt.tExpectEq,
		"expect_kv": lt.tExpectKV,
		"login":     lt.tLogin,
		"connect":   lt.tConnect,
	}
	for name, fn := range expectations {
		m[name] = lt.expectation(name, fn)
	}
	return m
}

// t:join(name [, {room =, id =, roles =, addr =}]) -> user | nil, reason
func (lt *luaTest) tJoin(L *lua.LState) int {
	ls := checkServer(L)
	name := L.CheckString(2)
	var o JoinOptions
	if t, ok := L.Get(3).(*lua.LTable); ok {
		o.Room = lua.LVAsString(t.RawGetString("room"))
		o.ID = lua.LVAsString(t.RawGetString("id"))
		o.Addr = lua.LVAsString(t.RawGetString("addr"))
		if r, ok := t.RawGetString("roles").(*lua.LTable); ok {
			o.Roles = stringList(L, r, "roles")
			if o.Roles == nil {
				o.Roles = []string{}
			}
		}
	}
	ls.s.SetWhere(where(L))
	id, reason := ls.s.Join(name, o)
	if id == 0 {
		L.Push(lua.LNil)
		L.Push(lua.LString(reason))
		return 2
	}
	L.Push(lt.newUser(L, ls, id))
	return 1
}

// t:advance(seconds): the fake clock moves; due timers fire.
func (lt *luaTest) tAdvance(L *lua.LState) int {
	ls := checkServer(L)
	secs := float64(L.CheckNumber(2))
	ls.s.SetWhere(where(L))
	if err := ls.s.Advance(time.Duration(secs * float64(time.Second))); err != nil {
		L.RaiseError("t:advance: %v", err)
	}
	return 0
}

// t:seed(room, user, text): a message stored before the test.
func (lt *luaTest) tSeed(L *lua.LState) int {
	ls := checkServer(L)
	ls.s.Seed(L.CheckString(2), L.CheckString(3), L.CheckString(4))
	return 0
}

// t:history(room) -> array of lines ("alice: hi", "* alice waves").
func (lt *luaTest) tHistory(L *lua.LState) int {
	ls := checkServer(L)
	t := L.NewTable()
	for _, m := range ls.s.Stored(L.CheckString(2)) {
		t.Append(lua.LString(Line(m)))
	}
	L.Push(t)
	return 1
}

// t:users(room) -> array of names, in join order.
func (lt *luaTest) tUsers(L *lua.LState) int {
	ls := checkServer(L)
	t := L.NewTable()
	for _, u := range ls.s.Users(L.CheckString(2)) {
		t.Append(lua.LString(u.Name))
	}
	L.Push(t)
	return 1
}

// t:kv(script, key) -> value | nil
func (lt *luaTest) tKV(L *lua.LState) int {
	ls := checkServer(L)
	v, ok, err := ls.s.KVGet(scriptName(L.CheckString(2)), L.CheckString(3))
	if err != nil {
		L.RaiseError("t:kv: %v", err)
	}
	if !ok {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(v))
	}
	return 1
}

func scriptName(s string) string {
	if strings.HasSuffix(s, ".lua") {
		return s
	}
	return s + ".lua"
}

// t:topic(room) -> the room's topic ("" none)
func (lt *luaTest) tTopic(L *lua.LState) int {
	ls := checkServer(L)
	L.Push(lua.LString(ls.s.RoomSettings(L.CheckString(2)).Topic))
	return 1
}

// t:audit([room]) -> array of "by action target: reason" strings
func (lt *luaTest) tAudit(L *lua.LState) int {
	ls := checkServer(L)
	t := L.NewTable()
	for _, a := range ls.s.AuditLog(L.OptString(2, "")) {
		t.Append(lua.LString(auditText(a)))
	}
	L.Push(t)
	return 1
}

func auditText(a chat.AuditEntry) string {
	s := a.By + " " + a.Action
	if a.Target != "" {
		s += " " + a.Target
	}
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	return s
}

// t:events([kind]) -> array of {kind, room, user, to, text, script, key,
// id, deleted, where}: everything recorded, for assertions of one's own.
func (lt *luaTest) tEvents(L *lua.LState) int {
	ls := checkServer(L)
	kind := L.OptString(2, "")
	t := L.NewTable()
	for _, e := range ls.s.Events() {
		if kind != "" && e.Kind != kind {
			continue
		}
		et := L.NewTable()
		for k, v := range map[string]string{"kind": e.Kind, "room": e.Room, "user": e.User, "to": e.To, "text": e.Text, "script": e.Script, "key": e.Key, "where": e.Where} {
			if v != "" {
				et.RawSetString(k, lua.LString(v))
			}
		}
		if e.ID != 0 {
			et.RawSetString("id", lua.LNumber(e.ID))
		}
		if e.Deleted {
			et.RawSetString("deleted", lua.LTrue)
		}
		t.Append(et)
	}
	L.Push(t)
	return 1
}

// t:expect(cond [, message])
func (lt *luaTest) tExpect(L *lua.LState) int {
	checkServer(L)
	if !lua.LVAsBool(L.Get(2)) {
		lt.fail(L, "%s", L.OptString(3, "expectation failed"))
		L.Push(lua.LFalse)
		return 1
	}
	L.Push(lua.LTrue)
	return 1
}

// t:expect_eq(got, want [, what])
func (lt *luaTest) tExpectEq(L *lua.LState) int {
	checkServer(L)
	got, want := L.Get(2), L.Get(3)
	if !luaEqual(got, want) {
		what := L.OptString(4, "value")
		lt.fail(L, "%s: got %s, want %s", what, show(got), show(want))
		L.Push(lua.LFalse)
		return 1
	}
	L.Push(lua.LTrue)
	return 1
}

// luaEqual compares values, tables (arrays and records) by content.
func luaEqual(a, b lua.LValue) bool {
	ta, okA := a.(*lua.LTable)
	tb, okB := b.(*lua.LTable)
	if !okA || !okB {
		return a == b || (a.Type() == b.Type() && a.String() == b.String() && a.Type() != lua.LTFunction && a.Type() != lua.LTUserData)
	}
	same := true
	n := 0
	ta.ForEach(func(k, v lua.LValue) {
		n++
		if !luaEqual(v, tb.RawGet(k)) {
			same = false
		}
	})
	tb.ForEach(func(lua.LValue, lua.LValue) { n-- })
	return same && n == 0
}

// show prints a value for a failure message.
func show(v lua.LValue) string {
	switch v := v.(type) {
	case lua.LString:
		return fmt.Sprintf("%q", string(v))
	case *lua.LTable:
		var parts []string
		n := v.Len()
		for i := 1; i <= n; i++ {
			parts = append(parts, show(v.RawGetInt(i)))
		}
		v.ForEach(func(k, x lua.LValue) {
			if kn, ok := k.(lua.LNumber); ok && float64(kn) >= 1 && float64(kn) <= float64(n) && float64(kn) == math.Trunc(float64(kn)) {
				return
			}
			parts = append(parts, lua.LVAsString(k)+" = "+show(x))
		})
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.String()
}

// t:expect_kv(script, key, value): chat.kv of script holds value under key
// now (nil: no such key).
func (lt *luaTest) tExpectKV(L *lua.LState) int {
	ls := checkServer(L)
	script, key := scriptName(L.CheckString(2)), L.CheckString(3)
	want := L.Get(4)
	v, ok, err := ls.s.KVGet(script, key)
	if err != nil {
		L.RaiseError("t:expect_kv: %v", err)
	}
	var got lua.LValue = lua.LNil
	if ok {
		got = lua.LString(v)
	}
	if want != lua.LNil {
		want = lua.LString(lua.LVAsString(want))
	}
	if got != want {
		lt.fail(L, "expect_kv(%q, %q): got %s, want %s", script, key, show(got), show(want))
		L.Push(lua.LFalse)
		return 1
	}
	L.Push(lua.LTrue)
	return 1
}

// unmatchedErrors fails the test for each script error no expect_error
// took: a script that fails is a failure unless the test says it is
// expected.
func (lt *luaTest) unmatchedErrors() {
	for _, ls := range lt.servers {
		ls.s.Lock(func() {
			for _, e := range ls.s.events {
				if e.Kind == KindError && !e.Matched {
					e.Matched = true
					lt.failAt(e.Where, "script error: %s", e.Text)
				}
			}
		})
	}
}

// closeServers closes the servers of the test that ended.
func (lt *luaTest) closeServers() {
	for _, ls := range lt.servers {
		ls.s.Close()
	}
	lt.servers = nil
}
