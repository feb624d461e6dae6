package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// testSecret is the HS256 key of the identity tests: the test's
// authenticator verifies with it and its minters sign with it.
var testSecret = []byte("moonchat web test secret, 32+ bytes long")

// jwtAuth is a chat.Authenticator over a real auth.Verifier, as
// cmd/moonchat's [auth] builds one: a token that verifies is an account;
// no token is a guest when guests is true and a 401 otherwise; a token that
// does not verify is a 401. It is also a chat.TokenRefresher, so that a
// page can hand a renewed token to its open socket.
type jwtAuth struct {
	v      *auth.Verifier
	guests bool
}

func newJWTAuth(t *testing.T, guests bool) *jwtAuth {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: testSecret, RequireExp: true})
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return &jwtAuth{v: v, guests: guests}
}

// Authenticate implements chat.Authenticator.
func (a *jwtAuth) Authenticate(r *http.Request, _ string) (chat.Identity, bool, error) {
	tok, err := auth.TokenFromRequest(r)
	if errors.Is(err, auth.ErrNoToken) {
		if a.guests {
			return chat.Identity{}, false, nil
		}
		return chat.Identity{}, false, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "a token is required (guests are not admitted)"}
	}
	if err != nil {
		return chat.Identity{}, false, refusal(err)
	}
	id, err := a.Refresh(tok, "")
	return id, err == nil, err
}

// Refresh implements chat.TokenRefresher.
func (a *jwtAuth) Refresh(token, _ string) (chat.Identity, error) {
	id, err := a.v.Verify(token)
	if err != nil {
		return chat.Identity{}, refusal(err)
	}
	return chat.Identity{ID: id.ID, Name: id.Name, Roles: id.Roles, Rooms: id.Rooms, Expires: id.Expires}, nil
}

// refusal is the 401 for a token auth refused, with its fixed reason.
func refusal(err error) *chat.AuthError {
	return &chat.AuthError{Status: http.StatusUnauthorized, Reason: strings.TrimPrefix(err.Error(), "auth: ")}
}

// mint signs an HS256 token for id that lives ttl.
func mint(t *testing.T, id auth.Identity, ttl time.Duration) string {
	t.Helper()
	m, err := auth.NewMinter(auth.MinterConfig{Secret: testSecret, TTL: ttl})
	if err != nil {
		t.Fatalf("auth.NewMinter: %v", err)
	}
	tok, _, err := m.Mint(id)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// shownMember is a presence entry or a message's sender as a page shows
// it: the name, the tooltip of its verified mark ("" without one) and its
// role badges.
type shownMember struct {
	Name     string   `json:"name"`
	Verified string   `json:"verified"`
	Roles    []string `json:"roles"`
}

func (m shownMember) String() string {
	return fmt.Sprintf("%s[%s]%v", m.Name, m.Verified, m.Roles)
}

const marksOfJS = `(el) => ({verified: el.querySelector('.verified')?.title ?? '', roles: [...el.querySelectorAll('.role')].map((b) => b.textContent)})`

// presenceMarksJS lists the member list with its marks.
const presenceMarksJS = `[...document.querySelectorAll('#presence li')].map((li) => ({name: li.querySelector('.name').textContent, ...(` + marksOfJS + `)(li)}))`

// messageMarksJS lists the shown messages' senders with their marks, as
// "name" = "sender: text".
const messageMarksJS = `[...document.querySelectorAll('#messages li.msg:not([hidden])')].map((li) => ({name: li.querySelector('.user').textContent + ': ' + li.querySelector('.text').textContent, ...(` + marksOfJS + `)(li)}))`

// checkMarks fails the test unless got (from presenceMarksJS or
// messageMarksJS) is want, in order.
func checkMarks(t *testing.T, what string, got, want []shownMember) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s shows %v, want %v", what, got, want)
	}
}

// noPageErrors fails the test if a page watched by watchPage reported a
// content security policy violation or a script error.
func noPageErrors(t *testing.T, name string, tab context.Context) {
	t.Helper()
	if v := eval[[]string](t, tab, `window.__csp.concat(window.__errors)`); len(v) != 0 {
		t.Errorf("%s's page reported %q", name, v)
	}
}

