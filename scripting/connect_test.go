package scripting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// hookReason returns err's *chat.HookError reason, failing the test when
// err is not one.
func hookReason(t *testing.T, err error) chat.HookFailReason {
	t.Helper()
	var he *chat.HookError
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) is not a *chat.HookError", err, err)
	}
	return he.Reason
}

// TestConnectDecides: the connect handlers' results — carry on, refuse,
// identity — across several scripts, in load order, the first decision
// winning and the handlers after it not running.
func TestConnectDecides(t *testing.T) {
	files := map[string]string{
		// Runs first (a.lua), counts its calls, decides only for "refuse*".
		"a.lua": `
chat.on("connect", function(req)
  chat.kv.set("calls", (tonumber(chat.kv.get("calls")) or 0) + 1)
  if req.name == "refuse" then return false, "no\nrefuse for you" end
  if req.name == "refuse-bare" then return false end
  if req.name == "true" then return true end
end)`,
		// Second: identities; everything else carries on.
		"b.lua": `
chat.on("connect", function(req)
  chat.kv.set("b", req.name)
  if req.name == "ann" then return { id = "u-ann", name = "Ann", roles = { "mod", "user", "mod", "ops" } } end
  if req.name == "bare" then return { id = "u-bare" } end
  if req.name == "true" then return { id = "after-true" } end
end)`,
	}
	r := newRig(t, files)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		want   ConnectResult
		bRan   bool
		wantID *chat.Identity
	}{
		{"nobody", ConnectResult{}, true, nil},
		{"refuse", ConnectResult{Refuse: true, Reason: "no refuse for you"}, false, nil},
		{"refuse-bare", ConnectResult{Refuse: true}, false, nil},
		{"ann", ConnectResult{}, true, &chat.Identity{ID: "u-ann", Name: "Ann", Roles: []string{"mod", "ops"}}},
		{"bare", ConnectResult{}, true, &chat.Identity{ID: "u-bare", Name: "u-bare"}},
		{"true", ConnectResult{}, true, &chat.Identity{ID: "after-true", Name: "after-true"}},
	} {
		_ = r.kv.Delete("b.lua", "b")
		got := r.e.Connect(ctx, ConnectRequest{Room: "lobby", Name: tc.name})
		if got.Err != nil {
			t.Fatalf("%s: Err %v", tc.name, got.Err)
		}
		if !reflect.DeepEqual(got.Identity, tc.wantID) {
			t.Errorf("%s: identity %+v, want %+v", tc.name, got.Identity, tc.wantID)
		}
		got.Identity = nil
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
		_, bRan, _ := r.kv.Get("b.lua", "b")
		if bRan != tc.bRan {
			t.Errorf("%s: b.lua ran = %v, want %v", tc.name, bRan, tc.bRan)
		}
	}
	if calls, _, _ := r.kv.Get("a.lua", "calls"); calls != "6" {
		t.Errorf("a.lua ran %s times, want 6", calls)
	}
}

// TestConnectPriority: a higher priority runs first, whatever the load
// order.
func TestConnectPriority(t *testing.T) {
	r := newRig(t, map[string]string{
		"a.lua": `chat.on("connect", function() return { id = "from-a" } end)`,
		"b.lua": `chat.on("connect", function() return { id = "from-b" } end, 10)`,
	})
	got := r.e.Connect(t.Context(), ConnectRequest{Room: "lobby"})
	if got.Err != nil || got.Identity == nil || got.Identity.ID != "from-b" {
		t.Fatalf("got %+v %+v, want from-b", got, got.Identity)
	}
}

