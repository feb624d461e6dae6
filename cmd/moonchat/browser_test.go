package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/moonchat/moonchat/defaults"
)

// A small Chromium driver for end-to-end tests of the real binary's chat
// page (core/chat/web has its own, in test files this package cannot use).

// newChromium starts headless Chromium for the test. Without it the test
// is skipped, unless CI is set: CI installs it, so there it is a failure.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium not found (CI is set, so browser tests must run): %v", err)
		}
		t.Skipf("chromium not found: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()), chromedp.NoSandbox, chromedp.WindowSize(1100, 720))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser: no step timeout, which would end it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// framesJS records, in every document of the tab, the data of each
// WebSocket message the page receives into window.__frames.
const framesJS = `window.__frames = [];
window.WebSocket = class extends window.WebSocket {
	constructor(...args) {
		super(...args);
		this.addEventListener('message', (e) => window.__frames.push(String(e.data)));
	}
};`

// newTab opens a tab with its own storage that records WebSocket frames.
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run opens the tab: without a timeout, which would close it.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	do(t, tab, "record the WebSocket frames", chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: framesJS})
		return err
	}))
	return tab
}

// do runs browser actions, bounded by waitLong.
func do(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, waitLong)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// js evaluates a JavaScript expression in tab.
func js[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, waitLong)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until polls a JavaScript predicate in tab until it holds.
func until(t *testing.T, tab context.Context, what, predicate string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, waitLong+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(waitLong))); err != nil {
		state, _ := chromedp.Run(context.WithoutCancel(tab), chromedp.Evaluate[string](
			`JSON.stringify({status: document.getElementById('status').textContent, me: document.getElementById('me-name').textContent,
			 error: document.getElementById('join-error').textContent, items: [...document.querySelectorAll('#messages li')].slice(-8).map((li) => li.textContent)})`))
		t.Fatalf("waiting for %s: %v\npage: %s", what, err, state)
	}
}

// enter joins room as a guest asking for name through the page's form and
// returns the name the page was given.
func enter(t *testing.T, tab context.Context, base, name, room string) string {
	t.Helper()
	do(t, tab, "join as "+name, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("join-name")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('join-name').value = ''; document.getElementById('join-room').value = ''`),
		chromedp.SendKeys(chromedp.ID("join-name"), name), chromedp.SendKeys(chromedp.ID("join-room"), room),
		chromedp.Click(chromedp.ID("join-button")))
	until(t, tab, name+" online", `document.getElementById('status').dataset.state === 'online'`)
	return js[string](t, tab, `document.getElementById('me-name').textContent`)
}

// say sends text through the page's message box.
func say(t *testing.T, tab context.Context, text string) {
	t.Helper()
	do(t, tab, "say "+text, chromedp.Focus(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), text+"\n"))
}

// signIn submits the page's log-in form.
func signIn(t *testing.T, tab context.Context, name, password string) {
	t.Helper()
	do(t, tab, "log in as "+name, chromedp.WaitVisible(chromedp.ID("login-password")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('login-name').value = ''; document.getElementById('login-password').value = ''`),
		chromedp.SendKeys(chromedp.ID("login-name"), name), chromedp.SendKeys(chromedp.ID("login-password"), password),
		chromedp.Click(chromedp.ID("login-button")))
}

// presenceMarksJS lists the member list as "name|tooltip of the verified
// mark" ("" without one), comma-separated; messageMarksJS the senders of
// the messages whose text is text, the same way.
const presenceMarksJS = `[...document.querySelectorAll('#presence li')].map((li) =>
	li.querySelector('.name').textContent + '|' + (li.querySelector('.verified')?.title ?? '')).join(',')`

func messageMarksJS(text string) string {
	b, _ := json.Marshal(text)
	return fmt.Sprintf(`[...document.querySelectorAll('#messages li.msg')].filter((li) => li.querySelector('.text').textContent === %s)
		.map((li) => li.querySelector('.user').textContent + '|' + (li.querySelector('.verified')?.title ?? '')).join(',')`, b)
}