// TestVerifiedMarks: a page signed in with a token (from the address, as
// an embedding application links to it) shows the verified mark and the
// role badge for its own messages and in the member list; a guest asking
// for the same nick gets a variant and no mark, on both pages.
func TestVerifiedMarks(t *testing.T) {
	browser := newBrowser(t)
	srv := startChatServer(t, chat.Config{Replay: 50, Authenticator: newJWTAuth(t, true)}, nil, chattest.NewHistory())
	token := mint(t, auth.Identity{ID: "acct-1001", Name: "alice", Roles: []string{"moderator"}}, time.Hour)

	alice := newPage(t, browser)
	watchPage(t, alice)
	step(t, alice, "open the page with a token in the address",
		chromedp.Navigate(srv.url("/#token="+token+"&room=club")),
		chromedp.WaitVisible(chromedp.ID("join-room")),
	)
	// The token is read, kept for the tab, and gone from the address.
	if href := eval[string](t, alice, `location.href`); strings.Contains(href, token) || !strings.HasSuffix(href, "#room=club") {
		t.Errorf("after reading the token the address is %q, want it without the token, ending in #room=club", href)
	}
	waitFor(t, alice, "the join form to say who the token is",
		`document.getElementById('signed-in-text').textContent.startsWith('Signed in as alice') && document.querySelector('#signed-in-marks .verified') !== null`)
	if !eval[bool](t, alice, `document.getElementById('name-field').hidden && !document.getElementById('logout').hidden`) {
		t.Error("signed in, the join form still asks for a name or offers no log-out")
	}
	step(t, alice, "join", chromedp.Click(chromedp.ID("join-button")))
	waitOnline(t, alice, "alice")
	if reqs := srv.requests(); len(reqs) != 1 || !strings.Contains(reqs[0], "token="+url.QueryEscape(token)) {
		t.Errorf("WebSocket requests %q: want one, carrying the token", reqs)
	}
	// Only the WebSocket URL carries it (a handshake cannot have headers);
	// the session checks send it as a Bearer header.
	sessionChecks := 0
	for _, r := range srv.allRequests() {
		if strings.Contains(r, "/api/session") {
			sessionChecks++
		}
		if !strings.HasPrefix(r, "GET /chat/") && strings.Contains(r, token) {
			t.Errorf("the token is in the URL of %.40s…", r)
		}
	}
	if sessionChecks < 2 { // the join form's "signed in as", then the join
		t.Errorf("the page asked /api/session %d times, want at least 2", sessionChecks)
	}

	guest := newPage(t, browser)
	watchPage(t, guest)
	joinAs(t, guest, srv.url(""), "alice", "club")
	if got := eval[string](t, guest, `document.getElementById('me-name').textContent`); got != "alice-2" {
		t.Errorf("the guest asking for alice is %q, want alice-2", got)
	}
	say(t, alice, "alice", "hello from the real alice")
	say(t, guest, "alice-2", "hello from a guest")
	for name, tab := range map[string]context.Context{"alice": alice, "guest": guest} {
		waitShows(t, tab, name, "alice", "hello from the real alice")
		waitShows(t, tab, name, "alice-2", "hello from a guest")
		waitPresence(t, tab, name, "alice", "alice-2")
	}

	verified := "verified account: acct-1001"
	wantPeople := []shownMember{{Name: "alice", Verified: verified, Roles: []string{"moderator"}}, {Name: "alice-2", Roles: []string{}}}
	wantMsgs := []shownMember{
		{Name: "alice: hello from the real alice", Verified: verified, Roles: []string{"moderator"}},
		{Name: "alice-2: hello from a guest", Roles: []string{}},
	}
	for name, tab := range map[string]context.Context{"alice": alice, "guest": guest} {
		checkMarks(t, name+"'s member list", eval[[]shownMember](t, tab, presenceMarksJS), wantPeople)
		checkMarks(t, name+"'s messages", eval[[]shownMember](t, tab, messageMarksJS), wantMsgs)
	}
	// Each page's "you are …" carries its own marks only.
	if got := eval[string](t, alice, `document.getElementById('me-marks').textContent`); got != "✓moderator" {
		t.Errorf("alice's top bar marks read %q, want ✓moderator", got)
	}
	if got := eval[string](t, guest, `document.getElementById('me-marks').textContent`); got != "" {
		t.Errorf("the guest's top bar marks read %q, want none", got)
	}

	// Session roles change (a script's chat.grant / chat.revoke): the
	// "roles" event updates both pages. The guest granted a role gets its
	// badge, never the verified mark; alice loses "moderator".
	for _, u := range srv.srv.Users("club") {
		var err error
		switch u.Name {
		case "alice":
			err = srv.srv.Revoke(u.SessionID, "moderator")
		case "alice-2":
			err = srv.srv.Grant(u.SessionID, "helper")
		}
		if err != nil {
			t.Fatalf("change %s's roles: %v", u.Name, err)
		}
	}
	// The member lists, as "name[verified tooltip]roles".
	wantRoles := mustJSON([]string{"alice[" + verified + "]", "alice-2[]helper"})
	for name, tab := range map[string]context.Context{"alice": alice, "guest": guest} {
		waitFor(t, tab, name+"'s member list after the role changes",
			fmt.Sprintf(`JSON.stringify(%s.map((m) => m.name + '[' + m.verified + ']' + m.roles.join())) === %s`,
				presenceMarksJS, jsString(wantRoles)))
	}
	if got := eval[string](t, guest, `document.getElementById('me-marks').textContent`); got != "helper" {
		t.Errorf("the guest's top bar marks read %q after the grant, want helper", got)
	}
	say(t, guest, "alice-2", "now with a role")
	waitShows(t, alice, "alice", "alice-2", "now with a role")
	got := eval[[]shownMember](t, alice, messageMarksJS)
	checkMarks(t, "the granted guest's message on alice's page", got[len(got)-1:],
		[]shownMember{{Name: "alice-2: now with a role", Roles: []string{"helper"}}})
	if eval[bool](t, alice, `document.querySelector('#messages li.msg:last-child').classList.contains('cont')`) {
		t.Error("the message after the grant shares the header (and so the badges) of the one before it")
	}
	screenshot(t, alice, "verified-alice.png")
	screenshot(t, guest, "verified-guest.png")

	// A reload keeps the tab signed in (sessionStorage) and in the room.
	step(t, alice, "reload alice's page", chromedp.Reload())
	waitOnline(t, alice, "alice")
	waitPresence(t, alice, "alice", "alice-2", "alice") // join order: alice came back
	// A new session: alice's roles are her token's again.
	checkMarks(t, "alice's member list after a reload", eval[[]shownMember](t, alice, presenceMarksJS),
		[]shownMember{{Name: "alice-2", Roles: []string{"helper"}}, {Name: "alice", Verified: verified, Roles: []string{"moderator"}}})
	noPageErrors(t, "alice", alice)
	noPageErrors(t, "guest", guest)
}