// TestConnectRequestTable: what req holds — room, name, addr, the first
// value of each query key (never "token"), the headers under lower-case
// names (first value), and the claims converted, nil without a token.
func TestConnectRequestTable(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
local function dump(v, depth)
  if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    out[#out + 1] = k .. "=" .. dump(val)
  end
  return "{" .. table.concat(out, ",") .. "}"
end
chat.on("connect", function(req)
  chat.kv.set("req", dump(req))
  -- Plain tables: no metatable, and a script may give them one.
  local mts = {}
  for _, t in ipairs({ req, req.query, req.headers, req.claims or {}, (req.claims or {}).org or {} }) do
    mts[#mts + 1] = tostring(getmetatable(t))
    setmetatable(t, { __index = function() return "dflt" end })
    mts[#mts + 1] = t.nosuchfield
  end
  chat.kv.set("mt", table.concat(mts, ","))
end)`})
	claims := map[string]any{}
	if err := json.Unmarshal([]byte(`{"sub":"u-1","exp":1700000000,"admin":true,"roles":["a","b"],"org":{"id":7,"tags":[{"x":null}]}}`), &claims); err != nil {
		t.Fatal(err)
	}
	claims["n"] = json.Number("12")
	claims["names"] = []string{"p", "q"}
	claims["at"] = time.Unix(5, 0)
	req := ConnectRequest{
		Room: "dev", Name: "ann", Addr: "10.0.0.1:4000",
		Query:   url.Values{"a": {"1", "2"}, "token": {"secret-token"}, "empty": {}},
		Headers: http.Header{"X-Forwarded-For": {"1.2.3.4", "5.6.7.8"}, "User-Agent": {"test"}},
		Claims:  claims,
	}
	if got := r.e.Connect(t.Context(), req); got.Err != nil || got.Refuse || got.Identity != nil {
		t.Fatalf("Connect: %+v", got)
	}
	dumped, _, _ := r.kv.Get("a.lua", "req")
	want := "{addr=string:10.0.0.1:4000," +
		"claims={admin=boolean:true,at=number:5,exp=number:1700000000,n=number:12,names={1=string:p,2=string:q}," +
		"org={id=number:7,tags={1={}}},roles={1=string:a,2=string:b},sub=string:u-1}," +
		"headers={user-agent=string:test,x-forwarded-for=string:1.2.3.4}," +
		"name=string:ann,query={a=string:1},room=string:dev}"
	if dumped != want {
		t.Errorf("req =\n%s\nwant\n%s", dumped, want)
	}
	if mt, _, _ := r.kv.Get("a.lua", "mt"); mt != strings.Repeat("nil,dflt,", 4)+"nil,dflt" {
		t.Errorf("metatables: %s", mt)
	}
	req.Claims = nil
	r.e.Connect(t.Context(), req)
	if dumped, _, _ := r.kv.Get("a.lua", "req"); strings.Contains(dumped, "claims") {
		t.Errorf("req without a token has claims: %s", dumped)
	}
}

// TestConnectClaimBounds: claims nested too deep, too many values or of a
// type the engine does not convert fail the call (the caller refuses)
// without running any handler.
func TestConnectClaimBounds(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `chat.on("connect", function() chat.kv.set("ran", "yes") end)`})
	deep := map[string]any{}
	inner := deep
	for range maxClaimDepth {
		next := map[string]any{}
		inner["x"] = next
		inner = next
	}
	many := make([]any, maxClaimValues)
	for i := range many {
		many[i] = i
	}
	okDepth := map[string]any{}
	inner = okDepth
	for range maxClaimDepth - 1 {
		next := map[string]any{}
		inner["x"] = next
		inner = next
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   string // "" = accepted
	}{
		{"deepest allowed", okDepth, ""},
		{"too deep", deep, "nested deeper than 16 levels"},
		{"too many", map[string]any{"list": many}, "more than 4096 values"},
		{"unsupported type", map[string]any{"ch": make(chan int)}, `"ch": unsupported value of type chan int`},
	} {
		_ = r.kv.Delete("a.lua", "ran")
		got := r.e.Connect(t.Context(), ConnectRequest{Room: "lobby", Claims: tc.claims})
		_, ran, _ := r.kv.Get("a.lua", "ran")
		if tc.want == "" {
			if got.Err != nil || !ran {
				t.Errorf("%s: %+v (ran %v)", tc.name, got, ran)
			}
			continue
		}
		if got.Err == nil || !strings.Contains(got.Err.Error(), tc.want) || ran {
			t.Errorf("%s: Err %v (ran %v), want %q and no handler run", tc.name, got.Err, ran, tc.want)
			continue
		}
		if reason := hookReason(t, got.Err); reason != chat.HookFailError {
			t.Errorf("%s: reason %s", tc.name, reason)
		}
	}
}

// TestConnectBadIdentity: an identity table that is not clean, or a
// result that is none of the allowed ones, is a hook failure — never an
// identity, never "carry on".
func TestConnectBadIdentity(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
local results = {
  missing = function() return {} end,
  empty = function() return { id = "" } end,
  number = function() return { id = 42 } end,
  newline = function() return { id = "a\nb" } end,
  spaces = function() return { id = " a" } end,
  long = function() return { id = string.rep("x", 257) } end,
  longname = function() return { id = string.rep("x", 65) } end,
  badutf8 = function() return { id = "a\255" } end,
  namenum = function() return { id = "a", name = 5 } end,
  nameempty = function() return { id = "a", name = "" } end,
  rolesstr = function() return { id = "a", roles = "mod" } end,
  rolenum = function() return { id = "a", roles = { "mod", 5 } } end,
  rolekey = function() return { id = "a", roles = { "mod", x = "y" } } end,
  rolegap = function() return { id = "a", roles = { [2] = "mod" } } end,
  roleguest = function() return { id = "a", roles = { "guest" } } end,
  rolectl = function() return { id = "a", roles = { "m\tod" } } end,
  rolespace = function() return { id = "a", roles = { "team lead" } } end,
  rolezw = function() return { id = "a", roles = { "mo\226\128\139d" } } end,
  rolestar = function() return { id = "a", roles = { "*" } } end,
  rolelong = function() return { id = "a", roles = { string.rep("r", 65) } } end,
  rooms = function() return { id = "a", rooms = { "lobby" } } end,
  numkey = function() return { id = "a", [1] = "x" } end,
  string = function() return "alice" end,
  number5 = function() return 5 end,
}
chat.on("connect", function(req) return results[req.name]() end)`})
	for name, want := range map[string]string{
		"missing":   "id missing",
		"empty":     "id: empty",
		"number":    "id must be a string, got number",
		"newline":   "id: holds control characters",
		"spaces":    "id: begins or ends with white space",
		"long":      "id: too long (257 bytes, at most 256)",
		"longname":  "name missing and id too long to be one",
		"badutf8":   "id: not valid UTF-8",
		"namenum":   "name must be a string, got number",
		"nameempty": "name: empty",
		"rolesstr":  "roles must be an array of strings, got string",
		"rolenum":   "roles[2] must be a string, got number",
		"rolekey":   "roles must be an array",
		"rolegap":   "roles must be an array",
		"roleguest": `roles[1]: "guest" is the built-in role`,
		"rolectl":   "roles[1]: holds control characters",
		"rolespace": "roles[1]: holds white space or format characters",
		"rolezw":    "roles[1]: holds white space or format characters",
		"rolestar":  `roles[1]: "*" means everyone`,
		"rolelong":  "roles[1]: too long (65 bytes, at most 64)",
		"rooms":     `unknown field "rooms"`,
		"numkey":    "unknown field [number]",
		"string":    "returned a string",
		"number5":   "returned a number",
	} {
		got := r.e.Connect(t.Context(), ConnectRequest{Room: "lobby", Name: name})
		if got.Err == nil || got.Identity != nil || got.Refuse {
			t.Errorf("%s: %+v, want a failure", name, got)
			continue
		}
		if !strings.Contains(got.Err.Error(), want) || !strings.Contains(got.Err.Error(), "connect hook defined there") {
			t.Errorf("%s: %v, want %q", name, got.Err, want)
		}
		if reason := hookReason(t, got.Err); reason != chat.HookFailError {
			t.Errorf("%s: reason %s", name, reason)
		}
	}
}

// TestConnectFailures: a handler that raises ends the call with a failure
// (the next handlers do not turn it into a decision), so does the time
// limit, scripts busy for too long, a cancelled context and a closed
// engine; each with its reason for the caller's log and metrics.
func TestConnectFailures(t *testing.T) {
	r := newRigOpts(t, Options{
		FS: scriptFS(map[string]string{
			"a.lua": `chat.on("connect", function(req)
  if req.name == "boom" then error("kaput") end
  if req.name == "loop" then while true do end end
end)`,
			"b.lua": `chat.on("connect", function() return { id = "fallback" } end)`,
		}),
		HookTimeout: 50 * time.Millisecond,
		LockWait:    50 * time.Millisecond,
	})
	ctx := t.Context()
	got := r.e.Connect(ctx, ConnectRequest{Name: "boom"})
	if got.Identity != nil || hookReason(t, got.Err) != chat.HookFailError || !strings.Contains(got.Err.Error(), "a.lua:2: kaput") {
		t.Errorf("boom: %+v", got)
	}
	got = r.e.Connect(ctx, ConnectRequest{Name: "loop"})
	if got.Identity != nil || hookReason(t, got.Err) != chat.HookFailTimeout {
		t.Errorf("loop: %+v", got)
	}
	if got := r.e.Connect(ctx, ConnectRequest{Name: "x"}); got.Err != nil || got.Identity == nil {
		t.Fatalf("after the failures the hook works again: %+v", got)
	}

	r.e.sem <- struct{}{} // another call holds the Lua state
	got = r.e.Connect(ctx, ConnectRequest{Name: "x"})
	if got.Identity != nil || hookReason(t, got.Err) != chat.HookFailBusy {
		t.Errorf("busy: %+v", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	got = r.e.Connect(cctx, ConnectRequest{Name: "x"})
	if got.Identity != nil || hookReason(t, got.Err) != chat.HookFailCanceled {
		t.Errorf("canceled: %+v", got)
	}
	r.e.release()

	r.e.Close()
	got = r.e.Connect(ctx, ConnectRequest{Name: "x"})
	if got.Identity != nil || hookReason(t, got.Err) != chat.HookFailCanceled {
		t.Errorf("closed: %+v", got)
	}
	if l := r.e.Login(ctx, LoginRequest{Name: "x", Password: "pw"}); l.Identity != nil || hookReason(t, l.Err) != chat.HookFailCanceled {
		t.Errorf("closed login: %+v", l)
	}
	if r.e.Handles("connect") {
		t.Error("a closed engine handles connect")
	}
}

// TestConnectConcurrent: HTTP handlers call Connect at the same time; each
// gets the identity of its own request.
func TestConnectConcurrent(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("connect", function(req)
  return { id = "id-" .. req.name, name = req.name, roles = { req.query.role } }
end)`})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 8 {
				name := fmt.Sprintf("u%d-%d", g, i)
				role := fmt.Sprintf("r%d", i)
				got := r.e.Connect(context.Background(), ConnectRequest{Name: name, Query: url.Values{"role": {role}}})
				want := &chat.Identity{ID: "id-" + name, Name: name, Roles: []string{role}}
				if got.Err != nil || !reflect.DeepEqual(got.Identity, want) {
					errs <- fmt.Errorf("%s: %+v %+v", name, got, got.Identity)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHandles: which events the loaded scripts handle, answered without
// allocating, and following a reload.
func TestHandles(t *testing.T) {
	fsys := scriptFS(map[string]string{"a.lua": `chat.on("connect", function() end)`})
	r := newRigOpts(t, Options{FS: fsys})
	for ev, want := range map[string]bool{"connect": true, "login": false, "join": false, "nosuch": false, "": false} {
		if got := r.e.Handles(ev); got != want {
			t.Errorf("Handles(%q) = %v, want %v", ev, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { r.e.Handles("connect") }); n != 0 {
		t.Errorf("Handles allocates %v times", n)
	}
	fsys["a.lua"].Data = []byte(`chat.on("login", function() end)`)
	if err := r.e.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if r.e.Handles("connect") || !r.e.Handles("login") {
		t.Errorf("after reload: connect %v login %v", r.e.Handles("connect"), r.e.Handles("login"))
	}
	// Without handlers, Connect and Login decide nothing and do not fail.
	if got := r.e.Connect(t.Context(), ConnectRequest{}); got.Err != nil || got.Refuse || got.Identity != nil {
		t.Errorf("Connect without handlers: %+v", got)
	}
}

// TestLoginHook: the login handlers' results, and that the password never
// reaches an error's text or a refusal's reason, whatever the script does
// with it.
func TestLoginHook(t *testing.T) {
	const pw = "correct horse battery staple"
	r := newRigOpts(t, Options{
		FS: scriptFS(map[string]string{
			"a.lua": `
chat.on("login", function(req)
  chat.kv.set("seen", req.name .. "@" .. req.addr .. ":" .. #req.password)
  if req.name == "raise" then error("bad password " .. req.password) end
  if req.name == "raise-table" then error({ req.password }) end
  if req.name == "raise-long" then error(string.rep("x", 4090) .. req.password) end
  if req.name == "loop" then while #req.password > 0 do end end
  if req.name == "quote" then return false, "you said " .. req.password end
  if req.name == "quote-long" then return false, string.rep("x", 195) .. req.password end
  if req.name == "field" then return { id = "x", [req.password] = 1 } end
  if req.name == "field-long" then return { id = "x", [req.password .. req.password] = 1 } end
  if req.name == "no" then return false, "wrong name or password" end
  if req.name == "ann" and req.password == "` + pw + `" then return { id = "u-ann", name = "Ann" } end
end)`,
			"b.lua": `chat.on("login", function(req) if req.name == "bob" then return { id = "u-bob" } end end)`,
		}),
		HookTimeout: 100 * time.Millisecond,
	})
	ctx := t.Context()
	login := func(name string) LoginResult {
		return r.e.Login(ctx, LoginRequest{Name: name, Password: pw, Addr: "127.0.0.1:9"})
	}
	if got := login("ann"); got.Err != nil || !reflect.DeepEqual(got.Identity, &chat.Identity{ID: "u-ann", Name: "Ann"}) {
		t.Errorf("ann: %+v %+v", got, got.Identity)
	}
	if seen, _, _ := r.kv.Get("a.lua", "seen"); seen != fmt.Sprintf("ann@127.0.0.1:9:%d", len(pw)) {
		t.Errorf("req seen as %q", seen)
	}
	if got := login("bob"); got.Err != nil || got.Identity == nil || got.Identity.ID != "u-bob" {
		t.Errorf("bob (second script): %+v", got)
	}
	if got := login("nobody"); got != (LoginResult{}) {
		t.Errorf("unknown: %+v, want no decision", got)
	}
	if got := login("no"); got != (LoginResult{Refuse: true, Reason: "wrong name or password"}) {
		t.Errorf("no: %+v", got)
	}
	if got := login("quote"); !got.Refuse || strings.Contains(got.Reason, pw) || got.Reason != "you said [password]" {
		t.Errorf("quote: %+v", got)
	}
	if got := login("quote-long"); !got.Refuse || got.Reason != strings.Repeat("x", 195)+"[pass" {
		t.Errorf("quote-long: %+v", got)
	}
	for name, reason := range map[string]chat.HookFailReason{
		"raise": chat.HookFailError, "raise-table": chat.HookFailError, "raise-long": chat.HookFailError, "loop": chat.HookFailTimeout,
		"field": chat.HookFailError, "field-long": chat.HookFailError,
	} {
		got := login(name)
		if got.Identity != nil || got.Refuse || got.Err == nil {
			t.Errorf("%s: %+v, want a failure", name, got)
			continue
		}
		if hookReason(t, got.Err) != reason {
			t.Errorf("%s: reason %s, want %s", name, hookReason(t, got.Err), reason)
		}
		if text := got.Err.Error(); strings.Contains(text, pw) || !strings.Contains(text, "a.lua:2") || !strings.Contains(text, "login hook defined") {
			t.Errorf("%s: error text %q (must not hold the password, must say where)", name, text)
		}
		if name == "raise" && !strings.Contains(got.Err.Error(), "bad password [password]") {
			t.Errorf("raise: %q", got.Err)
		}
		// A long message is cut (maxErrorBytes) where the password was:
		// it is scrubbed first, so no part of it is left.
		if name == "raise-long" && (strings.Contains(got.Err.Error(), pw[:6]) || !strings.Contains(got.Err.Error(), "xxx[passw… (error message of 4100 bytes, cut to 4096)")) {
			t.Errorf("raise-long: %q", got.Err)
		}
		if name == "field-long" && !strings.Contains(got.Err.Error(), "unknown field [a string of 56 bytes]") {
			t.Errorf("field-long: %q", got.Err)
		}
	}
	if strings.Contains(r.log.String(), pw) {
		t.Errorf("the log holds the password:\n%s", r.log.String())
	}
}

// TestScrubErrorKeepsReason: scrubbing keeps the failure's reason and
// leaves an error without the secret as it is.
func TestScrubErrorKeepsReason(t *testing.T) {
	err := &chat.HookError{Reason: chat.HookFailTimeout, Err: errors.New("x: pw pw")}
	got := scrubError(err, "pw")
	if got.Error() != "hook failed (timeout): x: [password] [password]" {
		t.Errorf("got %q", got)
	}
	if other := scrubError(err, "zz"); other != err {
		t.Errorf("unchanged error replaced: %v", other)
	}
}
