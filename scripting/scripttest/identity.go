package scripttest

import (
	"net/http"
	"net/url"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
	lua "github.com/yuin/gopher-lua"
)

// The "connect" and "login" events decide who someone is before they
// join: t:connect and t:login run them as the HTTP handlers do.

// Login runs the login handlers for name and password, as POST /api/login
// does. It returns the identity a handler gave, or nil and the reason
// (refused, or "no script recognised the name and password"); a failed
// handler is recorded as an error and refuses.
func (s *Server) Login(name, password, addr string) (*chat.Identity, string) {
	res := s.eng.Login(s.ctx, scripting.LoginRequest{Name: name, Password: password, Addr: addr})
	return s.identity(res.Identity, res.Refuse, res.Reason, res.Err, "no script recognised the name and password")
}

// Connect runs the connect handlers for a WebSocket handshake: the
// identity a handler gave, or nil and "" to carry on with the
// credentials, or nil and why it was refused.
func (s *Server) Connect(req scripting.ConnectRequest) (id *chat.Identity, refused bool, reason string) {
	res := s.eng.Connect(s.ctx, req)
	id, reason = s.identity(res.Identity, res.Refuse, res.Reason, res.Err, "")
	return id, res.Refuse || res.Err != nil, reason
}

func (s *Server) identity(id *chat.Identity, refuse bool, reason string, err error, none string) (*chat.Identity, string) {
	if err != nil {
		s.mu.Lock()
		s.hookErrorLocked(err)
		s.mu.Unlock()
		return nil, "a script failed" // fail closed, as the server does
	}
	if refuse {
		return nil, reason
	}
	if id == nil {
		return nil, none
	}
	return id, ""
}

// identityTable is an identity as Lua sees it: {id, name, roles}.
func identityTable(L *lua.LState, id *chat.Identity) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("id", lua.LString(id.ID))
	t.RawSetString("name", lua.LString(id.Name))
	roles := L.NewTable()
	for _, r := range id.Roles {
		roles.Append(lua.LString(r))
	}
	t.RawSetString("roles", roles)
	return t
}

// t:login(name, password [, addr]) -> identity | nil, reason
func (lt *luaTest) tLogin(L *lua.LState) int {
	ls := checkServer(L)
	ls.s.SetWhere(where(L))
	id, reason := ls.s.Login(L.CheckString(2), L.CheckString(3), L.OptString(4, "192.0.2.1:40000"))
	if id == nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(reason))
		return 2
	}
	L.Push(identityTable(L, id))
	return 1
}

// t:connect{room =, name =, query = {k = v}, headers = {k = v}, addr =,
// claims = {...}} -> identity | true (carry on) | nil, reason
func (lt *luaTest) tConnect(L *lua.LState) int {
	ls := checkServer(L)
	o := L.OptTable(2, L.NewTable())
	req := scripting.ConnectRequest{
		Room: lua.LVAsString(o.RawGetString("room")), Name: lua.LVAsString(o.RawGetString("name")),
		Addr: lua.LVAsString(o.RawGetString("addr")), Query: url.Values{}, Headers: http.Header{},
	}
	if req.Room == "" {
		req.Room = "lobby"
	}
	if req.Addr == "" {
		req.Addr = "192.0.2.1:40000"
	}
	if q, ok := o.RawGetString("query").(*lua.LTable); ok {
		q.ForEach(func(k, v lua.LValue) { req.Query.Add(lua.LVAsString(k), lua.LVAsString(v)) })
	}
	if h, ok := o.RawGetString("headers").(*lua.LTable); ok {
		h.ForEach(func(k, v lua.LValue) { req.Headers.Add(lua.LVAsString(k), lua.LVAsString(v)) })
	}
	if c, ok := o.RawGetString("claims").(*lua.LTable); ok {
		req.Claims, _ = toGo(c).(map[string]any)
	}
	ls.s.SetWhere(where(L))
	id, refused, reason := ls.s.Connect(req)
	switch {
	case refused:
		L.Push(lua.LNil)
		L.Push(lua.LString(reason))
		return 2
	case id == nil:
		L.Push(lua.LTrue)
		return 1
	}
	L.Push(identityTable(L, id))
	return 1
}