// pasteToken puts token into the sign-in form's token box and submits it.
func pasteToken(t *testing.T, tab context.Context, token string) {
	t.Helper()
	step(t, tab, "paste a token",
		chromedp.WaitVisible(chromedp.ID("token-input")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('token-input').value = `+jsString(token)),
		chromedp.Click(chromedp.ID("token-button")),
	)
}

// storedAuthJS is what the tab keeps of its credentials (null: nothing).
const storedAuthJS = `sessionStorage.getItem('moonchat.auth')`

// TestGuestsRefused: with guests refused, a page asking to join as a
// guest shows the server's reason and the token box, without trying a
// WebSocket; a bad token is refused with its reason and forgotten; a good
// one joins as the account; logging out forgets it.
func TestGuestsRefused(t *testing.T) {
	browser := newBrowser(t)
	authn := newJWTAuth(t, false)
	srv := startChatServer(t, chat.Config{Authenticator: authn}, nil, chattest.NewHistory())
	tab := newPage(t, browser)
	watchPage(t, tab)
	step(t, tab, "join as a guest",
		chromedp.Navigate(srv.url("/")),
		chromedp.WaitVisible(chromedp.ID("join-name")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('join-room').value = ''`),
		chromedp.SendKeys(chromedp.ID("join-name"), "mallory"),
		chromedp.SendKeys(chromedp.ID("join-room"), "vault"),
		chromedp.Click(chromedp.ID("join-button")),
	)
	waitFor(t, tab, "the refusal with the token box",
		`document.getElementById('app').dataset.view === 'join' &&
		 document.getElementById('join-error').textContent === 'a token is required (guests are not admitted)' &&
		 document.getElementById('token-input').checkVisibility()`)
	if state := eval[string](t, tab, `document.getElementById('status').dataset.state`); state != "closed" {
		t.Errorf("status is %q after the refusal, want closed", state)
	}
	// No login script here: GET /api/login is not served, so no password form.
	if eval[bool](t, tab, `document.getElementById('login-form').checkVisibility()`) {
		t.Error("the page offers a password form though the server has no login")
	}
	if reqs := srv.requests(); len(reqs) != 0 {
		t.Errorf("the page tried WebSockets %q after the session check refused it", reqs)
	}
	screenshot(t, tab, "guests-refused.png")

	// A token signed with another key: refused with auth's reason, and not kept.
	other, err := auth.NewMinter(auth.MinterConfig{Secret: []byte("another secret entirely, also 32+ bytes")})
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := other.Mint(auth.Identity{ID: "acct-7", Name: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = authn.Refresh(forged, "")
	var ae *chat.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("the forged token verified: %v", err)
	}
	pasteToken(t, tab, forged)
	waitFor(t, tab, "the forged token's refusal", fmt.Sprintf(
		`document.getElementById('join-error').textContent === %s && document.getElementById('token-input').checkVisibility()`, jsString(ae.Reason)))
	if v := eval[*string](t, tab, storedAuthJS); v != nil {
		t.Errorf("the page keeps a refused token: %s", *v)
	}

	// A good token joins the room as its account.
	pasteToken(t, tab, mint(t, auth.Identity{ID: "acct-42", Name: "dave", Roles: []string{"admin"}}, time.Hour))
	waitOnline(t, tab, "dave")
	if got := eval[string](t, tab, `document.getElementById('me-name').textContent`); got != "dave" {
		t.Errorf("signed in with dave's token the page is %q", got)
	}
	waitPresence(t, tab, "dave", "dave")
	checkMarks(t, "dave's member list", eval[[]shownMember](t, tab, presenceMarksJS),
		[]shownMember{{Name: "dave", Verified: "verified account: acct-42", Roles: []string{"admin"}}})
	if reqs := srv.requests(); len(reqs) != 1 || !strings.Contains(reqs[0], "token=") {
		t.Errorf("WebSocket requests %q: want one, with the token", reqs)
	}

	// Log out: the token is forgotten and the page is a guest's again.
	step(t, tab, "log out", chromedp.Click(chromedp.ID("logout")))
	waitFor(t, tab, "the join form of a guest",
		`document.getElementById('app').dataset.view === 'join' && document.getElementById('join-name').checkVisibility() &&
		 document.getElementById('join-info').textContent === 'Logged out.' && document.getElementById('logout').hidden`)
	if v := eval[*string](t, tab, storedAuthJS); v != nil {
		t.Errorf("after logging out the tab keeps %s", *v)
	}

	// A link to the open page with a new token (#token=…) signs it in.
	erin := mint(t, auth.Identity{ID: "acct-43", Name: "erin"}, time.Hour)
	step(t, tab, "follow a #token= link", chromedp.Evaluate[chromedp.Void](`location.hash = `+jsString("token="+erin)))
	waitFor(t, tab, "the join form to say who the new token is",
		`document.getElementById('signed-in-text').textContent.startsWith('Signed in as erin') && !document.getElementById('join-name').checkVisibility()`)
	if href := eval[string](t, tab, `location.href`); strings.Contains(href, erin) {
		t.Errorf("the address still holds the token: %s", href)
	}
	noPageErrors(t, "mallory", tab)
}

// loginDouble stands in for cmd/moonchat's /api/login (docs/protocol.md):
// GET says a login is available; POST {name, password} answers carol's
// right password with a token minted for her, anything else with 401.
type loginDouble struct {
	t      *testing.T
	minter *auth.Minter

	mu    sync.Mutex
	posts []string // "CONTENT-TYPE NAME" of each POST
}

const carolPassword = "correct horse battery staple"

func newLoginDouble(t *testing.T, ttl time.Duration) *loginDouble {
	t.Helper()
	m, err := auth.NewMinter(auth.MinterConfig{Secret: testSecret, TTL: ttl})
	if err != nil {
		t.Fatalf("auth.NewMinter: %v", err)
	}
	return &loginDouble{t: t, minter: m}
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (d *loginDouble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeTestJSON(w, http.StatusOK, map[string]bool{"available": true})
	case http.MethodPost:
		var body struct{ Name, Password string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
			writeTestJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON"})
			return
		}
		d.mu.Lock()
		d.posts = append(d.posts, r.Header.Get("Content-Type")+" "+body.Name)
		d.mu.Unlock()
		if body.Name != "carol" || body.Password != carolPassword {
			writeTestJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong name or password"})
			return
		}
		tok, exp, err := d.minter.Mint(auth.Identity{ID: "acct-carol", Name: "carol", LoginTime: time.Now()})
		if err != nil {
			d.t.Errorf("mint: %v", err)
			writeTestJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "mint failed"})
			return
		}
		writeTestJSON(w, http.StatusOK, map[string]any{"token": tok, "expires": exp.Unix(), "id": "acct-carol", "name": "carol"})
	default:
		w.Header().Set("Allow", "GET, POST")
		writeTestJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	}
}

