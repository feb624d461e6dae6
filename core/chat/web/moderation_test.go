package web_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// modHooks are the Go doubles of the default moderation.lua and delete.lua
// for the page tests: "/topic TEXT", "/delete ID", "/mute NICK", "/unmute
// NICK" and "/slow DURATION" by a
// member with the role "moderator" act through chat.Host as those scripts
// do (SetRoomSettings, RedactBy, Restrict); other commands are dropped.
type modHooks struct {
	host atomic.Pointer[chat.Host]
}

func (h *modHooks) Bind(host chat.Host)                             { h.host.Store(&host) }
func (h *modHooks) Join(context.Context, chat.User) chat.JoinResult { return chat.JoinResult{} }
func (h *modHooks) Leave(context.Context, chat.User) error          { return nil }
func (h *modHooks) Rename(context.Context, chat.User, string) error { return nil }
func (h *modHooks) Message(_ context.Context, u chat.User, m *chat.Message) chat.MessageResult {
	cmd, arg, _ := strings.Cut(m.Text, " ")
	if !strings.HasPrefix(cmd, "/") {
		return chat.MessageResult{}
	}
	if !slices.Contains(u.Roles, "moderator") {
		return chat.MessageResult{Drop: true, Reason: "only moderators may " + cmd}
	}
	host := *h.host.Load()
	var err error
	switch cmd {
	case "/topic":
		rs := host.RoomSettings(u.Room)
		rs.Topic, rs.TopicBy, rs.TopicSince = arg, u.Name, time.Now()
		err = host.SetRoomSettings(u.Room, rs, u.Name)
	case "/delete":
		var id uint64
		if id, err = strconv.ParseUint(arg, 10, 64); err == nil {
			err = host.(interface {
				RedactBy(room string, id uint64, by string) error
			}).RedactBy(u.Room, id, u.Name)
		}
	case "/mute":
		err = host.Restrict(chat.KindMute, u.Room, chat.Target{Name: arg}, 10*time.Minute, "calm down", u.Name)
	case "/unmute":
		if _, err = host.Lift(chat.KindMute, u.Room, chat.Target{Name: arg}, u.Name); err == nil {
			// moderation.lua's words, which the page listens for.
			err = host.Broadcast(u.Room, arg+" is no longer muted ("+u.Name+")")
		}
	case "/slow":
		rs := host.RoomSettings(u.Room)
		if rs.Slow, err = time.ParseDuration(arg); err == nil {
			err = host.SetRoomSettings(u.Room, rs, u.Name)
		}
	}
	if err != nil {
		return chat.MessageResult{Drop: true, Reason: err.Error()}
	}
	return chat.MessageResult{Drop: true}
}

