package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/defaults"
	"github.com/moonchat/moonchat/scripting"
)

// watchPage makes every document page loads record, before any of its
// own code runs, the content security policy violations it reports
// (window.__csp) and its uncaught errors (window.__errors).
func watchPage(t *testing.T, tab context.Context) {
	t.Helper()
	const src = `window.__csp = []; window.__errors = [];
document.addEventListener('securitypolicyviolation', (e) =>
	window.__csp.push(e.effectiveDirective + ' blocked ' + (e.blockedURI || '(inline)') + ' at ' + e.sourceFile + ':' + e.lineNumber));
window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => window.__errors.push(String(e.reason)));`
	step(t, tab, "install the violation recorder", chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		return err
	}))
}

// timezone makes page's clock local to the IANA zone id.
func timezone(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: id})
		return err
	})
}

// TestPageUnderCSP runs a whole chat (join, replay, presence colours, live
// messages, a second person, a reload) under the policy the server sends,
// and requires zero violations and zero script errors (issue 10.18). It
// then proves the policy is in force and the recorder works: an injected
// inline script is blocked and reported.
func TestPageUnderCSP(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	hist.Seed("secure", "carol", 3)
	srv := startChatServer(t, chat.Config{Replay: 50}, nil, hist)
	alice := newPage(t, browser)
	bob := newPage(t, browser)
	watchPage(t, alice)
	watchPage(t, bob)

	joinAs(t, alice, srv.url(""), "alice", "secure")
	joinAs(t, bob, srv.url(""), "bob", "secure")
	waitShows(t, alice, "alice", "carol", "seeded message 3")
	say(t, alice, "alice", "see https://example.org/x under a strict policy")
	waitShows(t, bob, "bob", "alice", "see https://example.org/x under a strict policy")
	waitPresence(t, alice, "alice", "alice", "bob")
	// Names are coloured through CSS custom properties set from app.js
	// (the CSSOM, which the policy allows): two names, two colours.
	colours := eval[[]string](t, alice, `[...document.querySelectorAll('#presence .dot')].map(e => getComputedStyle(e).backgroundColor)`)
	if len(colours) != 2 || colours[0] == colours[1] {
		t.Errorf("presence dots have colours %q, want two different ones (per-name hue)", colours)
	}
	step(t, bob, "reload bob's page", chromedp.Reload())
	waitOnline(t, bob, "bob")
	waitShows(t, bob, "bob", "alice", "see https://example.org/x under a strict policy")

	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		if v := eval[[]string](t, tab, `window.__csp`); len(v) != 0 {
			t.Errorf("%s's page reported content security policy violations: %q", name, v)
		}
		if v := eval[[]string](t, tab, `window.__errors`); len(v) != 0 {
			t.Errorf("%s's page had script errors: %q", name, v)
		}
	}

	// The policy is really there: inline script does not run.
	eval[bool](t, alice, `(() => {
		const s = document.createElement('script');
		s.textContent = 'window.__inlineRan = true';
		document.body.append(s);
		return true;
	})()`)
	waitFor(t, alice, "the inline script's violation report",
		`window.__csp.some((v) => v.startsWith('script-src'))`)
	if eval[bool](t, alice, `window.__inlineRan === true`) {
		t.Error("an inline script ran despite the content security policy")
	}
}