func (d *loginDouble) postsSoFar() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.posts...)
}

// logIn fills in the page's password form and submits it.
func logIn(t *testing.T, tab context.Context, name, password string) {
	t.Helper()
	step(t, tab, "log in as "+name,
		chromedp.WaitVisible(chromedp.ID("login-password")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('login-name').value = ''; document.getElementById('login-password').value = ''`),
		chromedp.SendKeys(chromedp.ID("login-name"), name),
		chromedp.SendKeys(chromedp.ID("login-password"), password),
		chromedp.Click(chromedp.ID("login-button")),
	)
}

// TestLoginForm: with guests refused and a login available, the page
// offers a password form; a wrong password is answered in the form; the
// right one posts JSON to /api/login and joins with the returned token.
// The password never appears in a URL.
func TestLoginForm(t *testing.T) {
	browser := newBrowser(t)
	login := newLoginDouble(t, time.Hour)
	srv := startChatServer(t, chat.Config{
		Authenticator: newJWTAuth(t, false),
		Routes:        map[string]http.Handler{"/api/login": login},
	}, nil, chattest.NewHistory())
	tab := newPage(t, browser)
	watchPage(t, tab)
	step(t, tab, "join as a guest",
		chromedp.Navigate(srv.url("/")),
		chromedp.WaitVisible(chromedp.ID("join-name")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('join-room').value = ''`),
		chromedp.SendKeys(chromedp.ID("join-name"), "carol"),
		chromedp.SendKeys(chromedp.ID("join-room"), "vault"),
		chromedp.Click(chromedp.ID("join-button")),
	)
	waitFor(t, tab, "the refusal with the password form and the token box",
		`document.getElementById('join-error').textContent !== '' &&
		 document.getElementById('login-form').checkVisibility() && document.getElementById('token-input').checkVisibility()`)
	screenshot(t, tab, "login-form.png")

	logIn(t, tab, "carol", "not her password")
	waitFor(t, tab, "the wrong password's answer", `document.getElementById('login-error').textContent === 'wrong name or password'`)
	if v := eval[*string](t, tab, storedAuthJS); v != nil {
		t.Errorf("a failed login left credentials: %s", *v)
	}

	logIn(t, tab, "carol", carolPassword)
	waitOnline(t, tab, "carol")
	if got := eval[string](t, tab, `document.getElementById('me-name').textContent`); got != "carol" {
		t.Errorf("logged in as carol the page is %q", got)
	}
	waitPresence(t, tab, "carol", "carol")
	checkMarks(t, "carol's member list", eval[[]shownMember](t, tab, presenceMarksJS),
		[]shownMember{{Name: "carol", Verified: "verified account: acct-carol", Roles: []string{}}})
	if v := eval[string](t, tab, `document.getElementById('login-password').value`); v != "" {
		t.Errorf("the password box still holds %q after the login", v)
	}

	if posts := login.postsSoFar(); len(posts) != 2 || posts[0] != "application/json carol" || posts[1] != "application/json carol" {
		t.Errorf("POST /api/login saw %q, want two JSON logins of carol", posts)
	}
	all := srv.allRequests()
	for _, r := range all {
		for _, secret := range []string{"horse", "not her password", url.QueryEscape("not her password")} {
			if strings.Contains(r, secret) {
				t.Errorf("a request URL holds the password: %s", r)
			}
		}
	}
	if reqs := srv.requests(); len(reqs) != 1 || !strings.Contains(reqs[0], "token=") {
		t.Errorf("WebSocket requests %q: want one, with the token", reqs)
	}
	noPageErrors(t, "carol", tab)
}

