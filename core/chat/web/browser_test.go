package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// chatServer is the real chat server (core/chat) behind a real listener on
// 127.0.0.1, with an in-memory history that outlives restarts, so that a
// test can stop the server under the pages and bring it back on the same
// address.
type chatServer struct {
	t     *testing.T
	cfg   chat.Config
	hooks boundHooks // nil: no hooks
	hist  *chattest.History
	addr  string // fixed after the first start

	mu   sync.Mutex
	reqs []string // request URIs of WebSocket attempts, in order
	all  []string // "METHOD URI" of every request, in order

	srv  *chat.Server
	hs   *http.Server
	done chan struct{} // closed when hs.Serve returned
}

// boundHooks are hooks that act on the server through chat.Host (the
// scripting engine, quitHooks); start binds each new server to them.
type boundHooks interface {
	chat.Hooks
	Bind(chat.Host)
}

func startChatServer(t *testing.T, cfg chat.Config, hooks boundHooks, hist *chattest.History) *chatServer {
	t.Helper()
	s := &chatServer{t: t, cfg: cfg, hooks: hooks, hist: hist, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs a fresh chat.Server on s.addr.
func (s *chatServer) start() {
	s.t.Helper()
	var hooks chat.Hooks // nil hooks must stay a nil interface
	if s.hooks != nil {
		hooks = s.hooks
	}
	var hist chat.History // likewise for a nil *chattest.History: no history
	if s.hist != nil {
		hist = s.hist
	}
	srv, err := chat.New(chattest.Limits(s.cfg), hooks, hist)
	if err != nil {
		s.t.Fatalf("chat.New: %v", err)
	}
	if s.hooks != nil {
		s.hooks.Bind(srv)
	}
	var ln net.Listener
	// The old listener's port is free again at once (Go sets SO_REUSEADDR),
	// but allow the kernel a moment on a loaded machine.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			if strings.HasPrefix(r.URL.Path, "/chat") {
				s.reqs = append(s.reqs, r.URL.RequestURI())
			}
			s.all = append(s.all, r.Method+" "+r.URL.RequestURI())
			s.mu.Unlock()
			srv.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("serve: %v", err)
		}
	}()
	s.srv, s.hs, s.done = srv, hs, done
}

// stop closes the listener, then shuts the chat server down (its
// WebSockets get close code 1001, so pages reconnect). It is idempotent.
func (s *chatServer) stop() {
	if s.srv == nil {
		return
	}
	_ = s.hs.Close()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.t.Errorf("chat shutdown: %v", err)
	}
	s.srv = nil
}

func (s *chatServer) url(path string) string { return "http://" + s.addr + path }

// requests returns the WebSocket request URIs seen so far.
func (s *chatServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// allRequests returns "METHOD URI" of every request seen so far.
func (s *chatServer) allRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

// quitHooks gives the server one command, "/quit", which kicks the sender
// (close code 1000), as the default Lua scripts do. Everything else passes.
type quitHooks struct {
	host atomic.Pointer[chat.Host]
}

func (h *quitHooks) Bind(host chat.Host)                             { h.host.Store(&host) }
func (h *quitHooks) Join(context.Context, chat.User) chat.JoinResult { return chat.JoinResult{} }
func (h *quitHooks) Leave(context.Context, chat.User) error          { return nil }
func (h *quitHooks) Rename(context.Context, chat.User, string) error { return nil }
func (h *quitHooks) Message(_ context.Context, u chat.User, m *chat.Message) chat.MessageResult {
	if m.Text != "/quit" {
		return chat.MessageResult{}
	}
	if err := (*h.host.Load()).Kick(u.SessionID, "bye"); err != nil {
		return chat.MessageResult{Drop: true, Reason: err.Error()}
	}
	return chat.MessageResult{Drop: true}
}

// ---- page helpers -------------------------------------------------------------

// joinAs opens the page in tab and joins room as name through the form,
// the way a person does, and waits until the page says it is online.
func joinAs(t *testing.T, tab context.Context, base, name, room string) {
	t.Helper()
	step(t, tab, "open the page as "+name,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("join-name")),
		// Empty the fields the page prefilled (from storage), then type.
		chromedp.Evaluate[chromedp.Void](`document.getElementById('join-name').value = ''; document.getElementById('join-room').value = ''`),
		chromedp.SendKeys(chromedp.ID("join-name"), name),
		chromedp.SendKeys(chromedp.ID("join-room"), room),
		chromedp.Click(chromedp.ID("join-button")),
	)
	waitOnline(t, tab, name)
}

