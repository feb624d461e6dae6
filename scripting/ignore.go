package scripting

import (
	"errors"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// Ignore lists (issue 14): chat.ignore, chat.unignore and chat.ignored
// reach chat.Ignorer when the host has it.

// errNoIgnore is returned when the host keeps no ignore lists.
var errNoIgnore = errors.New("this server keeps no ignore lists")

// ignoreTarget reads argument n: a user table (its session) or
// {account = ID}.
func ignoreTarget(L *lua.LState, n int, fname string) chat.IgnoreTarget {
	if t, ok := L.Get(n).(*lua.LTable); ok {
		if a, ok := t.RawGetString("account").(lua.LString); ok && a != "" && t.RawGetString("session") == lua.LNil {
			return chat.IgnoreTarget{Account: string(a)}
		}
	}
	return chat.IgnoreTarget{Session: checkSession(L, n, fname)}
}

// chat.ignore(user, target) -> true | nil, err
func (st *state) apiIgnore(L *lua.LState) int {
	id := checkSession(L, 1, "chat.ignore")
	t := ignoreTarget(L, 2, "chat.ignore")
	ih, ok := st.sh.hostOf().(chat.Ignorer)
	if !ok {
		return failed(L, errNoIgnore)
	}
	if err := ih.Ignore(id, t); err != nil {
		return failed(L, err)
	}
	return succeeded(L)
}

// chat.unignore(user, target) -> removed (boolean) | nil, err
func (st *state) apiUnignore(L *lua.LState) int {
	id := checkSession(L, 1, "chat.unignore")
	t := ignoreTarget(L, 2, "chat.unignore")
	ih, ok := st.sh.hostOf().(chat.Ignorer)
	if !ok {
		return failed(L, errNoIgnore)
	}
	removed, err := ih.Unignore(id, t)
	if err != nil {
		return failed(L, err)
	}
	L.Push(lua.LBool(removed))
	return 1
}

// chat.ignored(user) -> array of {account, session, name} | nil, err
func (st *state) apiIgnored(L *lua.LState) int {
	id := checkSession(L, 1, "chat.ignored")
	ih, ok := st.sh.hostOf().(chat.Ignorer)
	if !ok {
		return failed(L, errNoIgnore)
	}
	list, err := ih.Ignored(id)
	if err != nil {
		return failed(L, err)
	}
	t := L.CreateTable(len(list), 0)
	for i, it := range list {
		e := L.CreateTable(0, 3)
		if it.Account != "" {
			e.RawSetString("account", lua.LString(it.Account))
		}
		if it.Session != 0 {
			e.RawSetString("session", lua.LNumber(it.Session))
		}
		e.RawSetString("name", lua.LString(it.Name))
		t.RawSetInt(i+1, e)
	}
	L.Push(t)
	return 1
}