// metric reads one series of the server's /metrics (-1 when absent).
func metric(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body := httpGet(t, base+"/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// TestBrowserAccountsLogin (issue 12), end to end in Chromium against the
// real server with the shipped accounts.lua and the default scripts: a
// guest registers its name with /register through the page, the password
// reaching no other member and no history; the page's log-in form refuses
// a wrong password and signs in with the right one (POST /api/login); the
// account's messages and member entry carry the verified mark on another
// member's page; a guest asking for the name gets a variant, before and
// after a restart on the same database; the page renews its short-lived
// token (POST /api/token) and the open socket takes it.
func TestBrowserAccountsLogin(t *testing.T) {
	const password = "zebra-quartz-9141"
	const mark = "verified account: accounts:dana"
	dir := t.TempDir()
	// argon2id under -race on a busy machine needs more than 100ms.
	cfg := testConfig(t, dir, map[string]string{"scripting": "hook_timeout = \"10s\"\n"})
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		// Tokens live 8s: the page renews one 3s before it expires.
		_, err = f.WriteString("[auth]\nguests = true\nlogin_ttl = \"8s\"\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	for _, pair := range []struct {
		fsys fs.FS
		glob string
	}{{defaults.Scripts(), "*.lua"}, {defaults.Examples(), "accounts.lua"}} {
		names, _ := fs.Glob(pair.fsys, pair.glob)
		for _, name := range names {
			src, err := fs.ReadFile(pair.fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			scripts[name] = string(src)
		}
	}
	if len(scripts) < 3 || scripts["accounts.lua"] == "" || scripts["help.lua"] == "" {
		t.Fatalf("scripts to load: %d, want the defaults and accounts.lua", len(scripts))
	}
	writeScripts(t, dir, scripts)
	srv := startInProcess(t, cfg)
	base := "http://" + srv.addr
	if code, body := httpGet(t, base+"/api/login"); code != http.StatusOK || strings.TrimSpace(body) != `{"available":true}` {
		t.Errorf("GET /api/login with accounts.lua: %d %q, want 200 {\"available\":true}", code, body)
	}

	browser := newChromium(t)
	a, b := newTab(t, browser), newTab(t, browser)
	enter(t, b, base, "bob", "lobby")
	if got := enter(t, a, base, "dana", "lobby"); got != "dana" {
		t.Fatalf("the first guest asking for dana is %q", got)
	}

	// Registering: the answer comes to dana alone; the password reaches
	// nobody. dana's next message marks the point bob's page must reach.
	say(t, a, "/register "+password)
	until(t, a, "the registered answer",
		`[...document.querySelectorAll('#messages li.notice.system')].some((li) => li.textContent.includes('registered dana'))`)
	say(t, a, "said as a guest")
	until(t, b, "dana's guest message on bob's page", messageMarksJS("said as a guest")+` === 'dana|'`)
	for who, tab := range map[string]context.Context{"dana": a, "bob": b} {
		frames := js[string](t, tab, `window.__frames.join('\n')`)
		if !strings.Contains(frames, "said as a guest") || strings.Contains(frames, password) {
			t.Errorf("%s's page received frames holding the password, or not dana's message:\n%s", who, frames)
		}
	}
	if code, body := httpGet(t, base+"/api/history?room=lobby"); code != http.StatusOK || !strings.Contains(body, "said as a guest") || strings.Contains(body, password) {
		t.Errorf("history: %d %s, want dana's message and no password", code, body)
	}

	// The page's log-in form: a wrong password, then the right one.
	do(t, a, "leave and open the sign-in form", chromedp.Click(chromedp.ID("leave")),
		chromedp.WaitVisible(chromedp.ID("show-auth")), chromedp.Click(chromedp.ID("show-auth")))
	signIn(t, a, "dana", "not-"+password)
	until(t, a, "the refusal in the form", `document.getElementById('login-error').textContent === 'wrong name or password'`)
	signIn(t, a, "dana", password)
	until(t, a, "dana online as the account", `document.getElementById('status').dataset.state === 'online'`)
	first := js[string](t, a, `sessionStorage.getItem('moonchat.auth')`)
	var cred struct {
		Token   string  `json:"token"`
		Expires float64 `json:"expires"`
	}
	if err := json.Unmarshal([]byte(first), &cred); err != nil || cred.Token == "" {
		t.Fatalf("after the log-in the tab keeps %q: %v", first, err)
	}
	say(t, a, "said as the account")
	for who, tab := range map[string]context.Context{"dana": a, "bob": b} {
		until(t, tab, who+"'s page: the account's message with the mark", messageMarksJS("said as the account")+` === 'dana|`+mark+`'`)
		until(t, tab, who+"'s member list", presenceMarksJS+` === 'bob|,dana|`+mark+`'`)
	}
	if got := js[string](t, a, `document.getElementById('me-marks').textContent`); got != "✓" {
		t.Errorf("dana's top bar marks read %q, want ✓", got)
	}

	// A guest asking for the account's name gets a variant, unmarked.
	g := newTab(t, browser)
	variant := enter(t, g, base, "dana", "lobby")
	if variant == "dana" || !strings.HasPrefix(variant, "dana") {
		t.Errorf("a guest asking for dana is %q, want a variant", variant)
	}
	until(t, b, "bob's member list with the guest", presenceMarksJS+` === 'bob|,dana|`+mark+`,`+variant+`|'`)
	if got := js[string](t, g, `document.getElementById('me-marks').textContent`); got != "" {
		t.Errorf("the guest's top bar marks read %q, want none", got)
	}

	// Renewal: past the first token's expiry dana's page is still online
	// on the same socket, which took a renewed token.
	until(t, a, "the first token's expiry", fmt.Sprintf(`Date.now() / 1000 > %f + 1`, cred.Expires))
	until(t, a, "a renewed token in the tab", `JSON.parse(sessionStorage.getItem('moonchat.auth')).token !== `+strconv.Quote(cred.Token))
	if st := js[string](t, a, `document.getElementById('status').dataset.state`); st != "online" {
		t.Errorf("past the first token's expiry dana's page is %q", st)
	}
	for series, want := range map[string]float64{
		`moonchat_login_tokens_total{kind="login"}`:                1,
		`moonchat_login_refused_total{reason="wrong_credentials"}`: 1,
		`moonchat_token_expired_total`:                             0,
	} {
		if got := metric(t, base, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{`moonchat_login_tokens_total{kind="renewal"}`, `moonchat_token_refresh_total{result="accepted"}`} {
		if got := metric(t, base, series); got < 1 {
			t.Errorf("%s = %v, want at least 1", series, got)
		}
	}

	// Restart on the same database: the name is still the account's. The
	// pages go first, so that none can rejoin as dana should the new server
	// get the same port.
	for _, tab := range []context.Context{a, b, g} {
		do(t, tab, "close the page", chromedp.Navigate("about:blank"))
	}
	srv.stop(t)
	for what, text := range map[string]string{"the log": srv.log.String(), "the database": mustRead(t, filepath.Join(dir, "moonchat.db"))} {
		if strings.Contains(text, password) {
			t.Errorf("%s holds the password", what)
		}
	}
	srv = startInProcess(t, cfg)
	if got := enter(t, newTab(t, browser), "http://"+srv.addr, "dana", "lobby"); got == "dana" || !strings.HasPrefix(got, "dana") {
		t.Errorf("after a restart a guest asking for dana is %q, want a variant", got)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
