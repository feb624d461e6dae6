package scripting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// This file holds the identity events (issue 12): "connect", which runs for
// a WebSocket handshake before the upgrade, and "login", which answers
// POST /api/login. cmd/moonchat calls them (its authenticator and its login
// handler) from HTTP handler goroutines, concurrently; they take the Lua
// state like every other hook (Engine.acquire) and run each handler under
// the hook time limit. A call that does not complete returns a
// *chat.HookError and the caller refuses: an identity decision is never
// guessed.

// ConnectRequest is what a "connect" handler sees as req: one WebSocket
// handshake, before the upgrade (docs/lua.md).
type ConnectRequest struct {
	// Room and Name are the room asked for and the ?name= asked for.
	Room, Name string
	// Query is the URL's query. The caller leaves out "token"; the
	// engine drops it too, so a token never reaches a script this way.
	Query url.Values
	// Headers are the request's headers, as the caller filtered them
	// (cmd/moonchat drops cookie and authorization unless
	// [auth] expose_credentials is set). Lua sees lower-case names.
	Headers http.Header
	// Addr is the remote address (host:port).
	Addr string
	// Claims are the verified JWT claims, nil when there is no token.
	// Values are what encoding/json decodes (string, float64, bool, nil,
	// []any, map[string]any, json.Number) or Go strings, integers,
	// string slices and time.Time; anything else, or more than
	// maxClaimDepth levels or maxClaimValues values, fails the call.
	Claims map[string]any
}

// ConnectResult is what the "connect" handlers decided.
type ConnectResult struct {
	// Identity, when not nil, is the identity a handler returned
	// ({id, name, roles}); nil: carry on with what the credentials say.
	// Its ID, Name and Roles are clean (see checkIdentity); Rooms is nil
	// and Expires zero.
	Identity *chat.Identity
	// Refuse turns the connection away (HTTP 403) with Reason, one line
	// (empty when the script gave none: the caller says why).
	Refuse bool
	Reason string
	// Err is set when the handlers did not complete (*chat.HookError):
	// the caller refuses the connection (fail closed), logs Err and
	// counts it. Identity and Refuse are then unset.
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
	// Refuse: a handler said no (false, "reason"); Reason is one line,
	// empty when the script gave none.
	Refuse bool
	Reason string
	// Err is set when the handlers did not complete: the caller refuses.
	// Its text never contains the password (scrubbed, see scrubError).
	Err error
}

// Bounds on the claims handed to Lua. A verified token is at most
// auth.MaxTokenLen (8 KiB) long, so real claims are far below them; they
// exist so that a caller passing something else cannot make one handshake
// build an unbounded table.
const (
	maxClaimDepth  = 16   // nesting of arrays and objects
	maxClaimValues = 4096 // values (leaves and containers) in all
)

// maxReasonBytes bounds a refusal's reason: it is one line of an HTTP
// body and of a log line.
const maxReasonBytes = 200

// identityFields are the fields an identity table may have.
var identityFields = []string{"id", "name", "roles"}

// eventIndex returns the event named name.
func eventIndex(name string) (event, bool) {
	for ev, n := range eventNames {
		if n == name {
			return event(ev), true
		}
	}
	return 0, false
}

// Handles reports whether any loaded script has a handler for event
// ("connect", "login", ...), so that callers skip a hook nobody handles.
// It takes no lock and allocates nothing: the handler lists of a loaded
// state never change.
func (e *Engine) Handles(event string) bool {
	ev, ok := eventIndex(event)
	if !ok {
		return false
	}
	st := e.cur.Load()
	return st != nil && len(st.handlers[ev]) > 0
}

// Connect runs the "connect" handlers for req, in priority order (equal
// priorities in load order). The first handler that refuses (false,
// "reason") or returns an identity table decides; nil or true carries on
// to the next. A handler that fails (an error, the time limit, a result
// that is not one of those, an identity that is not clean) ends the call
// with Err set: the caller must refuse the connection.
func (e *Engine) Connect(ctx context.Context, req ConnectRequest) ConnectResult {
	if st := e.cur.Load(); st == nil {
		return ConnectResult{Err: errClosedHook}
	} else if len(st.handlers[evConnect]) == 0 {
		return ConnectResult{}
	}
	// The request table is plain data: build it (and refuse bad claims)
	// before waiting for the Lua state, so the state is held only for the
	// handlers.
	rt, err := connectTable(req)
	if err != nil {
		return ConnectResult{Err: &chat.HookError{Reason: chat.HookFailError, Err: fmt.Errorf("connect hook: %w", err)}}
	}
	v, err := e.decide(ctx, evConnect, rt, "")
	if err != nil {
		return ConnectResult{Err: err}
	}
	return ConnectResult{Identity: v.id, Refuse: v.refuse, Reason: v.reason}
}

