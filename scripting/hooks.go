package scripting

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// Join implements chat.Hooks. Handlers run in priority order; a handler
// returning a string renames the newcomer (later handlers see the new
// name), one returning false (and a reason) refuses them and ends the chain.
//
// A handler that fails (error, time limit, unusable result) does not stop
// the chain — the others still run, as if it had returned nothing — but
// the result's Err says so, and the chat server decides (by default it
// refuses the join). So does a call that cannot get the Lua state.
func (e *Engine) Join(ctx context.Context, u chat.User) chat.JoinResult {
	var res chat.JoinResult
	if st := e.cur.Load(); st == nil {
		res.Err = errClosedHook
		return res
	} else if len(st.handlers[evJoin]) == 0 && !st.shadow.has(evJoin) {
		return res
	}
	if err := e.acquire(ctx); err != nil {
		res.Err = err
		return res
	}
	defer e.release()
	st := e.cur.Load()
	if st == nil {
		res.Err = errClosedHook
		return res
	}
	res = st.runJoinChain(st.handlers[evJoin], u)
	if st.shadow.has(evJoin) {
		st.shadow.join(u, res) // decides nothing here
	}
	return res
}

// runJoinChain runs join handlers hs for u. Caller holds the semaphore.
// A disabled handler is skipped.
func (st *state) runJoinChain(hs []handler, u chat.User) chat.JoinResult {
	var res chat.JoinResult
	L := st.L
	ut := userTable(L, u)
	for i := range hs {
		h := &hs[i]
		if h.obs.off() {
			continue
		}
		L.Push(h.fn)
		L.Push(ut)
		if err := st.pcall(st.sh.hookTimeout, 1, 2); err != nil {
			err = hookError("join hook", h.where, err)
			st.done(h.obs, err)
			res.Err = joinErrs(res.Err, err)
			continue
		}
		r1, r2 := L.Get(-2), L.Get(-1)
		L.Pop(2)
		switch v := r1.(type) {
		case lua.LString:
			if v == "" || len(v) > maxNameBytes {
				err := badResult("join hook", h.where, fmt.Sprintf("returned a name of %d bytes (want 1 to %d)", len(v), maxNameBytes))
				st.done(h.obs, err)
				res.Err = joinErrs(res.Err, err)
				continue
			}
			res.Name = string(v)
			ut.RawSetString("name", v)
		case lua.LBool:
			if !v {
				st.done(h.obs, nil)
				return chat.JoinResult{Refuse: true, Reason: reasonOf(r2), Err: res.Err}
			}
		}
		st.done(h.obs, nil)
	}
	return res
}

// errClosedHook is a hook called after Close: it cannot run, so it fails
// (the chat server stops calling hooks before cmd/moonchat closes the
// engine; this is the fail-closed answer should it not).
var errClosedHook = &chat.HookError{Reason: chat.HookFailCanceled, Err: ErrClosed}

// Message implements chat.Hooks. A text that is a command ("/name args")
// goes to the command's function and never to the room; any other text
// goes through the message handlers in priority order. So does every
// direct message (Message.To set), whatever its text.
func (e *Engine) Message(ctx context.Context, u chat.User, m *chat.Message) chat.MessageResult {
	name, args, isCmd := parseCommand(m.Text)
	// An action's text (chat.action, "/me waves") is what the user does,
	// never a command: "/me /quit" must not quit. Nor is a direct
	// message's: the user sent it to someone (chat.direct, /msg, a
	// moonchat.v1 "direct" event), so "/nick x" is text for them; running
	// it would act on the sender with words they addressed to another.
	isCmd = isCmd && !m.Action && m.To == ""
	st := e.cur.Load()
	if st == nil {
		return chat.MessageResult{Drop: isCmd, Err: errClosedHook}
	}
	if !isCmd && len(st.handlers[evMessage]) == 0 && !st.shadow.has(evMessage) {
		return chat.MessageResult{}
	}
	if err := e.acquire(ctx); err != nil {
		if isCmd {
			return chat.MessageResult{Drop: true, Reason: "commands are busy, try again", Err: err}
		}
		return chat.MessageResult{Err: err}
	}
	defer e.release()
	if st = e.cur.Load(); st == nil {
		return chat.MessageResult{Drop: isCmd, Err: errClosedHook}
	}
	if isCmd {
		return st.runCommand(u, name, args)
	}
	res := st.runMessageChain(st.handlers[evMessage], u, m)
	if st.shadow.has(evMessage) {
		st.shadow.message(u, m, res) // decides nothing here
	}
	return res
}