// renewDouble stands in for cmd/moonchat's POST /api/token: it renews a
// token it can verify (sent as a Bearer header) with a fresh one for the
// same identity, and refuses from its refuseFrom-th call on, as the real
// one does past the maximum session age.
type renewDouble struct {
	v          *auth.Verifier
	minter     *auth.Minter
	refuseFrom int32
	calls      atomic.Int32
	inURL      atomic.Bool // a call carried the token in its URL
}

func (d *renewDouble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeTestJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	n := d.calls.Add(1)
	if r.URL.Query().Has("token") {
		d.inURL.Store(true)
	}
	tok, err := auth.TokenFromRequest(r)
	var id auth.Identity
	if err == nil {
		id, err = d.v.Verify(tok)
	}
	if err != nil || n >= d.refuseFrom {
		writeTestJSON(w, http.StatusUnauthorized, map[string]string{"error": "the login is too old to renew"})
		return
	}
	fresh, exp, err := d.minter.Mint(auth.Identity{ID: id.ID, Name: id.Name, Roles: id.Roles, LoginTime: id.LoginTime})
	if err != nil {
		writeTestJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "mint failed"})
		return
	}
	writeTestJSON(w, http.StatusOK, map[string]any{"token": fresh, "expires": exp.Unix()})
}

