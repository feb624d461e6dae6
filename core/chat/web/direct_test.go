package web_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// joinWithToken opens the page with token in its address (as an embedding
// application links to it) and joins room as the token's account.
func joinWithToken(t *testing.T, tab context.Context, srv *chatServer, token, name, room string) {
	t.Helper()
	step(t, tab, "open the page with "+name+"'s token",
		chromedp.Navigate(srv.url("/#token="+token+"&room="+room)),
		chromedp.WaitVisible(chromedp.ID("join-room")),
	)
	waitFor(t, tab, name+" signed in", `document.getElementById('signed-in-text').textContent.startsWith('Signed in as `+name+`')`)
	step(t, tab, name+" joins", chromedp.Click(chromedp.ID("join-button")))
	waitOnline(t, tab, name)
}

// badgeJS is what the conversation list says of the conversation with
// name: its unread count ("0" when the badge is hidden), or "none" when
// the conversation is not listed.
func badgeJS(name string) string {
	return fmt.Sprintf(`(() => { const li = document.querySelector('#conversations li[data-with=%s]');
		if (!li) return 'none';
		const b = li.querySelector('.unread');
		return b.hidden ? '0' : b.textContent; })()`, jsString(name))
}

// waitBadge waits until tab's conversation with name shows want unread.
func waitBadge(t *testing.T, tab context.Context, who, name, want string) {
	t.Helper()
	waitFor(t, tab, fmt.Sprintf("%s's unread count of the conversation with %s to be %s", who, name, want),
		badgeJS(name)+` === `+jsString(want))
}

// waitCounted waits until tab lists the conversation with peer and has
// counted its unread messages (the list is aria-busy until then).
func waitCounted(t *testing.T, tab context.Context, who, peer string) {
	t.Helper()
	waitFor(t, tab, who+"'s list to show the conversation with "+peer+", counted",
		badgeJS(peer)+` !== 'none' && document.getElementById('conversations').getAttribute('aria-busy') === 'false'`)
}

// shownDirectJS lists the open conversation's messages as "from: text".
const shownDirectJS = `[...document.querySelectorAll('#dm-messages li.msg:not([hidden])')]
	.map(li => li.querySelector('.user').textContent + ': ' + li.querySelector('.text').textContent)`

// waitConversation waits until tab shows the conversation with peer, with
// exactly lines ("from: text") in this order.
func waitConversation(t *testing.T, tab context.Context, who, peer string, lines ...string) {
	t.Helper()
	what := fmt.Sprintf("%q", lines)
	if len(lines) > 6 {
		what = fmt.Sprintf("%d messages, %q … %q", len(lines), lines[0], lines[len(lines)-1])
	}
	waitFor(t, tab, fmt.Sprintf("%s's page to show the conversation with %s: %s", who, peer, what),
		fmt.Sprintf(`document.getElementById('app').dataset.pane === 'direct' && document.getElementById('dm-peer').textContent === %s &&
			(%s).join('\n') === %s`, jsString(peer), shownDirectJS, jsString(strings.Join(lines, "\n"))))
}

// openConversation clicks the conversation with peer in tab's list.
func openConversation(t *testing.T, tab context.Context, who, peer string) {
	t.Helper()
	step(t, tab, who+" opens the conversation with "+peer,
		chromedp.Click(chromedp.CSS(`#conversations li[data-with=`+jsString(peer)+`] button`)))
}