// parseCommand splits "/name args". A command starts with a slash followed
// by a letter, so "/" alone, "// note" or "/ :)" are ordinary text.
func parseCommand(text string) (name, args string, ok bool) {
	if len(text) < 2 || text[0] != '/' || !isLetter(text[1]) {
		return "", "", false
	}
	rest := text[1:]
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		return rest[:i], strings.TrimSpace(rest[i:]), true
	}
	return rest, "", true
}

// runMessageChain runs message handlers hs on m. Caller holds the
// semaphore. A disabled handler is skipped.
func (st *state) runMessageChain(hs []handler, u chat.User, m *chat.Message) chat.MessageResult {
	L := st.L
	textV := st.boxText(m.Text)
	text := st.msgText
	msg := st.msgTable(u, m)
	defer st.checkMsgTable(m.Action || m.To != "")
	var failed error
	for i := range hs {
		h := &hs[i]
		if h.obs.off() {
			continue
		}
		// Reset every time: only returned texts count, not in-place edits.
		msg.RawSetString("text", textV)
		L.Push(h.fn)
		L.Push(msg)
		if err := st.pcall(st.sh.hookTimeout, 1, 2); err != nil {
			// The chain goes on (for [scripting] on_failure = "deliver");
			// the result says the hooks did not complete.
			err = hookError("message hook", h.where, err)
			st.done(h.obs, err)
			failed = joinErrs(failed, err)
			continue
		}
		r1, r2 := L.Get(-2), L.Get(-1)
		L.Pop(2)
		switch v := r1.(type) {
		case lua.LString:
			if len(v) > st.sh.maxText {
				err := badResult("message hook", h.where, fmt.Sprintf("returned a text of %d bytes (at most %d)", len(v), st.sh.maxText))
				st.done(h.obs, err)
				failed = joinErrs(failed, err)
				continue
			}
			text, textV = v, r1
		case lua.LBool:
			if !v {
				st.done(h.obs, nil)
				return chat.MessageResult{Drop: true, Reason: reasonOf(r2), Err: failed}
			}
		}
		st.done(h.obs, nil)
	}
	if string(text) != m.Text {
		return chat.MessageResult{Text: string(text), Replace: true, Err: failed}
	}
	return chat.MessageResult{Err: failed}
}

