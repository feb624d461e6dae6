package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// testSecret is the [auth] jwt_secret of the tests (32 bytes: HS256 only).
const testSecret = "0123456789abcdef0123456789abcdef"

// authServer starts a server with [auth] lines auth, an ES256 public key
// in ec.pem, and returns it with the matching private key and the public
// key's PEM text.
func authServer(t *testing.T, authLines string) (*inProcess, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	return authServerScripts(t, authLines, nil)
}

// authServerScripts is authServer with a scripts directory holding
// scripts (file name → Lua source) instead of the built-in scripts, when
// scripts is not nil. authLines may end the [auth] table and add others
// ("[admin]\n...").
func authServerScripts(t *testing.T, authLines string, scripts map[string]string) (*inProcess, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	dir := t.TempDir()
	if scripts != nil {
		writeScripts(t, dir, scripts)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "ec.pem"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, nil)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.WriteString(f, "[auth]\njwt_secret = \""+testSecret+"\"\njwt_public_keys = [\"ec.pem\"]\njwt_issuer = \"app\"\njwt_audience = \"chat\"\n"+authLines)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return startInProcess(t, cfg), key, pub
}

// sign makes a token with method and key over claims.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goodClaims are claims the test server accepts, changed by edit.
func goodClaims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "u-alice", "name": "alice", "iss": "app", "aud": "chat", "exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"mod"}}
	if edit != nil {
		edit(c)
	}
	return c
}

// dialToken tries to join room with token; it returns the connection (nil
// when refused) and the handshake response's status and body.
func dialToken(t *testing.T, addr, room, name, token string) (*websocket.Conn, int, string) {
	t.Helper()
	q := url.Values{"name": {name}}
	if token != "" {
		q.Set("token", token)
	}
	return dialWith(t, addr, room, q, nil)
}

// dialWith is dialToken with the whole query and extra headers.
func dialWith(t *testing.T, addr, room string, q url.Values, hdr http.Header) (*websocket.Conn, int, string) {
	t.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/chat/" + room, RawQuery: q.Encode()}
	d := websocket.Dialer{Subprotocols: []string{"moonchat.v1"}, HandshakeTimeout: waitLong}
	conn, resp, err := d.Dial(u.String(), hdr)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
		return conn, resp.StatusCode, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, string(body)
}

// refusalScript is the connect script of TestAuthRefusals: ?deny=1 is
// refused with a reason naming the asked-for name, ?boom=1 fails.
const refusalScript = `
chat.on("connect", function(req)
  if req.query.deny then return false, "no entry for " .. req.name end
  if req.query.boom then error("the accounts service is down") end
end)
`