// TestDirectMessagesShown drives three pages through the real chat server
// (docs/protocol.md, "Direct messages"): ann and bob are accounts, gus a
// guest. Ann starts a conversation by clicking bob's name in the member
// list; bob's list counts her messages unread (1, then 2) while he stays
// in the room, whose log never shows them; opening the conversation shows
// both in order and clears the count; his reply reaches ann's open
// conversation. A reload keeps bob's read state (the count stays
// 0 for a conversation read up to its end, then 1 for a new message) and
// an unread count across a second reload (the last id read is kept in
// localStorage); the history is all there. The guest's message
// is counted the same way; a message to the guest once gone is refused
// with no_such_user, shown by the input; Back returns to the room. /msg
// typed in the room (msg.lua) lands in the conversation too. A hidden tab
// counts what comes into its open conversation until it is shown.
func TestDirectMessagesShown(t *testing.T) {
	browser := newBrowser(t)
	// The built-in scripts, as moonchat serve runs them: msg.lua answers
	// /msg typed in the room.
	srv := startScriptedServer(t, chat.Config{Replay: 50, Authenticator: newJWTAuth(t, true)})
	ann := newPage(t, browser)
	bob := newPage(t, browser)
	gus := newPage(t, browser)
	for _, tab := range []context.Context{ann, bob, gus} {
		watchPage(t, tab)
	}
	joinWithToken(t, ann, srv, mint(t, auth.Identity{ID: "acct-ann", Name: "ann"}, time.Hour), "ann", "lobby")
	joinWithToken(t, bob, srv, mint(t, auth.Identity{ID: "acct-bob", Name: "bob"}, time.Hour), "bob", "lobby")
	joinAs(t, gus, srv.url(""), "gus", "lobby")
	waitPresence(t, ann, "ann", "ann", "bob", "gus")
	say(t, bob, "bob", "morning all")
	waitShows(t, ann, "ann", "bob", "morning all")

	// Ann writes to bob from the member list.
	step(t, ann, "ann clicks bob's name", chromedp.Click(chromedp.CSS(`#presence li[data-account="acct-bob"] button.name`)))
	waitConversation(t, ann, "ann", "bob")
	if ph := eval[string](t, ann, `document.getElementById('text').placeholder`); ph != "Message bob…" {
		t.Errorf("the input's placeholder in the conversation is %q", ph)
	}
	say(t, ann, "ann", "hello bob")
	waitConversation(t, ann, "ann", "bob", "ann: hello bob")
	waitBadge(t, bob, "bob", "ann", "1")
	say(t, ann, "ann", "a second <b>one</b>")
	waitBadge(t, bob, "bob", "ann", "2")
	if got := shownMessages(t, bob); !slices.Equal(got, []string{"bob: morning all"}) {
		t.Errorf("bob's room shows %q: direct messages must stay out of the room", got)
	}
	if got := shownMessages(t, ann); !slices.Equal(got, []string{"bob: morning all"}) {
		t.Errorf("ann's room (hidden behind the conversation) holds %q", got)
	}
	if b := eval[string](t, ann, badgeJS("bob")); b != "0" {
		t.Errorf("ann's own conversation shows %s unread", b)
	}

	// Bob opens it: both messages in order, the count gone.
	openConversation(t, bob, "bob", "ann")
	waitConversation(t, bob, "bob", "ann", "ann: hello bob", "ann: a second <b>one</b>")
	waitBadge(t, bob, "bob", "ann", "0")
	if n := eval[int](t, bob, `document.querySelectorAll('#dm-messages b').length`); n != 0 {
		t.Errorf("a text was parsed as HTML: %d <b> elements", n)
	}
	say(t, bob, "bob", "hi ann")
	waitConversation(t, ann, "ann", "bob", "ann: hello bob", "ann: a second <b>one</b>", "bob: hi ann")
	waitConversation(t, bob, "bob", "ann", "ann: hello bob", "ann: a second <b>one</b>", "bob: hi ann")
	if b := eval[string](t, ann, badgeJS("bob")); b != "0" {
		t.Errorf("ann's open conversation counts bob's reply unread: %s", b)
	}
	screenshot(t, bob, "direct.png")

	// Ann writes again while bob's conversation is open: read as it comes.
	say(t, ann, "ann", "third")
	waitConversation(t, bob, "bob", "ann", "ann: hello bob", "ann: a second <b>one</b>", "bob: hi ann", "ann: third")
	waitBadge(t, bob, "bob", "ann", "0")
	step(t, bob, "bob goes back to the room", chromedp.Click(chromedp.ID("dm-back")))
	waitFor(t, bob, "bob's room shown again", `document.getElementById('app').dataset.pane === 'room' && !document.getElementById('scroller').hidden`)

	// A reload: bob is back in the room, the conversation listed and read
	// (with the read state lost, "third" would count as unread: bob's
	// reply came before it).
	step(t, bob, "bob reloads", chromedp.Reload())
	waitOnline(t, bob, "bob")
	waitCounted(t, bob, "bob", "ann")
	if b := eval[string](t, bob, badgeJS("ann")); b != "0" {
		t.Errorf("after a reload bob's page counts %s unread in the conversation he read", b)
	}
	if pane := eval[string](t, bob, `document.getElementById('app').dataset.pane`); pane != "room" {
		t.Errorf("after a reload the page shows %q, want the room", pane)
	}
	say(t, ann, "ann", "fourth")
	waitBadge(t, bob, "bob", "ann", "1")
	// Unread across a reload: counted from the last id read.
	step(t, bob, "bob reloads again", chromedp.Reload())
	waitOnline(t, bob, "bob")
	waitCounted(t, bob, "bob", "ann")
	if b := eval[string](t, bob, badgeJS("ann")); b != "1" {
		t.Errorf("after a reload bob's page counts %s unread, want 1 (fourth)", b)
	}
	openConversation(t, bob, "bob", "ann")
	waitConversation(t, bob, "bob", "ann", "ann: hello bob", "ann: a second <b>one</b>", "bob: hi ann", "ann: third", "ann: fourth")
	waitBadge(t, bob, "bob", "ann", "0")

	// Back to the room; a guest writes: counted like ann's.
	step(t, bob, "bob goes back to the room", chromedp.Click(chromedp.ID("dm-back")))
	waitFor(t, bob, "bob's room shown again", `document.getElementById('app').dataset.pane === 'room' && !document.getElementById('scroller').hidden`)
	step(t, gus, "gus clicks bob's name", chromedp.Click(chromedp.CSS(`#presence li[data-account="acct-bob"] button.name`)))
	waitConversation(t, gus, "gus", "bob")
	say(t, gus, "gus", "psst")
	waitBadge(t, bob, "bob", "gus", "1")
	if b := eval[string](t, bob, badgeJS("ann")); b != "0" {
		t.Errorf("the guest's message changed the count of ann's conversation to %s", b)
	}

	// Ann writes to the guest, who then leaves: not delivered, and the
	// page says so by the input.
	step(t, ann, "ann clicks gus's name", chromedp.Click(chromedp.CSS(`#presence li:not([data-account]) button.name`)))
	waitConversation(t, ann, "ann", "gus")
	step(t, gus, "gus leaves", chromedp.Click(chromedp.ID("leave")))
	waitPresence(t, ann, "ann", "ann", "bob")
	say(t, ann, "ann", "still there?")
	waitFor(t, ann, "the refusal by the input",
		`(() => { const e = document.getElementById('dm-error'); return !e.hidden && e.textContent !== ''; })()`)
	if got := eval[[]string](t, ann, `[document.getElementById('dm-error').dataset.code, document.getElementById('dm-error').textContent]`); got[0] != "no_such_user" || !strings.Contains(got[1], "gus") {
		t.Errorf("the refusal by the input: code %q, text %q; want no_such_user naming gus", got[0], got[1])
	}

	// /msg typed in the room: the server's command, listed on both pages
	// (unread only for the recipient); an unknown name answered in the
	// room.
	say(t, bob, "bob", "/msg ann by command")
	waitBadge(t, ann, "ann", "bob", "1")
	waitFor(t, bob, "bob's conversation with ann to have the command's message", `(() => {
		const li = document.querySelector('#conversations li[data-with="ann"]');
		return li && li === document.querySelector('#conversations li') && li.querySelector('.unread').hidden; })()`)
	say(t, bob, "bob", "/msg nobody hello")
	waitFor(t, bob, "the answer to /msg nobody in the room",
		`[...document.querySelectorAll('#messages li.notice')].some((li) => li.textContent.includes('no such user') && li.textContent.includes('nobody'))`)
	openConversation(t, ann, "ann", "bob")
	waitConversation(t, ann, "ann", "bob", "ann: hello bob", "ann: a second <b>one</b>", "bob: hi ann", "ann: third", "ann: fourth", "bob: by command")
	waitBadge(t, ann, "ann", "bob", "0")

	// A hidden tab (as the browser reports one: document.hidden and a
	// visibilitychange event) does not read its open conversation: the
	// message counts, in the list and the tab's title, until it is shown.
	const setHidden = `((h) => { Object.defineProperty(document, 'hidden', {value: h, configurable: true});
		document.dispatchEvent(new Event('visibilitychange')); })`
	step(t, ann, "hide ann's tab", chromedp.Evaluate[chromedp.Void](setHidden+`(true)`))
	say(t, bob, "bob", "/msg ann are you there?")
	waitBadge(t, ann, "ann", "bob", "1")
	if title := eval[string](t, ann, `document.title`); title != "(1) #lobby — moonchat" {
		t.Errorf("the hidden tab's title is %q, want it to count the message", title)
	}
	step(t, ann, "show ann's tab", chromedp.Evaluate[chromedp.Void](setHidden+`(false)`))
	waitBadge(t, ann, "ann", "bob", "0")
	if title := eval[string](t, ann, `document.title`); title != "#lobby — moonchat" {
		t.Errorf("the shown tab's title is %q", title)
	}
	waitConversation(t, ann, "ann", "bob", "ann: hello bob", "ann: a second <b>one</b>", "bob: hi ann", "ann: third", "ann: fourth", "bob: by command", "bob: are you there?")
	for name, tab := range map[string]context.Context{"ann": ann, "bob": bob, "gus": gus} {
		noPageErrors(t, name, tab)
	}
}

