package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/defaults"
)

// loginScript is an inline login script: alice / right-password is an
// account, "boom" makes the script fail, anyone else is refused.
const loginScript = `
chat.on("login", function(req)
  if req.name == "boom" then error("the password database is down") end
  if req.name == "alice" and req.password == "right-password" then
    return {id = "acct:alice", name = "alice", roles = {"member"}}
  end
  return false, "wrong name or password"
end)
`

// post sends body to u (with a Bearer token when token is not empty)
// and returns the status, the decoded JSON body and the headers.
func post(t *testing.T, u, body, token string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: waitLong}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("POST %s: %d, body %q is not JSON", u, resp.StatusCode, data)
	}
	return resp.StatusCode, m, resp.Header
}

// loginBody is the JSON of a log-in.
func loginBody(name, password string) string {
	b, _ := json.Marshal(map[string]string{"name": name, "password": password})
	return string(b)
}

// TestLogin (issue 12): POST /api/login asks the login script; the right
// password gets a token of this server's (the account's id and name),
// with which the user connects as the account (presence carries its id);
// a wrong one is 401 with the script's reason, a failing script 503 (fail
// closed), bad JSON 400; /api/token renews the minted token but not an
// application's; the per-address limit answers 429 with Retry-After.
// Refusals are logged and counted; the password never reaches the log.
func TestLogin(t *testing.T) {
	srv, key, _ := authServerScripts(t, "guests = true\n", map[string]string{"login.lua": loginScript})
	base := "http://" + srv.addr

	if code, body := httpGet(t, base+"/api/login"); code != http.StatusOK || strings.TrimSpace(body) != `{"available":true}` {
		t.Errorf("GET /api/login: %d %q", code, body)
	}
	code, ok, _ := post(t, base+"/api/login", loginBody("alice", "right-password"), "")
	if code != http.StatusOK || ok["id"] != "acct:alice" || ok["name"] != "alice" {
		t.Fatalf("right password: %d %v", code, ok)
	}
	tok, _ := ok["token"].(string)
	exp, _ := ok["expires"].(float64)
	if d := time.Until(time.Unix(int64(exp), 0)); d < 55*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("expires in %v, want [auth] login_ttl (1h)", d)
	}
	code, wrong, hdr := post(t, base+"/api/login", loginBody("alice", "wrong-password"), "")
	if code != http.StatusUnauthorized || wrong["error"] != "wrong name or password" || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong password: %d %v %v", code, wrong, hdr)
	}
	if code, m, _ := post(t, base+"/api/login", loginBody("boom", "x"), ""); code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(m["error"]), "login script failed") {
		t.Errorf("failing script: %d %v", code, m)
	}
	if code, m, _ := post(t, base+"/api/login", `{"name":`, ""); code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d %v", code, m)
	}
	// A body a cross-site form could send (no CORS preflight) is refused
	// before the script or the rate limit sees it.
	resp, err := http.Post(base+"/api/login", "text/plain", strings.NewReader(loginBody("alice", "right-password")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("text/plain login: %d, want 400", resp.StatusCode)
	}

	// The token connects as the account.
	conn, status, body := dialToken(t, srv.addr, "lobby", "whoever", tok)
	if conn == nil {
		t.Fatalf("minted token refused: %d %q", status, body)
	}
	alice := &client{t: t, conn: conn, name: "alice"}
	alice.waitFor("welcome as alice", func(e event) bool { return e.Type == "welcome" && e.User == "alice" })
	p := waitRaw(alice, func(e map[string]any) bool { return e["type"] == "presence" && e["users"] != nil })
	acc, _ := p["accounts"].(map[string]any)
	if a, _ := acc["alice"].(map[string]any); a["id"] != "acct:alice" || fmt.Sprint(a["roles"]) != "[user member]" {
		t.Errorf("presence %v: want alice as acct:alice with roles [user member]", p)
	}
	// A guest cannot take the account's nick.
	guest := dial(t, srv.addr, "lobby", "alice", nil)
	if w := guest.waitFor("welcome", func(e event) bool { return e.Type == "welcome" }); w.User == "alice" {
		t.Errorf("a guest was given the account's name")
	}

	// Renewal: the minted token, yes; an application's token, no.
	code, renewed, _ := post(t, base+"/api/token", "", tok)
	tok2, _ := renewed["token"].(string)
	if code != http.StatusOK || tok2 == "" || renewed["expires"] == nil {
		t.Fatalf("renewal: %d %v", code, renewed)
	}
	if conn, status, body := dialToken(t, srv.addr, "lobby", "", tok2); conn == nil {
		t.Errorf("renewed token refused: %d %q", status, body)
	}
	appHS := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(nil))
	appES := sign(t, jwt.SigningMethodES256, key, goodClaims(nil))
	for name, tk := range map[string]string{"app HS256": appHS, "app ES256": appES, "none": "", "garbage": "x.y.z"} {
		if code, m, _ := post(t, base+"/api/token", "", tk); code != http.StatusUnauthorized {
			t.Errorf("renewing %s: %d %v, want 401", name, code, m)
		}
	}
	if code, _ := httpGet(t, base+"/api/token"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/token: %d, want 405", code)
	}

	// The per-address limit (burst 5; 4 attempts above): wrong passwords
	// until 429, which says when to come back.
	var limited http.Header
	for i := 0; i < 20 && limited == nil; i++ {
		code, m, h := post(t, base+"/api/login", loginBody("alice", "guess"+strconv.Itoa(i)), "")
		switch code {
		case http.StatusTooManyRequests:
			limited = h
		case http.StatusUnauthorized:
		default:
			t.Fatalf("attempt %d: %d %v", i, code, m)
		}
	}
	if limited == nil {
		t.Fatal("20 wrong passwords in a row were never limited")
	}
	if s, err := strconv.Atoi(limited.Get("Retry-After")); err != nil || s < 1 || s > int(loginEvery/time.Second) {
		t.Errorf("Retry-After %q", limited.Get("Retry-After"))
	}

	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{`moonchat_login_refused_total{reason="rate_limited"} 1`, `moonchat_login_refused_total{reason="hook_failed"} 1`,
		`moonchat_login_refused_total{reason="bad_request"} 2`, `moonchat_login_tokens_total{kind="login"} 1`, `moonchat_login_tokens_total{kind="renewal"} 1`,
		`moonchat_login_refused_total{reason="renewal_refused"} 4`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(metrics, `moonchat_login_refused_total{reason="wrong_credentials"}`) {
		t.Errorf("/metrics lacks the wrong_credentials refusals")
	}
	srv.stop(t)
	log := srv.log.String()
	for _, secret := range []string{"right-password", "wrong-password", tok, tok2} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	for _, want := range []string{"login refused", "reason=wrong_credentials", "reason=rate_limited", "the password database is down"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// TestLoginNoScript (issue 12): without a login script GET /api/login
// says so and POST is 404; other methods are 405.
func TestLoginNoScript(t *testing.T) {
	srv, _, _ := authServer(t, "guests = true\n")
	base := "http://" + srv.addr
	if code, body := httpGet(t, base+"/api/login"); code != http.StatusOK || strings.TrimSpace(body) != `{"available":false}` {
		t.Errorf("GET /api/login: %d %q", code, body)
	}
	if code, m, _ := post(t, base+"/api/login", loginBody("alice", "pw"), ""); code != http.StatusNotFound || m["error"] != "no login script is loaded" {
		t.Errorf("POST without a script: %d %v", code, m)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/api/login", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT /api/login: %d, want 405", resp.StatusCode)
	}
}

// TestLoginAccountsExample (issue 12): the shipped accounts.lua, end to
// end: a guest registers its name over WebSocket, logs in with the
// password (a wrong one is refused), connects with the token as the
// account, and a guest then asking for the name gets a variant.
func TestLoginAccountsExample(t *testing.T) {
	src, err := fs.ReadFile(defaults.Examples(), "accounts.lua")
	if err != nil {
		t.Fatalf("the accounts example: %v", err)
	}
	// No [auth] key of its own: the server signs with the key it keeps
	// beside the database.
	dir := t.TempDir()
	// argon2id under -race on a busy machine needs more than the default
	// 100ms hook time limit.
	cfg := testConfig(t, dir, map[string]string{"scripting": "hook_timeout = \"10s\"\n"})
	writeScripts(t, dir, map[string]string{"accounts.lua": string(src)})
	srv := startInProcess(t, cfg)
	base := "http://" + srv.addr

	watcher := dial(t, srv.addr, "lobby", "watcher", nil)
	watcher.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	carol := dial(t, srv.addr, "lobby", "carol", nil)
	carol.waitFor("welcome as carol", func(e event) bool { return e.Type == "welcome" && e.User == "carol" })
	carol.send("/register correct-horse")
	carol.waitFor("registered", func(e event) bool { return e.Type == "system" && strings.Contains(e.Text, "registered carol") })
	carol.conn.Close()
	waitRaw(watcher, func(e map[string]any) bool {
		left, _ := e["left"].([]any)
		return e["type"] == "presence" && slices.Contains(left, any("carol"))
	})

	if code, m, _ := post(t, base+"/api/login", loginBody("carol", "battery-staple"), ""); code != http.StatusUnauthorized || m["error"] != "wrong name or password" {
		t.Errorf("wrong password: %d %v", code, m)
	}
	code, ok, _ := post(t, base+"/api/login", loginBody("carol", "correct-horse"), "")
	tok, _ := ok["token"].(string)
	if code != http.StatusOK || tok == "" || ok["id"] != "accounts:carol" || ok["name"] != "carol" {
		t.Fatalf("right password: %d %v", code, ok)
	}
	conn, status, body := dialToken(t, srv.addr, "lobby", "", tok)
	if conn == nil {
		t.Fatalf("token refused: %d %q", status, body)
	}
	acct := &client{t: t, conn: conn, name: "carol"}
	acct.waitFor("welcome as carol", func(e event) bool { return e.Type == "welcome" && e.User == "carol" })
	p := waitRaw(acct, func(e map[string]any) bool { return e["type"] == "presence" && e["users"] != nil })
	accounts, _ := p["accounts"].(map[string]any)
	if a, _ := accounts["carol"].(map[string]any); a["id"] != "accounts:carol" {
		t.Errorf("presence %v: want carol as accounts:carol", p)
	}
	g := dial(t, srv.addr, "lobby", "carol", nil)
	if w := g.waitFor("welcome", func(e event) bool { return e.Type == "welcome" }); w.User == "carol" {
		t.Errorf("a guest was given the account's name")
	}
	srv.stop(t)
	if strings.Contains(srv.log.String(), "correct-horse") {
		t.Errorf("the log holds the password")
	}
}

// TestTokenRenewalMaxAge (issue 12): /api/token renews a login token
// only while its login is younger than login_max_age, and never past
// that age.
func TestTokenRenewalMaxAge(t *testing.T) {
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(testSecret)
	l, err := newLoginService(&cfg.Auth, secret, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	renew := func(login time.Time) (int, map[string]any) {
		tok, _, err := l.minter.Mint(auth.Identity{ID: "acct:alice", Name: "alice", LoginTime: login})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/token", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		l.serveToken(w, req)
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	now := time.Now()
	if code, m := renew(now.Add(-cfg.Auth.LoginMaxAge.D() - time.Minute)); code != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(m["error"]), "too old") {
		t.Errorf("login older than login_max_age: %d %v", code, m)
	}
	code, m := renew(now.Add(-cfg.Auth.LoginMaxAge.D() + 10*time.Minute))
	exp, _ := m["expires"].(float64)
	if code != http.StatusOK || time.Until(time.Unix(int64(exp), 0)) > 11*time.Minute {
		t.Errorf("login 10 minutes from login_max_age: %d %v, want a token capped at the max age", code, m)
	}
	// A token of the same secret without a login time (an application's).
	app, _, err := l.minter.Mint(auth.Identity{ID: "acct:alice"})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/token", nil)
	req.Header.Set("Authorization", "Bearer "+app)
	w := httptest.NewRecorder()
	l.serveToken(w, req)
	if w.Code != http.StatusUnauthorized || !bytes.Contains(w.Body.Bytes(), []byte("not a login token")) {
		t.Errorf("token without login time: %d %s", w.Code, w.Body)
	}
}

// TestAddrLimiter: the per-address limit allows the burst, then refuses
// with the wait; other addresses are not affected; a full table forgets
// recovered addresses and refuses when none has recovered (fail closed).
func TestAddrLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAddrLimiter(rate.Every(6*time.Second), 2, 2)
	for i := range 2 {
		if ok, _ := l.allow("10.0.0.1:1000", now); !ok {
			t.Fatalf("attempt %d refused within the burst", i)
		}
	}
	if ok, wait := l.allow("10.0.0.1:2000", now); ok || wait != 6*time.Second {
		t.Errorf("third attempt (another port, same address): ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.allow("10.0.0.2:1000", now); !ok {
		t.Errorf("another address refused")
	}
	if ok, _ := l.allow("10.0.0.3:1000", now); ok {
		t.Errorf("a third address fit in a table of two busy ones")
	}
	// One IPv6 /64 is one bucket (a host usually holds all of it).
	l6 := newAddrLimiter(rate.Every(6*time.Second), 1, 10)
	if ok, _ := l6.allow("[2001:db8:1:2::1]:1000", now); !ok {
		t.Errorf("first IPv6 attempt refused")
	}
	if ok, _ := l6.allow("[2001:db8:1:2:ffff::9]:1000", now); ok {
		t.Errorf("another address of the same /64 had its own bucket")
	}
	if ok, _ := l6.allow("[2001:db8:1:3::1]:1000", now); !ok {
		t.Errorf("another /64 refused")
	}
	if ok, _ := l6.allow("[::ffff:10.0.0.9]:1000", now); !ok {
		t.Errorf("an IPv4-mapped address refused")
	}
	if ok, _ := l6.allow("10.0.0.9:1000", now); ok {
		t.Errorf("an IPv4 address and its IPv4-mapped form had two buckets")
	}
	later := now.Add(time.Minute) // both recovered: forgotten
	if ok, _ := l.allow("10.0.0.3:1000", later); !ok {
		t.Errorf("a new address refused once the table had recovered")
	}
	if ok, _ := l.allow("10.0.0.1:1000", later.Add(time.Second)); !ok {
		t.Errorf("a recovered address refused")
	}
}

// writeScripts makes dir/scripts holding scripts (file name → source).
func writeScripts(t *testing.T, dir string, scripts map[string]string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range scripts {
		if err := os.WriteFile(filepath.Join(dir, "scripts", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoginTokenRefresh (issue 12): a connection made with a login token
// takes the renewed token from POST /api/token over moonchat.v1
// ({"type":"token"}: the authenticator's Refresh), and refuses a token of
// another account (token_refused).
func TestLoginTokenRefresh(t *testing.T) {
	srv, _, _ := authServerScripts(t, "guests = true\n", map[string]string{"login.lua": loginScript})
	base := "http://" + srv.addr
	code, ok, _ := post(t, base+"/api/login", loginBody("alice", "right-password"), "")
	tok, _ := ok["token"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("login: %d %v", code, ok)
	}
	conn, status, body := dialToken(t, srv.addr, "lobby", "", tok)
	if conn == nil {
		t.Fatalf("token refused: %d %q", status, body)
	}
	alice := &client{t: t, conn: conn, name: "alice"}
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	code, renewed, _ := post(t, base+"/api/token", "", tok)
	tok2, _ := renewed["token"].(string)
	if code != http.StatusOK || tok2 == "" {
		t.Fatalf("renewal: %d %v", code, renewed)
	}
	sendJSON := func(v any) {
		b, _ := json.Marshal(v)
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
	}
	sendJSON(map[string]string{"type": "token", "token": tok2})
	ack := waitRaw(alice, func(e map[string]any) bool { return e["type"] == "token" || e["type"] == "error" })
	if ack["type"] != "token" || ack["expires"] != renewed["expires"] {
		t.Errorf("fresh token: %v, want {type: token, expires: %v}", ack, renewed["expires"])
	}
	other := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(func(c jwt.MapClaims) { c["sub"] = "u-mallory" }))
	sendJSON(map[string]string{"type": "token", "token": other})
	if e := waitRaw(alice, func(e map[string]any) bool { return e["type"] == "token" || e["type"] == "error" }); e["type"] != "error" || e["code"] != "token_refused" {
		t.Errorf("another account's token: %v, want a token_refused error", e)
	}
}

// TestGuestsOffLoginOnly (issue 12): guests = false with no key of its
// own is a valid server when a script lets people in: the login script's
// tokens (signed with the key kept beside the database) connect, no
// token is 401; without any such script the server warns at start.
func TestGuestsOffLoginOnly(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("[auth]\nguests = false\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeScripts(t, dir, map[string]string{"login.lua": loginScript})
	if code, stdout, stderr := runCmd(t, "check", "-config", cfg); code != 0 {
		t.Fatalf("check: %d %s %s", code, stdout, stderr)
	}
	srv := startInProcess(t, cfg)
	if conn, status, body := dialToken(t, srv.addr, "lobby", "carol", ""); conn != nil || status != http.StatusUnauthorized {
		t.Errorf("no token: connected=%v %d %q", conn != nil, status, body)
	}
	code, ok, _ := post(t, "http://"+srv.addr+"/api/login", loginBody("alice", "right-password"), "")
	tok, _ := ok["token"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("login: %d %v", code, ok)
	}
	if conn, status, body := dialToken(t, srv.addr, "lobby", "", tok); conn == nil {
		t.Errorf("login token refused: %d %q", status, body)
	}
	if info, err := os.Stat(filepath.Join(dir, auth.SecretFileName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the login key beside the database: %v, %v", info, err)
	}
	if strings.Contains(srv.log.String(), "nobody can connect") {
		t.Errorf("warned although a login script is loaded")
	}

	// The same without the script: it starts, and says nobody can connect.
	dir2 := t.TempDir()
	cfg2 := testConfig(t, dir2, nil)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg2, data, 0o644); err != nil {
		t.Fatal(err)
	}
	writeScripts(t, dir2, map[string]string{"who.lua": "chat.command('x', function() end)\n"})
	srv2 := startInProcess(t, cfg2)
	srv2.stop(t)
	if !strings.Contains(srv2.log.String(), "nobody can connect") {
		t.Errorf("no warning:\n%s", srv2.log)
	}
}

// TestLoginRefusalLogSampled: many refused /api/login requests write a
// burst of log lines, then a few a second, not one each; each line says
// how many were left out before it, and the refusals are counted exactly
// in moonchat_login_refused_total.
func TestLoginRefusalLogSampled(t *testing.T) {
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l, err := newLoginService(&cfg.Auth, []byte(testSecret), nil, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for range n {
		req := httptest.NewRequest(http.MethodPost, "/api/login", strings.NewReader(loginBody("alice", "guess")))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		l.serveLogin(w, req)
		if w.Code != http.StatusNotFound {
			t.Fatalf("login without a login script: %d %s", w.Code, w.Body)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.refused)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			counted += m.GetCounter().GetValue()
		}
	}
	if counted != n {
		t.Fatalf("refusals counted: %v, want %d", counted, n)
	}
	lines := strings.Count(buf.String(), `msg="login refused"`)
	if lines == 0 || lines >= n/2 {
		t.Fatalf("%d log lines for %d refusals:\n%s", lines, n, buf.String())
	}
	if !strings.Contains(buf.String(), "suppressed=0") {
		t.Fatalf("the lines do not say how many were left out:\n%s", buf.String())
	}
}