// TestModerationShown drives a moderator's page (a token with the role
// "moderator") and a guest's through the real chat server: the
// moderator's badge stands out from other roles; a topic the moderator
// sets shows in both top bars (and again after a reload, from the
// newcomer's topic event); a message the moderator deletes disappears
// from the other page; the guest's typing shows on the moderator's page
// and goes away without a new one; once muted, the guest's page says so
// with the expiry and holds its Send button until the unmute notice; slow
// mode's wait is shown and counted down.
func TestModerationShown(t *testing.T) {
	browser := newBrowser(t)
	hist := chattest.NewHistory()
	srv := startChatServer(t, chat.Config{Replay: 50, Authenticator: newJWTAuth(t, true)}, &modHooks{}, hist)
	token := mint(t, auth.Identity{ID: "acct-7", Name: "mia", Roles: []string{"moderator", "helper"}}, time.Hour)

	mia := newPage(t, browser)
	watchPage(t, mia)
	step(t, mia, "open the page with the moderator's token",
		chromedp.Navigate(srv.url("/#token="+token+"&room=mods")),
		chromedp.WaitVisible(chromedp.ID("join-room")),
	)
	waitFor(t, mia, "signed in", `document.getElementById('signed-in-text').textContent.startsWith('Signed in as mia')`)
	step(t, mia, "join", chromedp.Click(chromedp.ID("join-button")))
	waitOnline(t, mia, "mia")
	gus := newPage(t, browser)
	watchPage(t, gus)
	joinAs(t, gus, srv.url(""), "gus", "mods")
	waitPresence(t, gus, "gus", "mia", "gus")

	// The moderator badge: marked as such, styled apart from a plain role.
	const badges = `(() => { const li = [...document.querySelectorAll('#presence li')].find(li => li.querySelector('.name').textContent === 'mia');
		return [...li.querySelectorAll('.role')].map(b => b.className + '|' + b.textContent + '|' + getComputedStyle(b).backgroundColor + '|' + getComputedStyle(b, '::before').content); })()`
	got := eval[[]string](t, gus, badges)
	if len(got) != 2 || !strings.HasPrefix(got[0], "role mod moderator|moderator|") || !strings.HasPrefix(got[1], "role|helper|") {
		t.Fatalf("mia's badges on gus's page: %q, want the moderator badge first, then helper", got)
	}
	if mod, plain := strings.Split(got[0], "|"), strings.Split(got[1], "|"); mod[2] == plain[2] || mod[3] == plain[3] {
		t.Errorf("the moderator badge looks like any role: %q vs %q", got[0], got[1])
	}

	// Topic.
	const topicShown = `(() => { const p = document.getElementById('topic'); return !p.hidden && document.getElementById('topic-text').textContent === 'Be kind, stay on topic'; })()`
	say(t, mia, "mia", "/topic Be kind, stay on topic")
	waitFor(t, mia, "the topic on mia's page", topicShown)
	waitFor(t, gus, "the topic on gus's page", topicShown)
	if title := eval[string](t, gus, `document.getElementById('topic').title`); !strings.HasPrefix(title, "topic set by mia") {
		t.Errorf("topic tooltip %q", title)
	}
	step(t, gus, "reload", chromedp.Reload())
	waitOnline(t, gus, "gus")
	waitFor(t, gus, "the topic after a reload (the newcomer's topic event)", topicShown)

	// Deletion.
	say(t, gus, "gus", "something regrettable")
	say(t, gus, "gus", "something fine")
	waitShows(t, mia, "mia", "gus", "something fine")
	var id uint64
	for _, m := range hist.All("mods") {
		if m.Text == "something regrettable" {
			id = m.ID
		}
	}
	if id == 0 {
		t.Fatalf("the message is not stored: %+v", hist.All("mods"))
	}
	say(t, mia, "mia", "/delete "+strconv.FormatUint(id, 10))
	for name, tab := range map[string]context.Context{"gus": gus, "mia": mia} {
		waitFor(t, tab, "the deleted message gone from "+name+"'s page",
			`(`+shownMessagesJS+`).join('\n') === 'gus: something fine'`)
	}

	// Typing: shown on the other page, gone some 4 s after the last.
	step(t, gus, "gus types", chromedp.Focus(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), "hel"))
	waitFor(t, mia, "gus is typing on mia's page",
		`!document.getElementById('typing').hidden && document.getElementById('typing').textContent === 'gus is typing…'`)
	if eval[bool](t, gus, `!document.getElementById('typing').hidden`) {
		t.Error("gus's own page shows a typing indicator")
	}
	waitFor(t, mia, "the typing indicator to go", `document.getElementById('typing').hidden`)
	step(t, gus, "clear the box", chromedp.Evaluate[chromedp.Void](`document.getElementById('text').value = ''`))

	// Mute: the guest's page shows it with the expiry and holds sending.
	say(t, mia, "mia", "/mute gus")
	chattest.Eventually(t, "gus muted", func() bool { return len(srv.srv.Restrictions("mods")) == 1 })
	say(t, gus, "gus", "hello?")
	waitFor(t, gus, "the muted state in the input area",
		`(() => { const n = document.getElementById('composer-note');
			return !n.hidden && n.dataset.kind === 'muted' && /^You are muted in mods until \d/.test(n.textContent) &&
				n.textContent.includes('calm down') && document.getElementById('send').disabled; })()`)
	if v := eval[string](t, gus, `document.getElementById('text').value`); v != "" {
		t.Errorf("the refused text %q is still in the box after the server refused it", v)
	}
	screenshot(t, gus, "muted.png")
	say(t, mia, "mia", "/unmute gus")
	waitFor(t, gus, "sending back after the unmute notice",
		`document.getElementById('composer-note').hidden && !document.getElementById('send').disabled`)

	// Slow mode: the second message within the interval is refused; the
	// page says how long to wait and holds Send until then.
	say(t, mia, "mia", "/slow 8s")
	chattest.Eventually(t, "slow mode on", func() bool { return srv.srv.RoomSettings("mods").Slow == 8*time.Second })
	say(t, gus, "gus", "first")
	waitShows(t, gus, "gus", "gus", "first")
	say(t, gus, "gus", "second")
	waitFor(t, gus, "the slow-mode wait in the input area",
		`(() => { const n = document.getElementById('composer-note');
			return !n.hidden && n.dataset.kind === 'slow' && /^Slow mode: you can send again in [1-8]s\.$/.test(n.textContent) &&
				document.getElementById('send').disabled; })()`)
	waitFor(t, gus, "sending back after the wait",
		`document.getElementById('composer-note').hidden && !document.getElementById('send').disabled`)
	noPageErrors(t, "mia", mia)
	noPageErrors(t, "gus", gus)
}