// TestDirectPaging: a stored conversation longer than a page (120
// messages from ann that bob never read, seeded in the History as the
// chat server stores them) is counted "99+" on bob's page (one page of
// 100 counted, more said to exist); opened, it shows the newest page and
// brings the older ones in as bob scrolls up, keeping the message he
// looked at in place, until all 120 are shown in order; the count goes.
// A message stored while the page was disconnected (the server restarted)
// is fetched into the open conversation when the page is back.
func TestDirectPaging(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	if err := hist.SetNameOwner("acct-ann", "ann"); err != nil {
		t.Fatal(err)
	}
	const total = 120
	start := time.Now().Add(-2 * time.Hour).UTC()
	var want []string
	var msgs []*chat.Message
	for i := range total {
		text := fmt.Sprintf("note %03d", i+1)
		want = append(want, "ann: "+text)
		msgs = append(msgs, &chat.Message{Room: chat.ConversationKey("acct-ann", "acct-bob"), User: "ann", Text: text,
			Time: start.Add(time.Duration(i) * time.Second), Account: &chat.Account{ID: "acct-ann", Roles: []string{"user"}}})
	}
	if err := hist.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	srv := startChatServer(t, chat.Config{Replay: 50, Authenticator: newJWTAuth(t, true)}, nil, hist)
	bob := newPage(t, browser)
	watchPage(t, bob)
	joinWithToken(t, bob, srv, mint(t, auth.Identity{ID: "acct-bob", Name: "bob"}, time.Hour), "bob", "lobby")
	waitCounted(t, bob, "bob", "ann")
	if b := eval[string](t, bob, badgeJS("ann")); b != "99+" {
		t.Errorf("bob's count of 120 unread messages reads %q, want 99+", b)
	}

	openConversation(t, bob, "bob", "ann")
	waitConversation(t, bob, "bob", "ann", want[total-50:]...)
	waitBadge(t, bob, "bob", "ann", "0")
	for shown := 50; shown < total; {
		// The first message shown, and where it is, before the page above
		// comes in.
		first := eval[string](t, bob, `document.querySelector('#dm-messages li.msg .text').textContent`)
		step(t, bob, "scroll to the top", chromedp.Evaluate[chromedp.Void](`document.getElementById('dm-scroller').scrollTop = 0`))
		shown = min(shown+50, total)
		waitConversation(t, bob, "bob", "ann", want[total-shown:]...)
		// The message that was first is where bob left it: at the top of
		// the view, not pushed out of it by the page above.
		if top := eval[float64](t, bob, fmt.Sprintf(`(() => {
			const li = [...document.querySelectorAll('#dm-messages li.msg')].find((li) => li.querySelector('.text').textContent === %s);
			return li.getBoundingClientRect().top - document.getElementById('dm-scroller').getBoundingClientRect().top; })()`, jsString(first))); top < -40 || top > 120 {
			t.Errorf("after the older page came, %q is %.0fpx from the top of the view, want it still at the top", first, top)
		}
	}
	if !eval[bool](t, bob, `document.getElementById('dm-older').hidden`) {
		t.Error("with every message shown the page still offers older ones")
	}

	// The server goes away; a message is stored meanwhile. Back online,
	// the open conversation catches up with it.
	srv.stop()
	waitFor(t, bob, "bob's page to notice", `document.getElementById('status').dataset.state !== 'online'`)
	if err := hist.Append(t.Context(), []*chat.Message{{Room: chat.ConversationKey("acct-ann", "acct-bob"), User: "ann",
		Text: "while you were away", Time: time.Now().UTC(), Account: &chat.Account{ID: "acct-ann", Roles: []string{"user"}}}}); err != nil {
		t.Fatal(err)
	}
	srv.start()
	waitOnline(t, bob, "bob")
	waitConversation(t, bob, "bob", "ann", append(want, "ann: while you were away")...)
	waitBadge(t, bob, "bob", "ann", "0")
	noPageErrors(t, "bob", bob)
}