// Login runs the "login" handlers for req, as Connect does: the first
// refusal or identity decides, nil carries on; no decision at all means
// that no script recognised the name and password. The password is in
// req.password for the handlers and nowhere else: Err's text has every
// occurrence of it replaced (a script that raised an error quoting it).
func (e *Engine) Login(ctx context.Context, req LoginRequest) LoginResult {
	if st := e.cur.Load(); st == nil {
		return LoginResult{Err: errClosedHook}
	} else if len(st.handlers[evLogin]) == 0 {
		return LoginResult{}
	}
	rt := newTable()
	rt.RawSetString("name", lua.LString(req.Name))
	rt.RawSetString("password", lua.LString(req.Password))
	rt.RawSetString("addr", lua.LString(req.Addr))
	v, err := e.decide(ctx, evLogin, rt, req.Password)
	if err != nil {
		return LoginResult{Err: err}
	}
	return LoginResult{Identity: v.id, Refuse: v.refuse, Reason: v.reason}
}

// verdict is what the handlers of an identity event decided.
type verdict struct {
	id     *chat.Identity
	refuse bool
	reason string
}

// decide calls ev's handlers with req until one decides. secret, when not
// empty, is scrubbed from the error's text.
func (e *Engine) decide(ctx context.Context, ev event, req *lua.LTable, secret string) (verdict, error) {
	if err := e.acquire(ctx); err != nil {
		return verdict{}, err
	}
	defer e.release()
	st := e.cur.Load()
	if st == nil {
		return verdict{}, errClosedHook
	}
	v, err := st.runIdentity(ev, req, secret)
	if err != nil && secret != "" {
		err = scrubError(err, secret) // the caller logs it
	}
	return v, err
}

// runIdentity runs ev's handlers; the caller holds the Lua state. secret,
// when not empty, is replaced in a refusal's reason before the reason is
// cut to length (a cut could leave part of it).
func (st *state) runIdentity(ev event, req *lua.LTable, secret string) (verdict, error) {
	L := st.L
	kind := eventNames[ev] + " hook"
	for i := range st.handlers[ev] {
		h := &st.handlers[ev][i]
		// Never disabled (handlerObs.mayDisable): only observed.
		L.Push(h.fn)
		L.Push(req)
		if err := st.pcall(st.sh.hookTimeout, 1, 2); err != nil {
			// Scrubbed before hookError cuts a long message: a cut could
			// leave part of the password, which scrubError would miss.
			err = hookError(kind, h.where, scrubLuaError(err, secret))
			st.done(h.obs, err)
			return verdict{}, err
		}
		r1, r2 := L.Get(-2), L.Get(-1)
		L.Pop(2)
		switch v := r1.(type) {
		case *lua.LNilType:
			st.done(h.obs, nil)
			continue
		case lua.LBool:
			st.done(h.obs, nil)
			if v {
				continue
			}
			if s, ok := r2.(lua.LString); ok && secret != "" {
				r2 = lua.LString(strings.ReplaceAll(string(s), secret, "[password]"))
			}
			return verdict{refuse: true, reason: oneLine(reasonOf(r2))}, nil
		case *lua.LTable:
			id, err := checkIdentity(v)
			if err != nil {
				err = badResult(kind, h.where, "returned an unusable identity: "+err.Error())
				st.done(h.obs, err)
				return verdict{}, err
			}
			st.done(h.obs, nil)
			return verdict{id: id}, nil
		default:
			err := badResult(kind, h.where, fmt.Sprintf("returned a %s (want nothing, false and a reason, or an identity table {id, name, roles})", r1.Type()))
			st.done(h.obs, err)
			return verdict{}, err
		}
	}
	return verdict{}, nil
}

// checkIdentity turns an identity table {id = "…", name = "…", roles =
// {…}} into a chat.Identity, or says what is wrong with it. id is
// required; name defaults to id; roles is an array (possibly empty or
// absent) of role names (cleanRole). Every value must be clean text within the
// limits a token's claims have (package auth), so that an identity a
// login handler returns can always be minted into a token: valid UTF-8,
// no control characters, no spaces around it. "guest" cannot be an
// account's role; "user" is implied (every account has it) and dropped;
// duplicates are dropped. Any other field is an error rather than
// ignored: a script that returns {rooms = …} must not believe it narrowed
// anything.
func checkIdentity(t *lua.LTable) (*chat.Identity, error) {
	var bad error
	t.ForEach(func(k, _ lua.LValue) {
		if bad != nil {
			return
		}
		if s, ok := k.(lua.LString); !ok || !slices.Contains(identityFields, string(s)) {
			bad = fmt.Errorf("unknown field %s (want id, name and roles)", describeKey(k))
		}
	})
	if bad != nil {
		return nil, bad
	}
	id, err := cleanField(t.RawGetString("id"), "id", auth.MaxIDLen, true)
	if err != nil {
		return nil, err
	}
	name, err := cleanField(t.RawGetString("name"), "name", auth.MaxNameLen, false)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if len(id) > auth.MaxNameLen {
			return nil, fmt.Errorf("name missing and id too long to be one (%d bytes, at most %d)", len(id), auth.MaxNameLen)
		}
		name = id
	}
	roles, err := checkRoles(t.RawGetString("roles"))
	if err != nil {
		return nil, err
	}
	return &chat.Identity{ID: id, Name: name, Roles: roles}, nil
}

