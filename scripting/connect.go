package scripting

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/moonchat/moonchat/core/chat"
)

// ConnectRequest is what a "connect" handler sees as req: one WebSocket
// handshake, before the upgrade (docs/lua.md).
type ConnectRequest struct {
	// Room and Name are the room asked for and the ?name= asked for.
	Room, Name string
	// Query is the URL's query (the caller leaves out "token").
	Query url.Values
	// Headers are the request's headers, as the caller filtered them
	// (cmd/moonchat drops cookie and authorization unless
	// [auth] expose_credentials is set). Lua sees lower-case names.
	Headers http.Header
	// Addr is the remote address (host:port).
	Addr string
	// Claims are the verified JWT claims, nil when there is no token.
	Claims map[string]any
}

// ConnectResult is what the "connect" handlers decided.
type ConnectResult struct {
	// Identity, when not nil, is the identity a handler returned
	// ({id, name, roles}); nil: carry on with what the credentials say.
	Identity *chat.Identity
	// Refuse turns the connection away (HTTP 403) with Reason.
	Refuse bool
	Reason string
	// Err is set when the handlers did not complete (*chat.HookError):
	// the caller refuses the connection (fail closed).
	Err error
}

// LoginRequest is what a "login" handler sees as req: one POST /api/login.
type LoginRequest struct {
	Name, Password string
	// Addr is the remote address (host:port).
	Addr string
}

// LoginResult is what the "login" handlers decided.
type LoginResult struct {
	// Identity is the identity a handler returned; nil with Refuse false
	// means no handler recognised the name and password.
	Identity *chat.Identity
	// Refuse: a handler said no (false, "reason").
	Refuse bool
	Reason string
	// Err is set when the handlers did not complete: the caller refuses.
	Err error
}

// errIdentityPending is returned until the connect and login events are
// built (issue 12, in progress this session).
var errIdentityPending = errors.New("scripting: connect and login events are not built yet")

// Handles reports whether any loaded script has a handler for event
// ("connect", "login", ...), so that callers skip a hook nobody handles.
func (e *Engine) Handles(event string) bool { return false }

// Connect runs the "connect" handlers for req.
func (e *Engine) Connect(ctx context.Context, req ConnectRequest) ConnectResult {
	return ConnectResult{Err: &chat.HookError{Reason: chat.HookFailError, Err: errIdentityPending}}
}

// Login runs the "login" handlers for req.
func (e *Engine) Login(ctx context.Context, req LoginRequest) LoginResult {
	return LoginResult{Err: &chat.HookError{Reason: chat.HookFailError, Err: errIdentityPending}}
}