func waitOnline(t *testing.T, tab context.Context, who string) {
	t.Helper()
	waitFor(t, tab, who+"'s page online", `document.getElementById('status').dataset.state === 'online'`)
}

// say types text into the composer and presses Enter.
func say(t *testing.T, tab context.Context, who, text string) {
	t.Helper()
	step(t, tab, who+" says "+text,
		chromedp.Focus(chromedp.ID("text")),
		chromedp.SendKeys(chromedp.ID("text"), text+"\n"),
	)
}

// shownMessagesJS lists the chat messages a page shows, as "user: text".
const shownMessagesJS = `[...document.querySelectorAll('#messages li.msg:not([hidden])')]
	.map(li => li.querySelector('.user').textContent + ': ' + li.querySelector('.text').textContent)`

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitShows waits until tab shows the chat message "user: text".
func waitShows(t *testing.T, tab context.Context, who, user, text string) {
	t.Helper()
	line := user + ": " + text
	waitFor(t, tab, fmt.Sprintf("%s's page to show %q", who, line),
		fmt.Sprintf(`(%s).includes(%s)`, shownMessagesJS, jsString(line)))
}

// waitPresence waits until tab's presence list is exactly users.
func waitPresence(t *testing.T, tab context.Context, who string, users ...string) {
	t.Helper()
	want, _ := json.Marshal(users)
	waitFor(t, tab, fmt.Sprintf("%s's presence list %s", who, want),
		fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('#presence .name')].map(e => e.textContent)) === %s`, jsString(string(want))))
}

func shownMessages(t *testing.T, tab context.Context) []string {
	t.Helper()
	return eval[[]string](t, tab, shownMessagesJS)
}

// countOf counts line in lines.
func countOf(lines []string, line string) int {
	n := 0
	for _, l := range lines {
		if l == line {
			n++
		}
	}
	return n
}

// ---- tests ---------------------------------------------------------------------

// TestTwoPeopleChat drives two browser pages through the real chat server:
// they join one room, see each other, talk, survive a reload and a server
// restart without losing or duplicating a message.
func TestTwoPeopleChat(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	srv := startChatServer(t, chat.Config{Replay: 50}, nil, hist)
	base := srv.url("")

	alice := newPage(t, browser)
	bob := newPage(t, browser)
	joinAs(t, alice, base, "alice", "garden")
	joinAs(t, bob, base, "bob", "garden")
	waitPresence(t, alice, "alice", "alice", "bob")
	waitPresence(t, bob, "bob", "alice", "bob")
	if got := eval[string](t, alice, `document.getElementById('me-name').textContent`); got != "alice" {
		t.Errorf("alice's page says its name is %q, want alice", got)
	}

	// Markup in a message must arrive as text, never as HTML.
	hello := "hello bob <b>not bold</b> <img src=x onerror=alert(1)>"
	say(t, alice, "alice", hello)
	waitShows(t, bob, "bob", "alice", hello)
	if n := eval[int](t, bob, `document.querySelectorAll('#messages b, #messages img').length`); n != 0 {
		t.Errorf("bob's page turned message text into %d HTML elements", n)
	}
	if v := eval[string](t, alice, `document.getElementById('text').value`); v != "" {
		t.Errorf("alice's input still holds %q after sending", v)
	}
	say(t, bob, "bob", "hi alice, nice to see you")
	waitShows(t, alice, "alice", "bob", "hi alice, nice to see you")
	waitShows(t, bob, "bob", "bob", "hi alice, nice to see you")

	// Own messages are marked on the sender's page only.
	ownJS := `[...document.querySelectorAll('#messages li.msg.own .user')].map(e => e.textContent)`
	if own := eval[[]string](t, alice, ownJS); len(own) != 1 || own[0] != "alice" {
		t.Errorf("alice's page marks %v as own messages, want [alice]", own)
	}
	if own := eval[[]string](t, bob, ownJS); len(own) != 1 || own[0] != "bob" {
		t.Errorf("bob's page marks %v as own messages, want [bob]", own)
	}
	// Join notices are system notices, not chat messages.
	waitFor(t, alice, "a 'bob joined' notice on alice's page",
		`[...document.querySelectorAll('#messages li.notice.system')].some(li => li.textContent.includes('bob joined'))`)
	screenshot(t, alice, "alice.png")
	screenshot(t, bob, "bob.png")

	// Reload: the tab rejoins by itself and the history is replayed once.
	step(t, bob, "reload bob's page", chromedp.Reload())
	waitOnline(t, bob, "bob")
	waitShows(t, bob, "bob", "alice", hello)
	waitShows(t, bob, "bob", "bob", "hi alice, nice to see you")
	waitPresence(t, alice, "alice", "alice", "bob")
	for _, line := range []string{"alice: " + hello, "bob: hi alice, nice to see you"} {
		if n := countOf(shownMessages(t, bob), line); n != 1 {
			t.Errorf("after reload bob's page shows %q %d times, want once", line, n)
		}
	}

	// Restart the server under both pages. They must reconnect by
	// themselves, asking only for what they have not seen (since=2), and a
	// message sent meanwhile must show up exactly once.
	srv.stop()
	waitFor(t, alice, "alice's page to notice the drop",
		`['reconnecting', 'connecting'].includes(document.getElementById('status').dataset.state)`)
	screenshot(t, alice, "alice-reconnecting.png")
	hist.Seed("garden", "carol", 1) // what someone said while the pages were away
	srv.start()
	waitOnline(t, alice, "alice")
	waitOnline(t, bob, "bob")
	waitShows(t, alice, "alice", "carol", "seeded message 1")
	waitShows(t, bob, "bob", "carol", "seeded message 1")
	say(t, alice, "alice", "back again")
	waitShows(t, bob, "bob", "alice", "back again")
	waitShows(t, alice, "alice", "alice", "back again")
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		got := shownMessages(t, tab)
		want := []string{"alice: " + hello, "bob: hi alice, nice to see you", "carol: seeded message 1", "alice: back again"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s's page after the restart shows\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	resumed := 0
	for _, u := range srv.requests() {
		if strings.Contains(u, "since=2") {
			resumed++
		}
	}
	if resumed < 2 {
		t.Errorf("want both pages to resume with since=2, requests were %q", srv.requests())
	}
	screenshot(t, bob, "bob-after-restart.png")
}

// TestHistoryPaging checks that scrolling to the top pages in older history
// and keeps what the reader was looking at in place.
func TestHistoryPaging(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	hist.Seed("archive", "dave", 120)
	srv := startChatServer(t, chat.Config{Replay: 50}, nil, hist)

	tab := newPage(t, browser)
	joinAs(t, tab, srv.url(""), "erin", "archive")
	waitFor(t, tab, "the 50 replayed messages", `document.querySelectorAll('#messages li.msg').length === 50`)

	idsJS := `[...document.querySelectorAll('#messages li.msg')].map(li => Number(li.dataset.id))`
	// Scroll up until everything is there; each page must keep the message
	// that was at the top where it was.
	for _, want := range []int{100, 120} {
		top := eval[int](t, tab, `Number(document.querySelector('#messages li.msg').dataset.id)`)
		// Where the text of the top message is on screen, relative to the list.
		textTopJS := fmt.Sprintf(`(() => {
			const li = document.querySelector('#messages li.msg[data-id="%d"] .text');
			return li.getBoundingClientRect().top - document.getElementById('scroller').getBoundingClientRect().top;
		})()`, top)
		// Scroll and measure in one go: the scroll event (which asks for the
		// older page) cannot run in between.
		before := eval[float64](t, tab, `document.getElementById('scroller').scrollTop = 0; `+textTopJS)
		waitFor(t, tab, fmt.Sprintf("%d messages after scrolling up", want),
			fmt.Sprintf(`document.querySelectorAll('#messages li.msg').length === %d`, want))
		// The older page went in above: what the reader looked at stays put.
		if after := eval[float64](t, tab, textTopJS); after < before-3 || after > before+3 {
			t.Errorf("loading older messages moved message %d from %.0fpx to %.0fpx below the top of the list", top, before, after)
		}
	}
	ids := eval[[]int](t, tab, idsJS)
	for i, id := range ids {
		if id != i+1 {
			t.Fatalf("message ids shown are not 1..120 in order: position %d has %d", i, id)
		}
	}
	if !eval[bool](t, tab, `document.getElementById('older').hidden`) {
		t.Error("the 'load older' control is still offered after the whole history is shown")
	}
	screenshot(t, tab, "history.png")
}

// TestResumeOverManyPages checks that a page coming back after missing more
// than one resume batch (api_limit) fetches the rest page by page and ends
// with every message exactly once, in order, even when a live message
// arrives in the middle of the catch-up.
func TestResumeOverManyPages(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	srv := startChatServer(t, chat.Config{APILimit: 4}, nil, hist)
	tab := newPage(t, browser)
	joinAs(t, tab, srv.url(""), "frank", "backlog")
	say(t, tab, "frank", "before the break")
	waitShows(t, tab, "frank", "frank", "before the break") // id 1

	srv.stop()
	waitFor(t, tab, "frank's page to notice the drop",
		`['reconnecting', 'connecting'].includes(document.getElementById('status').dataset.state)`)
	hist.Seed("backlog", "carol", 11) // ids 2..12: three resume pages of 4
	hit, release := hist.HoldAfter(1) // the resume with since=1
	defer release()
	srv.start()
	select {
	case <-hit:
	case <-time.After(stepTimeout):
		t.Fatal("the page did not resume with since=1")
	}
	// While the room is busy with the resume, grace says something: it
	// reaches the page live, between the first batch and the next pages.
	d := websocket.Dialer{HandshakeTimeout: stepTimeout}
	grace, _, err := d.Dial("ws://"+srv.addr+"/chat/backlog?name=grace", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer grace.Close()
	if err := grace.WriteMessage(websocket.TextMessage, []byte("live during the catch-up")); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitMetric(t, srv, "moonchat_messages_in_total 1")
	release()

	waitShows(t, tab, "frank", "grace", "live during the catch-up")
	waitFor(t, tab, "13 messages on frank's page", `document.querySelectorAll('#messages li.msg').length === 13`)
	got := shownMessages(t, tab)
	want := []string{"frank: before the break"}
	for i := 1; i <= 11; i++ {
		want = append(want, fmt.Sprintf("carol: seeded message %d", i))
	}
	want = append(want, "grace: live during the catch-up")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("frank's page after the resume shows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ids := eval[[]int](t, tab, `[...document.querySelectorAll('#messages li.msg')].map(li => Number(li.dataset.id))`)
	for i, id := range ids {
		if id != i+1 {
			t.Fatalf("message ids shown are %v, want 1..13 in order", ids)
		}
	}
	if n := eval[int](t, tab, `document.querySelectorAll('#messages li.notice.gap').length`); n != 0 {
		t.Errorf("the page shows %d gap notices; nothing was lost", n)
	}
}

// waitMetric polls /metrics until it has the line.
func waitMetric(t *testing.T, srv *chatServer, line string) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		resp, err := http.Get(srv.url("/metrics"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), line+"\n") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoReconnectAfterRefusalOrQuit checks the two close codes after which
// reconnecting would only repeat the failure: 1008 (refused) and 1000
// (quit); the page shows why instead.
func TestNoReconnectAfterRefusalOrQuit(t *testing.T) {
	browser := newBrowser(t)
	srv := startChatServer(t, chat.Config{MaxNameLength: 10}, &quitHooks{}, chattest.NewHistory())
	tab := newPage(t, browser)

	// The page allows 24 characters; this server only 10, so it refuses.
	step(t, tab, "join with a name the server refuses",
		chromedp.Navigate(srv.url("/")),
		chromedp.WaitVisible(chromedp.ID("join-name")),
		chromedp.SendKeys(chromedp.ID("join-name"), "averyverylongname"),
		chromedp.Click(chromedp.ID("join-button")),
	)
	waitFor(t, tab, "the refusal to be shown",
		`document.getElementById('status').dataset.state === 'closed' && document.getElementById('app').dataset.view === 'join'`)
	reason := eval[string](t, tab, `document.getElementById('join-error').textContent`)
	if !strings.Contains(reason, "10") {
		t.Errorf("refusal reason shown is %q, want the server's reason (names up to 10 characters)", reason)
	}
	screenshot(t, tab, "refused.png")

	joinAs(t, tab, srv.url(""), "frank", "lobby")
	say(t, tab, "frank", "/quit")
	waitFor(t, tab, "the page to stop after /quit", `document.getElementById('status').dataset.state === 'ended'`)

	// Neither close may be followed by a reconnect attempt. The first retry
	// would come after at most 0.5s; give it well over that.
	before := len(srv.requests())
	time.Sleep(2 * time.Second)
	if reqs := srv.requests(); len(reqs) != before {
		t.Errorf("the page reconnected after a 1000/1008 close: %q", reqs[before:])
	}
	if n := len(srv.requests()); n != 2 {
		t.Errorf("want 2 WebSocket attempts (refused join, frank), got %d: %q", n, srv.requests())
	}
}

// TestServerEventsShown checks how the page renders the events a plain chat
// does not produce: a redaction (the message disappears), a refused message
// (an inline error), a rename by the server (the page learns its new name)
// and a gap on resume (a visible notice). It ends with a screenshot of the
// narrow, dark layout.
func TestServerEventsShown(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	srv := startChatServer(t, chat.Config{MaxTextBytes: 64}, nil, hist)
	tab := newPage(t, browser)
	joinAs(t, tab, srv.url(""), "gina", "events")
	for _, text := range []string{"one", "two", "three"} {
		say(t, tab, "gina", text)
	}
	waitShows(t, tab, "gina", "gina", "three")

	// Redaction (ids are 1, 2, 3 in this fresh room).
	if err := srv.srv.Redact("events", 2); err != nil {
		t.Fatalf("redact: %v", err)
	}
	waitFor(t, tab, "message 2 to disappear",
		`JSON.stringify(`+shownMessagesJS+`) === JSON.stringify(["gina: one", "gina: three"])`)

	// A text over MaxTextBytes is refused with an error event, shown inline.
	say(t, tab, "gina", strings.Repeat("x", 100))
	waitFor(t, tab, "an inline too_long error", `document.querySelector('#messages li.notice.error[data-code="too_long"]') !== null`)

	// The server renames us: the page adopts the name, and keeps marking
	// our messages as our own.
	users := srv.srv.Users("events")
	if len(users) != 1 {
		t.Fatalf("users in room: %+v", users)
	}
	if _, err := srv.srv.Rename(users[0].SessionID, "gina2"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	waitFor(t, tab, "the page to learn its new name", `document.getElementById('me-name').textContent === 'gina2'`)
	waitPresence(t, tab, "gina2", "gina2")
	say(t, tab, "gina2", "after rename")
	waitFor(t, tab, "the renamed sender's message marked own",
		`[...document.querySelectorAll('#messages li.msg.own .text')].some(e => e.textContent === 'after rename')`)

	// While the server is down three messages arrive and the first of them
	// is deleted: on resume (since=4) the page must say that one is lost.
	srv.stop()
	hist.Seed("events", "carol", 3) // ids 5, 6, 7
	if ok, err := hist.Redact("events", 5); !ok || err != nil {
		t.Fatalf("redact 5: %v %v", ok, err)
	}
	srv.start()
	waitOnline(t, tab, "gina2")
	waitShows(t, tab, "gina2", "carol", "seeded message 3")
	waitFor(t, tab, "a gap notice", `[...document.querySelectorAll('#messages li.notice.gap')].some(li => li.textContent.includes('1 message'))`)
	reqs := srv.requests()
	if last := reqs[len(reqs)-1]; !strings.Contains(last, "name=gina2") || !strings.Contains(last, "since=4") {
		t.Errorf("the page reconnected with %q, want name=gina2 (its new name) and since=4", last)
	}
	got := shownMessages(t, tab)
	want := []string{"gina: one", "gina: three", "gina2: after rename", "carol: seeded message 2", "carol: seeded message 3"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("page shows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	step(t, tab, "narrow dark layout", chromedp.EmulateViewport(390, 760), colorScheme("dark"))
	waitFor(t, tab, "the dark scheme", `matchMedia('(prefers-color-scheme: dark)').matches`)
	step(t, tab, "scroll to the end", chromedp.Evaluate[chromedp.Void](`document.getElementById('scroller').scrollTop = 1e9`))
	screenshot(t, tab, "narrow-dark.png")
}

// TestWithoutHistory checks the page against a server that keeps no
// history: messages have no ids, yet both pages show each exactly once and
// no "older messages" control is offered.
func TestWithoutHistory(t *testing.T) {
	browser := newBrowser(t)
	srv := startChatServer(t, chat.Config{}, nil, nil)
	hana := newPage(t, browser)
	ivan := newPage(t, browser)
	joinAs(t, hana, srv.url(""), "hana", "lobby")
	joinAs(t, ivan, srv.url(""), "ivan", "lobby")
	say(t, hana, "hana", "no ids here")
	say(t, hana, "hana", "no ids here")
	waitFor(t, ivan, "both messages on ivan's page",
		`JSON.stringify(`+shownMessagesJS+`) === JSON.stringify(["hana: no ids here", "hana: no ids here"])`)
	waitFor(t, hana, "both messages on hana's page",
		`JSON.stringify(`+shownMessagesJS+`) === JSON.stringify(["hana: no ids here", "hana: no ids here"])`)
	if !eval[bool](t, hana, `document.getElementById('older').hidden`) {
		t.Error("the page offers older messages from a server without history")
	}
}