// TestAuthRefusals (issue 12): every refusal is answered at the
// handshake with its status and a one-line reason, before any history is
// sent (no upgrade, no message text in the body): bad tokens of every
// kind, a room the token's rooms claim does not allow, no token with
// guests off, a connect script's refusal (403 with its reason) and its
// failure (503: fail closed). The token never reaches the log; refusals
// are counted by status.
func TestAuthRefusals(t *testing.T) {
	srv, key, pub := authServerScripts(t, "guests = true\n", map[string]string{"connect.lua": refusalScript})
	off, _, _ := authServer(t, "guests = false\n")
	// History the refused clients must not see.
	guest := dial(t, srv.addr, "lobby", "carol", nil)
	guest.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	guest.send("secret history")
	guest.waitFor("own message", func(e event) bool { return e.Type == "message" })

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hs := func(edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(edit))
	}
	cases := []struct {
		name   string
		room   string
		token  string
		status int
		reason string
		query  url.Values // more query parameters
		srv    *inProcess // nil: srv (guests on, the connect script)
	}{
		{"bad signature", "lobby", sign(t, jwt.SigningMethodES256, other, goodClaims(nil)), 401, "signature", nil, nil},
		{"wrong algorithm", "lobby", sign(t, jwt.SigningMethodES384, p384, goodClaims(nil)), 401, "algorithm", nil, nil},
		{"none", "lobby", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims(nil)), 401, "algorithm", nil, nil},
		{"key confusion", "lobby", sign(t, jwt.SigningMethodHS256, pub, goodClaims(nil)), 401, "signature", nil, nil},
		{"expired", "lobby", hs(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), 401, "expired", nil, nil},
		{"no exp", "lobby", hs(func(c jwt.MapClaims) { delete(c, "exp") }), 401, "exp", nil, nil},
		{"wrong issuer", "lobby", hs(func(c jwt.MapClaims) { c["iss"] = "evil" }), 401, "issuer", nil, nil},
		{"wrong audience", "lobby", hs(func(c jwt.MapClaims) { c["aud"] = "other" }), 401, "audience", nil, nil},
		{"missing sub", "lobby", hs(func(c jwt.MapClaims) { delete(c, "sub") }), 401, "sub", nil, nil},
		{"garbage", "lobby", "not.a.token", 401, "malformed", nil, nil},
		{"room not allowed", "lobby", hs(func(c jwt.MapClaims) { c["rooms"] = []string{"team-*"} }), 403, "room", nil, nil},
		{"no rooms allowed", "lobby", hs(func(c jwt.MapClaims) { c["rooms"] = []string{} }), 403, "room", nil, nil},
		{"guests off, no token", "lobby", "", 401, "a token is required", nil, off},
		{"guests off, bad token", "lobby", "not.a.token", 401, "malformed", nil, off},
		{"connect script refuses", "lobby", "", 403, "no entry for mallory", url.Values{"deny": {"1"}}, nil},
		{"connect script refuses a token", "lobby", hs(nil), 403, "no entry for mallory", url.Values{"deny": {"1"}}, nil},
		{"connect script fails", "lobby", "", 503, "the connect script failed", url.Values{"boom": {"1"}}, nil},
		{"bad token before the script", "lobby", "not.a.token", 401, "malformed", url.Values{"deny": {"1"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := srv
			if tc.srv != nil {
				s = tc.srv
			}
			q := url.Values{"name": {"mallory"}}
			for k, v := range tc.query {
				q[k] = v
			}
			if tc.token != "" {
				q.Set("token", tc.token)
			}
			conn, status, body := dialWith(t, s.addr, tc.room, q, nil)
			if conn != nil {
				t.Fatalf("connected")
			}
			if status != tc.status || !strings.Contains(body, tc.reason) {
				t.Errorf("got %d %q, want %d with %q", status, body, tc.status, tc.reason)
			}
			if strings.Contains(body, "secret history") || strings.Count(strings.TrimSpace(body), "\n") != 0 {
				t.Errorf("body %q: want one line, no history", body)
			}
		})
	}
	// A token the rooms claim allows gets in.
	ok := sign(t, jwt.SigningMethodES256, key, goodClaims(func(c jwt.MapClaims) { c["rooms"] = []string{"lob*"} }))
	if conn, status, body := dialToken(t, srv.addr, "lobby", "x", ok); conn == nil {
		t.Fatalf("ES256 token refused: %d %q", status, body)
	}
	_, metrics := httpGet(t, "http://"+srv.addr+"/metrics")
	for _, want := range []string{`moonchat_auth_refused_total{status="401"} 11`, `moonchat_auth_refused_total{status="403"} 4`, `moonchat_auth_refused_total{status="503"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The script's failure is logged with its cause, for the operator.
	if log := srv.log.String(); !strings.Contains(log, "connect script failed") || !strings.Contains(log, "the accounts service is down") {
		t.Errorf("the connect script's failure is not logged with its cause:\n%s", log)
	}
	srv.stop(t)
	log := srv.log.String()
	if !strings.Contains(log, "refused by authentication") {
		t.Errorf("refusals not logged:\n%s", log)
	}
	for _, tc := range cases {
		if tc.token != "" && strings.Contains(log, tc.token) {
			t.Errorf("log contains the %s token", tc.name)
		}
	}
}

// TestAuthGuestsOff (issue 12): with guests = false a connection without a
// token is refused 401; with a token it gets in.
func TestAuthGuestsOff(t *testing.T) {
	srv, _, _ := authServer(t, "guests = false\n")
	if conn, status, body := dialToken(t, srv.addr, "lobby", "carol", ""); conn != nil || status != http.StatusUnauthorized || !strings.Contains(body, "token is required") {
		t.Errorf("no token: connected=%v %d %q", conn != nil, status, body)
	}
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(nil))
	if conn, status, body := dialToken(t, srv.addr, "lobby", "alice", tok); conn == nil {
		t.Errorf("good token refused: %d %q", status, body)
	}
	// Other clients send it as a Bearer header (RFC 6750 section 2.1); a
	// request with both ways is refused (section 2: only one).
	d := websocket.Dialer{Subprotocols: []string{"moonchat.v1"}, HandshakeTimeout: waitLong}
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	conn, _, err := d.Dial("ws://"+srv.addr+"/chat/lobby", hdr)
	if err != nil {
		t.Fatalf("Bearer header refused: %v", err)
	}
	conn.Close()
	_, resp, err := d.Dial("ws://"+srv.addr+"/chat/lobby?token="+url.QueryEscape(tok), hdr)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token in header and query: err %v, response %v; want 401", err, resp)
	}
}

// TestAuthIdentity (issue 12): a token user joins with the token's name
// (not ?name=), its presence carries id and roles; a guest asking for that
// name gets a variant; /nick to it too.
func TestAuthIdentity(t *testing.T) {
	srv, _, _ := authServer(t, "guests = true\n")
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(nil))
	conn, status, body := dialToken(t, srv.addr, "lobby", "someone-else", tok)
	if conn == nil {
		t.Fatalf("token refused: %d %q", status, body)
	}
	alice := &client{t: t, conn: conn, name: "alice"}
	alice.waitFor("welcome as alice", func(e event) bool { return e.Type == "welcome" && e.User == "alice" })

	guest := dial(t, srv.addr, "lobby", "alice", nil)
	w := guest.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	if w.User == "alice" {
		t.Fatalf("guest was given the account's name")
	}
	// The guest's full presence list marks alice as an account.
	p := waitRaw(guest, func(e map[string]any) bool { return e["type"] == "presence" && e["users"] != nil })
	acc, _ := p["accounts"].(map[string]any)
	if a, _ := acc["alice"].(map[string]any); a["id"] != "u-alice" || fmt.Sprint(a["roles"]) != "[user mod]" || len(acc) != 1 {
		t.Errorf("presence %v: want accounts {alice: {id u-alice, roles [user mod]}} only", p)
	}
	// alice's messages carry her account id and roles.
	alice.send("hi from alice")
	am := waitRaw(guest, func(e map[string]any) bool { return e["type"] == "message" && e["text"] == "hi from alice" })
	if am["user_id"] != "u-alice" || fmt.Sprint(am["roles"]) != "[user mod]" {
		t.Errorf("alice's message %v: want user_id and roles", am)
	}
	guest.send("/nick alice")
	guest.send("hello")
	m := alice.waitFor("guest's message", func(e event) bool { return e.Type == "message" && e.Text == "hello" })
	if m.User == "alice" {
		t.Errorf("guest's /nick took the account's name")
	}
	guest.send("still a guest")
	if gm := waitRaw(alice, func(e map[string]any) bool { return e["type"] == "message" && e["text"] == "still a guest" }); gm["user_id"] != nil || gm["roles"] != nil {
		t.Errorf("guest's message %v carries an identity", gm)
	}
	if !slices.Contains([]string{"alice-2", "alice-3"}, m.User) {
		t.Errorf("guest named %q, want a variant of alice", m.User)
	}

	// In another room too, in any case: the account holds the name
	// server-wide while it is connected.
	for _, asked := range []string{"alice", "ALICE"} {
		g := dial(t, srv.addr, "elsewhere", asked, nil)
		if w := g.waitFor("welcome", func(e event) bool { return e.Type == "welcome" }); !strings.HasPrefix(w.User, asked+"-") {
			t.Errorf("guest asking for %q in another room got %q, want a variant", asked, w.User)
		}
	}
	// The account itself may connect again, in another room, as alice.
	conn2, status, body := dialToken(t, srv.addr, "elsewhere", "", tok)
	if conn2 == nil {
		t.Fatalf("second connection refused: %d %q", status, body)
	}
	again := &client{t: t, conn: conn2, name: "alice#2"}
	again.waitFor("welcome as alice", func(e event) bool { return e.Type == "welcome" && e.User == "alice" })
	// A token name that is no valid nick joins under the account id.
	spaced := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(func(c jwt.MapClaims) { c["sub"] = "u-bob"; c["name"] = "Bob Smith" }))
	conn3, status, body := dialToken(t, srv.addr, "elsewhere", "", spaced)
	if conn3 == nil {
		t.Fatalf("token with a spaced name refused: %d %q", status, body)
	}
	bob := &client{t: t, conn: conn3, name: "bob"}
	bob.waitFor("welcome as u-bob", func(e event) bool { return e.Type == "welcome" && e.User == "u-bob" })
	srv.stop(t)
	if strings.Contains(srv.log.String(), tok) {
		t.Errorf("the server log contains the token")
	}
}

// waitRaw reads c's events until match accepts one, decoded as a map.
func waitRaw(c *client, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	for range 1000 {
		_ = c.conn.SetReadDeadline(time.Now().Add(waitLong))
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("%s: %v", c.name, err)
		}
		var e map[string]any
		if err := json.Unmarshal(data, &e); err != nil {
			c.t.Fatalf("bad event %q: %v", data, err)
		}
		if match(e) {
			return e
		}
	}
	c.t.Fatalf("%s: no matching event", c.name)
	return nil
}

// TestCheckAuthKeys (issue 12): moonchat check loads the [auth] keys as
// serve would, and refuses a missing or unparsable key file, a short
// secret and guests = false without any key.
func TestCheckAuthKeys(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tests := []struct {
		name, auth string
		code       int
		stderr     string
	}{
		{"good key", `jwt_public_keys = ["good.pem"]`, 0, ""},
		{"good secret, guests off", "guests = false\njwt_secret = \"" + testSecret + "\"", 0, ""},
		{"missing key file", `jwt_public_keys = ["nope.pem"]`, 1, "nope.pem"},
		{"not a PEM file", `jwt_public_keys = ["junk.pem"]`, 1, "junk.pem"},
		{"short secret", `jwt_secret = "short"`, 1, "[auth] jwt_secret"},
		{"guests off, no key, no scripting", "guests = false", 1, "[auth] guests"},
		{"leeway too long", `leeway = "1h"`, 1, "[auth] leeway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for name, data := range map[string][]byte{"good.pem": good, "junk.pem": []byte("not a key\n"), "config.toml": []byte("[scripting]\nenabled = false\n[auth]\n" + tt.auth + "\n")} {
				if err := os.WriteFile(name, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := runCmd(t, "check")
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s (want %q)", code, tt.code, stdout, stderr, tt.stderr)
			}
		})
	}
}

// connectScript is the connect script of TestConnectHook. It refuses a
// request that shows it a credential (a cookie, an Authorization header
// or the token in the query), returns an identity for ?as=NAME, and one
// built from the token's own claims for a token with a "team" claim.
const connectScript = `
chat.on("connect", function(req)
  if req.headers.cookie or req.headers.authorization or req.query.token then
    return false, "saw a credential"
  end
  if req.query.as then
    return {id = "script:" .. req.query.as, name = req.query.as, roles = {"scripted"}}
  end
  if req.claims and req.claims.team then
    return {id = req.claims.sub, name = req.claims.name .. "-" .. req.claims.team, roles = {req.claims.team}}
  end
  if req.headers["x-app-user"] then
    return {id = "hdr:" .. req.headers["x-app-user"], name = req.headers["x-app-user"]}
  end
end)
`

// TestConnectHook (issue 12): the connect script runs before the
// upgrade; an identity it returns wins over the token's and over being a
// guest (presence carries its id and roles), it sees the verified claims
// as req.claims and the headers, but never the token, the cookie or the
// Authorization header unless [auth] expose_credentials is set. With
// guests off, an identity from the script is enough.
func TestConnectHook(t *testing.T) {
	srv, _, _ := authServerScripts(t, "guests = false\n", map[string]string{"connect.lua": connectScript})
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(nil))

	// An identity from the script, without a token (guests are off).
	conn, status, body := dialWith(t, srv.addr, "lobby", url.Values{"name": {"x"}, "as": {"bob"}}, nil)
	if conn == nil {
		t.Fatalf("script identity refused: %d %q", status, body)
	}
	bob := &client{t: t, conn: conn, name: "bob"}
	bob.waitFor("welcome as bob", func(e event) bool { return e.Type == "welcome" && e.User == "bob" })
	p := waitRaw(bob, func(e map[string]any) bool { return e["type"] == "presence" && e["users"] != nil })
	acc, _ := p["accounts"].(map[string]any)
	if a, _ := acc["bob"].(map[string]any); a["id"] != "script:bob" || fmt.Sprint(a["roles"]) != "[user scripted]" {
		t.Errorf("presence %v: want bob as script:bob with roles [user scripted]", p)
	}

	// The token's claims reach the script, which builds the identity.
	team := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(func(c jwt.MapClaims) { c["team"] = "blue" }))
	conn, status, body = dialToken(t, srv.addr, "lobby", "x", team)
	if conn == nil {
		t.Fatalf("token with a team claim refused: %d %q", status, body)
	}
	blue := &client{t: t, conn: conn, name: "alice-blue"}
	blue.waitFor("welcome as alice-blue", func(e event) bool { return e.Type == "welcome" && e.User == "alice-blue" })

	// The token in the query, a Bearer header and a cookie: the script
	// sees none of them (it would refuse), the token's identity applies.
	hdr := http.Header{"Cookie": {"session=s3cret"}}
	conn, status, body = dialWith(t, srv.addr, "lobby", url.Values{"name": {"x"}, "token": {tok}}, hdr)
	if conn == nil {
		t.Fatalf("credentials reached the script: %d %q", status, body)
	}
	alice := &client{t: t, conn: conn, name: "alice"}
	alice.waitFor("welcome as alice", func(e event) bool { return e.Type == "welcome" && e.User == "alice" })
	hdr = http.Header{"Authorization": {"Bearer " + tok}, "X-App-User": {"ignored"}}
	if conn, status, body := dialWith(t, srv.addr, "elsewhere", url.Values{"name": {"x"}}, hdr); conn == nil {
		t.Fatalf("Authorization reached the script: %d %q", status, body)
	}
	// Other headers do reach it.
	if conn, status, body := dialWith(t, srv.addr, "elsewhere", url.Values{"name": {"x"}}, http.Header{"X-App-User": {"carol"}}); conn == nil {
		t.Errorf("X-App-User identity refused: %d %q", status, body)
	} else {
		c := &client{t: t, conn: conn, name: "carol"}
		c.waitFor("welcome as carol", func(e event) bool { return e.Type == "welcome" && e.User == "carol" })
	}
	// Nothing from the script and no token, guests off: 401.
	if conn, status, body := dialWith(t, srv.addr, "lobby", url.Values{"name": {"x"}}, nil); conn != nil || status != http.StatusUnauthorized || !strings.Contains(body, "token is required") {
		t.Errorf("no identity at all: connected=%v %d %q", conn != nil, status, body)
	}

	// expose_credentials = true: the script sees the cookie.
	exposed, _, _ := authServerScripts(t, "guests = true\nexpose_credentials = true\n", map[string]string{"connect.lua": connectScript})
	conn, status, body = dialWith(t, exposed.addr, "lobby", url.Values{"name": {"x"}}, http.Header{"Cookie": {"session=s3cret"}})
	if conn != nil || status != http.StatusForbidden || !strings.Contains(body, "saw a credential") {
		t.Errorf("expose_credentials: connected=%v %d %q, want 403 from the script", conn != nil, status, body)
	}
	srv.stop(t)
	if strings.Contains(srv.log.String(), tok) || strings.Contains(srv.log.String(), "s3cret") {
		t.Errorf("the log holds a credential")
	}
}