// TestPageOffersDefaultRoom checks that the page offers the server's
// [chat] default_room, not a built-in "lobby", and that joining with the
// room field left empty lands where terminal users of ws://HOST/chat land
// (issue 10.4).
func TestPageOffersDefaultRoom(t *testing.T) {
	browser := newBrowser(t)
	srv := startChatServer(t, chat.Config{DefaultRoom: "tea.house"}, nil, nil)
	tab := newPage(t, browser)
	watchPage(t, tab)
	step(t, tab, "open the page",
		chromedp.Navigate(srv.url("/")),
		chromedp.WaitVisible(chromedp.ID("join-name")),
	)
	if got := eval[string](t, tab, `document.getElementById('join-room').value`); got != "tea.house" {
		t.Errorf("the room field holds %q, want the server's default room tea.house", got)
	}
	if got := eval[string](t, tab, `document.getElementById('join-room').placeholder`); got != "tea.house" {
		t.Errorf("the room field's placeholder is %q, want tea.house", got)
	}
	// Empty the room field: the page falls back to the default room.
	step(t, tab, "join with no room typed",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('join-room').value = ''`),
		chromedp.SendKeys(chromedp.ID("join-name"), "wanda"),
		chromedp.Click(chromedp.ID("join-button")),
	)
	waitOnline(t, tab, "wanda")
	if got := eval[string](t, tab, `document.getElementById('room-title').textContent`); got != "#tea.house" {
		t.Errorf("the page joined %q, want #tea.house", got)
	}
	// A terminal user of ws://HOST/chat is in the same room.
	d := websocket.Dialer{HandshakeTimeout: stepTimeout}
	term, _, err := d.Dial("ws://"+srv.addr+"/chat?name=tom", nil)
	if err != nil {
		t.Fatalf("dial /chat: %v", err)
	}
	defer term.Close()
	waitPresence(t, tab, "wanda", "wanda", "tom")
	if v := eval[[]string](t, tab, `window.__csp.concat(window.__errors)`); len(v) != 0 {
		t.Errorf("the page reported %q", v)
	}
}

// startScriptedServer is a chat server running the built-in Lua scripts
// (/nick, quit, …), as `moonchat serve` does.
func startScriptedServer(t *testing.T, cfg chat.Config) *chatServer {
	t.Helper()
	eng, err := scripting.New(t.Context(), scripting.Options{
		FS: defaults.Scripts(),
		// Generous: the machine is loaded, and a hook past its limit
		// refuses the message (fail closed), which is not under test.
		HookTimeout: 5 * time.Second,
		// Warnings and errors only: every start logs its scripts at info.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("load the built-in scripts: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return startChatServer(t, cfg, eng, chattest.NewHistory())
}

// youJS lists the presence entries marked "(you)".
const youJS = `[...document.querySelectorAll('#presence li')].filter((li) => li.classList.contains('self') && li.querySelector('.you')).map((li) => li.querySelector('.name').textContent)`

// TestNamesAndQuit checks what the page says about its own name and a
// normal close (issue 10.7): after /nick the member list still marks the
// new name "(you)"; after /nick and Leave the join form holds the new name,
// so joining again keeps it; a taken name is answered with a note saying
// which name was given; typing "quit" ends the chat as news, not as an
// error.
func TestNamesAndQuit(t *testing.T) {
	browser := newBrowser(t)
	srv := startScriptedServer(t, chat.Config{Replay: 50})
	alice := newPage(t, browser)
	bob := newPage(t, browser)
	watchPage(t, alice)
	joinAs(t, alice, srv.url(""), "alice", "den")
	joinAs(t, bob, srv.url(""), "bob", "den")
	waitPresence(t, alice, "alice", "alice", "bob")

	say(t, alice, "alice", "/nick alicia")
	waitFor(t, alice, "alice's page to learn its new name", `document.getElementById('me-name').textContent === 'alicia'`)
	waitPresence(t, alice, "alicia", "alicia", "bob")
	if got := eval[[]string](t, alice, youJS); len(got) != 1 || got[0] != "alicia" {
		t.Errorf("after /nick the entries marked (you) are %q, want [alicia]", got)
	}

	step(t, alice, "leave", chromedp.Click(chromedp.ID("leave")))
	waitFor(t, alice, "the join form", `document.getElementById('app').dataset.view === 'join'`)
	if got := eval[string](t, alice, `document.getElementById('join-name').value`); got != "alicia" {
		t.Errorf("after /nick and Leave the join form holds %q, want alicia", got)
	}
	// Rejoin once the server has let the old connection go (or the name
	// would be taken by alicia's own ghost).
	waitPresence(t, bob, "bob", "bob")
	step(t, alice, "join again", chromedp.Click(chromedp.ID("join-button")))
	waitOnline(t, alice, "alicia")
	if got := eval[string](t, alice, `document.getElementById('me-name').textContent`); got != "alicia" {
		t.Errorf("joining again from the form gave the name %q, want alicia", got)
	}
	if got := eval[[]string](t, alice, youJS); len(got) != 1 || got[0] != "alicia" {
		t.Errorf("after joining again the entries marked (you) are %q, want [alicia]", got)
	}
	say(t, alice, "alicia", "hello again")
	waitShows(t, bob, "bob", "alicia", "hello again")

	// A third person asks for a name that is taken: the page says so,
	// under the replayed messages.
	carol := newPage(t, browser)
	watchPage(t, carol)
	joinAs(t, carol, srv.url(""), "bob", "den")
	note := "bob is taken; you are bob-2"
	waitFor(t, carol, "the note about the taken name",
		fmt.Sprintf(`[...document.querySelectorAll('#messages li.notice')].some((li) => li.textContent.includes(%s))`, jsString(note)))
	order := eval[[]string](t, carol, `[...document.querySelectorAll('#messages li.msg, #messages li.notice.local')].map((li) => li.querySelector('.text').textContent)`)
	if i, j := indexOf(order, "hello again"), indexOf(order, note); i < 0 || j < i {
		t.Errorf("carol's page shows %q: want the replayed message, then the note", order)
	}
	if got := eval[string](t, carol, `document.getElementById('me-name').textContent`); got != "bob-2" {
		t.Errorf("carol's page says its name is %q, want bob-2", got)
	}
	if got := eval[[]string](t, carol, youJS); len(got) != 1 || got[0] != "bob-2" {
		t.Errorf("carol's entries marked (you) are %q, want [bob-2]", got)
	}

	// "quit": the server says goodbye and closes normally (1000). That is
	// not an error: nothing is shown in red.
	say(t, carol, "bob-2", "quit")
	waitFor(t, carol, "the page to stop after quit",
		`document.getElementById('app').dataset.view === 'join' && document.getElementById('status').dataset.state !== 'online'`)
	state := eval[string](t, carol, `document.getElementById('status').dataset.state`)
	joinErr := eval[string](t, carol, `document.getElementById('join-error').textContent`)
	info := eval[string](t, carol, `document.getElementById('join-info').textContent`)
	if state != "ended" || joinErr != "" || !strings.Contains(info, "goodbye") {
		t.Errorf("after quit: status %q, join error %q, join info %q; want status ended, no error, info saying goodbye", state, joinErr, info)
	}
	if n := eval[int](t, carol, `document.querySelectorAll('#messages li.notice.error').length`); n != 0 {
		t.Errorf("after quit the page shows %d error notices", n)
	}
	if got := eval[string](t, carol, `document.getElementById('join-name').value`); got != "bob-2" {
		t.Errorf("after quit the join form holds %q, want bob-2", got)
	}
	if !eval[bool](t, carol, `document.getElementById('me').hidden`) {
		t.Error("after quit the top bar still says which name the page has")
	}
	screenshot(t, carol, "after-quit.png")
	for name, tab := range map[string]context.Context{"alice": alice, "carol": carol} {
		if v := eval[[]string](t, tab, `window.__csp.concat(window.__errors)`); len(v) != 0 {
			t.Errorf("%s's page reported %q", name, v)
		}
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// itemsJS lists the day separators and chat messages a page shows, as
// "day:LABEL" and "msg:TEXT".
const itemsJS = `[...document.querySelectorAll('#messages li.day, #messages li.msg:not([hidden])')]
	.map((li) => li.classList.contains('day') ? 'day:' + li.textContent : 'msg:' + li.querySelector('.text').textContent)`

// TestDaySeparators checks that messages of different days are separated
// by "Today", "Yesterday" or the date, for replayed, paged-in and live
// messages and after a day's messages are deleted, and that a message's
// time shows its full date on hover (issue 10.11).
func TestDaySeparators(t *testing.T) {
	browser := newBrowser(t)
	// The browser's clock runs in a zone where it is now about noon, so
	// that "today" cannot turn into "yesterday" while the test runs.
	// (Etc/GMT-5 is UTC+5.)
	now := time.Now()
	offset := 12 - now.UTC().Hour()
	zone := time.FixedZone("test", offset*3600)
	local := now.In(zone)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, zone)
	at := func(daysAgo, hour int) time.Time {
		return midnight.AddDate(0, 0, -daysAgo).Add(time.Duration(hour)*time.Hour + 7*time.Second)
	}
	hist := chattest.NewHistory()
	hist.Add("days", "dave", "three days ago, morning", at(3, 9)) // id 1
	hist.Add("days", "dave", "three days ago, noon", at(3, 12))   // id 2
	hist.Add("days", "erin", "yesterday, morning", at(1, 9))      // id 3
	hist.Add("days", "erin", "yesterday, evening", at(1, 21))     // id 4
	hist.Add("days", "dave", "this morning", at(0, 9))            // id 5
	srv := startChatServer(t, chat.Config{Replay: 3}, nil, hist)  // ids 1, 2 come by paging
	tab := newPage(t, browser)
	watchPage(t, tab)
	step(t, tab, "set the time zone", timezone(fmt.Sprintf("Etc/GMT%+d", -offset)))
	joinAs(t, tab, srv.url(""), "fay", "days")
	waitFor(t, tab, "all five messages (the short list pages in the older ones)",
		`document.querySelectorAll('#messages li.msg').length === 5`)

	items := eval[[]string](t, tab, itemsJS)
	if len(items) != 8 || !strings.HasPrefix(items[0], "day:") {
		t.Fatalf("the page shows %q, want a date, 2 messages, Yesterday, 2 messages, Today, 1 message", items)
	}
	old := at(3, 12)
	label := strings.TrimPrefix(items[0], "day:")
	if !strings.Contains(label, old.Format("2006")) || !regexp.MustCompile(`\b`+old.Format("2")+`\b`).MatchString(label) ||
		label == "Today" || label == "Yesterday" {
		t.Errorf("the separator of three days ago reads %q, want its date (%s)", label, old.Format("Monday 2 January 2006"))
	}
	want := []string{items[0], "msg:three days ago, morning", "msg:three days ago, noon",
		"day:Yesterday", "msg:yesterday, morning", "msg:yesterday, evening", "day:Today", "msg:this morning"}
	if strings.Join(items, "\n") != strings.Join(want, "\n") {
		t.Errorf("the page shows\n%s\nwant\n%s", strings.Join(items, "\n"), strings.Join(want, "\n"))
	}

	// Hover: the full date and time (to the second).
	title := eval[string](t, tab, `document.querySelector('#messages li.msg[data-id="2"] time').title`)
	if !strings.Contains(title, old.Format("2006")) || !strings.Contains(title, "00:07") {
		t.Errorf("the time of message 2 has the tooltip %q, want its full date and time (%s)", title, old.Format(time.RFC1123))
	}

	// A live message today: no new separator.
	say(t, tab, "fay", "live now")
	waitShows(t, tab, "fay", "fay", "live now")
	want = append(want, "msg:live now")
	if items := eval[[]string](t, tab, itemsJS); strings.Join(items, "\n") != strings.Join(want, "\n") {
		t.Errorf("after a live message the page shows\n%s\nwant\n%s", strings.Join(items, "\n"), strings.Join(want, "\n"))
	}

	// Yesterday's messages are deleted: its separator goes with them.
	for _, id := range []uint64{3, 4} {
		if err := srv.srv.Redact("days", id); err != nil {
			t.Fatalf("redact %d: %v", id, err)
		}
	}
	want = []string{want[0], want[1], want[2], "day:Today", "msg:this morning", "msg:live now"}
	waitFor(t, tab, "yesterday's separator to go with its messages",
		fmt.Sprintf(`JSON.stringify(%s) === %s`, itemsJS, jsString(mustJSON(want))))
	screenshot(t, tab, "days.png")
	if v := eval[[]string](t, tab, `window.__csp.concat(window.__errors)`); len(v) != 0 {
		t.Errorf("the page reported %q", v)
	}
}

// mustJSON encodes v as JSON.stringify does (no escaping of <, > and &),
// so that the two can be compared as text.
func mustJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// fakeRoom is a moonchat.v1 server of a single scripted conversation, for
// events the chat server cannot be made to send on demand. It serves the
// real page (from a real chat server) and answers every WebSocket with
// script, then, for each message the page sends, with reply.
func fakeRoom(t *testing.T, script []map[string]any, reply func(text string) map[string]any) string {
	t.Helper()
	real, err := chat.New(chattest.Limits(chat.Config{}), nil, nil)
	if err != nil {
		t.Fatalf("chat.New: %v", err)
	}
	up := websocket.Upgrader{Subprotocols: []string{chat.SubprotocolJSON}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			real.ServeHTTP(w, r)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for _, ev := range script {
			if err := c.WriteJSON(ev); err != nil {
				return
			}
		}
		for {
			var in struct{ Type, Text string }
			if err := c.ReadJSON(&in); err != nil {
				return
			}
			if in.Type == "message" {
				if err := c.WriteJSON(reply(in.Text)); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = real.Shutdown(ctx)
	})
	return hs.URL
}

// TestActionsShown checks how the page renders /me actions ("action":
// true on a message event, replayed or live): "* dave waves", the name
// inside the sentence, markup shown as text (issue 10.11).
func TestActionsShown(t *testing.T) {
	browser := newBrowser(t)
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	msg := func(id int, user, text string, action bool) map[string]any {
		m := map[string]any{"type": "message", "id": id, "room": "acts", "user": user, "text": text, "ts": ts}
		if action {
			m["action"] = true
		}
		return m
	}
	sent := 10
	base := fakeRoom(t, []map[string]any{
		{"type": "welcome", "room": "acts", "user": "gus"},
		{"type": "history", "room": "acts", "reason": "join", "complete": true, "more": false, "messages": []any{
			msg(1, "dave", "hello", false),
			msg(2, "dave", "waves <img src=x onerror=alert(1)>", true),
			msg(3, "dave", "and talks again", false),
		}},
		{"type": "presence", "room": "acts", "users": []string{"dave", "gus"}},
	}, func(text string) map[string]any {
		sent++
		action := strings.HasPrefix(text, "/me ")
		return msg(sent, "gus", strings.TrimPrefix(text, "/me "), action)
	})
	tab := newPage(t, browser)
	watchPage(t, tab)
	joinAs(t, tab, base, "gus", "acts")
	waitFor(t, tab, "the replay", `document.querySelectorAll('#messages li.msg').length === 3`)
	say(t, tab, "gus", "/me nods")
	waitFor(t, tab, "gus's action", `document.querySelectorAll('#messages li.msg').length === 4`)

	type shown struct {
		Text   string `json:"text"`
		Action bool   `json:"action"`
		Cont   bool   `json:"cont"`
		Own    bool   `json:"own"`
	}
	got := eval[[]shown](t, tab, `[...document.querySelectorAll('#messages li.msg')].map((li) => ({
		text: li.querySelector('.text').textContent, action: li.classList.contains('action'),
		cont: li.classList.contains('cont'), own: li.classList.contains('own')}))`)
	want := []shown{
		{Text: "hello"},
		{Text: "* dave waves <img src=x onerror=alert(1)>", Action: true},
		{Text: "and talks again"}, // not a continuation of an action
		{Text: "* gus nods", Action: true, Own: true},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the page shows %+v, want %+v", got, want)
	}
	if n := eval[int](t, tab, `document.querySelectorAll('#messages img').length`); n != 0 {
		t.Errorf("an action's text became %d HTML elements", n)
	}
	if name := eval[string](t, tab, `document.querySelector('#messages li.action .text .user').textContent`); name != "dave" {
		t.Errorf("the action's name element holds %q, want dave", name)
	}
	screenshot(t, tab, "actions.png")
	if v := eval[[]string](t, tab, `window.__csp.concat(window.__errors)`); len(v) != 0 {
		t.Errorf("the page reported %q", v)
	}
}

// TestActionThroughServer sends "/me" through the chat server and the
// built-in scripts: the other page shows the action live and, after a
// reload, replayed from history, both times as "* alice …".
func TestActionThroughServer(t *testing.T) {
	browser := newBrowser(t)
	srv := startScriptedServer(t, chat.Config{Replay: 50})
	alice := newPage(t, browser)
	bob := newPage(t, browser)
	joinAs(t, alice, srv.url(""), "alice", "stage")
	joinAs(t, bob, srv.url(""), "bob", "stage")
	say(t, alice, "alice", "/me waves <b>hi</b>")
	actionJS := `[...document.querySelectorAll('#messages li.msg.action .text')].map((e) => e.textContent)`
	want := "* alice waves <b>hi</b>"
	waitFor(t, bob, "the action on bob's page", fmt.Sprintf(`(%s).includes(%s)`, actionJS, jsString(want)))
	step(t, bob, "reload bob's page", chromedp.Reload())
	waitOnline(t, bob, "bob")
	waitFor(t, bob, "the replayed action", fmt.Sprintf(`JSON.stringify(%s) === %s`, actionJS, jsString(mustJSON([]string{want}))))
	if n := eval[int](t, bob, `document.querySelectorAll('#messages b').length`); n != 0 {
		t.Errorf("the action's text became %d HTML elements", n)
	}
}