// TestSessionRenewalAndExpiry: a token from a login is renewed before it
// expires (POST /api/token) and handed to the open socket, which the real
// chat server then keeps past the first token's expiry; when a renewal is
// refused the server closes the socket with 4001 at expiry, and the page
// says "session expired" and offers the login form instead of
// reconnecting; logging in again joins again.
func TestSessionRenewalAndExpiry(t *testing.T) {
	// Tokens live 8s and the page renews them 3s before they expire, so
	// the second renewal comes 2s after the first token expired.
	const ttl = 8 * time.Second
	browser := newBrowser(t)
	authn := newJWTAuth(t, true)
	m, err := auth.NewMinter(auth.MinterConfig{Secret: testSecret, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	renew := &renewDouble{v: authn.v, minter: m, refuseFrom: 3}
	srv := startChatServer(t, chat.Config{
		Authenticator: authn,
		Routes: map[string]http.Handler{
			"/api/login": newLoginDouble(t, ttl),
			"/api/token": renew,
		},
	}, nil, chattest.NewHistory())
	tab := newPage(t, browser)
	watchPage(t, tab)
	step(t, tab, "open the sign-in form",
		chromedp.Navigate(srv.url("/")),
		chromedp.WaitVisible(chromedp.ID("join-room")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('join-room').value = 'night'`),
		chromedp.Click(chromedp.ID("show-auth")),
	)
	logIn(t, tab, "carol", carolPassword)
	waitOnline(t, tab, "carol")

	deadline := time.Now().Add(2*ttl + stepTimeout)
	for renew.calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the page renewed its token %d times, want 2", renew.calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Had the socket not taken the first renewal, the server would have
	// closed it when the first token expired and the page reconnected.
	if reqs := srv.requests(); len(reqs) != 1 {
		t.Errorf("after two renewals the page made %d WebSocket requests, want 1 (the same socket)", len(reqs))
	}
	if renew.inURL.Load() {
		t.Error("POST /api/token carried the token in its URL, want a Bearer header")
	}

	// The third renewal is refused: the session ends with the token.
	waitFor(t, tab, "'session expired' and the login form",
		`document.getElementById('status').textContent === 'session expired' &&
		 document.getElementById('join-error').textContent.startsWith('Session expired (token expired)') &&
		 document.getElementById('login-form').checkVisibility()`)
	waitMetric(t, srv, "moonchat_token_expired_total 1")
	if n := eval[int](t, tab, `[...document.querySelectorAll('#messages li.notice')].filter((li) => li.textContent.includes('Your session ends at')).length`); n != 1 {
		t.Errorf("the page showed %d notices that the session would end, want 1", n)
	}
	if v := eval[*string](t, tab, storedAuthJS); v != nil {
		t.Errorf("after expiry the tab keeps %s", *v)
	}
	if reqs := srv.requests(); len(reqs) != 1 {
		t.Errorf("the page reconnected after 4001: %q", reqs)
	}
	screenshot(t, tab, "session-expired.png")

	logIn(t, tab, "carol", carolPassword)
	waitOnline(t, tab, "carol")
	if reqs := srv.requests(); len(reqs) != 2 {
		t.Errorf("WebSocket requests %q: want a second one after logging in again", reqs)
	}
	noPageErrors(t, "carol", tab)
}

// TestTokenIgnoredWithoutAuth: a server without an authenticator checks
// no tokens (everyone is a guest). A page given one says so, forgets it
// and joins as a guest, without a verified mark; it offers no "Sign in…"
// either, as the server has no login.
func TestTokenIgnoredWithoutAuth(t *testing.T) {
	browser := newBrowser(t)
	srv := startChatServer(t, chat.Config{}, nil, nil)
	tab := newPage(t, browser)
	watchPage(t, tab)
	step(t, tab, "open the page with a token in the address",
		chromedp.Navigate(srv.url("/#token="+mint(t, auth.Identity{ID: "acct-9", Name: "ivy"}, time.Hour)+"&room=open")),
		chromedp.WaitVisible(chromedp.ID("join-room")),
	)
	waitFor(t, tab, "the note that tokens are not checked",
		`document.getElementById('join-info').textContent === 'This server does not check tokens: you are a guest here.' &&
		 document.getElementById('join-name').checkVisibility() && document.getElementById('logout').hidden`)
	if v := eval[*string](t, tab, storedAuthJS); v != nil {
		t.Errorf("the tab keeps a token the server ignores: %s", *v)
	}
	if eval[bool](t, tab, `document.getElementById('show-auth').checkVisibility()`) {
		t.Error("the page offers to sign in on a server without a login")
	}
	joinAs(t, tab, srv.url(""), "ivy", "open")
	if reqs := srv.requests(); len(reqs) != 1 || strings.Contains(reqs[0], "token=") {
		t.Errorf("WebSocket requests %q: want one, without a token", reqs)
	}
	waitPresence(t, tab, "ivy", "ivy")
	checkMarks(t, "ivy's member list", eval[[]shownMember](t, tab, presenceMarksJS), []shownMember{{Name: "ivy", Roles: []string{}}})
	noPageErrors(t, "ivy", tab)
}
