package scripting

import (
	"math"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// chatTable builds the chat table of one script. Every function is a Go
// closure over the script's name, which is how chat.kv finds its namespace
// and chat.log its label, whoever later calls the function.
func (st *state) chatTable(script string) *lua.LTable {
	L := st.L
	t := L.CreateTable(0, 20)
	fns := map[string]lua.LGFunction{
		"on":        func(L *lua.LState) int { return st.apiOn(L, script) },
		"command":   func(L *lua.LState) int { return st.apiCommand(L, script) },
		"every":     func(L *lua.LState) int { return st.apiEvery(L, script) },
		"send":      st.apiSend,
		"broadcast": st.apiBroadcast,
		"action":    st.apiAction,
		"rename":    st.apiRename,
		"kick":      func(L *lua.LState) int { return st.apiKick(L, script) },
		"users":     st.apiUsers,
		"rooms":     st.apiRooms,
		"history":   st.apiHistory,
		"redact":    func(L *lua.LState) int { return st.apiRedact(L, script) },
		"delete":    st.apiDelete,
		"commands":  st.apiCommands,
		"has_role":  apiHasRole,
		"grant":     st.apiGrant,
		"revoke":    st.apiRevoke,
		"limits":    st.apiLimits,
		"may":       st.apiMay,
		"log":       func(L *lua.LState) int { return st.apiLog(L, script) },

		"password_hash":  st.apiPasswordHash,
		"password_check": st.apiPasswordCheck,

		"ban":               func(L *lua.LState) int { return st.apiBan(L, script) },
		"unban":             func(L *lua.LState) int { return st.apiUnban(L, script) },
		"mute":              func(L *lua.LState) int { return st.apiMute(L, script) },
		"unmute":            func(L *lua.LState) int { return st.apiUnmute(L, script) },
		"restrictions":      st.apiRestrictions,
		"room_settings":     st.apiRoomSettings,
		"set_room_settings": func(L *lua.LState) int { return st.apiSetRoomSettings(L, script) },
		"audit":             st.apiAudit,
		"ignore":            st.apiIgnore,
		"unignore":          st.apiUnignore,
		"ignored":           st.apiIgnored,
		"direct":            st.apiDirect,
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	kv := L.CreateTable(0, 4)
	kvFns := map[string]lua.LGFunction{
		"get":    func(L *lua.LState) int { return st.apiKVGet(L, script) },
		"set":    func(L *lua.LState) int { return st.apiKVSet(L, script) },
		"delete": func(L *lua.LState) int { return st.apiKVDelete(L, script) },
		"keys":   func(L *lua.LState) int { return st.apiKVKeys(L, script) },
	}
	for name, fn := range kvFns {
		kv.RawSetString(name, L.NewFunction(fn))
	}
	t.RawSetString("kv", kv)
	return t
}

// apiFuncs lists every function of the chat table, for the documentation
// test (docs/lua.md must describe each of them).
var apiFuncs = []string{
	"on", "command", "every", "send", "broadcast", "action", "rename", "kick", "users",
	"rooms", "history", "redact", "delete", "commands", "log", "has_role", "grant", "revoke", "limits",
	"password_hash", "password_check",
	"may", "ban", "unban", "mute", "unmute", "restrictions", "room_settings", "set_room_settings", "audit",
	"ignore", "unignore", "ignored", "direct",
	"kv.get", "kv.set", "kv.delete", "kv.keys",
}

// --- registration (only while scripts load) ---

func (st *state) mustBeLoading(L *lua.LState, fname string) {
	if !st.loading {
		L.RaiseError("%s: can only be called while the script loads (at its top level)", fname)
	}
}

// chat.on(event, fn [, priority])
func (st *state) apiOn(L *lua.LState, script string) int {
	st.mustBeLoading(L, "chat.on")
	name := L.CheckString(1)
	fn := L.CheckFunction(2)
	prio := L.OptInt(3, 0)
	for ev, n := range eventNames {
		if n == name {
			if len(st.handlers[ev]) >= maxHandlers {
				L.RaiseError("chat.on: too many %s handlers (at most %d)", name, maxHandlers)
			}
			st.handlers[ev] = append(st.handlers[ev], handler{fn: fn, script: script, where: where(fn, script), prio: prio})
			return 0
		}
	}
	L.RaiseError("chat.on: unknown event %q (want join, message, leave, rename, connect or login)", name)
	return 0
}

// chat.command(name, fn [, help])
func (st *state) apiCommand(L *lua.LState, script string) int {
	st.mustBeLoading(L, "chat.command")
	name := strings.ToLower(strings.TrimPrefix(L.CheckString(1), "/"))
	fn := L.CheckFunction(2)
	help := L.OptString(3, "")
	if !validCommandName(name) {
		L.RaiseError("chat.command: bad command name %q (a letter, then letters, digits, - or _)", name)
	}
	if old, ok := st.commands[name]; ok {
		L.RaiseError("chat.command: /%s is already registered by %s", name, old.where)
	}
	st.commands[name] = &command{Command: Command{Name: name, Help: help, Script: script}, fn: fn, where: where(fn, script)}
	return 0
}

func validCommandName(s string) bool {
	if s == "" || len(s) > 32 || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// chat.every(seconds, fn)
func (st *state) apiEvery(L *lua.LState, script string) int {
	st.mustBeLoading(L, "chat.every")
	secs := float64(L.CheckNumber(1))
	fn := L.CheckFunction(2)
	if math.IsNaN(secs) || secs < minEvery || secs > 365*24*3600 {
		L.RaiseError("chat.every: interval must be between %g seconds and a year, got %g", minEvery, secs)
	}
	if len(st.timers) >= maxTimers {
		L.RaiseError("chat.every: too many timers (at most %d)", maxTimers)
	}
	st.timers = append(st.timers, timer{interval: time.Duration(secs * float64(time.Second)), fn: fn, script: script, where: where(fn, script)})
	return 0
}

// --- arguments ---

// checkSession accepts a user table (or any table with a session field,
// such as a message) or a session number.
func checkSession(L *lua.LState, n int, fname string) uint64 {
	v := L.Get(n)
	if t, ok := v.(*lua.LTable); ok {
		v = t.RawGetString("session")
	}
	if num, ok := v.(lua.LNumber); ok && num >= 0 && float64(num) == math.Trunc(float64(num)) {
		return uint64(num)
	}
	L.RaiseError("%s: argument #%d must be a user table or a session number, got %s", fname, n, L.Get(n).Type())
	return 0
}

// checkText accepts a string or a number (converted) of at most max bytes.
func checkText(L *lua.LState, n int, fname, what string, max int) string {
	var s string
	switch v := L.Get(n).(type) {
	case lua.LString:
		s = string(v)
	case lua.LNumber:
		s = v.String()
	default:
		L.RaiseError("%s: %s must be a string, got %s", fname, what, v.Type())
	}
	if len(s) > max {
		L.RaiseError("%s: %s too long (%d bytes, at most %d)", fname, what, len(s), max)
	}
	return s
}

// failed is how a chat function reports a failure of the ordinary course
// (a member who left, a name the server refuses, no history, a store
// error): it returns nil and the error's text, as Lua libraries do
// (io.open), so that a script tests the result instead of wrapping the
// call in pcall. Wrong arguments are the script's bug and still raise.
func failed(L *lua.LState, err error) int {
	L.Push(lua.LNil)
	L.Push(lua.LString(err.Error()))
	return 2
}

// succeeded is the result of a chat function that has nothing to return: true,
// so that "local ok, err = chat.send(...)" reads naturally.
func succeeded(L *lua.LState) int {
	L.Push(lua.LTrue)
	return 1
}

// --- chat functions ---

// chat.send(user, text) -> true | nil, err
func (st *state) apiSend(L *lua.LState) int {
	id := checkSession(L, 1, "chat.send")
	text := checkText(L, 2, "chat.send", "text", maxNoticeBytes)
	if err := st.sh.hostOf().Send(id, text); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.broadcast(room, text) -> true | nil, err
func (st *state) apiBroadcast(L *lua.LState) int {
	room := L.CheckString(1)
	text := checkText(L, 2, "chat.broadcast", "text", maxNoticeBytes)
	if err := st.sh.hostOf().Broadcast(room, text); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.action(user, text) -> true | nil, err: text as user's /me action, posted like a
// message the user sent (message handlers, history, the room).
func (st *state) apiAction(L *lua.LState) int {
	id := checkSession(L, 1, "chat.action")
	text := checkText(L, 2, "chat.action", "text", st.sh.maxText)
	if err := st.sh.hostOf().Action(id, text); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.rename(user, newname) -> name given | nil, err
func (st *state) apiRename(L *lua.LState) int {
	id := checkSession(L, 1, "chat.rename")
	name := checkText(L, 2, "chat.rename", "name", maxNameBytes)
	got, err := st.sh.hostOf().Rename(id, name)
	if err != nil {
		return failed(L, err)
	}
	L.Push(lua.LString(got))
	return 1
}

// chat.kick(user [, reason [, by]]) -> true | nil, err. With by, the kick
// is a moderator's: the audit log names them (auditedHost).
func (st *state) apiKick(L *lua.LState, script string) int {
	id := checkSession(L, 1, "chat.kick")
	reason := ""
	if L.Get(2) != lua.LNil {
		reason = checkText(L, 2, "chat.kick", "reason", maxNoticeBytes)
	}
	h := st.sh.hostOf()
	var err error
	if ah, ok := h.(auditedHost); ok && L.Get(3) != lua.LNil {
		err = ah.KickBy(id, reason, byOf(L, L.Get(3), "chat.kick", script))
	} else {
		err = h.Kick(id, reason)
	}
	if err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.users(room) -> array of user tables
func (st *state) apiUsers(L *lua.LState) int {
	room := L.CheckString(1)
	users := st.sh.hostOf().Users(room)
	t := L.CreateTable(len(users), 0)
	for i, u := range users {
		t.RawSetInt(i+1, userTable(L, u))
	}
	L.Push(t)
	return 1
}

// chat.rooms() -> array of names
func (st *state) apiRooms(L *lua.LState) int {
	rooms := st.sh.hostOf().Rooms()
	t := L.CreateTable(len(rooms), 0)
	for i, r := range rooms {
		t.RawSetInt(i+1, lua.LString(r))
	}
	L.Push(t)
	return 1
}

// chat.history(room [, n]) -> array of {id, room, user, text, ts [, action]} | nil, err
func (st *state) apiHistory(L *lua.LState) int {
	room := L.CheckString(1)
	n := L.OptInt(2, 20)
	if n < 0 {
		n = 0
	}
	if n > maxHistory {
		n = maxHistory
	}
	var msgs []chat.Message
	var err error
	if L.GetTop() >= 3 && L.Get(3) != lua.LNil {
		// On behalf of a user: the room rules and the user's credentials
		// decide, as for the user's own history requests.
		msgs, err = st.sh.hostOf().HistoryFor(checkSession(L, 3, "chat.history"), room, n)
	} else {
		msgs, err = st.sh.hostOf().History(room, n)
	}
	if err != nil {
		return failed(L, err)
	}
	t := L.CreateTable(len(msgs), 0)
	for i, m := range msgs {
		mt := L.CreateTable(0, 6)
		mt.RawSetString("id", lua.LNumber(m.ID))
		mt.RawSetString("room", lua.LString(m.Room))
		mt.RawSetString("user", lua.LString(m.User))
		mt.RawSetString("text", lua.LString(m.Text))
		mt.RawSetString("ts", lua.LNumber(float64(m.Time.UnixMilli())/1000))
		if m.Action {
			mt.RawSetString("action", lua.LTrue)
		}
		if m.Account != nil && m.Account.ID != "" {
			// The sender's account: who sent it, whatever its name is now.
			mt.RawSetString("account", lua.LString(m.Account.ID))
		}
		t.RawSetInt(i+1, mt)
	}
	L.Push(t)
	return 1
}

// chat.redact(room, id [, by]) -> true | nil, err. With by, the audit
// log names who deleted it (auditedHost).
func (st *state) apiRedact(L *lua.LState, script string) int {
	room := L.CheckString(1)
	id := L.CheckNumber(2)
	if id < 1 || float64(id) != math.Trunc(float64(id)) {
		L.RaiseError("chat.redact: bad message id %v", id)
	}
	h := st.sh.hostOf()
	var err error
	if ah, ok := h.(auditedHost); ok && L.Get(3) != lua.LNil {
		err = ah.RedactBy(room, uint64(id), byOf(L, L.Get(3), "chat.redact", script))
	} else {
		err = h.Redact(room, uint64(id))
	}
	if err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.delete(user, id) -> true | nil, err: user deletes message id of
// their room (Host.DeleteMessage): any message when they moderate it,
// else their own within [chat] delete_own_window.
func (st *state) apiDelete(L *lua.LState) int {
	sid := checkSession(L, 1, "chat.delete")
	id := L.CheckNumber(2)
	if id < 1 || float64(id) != math.Trunc(float64(id)) {
		L.RaiseError("chat.delete: bad message id %v", id)
	}
	room := ""
	if t, ok := L.Get(1).(*lua.LTable); ok {
		room = lua.LVAsString(t.RawGetString("room"))
	}
	if err := st.sh.hostOf().DeleteMessage(sid, room, uint64(id)); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.commands() -> array of {name, help, script}, sorted by name
func (st *state) apiCommands(L *lua.LState) int {
	list := st.commandList()
	t := L.CreateTable(len(list), 0)
	for i, c := range list {
		ct := L.CreateTable(0, 3)
		ct.RawSetString("name", lua.LString(c.Name))
		ct.RawSetString("help", lua.LString(c.Help))
		ct.RawSetString("script", lua.LString(c.Script))
		t.RawSetInt(i+1, ct)
	}
	L.Push(t)
	return 1
}

// chat.log(...) and print(...): one info line, values joined by spaces.
func (st *state) apiLog(L *lua.LState, script string) int {
	var b strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			b.WriteByte(' ')
		}
		b.WriteString(L.ToStringMeta(L.Get(i)).String())
		if b.Len() > maxNoticeBytes {
			break
		}
	}
	s := b.String()
	if len(s) > maxNoticeBytes {
		s = s[:maxNoticeBytes]
	}
	st.sh.log.Info(s, "script", script)
	return 0
}

// --- chat.kv ---

func checkKey(L *lua.LState, fname string) string {
	k := checkText(L, 1, fname, "key", maxKeyBytes)
	if k == "" {
		L.RaiseError("%s: empty key", fname)
	}
	return k
}

// chat.kv.get(key) -> value | nil (no such key) | nil, err
func (st *state) apiKVGet(L *lua.LState, script string) int {
	k := checkKey(L, "chat.kv.get")
	v, ok, err := st.sh.kv.Get(script, k)
	if err != nil {
		return failed(L, err)
	}
	if !ok {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(v))
	}
	return 1
}

// chat.kv.set(key, value) -> true | nil, err (value nil: delete)
func (st *state) apiKVSet(L *lua.LState, script string) int {
	k := checkKey(L, "chat.kv.set")
	if L.Get(2) == lua.LNil {
		return st.apiKVDelete(L, script)
	}
	v := checkText(L, 2, "chat.kv.set", "value", maxValueBytes)
	if err := st.sh.kv.Set(script, k, v); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.kv.delete(key) -> true | nil, err
func (st *state) apiKVDelete(L *lua.LState, script string) int {
	k := checkKey(L, "chat.kv.delete")
	if err := st.sh.kv.Delete(script, k); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.kv.keys() -> array of keys | nil, err
func (st *state) apiKVKeys(L *lua.LState, script string) int {
	keys, err := st.sh.kv.Keys(script)
	if err != nil {
		return failed(L, err)
	}
	t := L.CreateTable(len(keys), 0)
	for i, k := range keys {
		t.RawSetInt(i+1, lua.LString(k))
	}
	L.Push(t)
	return 1
}

// userTable is the Lua view of a member: {name, room, session, addr, id,
// roles}. id is nil for a guest; roles is a fresh array, so a handler that
// changes it changes only its own copy.
func userTable(L *lua.LState, u chat.User) *lua.LTable {
	t := L.CreateTable(0, 6)
	t.RawSetString("name", lua.LString(u.Name))
	t.RawSetString("room", lua.LString(u.Room))
	t.RawSetString("session", lua.LNumber(u.SessionID))
	t.RawSetString("addr", lua.LString(u.Addr))
	if u.ID != "" {
		t.RawSetString("id", lua.LString(u.ID))
	}
	t.RawSetString("roles", rolesTable(L, u.Roles))
	return t
}

// rolesTable returns roles as a Lua array.
func rolesTable(L *lua.LState, roles []string) *lua.LTable {
	t := L.CreateTable(len(roles), 0)
	for i, r := range roles {
		t.RawSetInt(i+1, lua.LString(r))
	}
	return t
}

// chat.has_role(user, role) -> bool: whether the user table's roles (as
// hooks and commands get them) include role. It reads the table rather
// than asking the server, so it also answers for a user who has left.
func apiHasRole(L *lua.LState) int {
	ut, ok := L.Get(1).(*lua.LTable)
	if !ok {
		L.RaiseError("chat.has_role: argument #1 must be a user table, got %s", L.Get(1).Type())
	}
	role, ok := L.Get(2).(lua.LString)
	if !ok {
		L.RaiseError("chat.has_role: argument #2 must be a string, got %s", L.Get(2).Type())
	}
	roles, ok := ut.RawGetString("roles").(*lua.LTable)
	if !ok {
		L.RaiseError("chat.has_role: argument #1 must be a user table (it has no roles array)")
	}
	for i, n := 1, roles.Len(); i <= n; i++ {
		if roles.RawGetInt(i) == role {
			L.Push(lua.LTrue)
			return 1
		}
	}
	L.Push(lua.LFalse)
	return 1
}

// chat.grant(user, role) -> true | nil, err
func (st *state) apiGrant(L *lua.LState) int { return st.changeRole(L, "chat.grant", true) }

// chat.revoke(user, role) -> true | nil, err
func (st *state) apiRevoke(L *lua.LState) int { return st.changeRole(L, "chat.revoke", false) }

// changeRole gives (grant) or takes away a role of a member's session
// through Host.Grant / Host.Revoke. The server's answer decides: a
// member who left, a built-in role ("guest", "user") or a role name the
// server refuses is nil, err. On success the user table given (when it
// was one) is updated too, so that chat.has_role(user, role) in the same
// call agrees with what later calls will see; the server's member is what
// counts, and later hook calls get their user tables from it.
func (st *state) changeRole(L *lua.LState, fname string, grant bool) int {
	id := checkSession(L, 1, fname)
	role, ok := L.Get(2).(lua.LString)
	if !ok {
		L.RaiseError("%s: argument #2 must be a role name (a string), got %s", fname, L.Get(2).Type())
	}
	if len(role) > maxNameBytes {
		L.RaiseError("%s: role too long (%d bytes, at most %d)", fname, len(role), maxNameBytes)
	}
	h := st.sh.hostOf()
	var err error
	if grant {
		err = h.Grant(id, string(role))
	} else {
		err = h.Revoke(id, string(role))
	}
	if err != nil {
		return failed(L, err)
	}
	if ut, ok := L.Get(1).(*lua.LTable); ok {
		if roles, ok := ut.RawGetString("roles").(*lua.LTable); ok {
			updateRoles(L, ut, roles, role, grant)
		}
	}
	return succeeded(L)
}

// updateRoles sets ut.roles to a new array: roles with role added (grant)
// or removed. A new array rather than an in-place change, because the
// message hook's msg.user.roles is cached between messages (msgTable):
// replacing it leaves the cached array as it was.
func updateRoles(L *lua.LState, ut, roles *lua.LTable, role lua.LString, grant bool) {
	n := roles.Len()
	out := L.CreateTable(n+1, 0)
	has := false
	for i := 1; i <= n; i++ {
		v := roles.RawGetInt(i)
		if v == role {
			has = true
			if !grant {
				continue
			}
		}
		out.Append(v)
	}
	if grant && !has {
		out.Append(role)
	}
	ut.RawSetString("roles", out)
}

// chat.limits(user) -> {rate = R, burst = B} | nil, err
// chat.limits(user, {rate = R, burst = B}) -> true | nil, err
//
// Reads or replaces a member's flood limits through Host.Limits and
// Host.SetLimits. A field left out of the table keeps its current value.
// A table that is not {rate, burst} with numbers (a misspelt field, a
// fractional burst) is the script's bug and raises; values the server
// refuses (a negative rate, a burst of 0 with a rate) and a member who
// left are nil, err.
func (st *state) apiLimits(L *lua.LState) int {
	const fname = "chat.limits"
	id := checkSession(L, 1, fname)
	h := st.sh.hostOf()
	cur, err := h.Limits(id)
	if err != nil {
		return failed(L, err)
	}
	if L.Get(2) == lua.LNil {
		t := L.CreateTable(0, 2)
		t.RawSetString("rate", lua.LNumber(cur.Rate))
		t.RawSetString("burst", lua.LNumber(cur.Burst))
		L.Push(t)
		return 1
	}
	t, ok := L.Get(2).(*lua.LTable)
	if !ok {
		L.RaiseError("%s: argument #2 must be a table {rate = …, burst = …}, got %s", fname, L.Get(2).Type())
	}
	next := cur
	t.ForEach(func(k, v lua.LValue) {
		n, isNum := v.(lua.LNumber)
		switch k {
		case lua.LString("rate"):
			if !isNum {
				L.RaiseError("%s: rate must be a number (messages per second), got %s", fname, v.Type())
			}
			next.Rate = float64(n)
		case lua.LString("burst"):
			f := float64(n)
			if !isNum || f != math.Trunc(f) {
				L.RaiseError("%s: burst must be a whole number, got %s", fname, lua.LVAsString(v))
			}
			// Out of int's range: clamped so that the server refuses it
			// with its own message.
			next.Burst = int(max(min(f, 1<<31), -1<<31))
		default:
			L.RaiseError("%s: unknown field %s (want rate and burst)", fname, lua.LVAsString(k))
		}
	})
	if err := h.SetLimits(id, next); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// noopHost is the host before Bind and in Check: it accepts everything and
// reports an empty server.
type noopHost struct{}

func (noopHost) Send(uint64, string) error                   { return nil }
func (noopHost) Broadcast(string, string) error              { return nil }
func (noopHost) Action(uint64, string) error                 { return nil }
func (noopHost) Rename(_ uint64, n string) (string, error)   { return n, nil }
func (noopHost) Kick(uint64, string) error                   { return nil }
func (noopHost) Users(string) []chat.User                    { return nil }
func (noopHost) Rooms() []string                             { return nil }
func (noopHost) History(string, int) ([]chat.Message, error) { return nil, nil }
func (noopHost) HistoryFor(uint64, string, int) ([]chat.Message, error) {
	return nil, nil
}
func (noopHost) Redact(string, uint64) error { return nil }
func (noopHost) DeleteMessage(uint64, string, uint64) error {
	return nil
}
func (noopHost) Grant(uint64, string) error  { return nil }
func (noopHost) Revoke(uint64, string) error { return nil }
func (noopHost) Limits(uint64) (chat.Limits, error) {
	return chat.Limits{}, nil
}
func (noopHost) SetLimits(uint64, chat.Limits) error { return nil }
func (noopHost) Restrict(chat.RestrictionKind, string, chat.Target, time.Duration, string, string) error {
	return nil
}
func (noopHost) Lift(chat.RestrictionKind, string, chat.Target, string) (bool, error) {
	return false, nil
}
func (noopHost) Restrictions(string) []chat.Restriction                  { return nil }
func (noopHost) SetRoomSettings(string, chat.RoomSettings, string) error { return nil }
func (noopHost) RoomSettings(string) chat.RoomSettings                   { return chat.RoomSettings{} }
func (noopHost) Audit(string, time.Time, int) ([]chat.AuditEntry, error) { return nil, nil }
func (noopHost) May(uint64, string, chat.Action) (bool, error)           { return false, nil }

var _ chat.Host = noopHost{}