// msgTable returns the msg table for m, filled in: {user = <the
// sender's user table, as join handlers and commands get it>, room, text
// [, action] [, to]}. For a direct message (m.To set) room is the
// sender's room, u.Room, as for the sender's room messages, not m.Room
// (its conversation's key, which no script has a use for and which must
// not reach chat.broadcast or chat.history), and to is the recipient's
// name. It is one table per Lua state, and one user table in it,
// reused for every message: building tables (and their key maps) per
// message was the largest allocation of the message path. So msg and
// msg.user are valid only during the handler call; a script that keeps
// them (in a global, a closure for a timer) sees them change with the next
// message, which docs/lua.md says. Fields are set with RawSetString, so a
// metatable a script put on them does not change what is stored, and
// every field is set again for each message, so that a handler's in-place
// change (msg.user.name = "x") does not reach the next message.
func (st *state) msgTable(u chat.User, m *chat.Message) *lua.LTable {
	if st.msg == nil || st.msgUserT == nil {
		st.msg = st.L.CreateTable(0, 4)
		st.msgUserT = st.L.CreateTable(0, 4)
	}
	if st.msgNameV == nil || string(st.msgName) != u.Name {
		st.msgName = lua.LString(u.Name)
		st.msgNameV = st.msgName
	}
	room := m.Room
	if m.To != "" {
		room = u.Room
	}
	if st.msgRoomV == nil || string(st.msgRoom) != room {
		st.msgRoom = lua.LString(room)
		st.msgRoomV = st.msgRoom
	}
	if st.msgAddrV == nil || string(st.msgAddr) != u.Addr {
		st.msgAddr = lua.LString(u.Addr)
		st.msgAddrV = st.msgAddr
	}
	if n := lua.LNumber(u.SessionID); st.msgSessV == nil || st.msgSess != n {
		st.msgSess = n
		st.msgSessV = n
	}
	ut := st.msgUserT
	ut.RawSetString("name", st.msgNameV)
	ut.RawSetString("room", st.msgRoomV)
	ut.RawSetString("session", st.msgSessV)
	ut.RawSetString("addr", st.msgAddrV)
	if st.msgIDV == nil || string(st.msgID) != u.ID {
		st.msgID = lua.LString(u.ID)
		st.msgIDV = st.msgID
		if u.ID == "" {
			st.msgIDV = lua.LNil
		}
	}
	// Setting nil deletes the field but keeps its place in the key order,
	// so roles stays the last field (checkMsgTable relies on that).
	ut.RawSetString("id", st.msgIDV)
	if !st.sameRoles(u.Roles) {
		// A new roles array only when the roles change or a handler
		// changed the last one: a guest's ["guest"] is built once.
		st.msgRolesT = rolesTable(st.L, u.Roles)
		st.msgRolesLast = lua.LValue(lua.LNil)
		if len(u.Roles) > 0 {
			st.msgRolesLast = lua.LNumber(len(u.Roles))
		}
	}
	ut.RawSetString("roles", st.msgRolesT)
	st.msg.RawSetString("user", ut)
	st.msg.RawSetString("room", st.msgRoomV)
	if m.Action {
		// Only actions carry the field, so checkMsgTable drops the table
		// after an action: the next message gets a clean one.
		st.msg.RawSetString("action", lua.LTrue)
	}
	if m.To != "" {
		// Likewise only direct messages carry to: the table is dropped
		// after one (runMessage), so no room message ever shows a to.
		st.msg.RawSetString("to", lua.LString(m.To))
	}
	return st.msg
}

// boxText returns text as a Lua value, reusing the last one when the text
// repeats.
func (st *state) boxText(text string) lua.LValue {
	if st.msgTextV == nil || string(st.msgText) != text {
		st.msgText = lua.LString(text)
		st.msgTextV = st.msgText
	}
	return st.msgTextV
}

// checkMsgTable runs after the handlers: when one of them added fields to
// msg or msg.user (or set a metatable on either), or the message had a
// field only some messages have (msg.action, msg.to: extra), both are
// dropped so that the next message gets clean ones and nothing leaks
// from one message into the next.
func (st *state) checkMsgTable(extra bool) {
	t, ut := st.msg, st.msgUserT
	if t == nil || ut == nil {
		return
	}
	if extra || t.Metatable != lua.LNil || ut.Metatable != lua.LNil || hasMore(t, lua.LString("text")) || hasMore(ut, lua.LString("roles")) {
		st.msg, st.msgUserT = nil, nil
	}
}

// sameRoles reports whether the cached msg.user.roles array still holds
// exactly roles: no metatable, the same items, no other keys. A handler may
// have changed it in place; then it is rebuilt rather than passed on.
func (st *state) sameRoles(roles []string) bool {
	t := st.msgRolesT
	if t == nil || t.Metatable != lua.LNil || t.Len() != len(roles) {
		return false
	}
	for i, r := range roles {
		if v, ok := t.RawGetInt(i + 1).(lua.LString); !ok || string(v) != r {
			return false
		}
	}
	k, _ := t.Next(st.msgRolesLast)
	return k == lua.LNil
}