// TestDirectMuted: a mute in the room holds the room's Send button, not a
// conversation's (the server lets the direct message through, and the
// page shows it); a mute in every room refuses direct messages too, and
// the page says so under the conversation's input.
func TestDirectMuted(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	if err := hist.SetNameOwner("acct-ann", "ann"); err != nil {
		t.Fatal(err)
	}
	if err := hist.Append(t.Context(), []*chat.Message{{Room: chat.ConversationKey("acct-ann", "acct-bob"), User: "ann",
		Text: "ping", Time: time.Now().UTC(), Account: &chat.Account{ID: "acct-ann", Roles: []string{"user"}}}}); err != nil {
		t.Fatal(err)
	}
	srv := startChatServer(t, chat.Config{Replay: 50, Authenticator: newJWTAuth(t, true)}, nil, hist)
	bob := newPage(t, browser)
	watchPage(t, bob)
	joinWithToken(t, bob, srv, mint(t, auth.Identity{ID: "acct-bob", Name: "bob"}, time.Hour), "bob", "lobby")
	waitBadge(t, bob, "bob", "ann", "1")

	const held = `(() => { const n = document.getElementById('composer-note');
		return !n.hidden && n.dataset.kind === 'muted' && document.getElementById('send').disabled; })()`
	const free = `document.getElementById('composer-note').hidden && !document.getElementById('send').disabled`
	if err := srv.srv.Restrict(chat.KindMute, "lobby", chat.Target{Account: "acct-bob"}, 10*time.Minute, "calm down", "mia"); err != nil {
		t.Fatal(err)
	}
	say(t, bob, "bob", "hi room")
	waitFor(t, bob, "the room's mute holding Send", held)

	openConversation(t, bob, "bob", "ann")
	waitConversation(t, bob, "bob", "ann", "ann: ping")
	waitFor(t, bob, "Send free in the conversation", free)
	say(t, bob, "bob", "sorry, muted there")
	waitConversation(t, bob, "bob", "ann", "ann: ping", "bob: sorry, muted there")
	if !eval[bool](t, bob, `document.getElementById('dm-error').hidden`) {
		t.Errorf("the conversation shows an error: %q", eval[string](t, bob, `document.getElementById('dm-error').textContent`))
	}
	step(t, bob, "back to the room", chromedp.Click(chromedp.ID("dm-back")))
	waitFor(t, bob, "the room's mute holding Send again", held)

	if err := srv.srv.Restrict(chat.KindMute, "", chat.Target{Account: "acct-bob"}, 10*time.Minute, "everywhere", "mia"); err != nil {
		t.Fatal(err)
	}
	openConversation(t, bob, "bob", "ann")
	say(t, bob, "bob", "still here")
	waitFor(t, bob, "the mute in every room under the conversation's input",
		`(() => { const e = document.getElementById('dm-error'); return !e.hidden && e.dataset.code === 'muted' && e.textContent.includes('everywhere'); })()`)
	if got := eval[[]string](t, bob, shownDirectJS); len(got) != 2 {
		t.Errorf("the refused message is shown: %q", got)
	}
	if n := eval[int](t, bob, `document.querySelectorAll('#messages li.notice.error[data-code="muted"]').length`); n != 1 {
		t.Errorf("the room's log has %d muted errors, want 1 (the room's own; the conversation's is shown by its input)", n)
	}
	noPageErrors(t, "bob", bob)
}