// describeKey names a table key for an error message. Only a short name
// (a Lua identifier of at most 32 bytes) is quoted, whole: a login
// handler's error must not carry part of the password (scrubError
// replaces only whole occurrences).
func describeKey(k lua.LValue) string {
	if s, ok := k.(lua.LString); ok {
		if isIdentifier(string(s)) {
			return strconv.Quote(string(s))
		}
		return fmt.Sprintf("[a string of %d bytes]", len(s))
	}
	return "[" + k.Type().String() + "]"
}

// isIdentifier reports whether s is a Lua name of at most 32 bytes.
func isIdentifier(s string) bool {
	if s == "" || len(s) > 32 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

// cleanField checks one string field of an identity table.
func cleanField(v lua.LValue, field string, max int, required bool) (string, error) {
	switch s := v.(type) {
	case *lua.LNilType:
		if required {
			return "", fmt.Errorf("%s missing", field)
		}
		return "", nil
	case lua.LString:
		if err := cleanText(string(s), max); err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return string(s), nil
	}
	return "", fmt.Errorf("%s must be a string, got %s", field, v.Type())
}

// cleanText says what is wrong with s as an identity value (nil when
// nothing is).
func cleanText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("too long (%d bytes, at most %d)", len(s), max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("holds control characters")
	case strings.TrimSpace(s) != s:
		return errors.New("begins or ends with white space")
	}
	return nil
}

// checkRoles checks the roles of an identity table: nil or an array of
// clean role names.
func checkRoles(v lua.LValue) ([]string, error) {
	if v == lua.LNil {
		return nil, nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("roles must be an array of strings, got %s", v.Type())
	}
	n := t.Len()
	if n > auth.MaxListLen {
		return nil, fmt.Errorf("roles: %d of them, at most %d", n, auth.MaxListLen)
	}
	count := 0
	t.ForEach(func(lua.LValue, lua.LValue) { count++ })
	if count != n {
		return nil, errors.New("roles must be an array (keys 1 to n), not a table with other keys")
	}
	var roles []string
	for i := 1; i <= n; i++ {
		s, ok := t.RawGetInt(i).(lua.LString)
		if !ok {
			return nil, fmt.Errorf("roles[%d] must be a string, got %s", i, t.RawGetInt(i).Type())
		}
		r := string(s)
		if err := cleanRole(r); err != nil {
			return nil, fmt.Errorf("roles[%d]: %w", i, err)
		}
		switch {
		case r == chat.RoleGuest:
			return nil, fmt.Errorf("roles[%d]: %q is the built-in role of connections without an account", i, r)
		case r == chat.RoleUser, slices.Contains(roles, r):
			continue // implied, or said twice
		}
		roles = append(roles, r)
	}
	return roles, nil
}

// maxRoleBytes is the longest role the chat server grants (core/chat's
// roles.go): an identity's roles follow the rules of chat.grant, so that
// what a script gives at connect it can also revoke later.
const maxRoleBytes = 64

// cleanRole says what is wrong with r as a role name: cleanText's rules,
// at most maxRoleBytes, and, as for Host.Grant, no white space or format
// characters anywhere (roles travel in events and logs, and "team lead"
// would read as two), and not "*" (everyone, in room rules).
func cleanRole(r string) error {
	if err := cleanText(r, min(maxRoleBytes, auth.MaxEntryLen)); err != nil {
		return err
	}
	if r == chat.RoleEveryone {
		return errors.New(`"*" means everyone in room rules, it cannot be a role`)
	}
	if strings.IndexFunc(r, func(c rune) bool { return unicode.IsSpace(c) || unicode.Is(unicode.Cf, c) }) >= 0 {
		return errors.New("holds white space or format characters")
	}
	return nil
}

// oneLine makes a script's reason fit one line: control characters
// (line breaks included) become spaces, and it is cut to maxReasonBytes.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return strings.TrimSpace(truncate(s, maxReasonBytes))
}