// hasMore reports whether t has a field besides the ones msgTable and
// runMessage set; last is the last of them. A table keeps its string
// (and other non-array) keys in insertion order, so a field a handler
// added comes after last, where Next finds it — one map lookup, where
// walking every field (ForEach boxes each key anew) cost an allocation
// per field per message. Array items are counted by Len.
func hasMore(t *lua.LTable, last lua.LValue) bool {
	if t.Len() != 0 {
		return true
	}
	k, _ := t.Next(last)
	return k != lua.LNil
}

func (st *state) runCommand(u chat.User, name, args string) chat.MessageResult {
	c := st.commands[strings.ToLower(name)]
	if c == nil {
		reason := "unknown command /" + name
		if st.commands["help"] != nil {
			reason += " — try /help"
		}
		return chat.MessageResult{Drop: true, Reason: reason, Code: "unknown_command"}
	}
	if c.obs.off() {
		return chat.MessageResult{Drop: true, Reason: "command /" + c.Name + " is disabled until the scripts are reloaded (it kept failing)", Code: "command_disabled"}
	}
	L := st.L
	L.Push(c.fn)
	L.Push(userTable(L, u))
	L.Push(lua.LString(args))
	if err := st.pcall(st.sh.hookTimeout, 2, 2); err != nil {
		err = hookError("command /"+c.Name, c.where, err)
		st.done(c.obs, err)
		return chat.MessageResult{Drop: true, Reason: "command /" + c.Name + " failed", Err: err}
	}
	st.done(c.obs, nil)
	r1, r2 := L.Get(-2), L.Get(-1)
	L.Pop(2)
	switch v := r1.(type) {
	case lua.LString:
		// An answer for the sender alone, as a notice.
		if err := st.sh.hostOf().Send(u.SessionID, truncate(string(v), maxNoticeBytes)); err != nil {
			st.sh.log.Debug("lua command answer not delivered", "command", c.Name, "error", err)
		}
	case lua.LBool:
		if !v {
			return chat.MessageResult{Drop: true, Reason: reasonOf(r2)}
		}
	}
	return chat.MessageResult{Drop: true}
}

// Leave implements chat.Hooks; results are ignored. The error says which
// handlers failed (all of them run).
func (e *Engine) Leave(ctx context.Context, u chat.User) error {
	return e.notify(ctx, evLeave, u, "")
}

// Rename implements chat.Hooks: handlers get (user, old, new); results are
// ignored. The error is as for Leave.
func (e *Engine) Rename(ctx context.Context, u chat.User, old string) error {
	return e.notify(ctx, evRename, u, old)
}

func (e *Engine) notify(ctx context.Context, ev event, u chat.User, old string) error {
	if st := e.cur.Load(); st == nil {
		return errClosedHook
	} else if len(st.handlers[ev]) == 0 && !st.shadow.has(ev) {
		return nil
	}
	if err := e.acquire(ctx); err != nil {
		return err
	}
	defer e.release()
	st := e.cur.Load()
	if st == nil {
		return errClosedHook
	}
	err := st.runNotify(st.handlers[ev], ev, u, old)
	if st.shadow.has(ev) {
		st.shadow.notify(ev, u, old)
	}
	return err
}

// runNotify runs leave or rename handlers hs. Caller holds the semaphore.
func (st *state) runNotify(hs []handler, ev event, u chat.User, old string) error {
	var failed error
	L := st.L
	ut := userTable(L, u)
	for i := range hs {
		h := &hs[i]
		if h.obs.off() {
			continue
		}
		L.Push(h.fn)
		L.Push(ut)
		nargs := 1
		if ev == evRename {
			L.Push(lua.LString(old))
			L.Push(lua.LString(u.Name))
			nargs = 3
		}
		err := st.pcall(st.sh.hookTimeout, nargs, 0)
		if err != nil {
			err = hookError(eventNames[ev]+" hook", h.where, err)
			failed = joinErrs(failed, err)
		}
		st.done(h.obs, err)
	}
	return failed
}

// reasonOf is the optional reason that follows a false.
func reasonOf(v lua.LValue) string {
	switch r := v.(type) {
	case lua.LString:
		return truncate(string(r), maxNoticeBytes)
	case lua.LNumber:
		return r.String()
	}
	return ""
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