// scrubLuaError returns the error of a failed Lua call with every
// occurrence of secret (when not empty) in its message replaced, before
// errorPos reads and cuts it.
func scrubLuaError(err error, secret string) error {
	if secret == "" {
		return err
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		// Only the error value can hold it: the traceback is positions
		// and function names.
		if s, ok := ae.Object.(lua.LString); ok && strings.Contains(string(s), secret) {
			c := *ae
			c.Object = lua.LString(strings.ReplaceAll(string(s), secret, "[password]"))
			return &c
		}
		return err
	}
	if text := err.Error(); strings.Contains(text, secret) {
		return errors.New(strings.ReplaceAll(text, secret, "[password]"))
	}
	return err
}

// scrubError returns err with every occurrence of secret in its text
// replaced, keeping a *chat.HookError's reason.
func scrubError(err error, secret string) error {
	text := err.Error()
	if !strings.Contains(text, secret) {
		return err
	}
	var he *chat.HookError
	reason := chat.HookFailError
	if errors.As(err, &he) && he.Err != nil {
		reason = he.Reason
		text = he.Err.Error()
	}
	return &chat.HookError{Reason: reason, Err: errors.New(strings.ReplaceAll(text, secret, "[password]"))}
}

// newTable returns an empty Lua table, as LState.CreateTable makes one (no
// metatable: Lua's nil, not Go's), without reaching for a Lua state: the
// request tables are built before the call takes the state.
func newTable() *lua.LTable { return &lua.LTable{Metatable: lua.LNil} }

// connectTable builds the Lua req of a "connect" call: {room, name,
// query, headers, addr, claims}.
func connectTable(req ConnectRequest) (*lua.LTable, error) {
	t := newTable()
	t.RawSetString("room", lua.LString(req.Room))
	t.RawSetString("name", lua.LString(req.Name))
	t.RawSetString("addr", lua.LString(req.Addr))
	q := newTable()
	for k, vs := range req.Query {
		if k == "token" || len(vs) == 0 {
			continue // a credential, whatever the caller did
		}
		q.RawSetString(k, lua.LString(vs[0]))
	}
	t.RawSetString("query", q)
	h := newTable()
	// Sorted, so that two spellings of one name ("X-A", "x-a": only
	// possible in a header map built by hand) resolve the same way
	// every time: the first in byte order.
	for _, k := range slices.Sorted(maps.Keys(req.Headers)) {
		vs := req.Headers[k]
		lk := lua.LString(strings.ToLower(k))
		if len(vs) == 0 || h.RawGetString(string(lk)) != lua.LNil {
			continue
		}
		h.RawSetString(string(lk), lua.LString(vs[0]))
	}
	t.RawSetString("headers", h)
	if req.Claims != nil {
		b := claimBuilder{left: maxClaimValues}
		c, err := b.table(req.Claims, 1)
		if err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
		t.RawSetString("claims", c)
	}
	return t, nil
}

// claimBuilder converts claims to Lua values within the bounds.
type claimBuilder struct {
	left int // values still allowed
}

func (b *claimBuilder) count() error {
	if b.left--; b.left < 0 {
		return fmt.Errorf("more than %d values", maxClaimValues)
	}
	return nil
}

func (b *claimBuilder) table(m map[string]any, depth int) (*lua.LTable, error) {
	if depth > maxClaimDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxClaimDepth)
	}
	if err := b.count(); err != nil {
		return nil, err
	}
	t := newTable()
	for k, v := range m {
		lv, err := b.value(v, depth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strconv.Quote(truncate(k, 32)), err)
		}
		t.RawSetString(k, lv)
	}
	return t, nil
}

func (b *claimBuilder) array(n int, at func(int) any, depth int) (*lua.LTable, error) {
	if depth > maxClaimDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxClaimDepth)
	}
	if err := b.count(); err != nil {
		return nil, err
	}
	t := newTable()
	for i := range n {
		lv, err := b.value(at(i), depth)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i+1, err)
		}
		t.RawSetInt(i+1, lv)
	}
	return t, nil
}

// value converts one claim value found at depth (its container's level).
func (b *claimBuilder) value(v any, depth int) (lua.LValue, error) {
	switch x := v.(type) {
	case map[string]any:
		return b.table(x, depth+1)
	case []any:
		return b.array(len(x), func(i int) any { return x[i] }, depth+1)
	case []string:
		return b.array(len(x), func(i int) any { return x[i] }, depth+1)
	}
	if err := b.count(); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case nil:
		return lua.LNil, nil
	case string:
		return lua.LString(x), nil
	case bool:
		return lua.LBool(x), nil
	case float64:
		return lua.LNumber(x), nil
	case float32:
		return lua.LNumber(x), nil
	case int:
		return lua.LNumber(x), nil
	case int64:
		return lua.LNumber(x), nil
	case int32:
		return lua.LNumber(x), nil
	case uint64:
		return lua.LNumber(x), nil
	case uint32:
		return lua.LNumber(x), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return lua.LString(x), nil // keep its text rather than guess
		}
		return lua.LNumber(f), nil
	case time.Time:
		return lua.LNumber(x.Unix()), nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}
