package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// modServer starts a server with memberAuth (?as=ID&role=R accounts,
// else guests), a History double that is a ModerationStore, the admin
// API and clock.
func modServer(t *testing.T, hist *chattest.History, clock *chattest.Clock, rules *chat.RoomRules) *chattest.Server {
	t.Helper()
	cfg := chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Replay: 10, RoomRules: rules}
	if clock != nil {
		cfg.Clock = clock
	}
	return chattest.Start(t, cfg, nil, hist)
}

// refusedDial dials path from ip ("" any) expecting the handshake to be
// refused; it returns the status and body.
func refusedDial(t *testing.T, ts *chattest.Server, ip, path string) (int, string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: chattest.Wait}
	if ip != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		d.NetDialContext = nd.DialContext
	}
	c, resp, err := d.Dial(ts.WS+path, nil)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s from %q: upgraded, want a refusal", path, ip)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v (no HTTP answer)", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// A ban is refused at the handshake with 403 and the reason, before the
// upgrade (nothing of the room, its history included, reaches the
// client): by account, by guest name (its look-alikes too: case and
// confusables), by address and by CIDR prefix; a ban in one room leaves
// the others open, one for every room does not. Refusals are counted.
func TestBanRefusedAtHandshake(t *testing.T) {
	hist := chattest.NewHistory()
	add(hist, "lobby", "alice", "a secret of the lobby")
	ts := modServer(t, hist, nil, nil)
	h := ts.Chat
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.Restrict(chat.KindBan, "lobby", chat.Target{Account: "u-eve"}, 0, "spam", "mod"))
	must(h.Restrict(chat.KindBan, "lobby", chat.Target{Name: "mallory"}, 0, "trolling", "mod"))
	must(h.Restrict(chat.KindBan, "lobby", chat.Target{Addr: "127.0.0.2"}, 0, "", "mod"))
	must(h.Restrict(chat.KindBan, "", chat.Target{Addr: "127.0.0.8/30"}, 0, "botnet", "mod"))

	for _, tc := range []struct {
		ip, path, reason string
	}{
		{"", "/chat/lobby?as=u-eve", "you are banned from lobby: spam"},
		{"", "/chat/lobby?name=mallory", "you are banned from lobby: trolling"},
		{"", "/chat/lobby?name=MALLORY", "you are banned from lobby: trolling"},  // case
		{"", "/chat/lobby?name=rnallory", "you are banned from lobby: trolling"}, // "rn" looks like "m"
		{"127.0.0.2", "/chat/lobby?name=x", "you are banned from lobby"},
		{"127.0.0.2", "/chat/lobby?as=u-bob", "you are banned from lobby"}, // the address, whoever logs in
		{"127.0.0.9", "/chat/elsewhere?name=y", "you are banned from every room: botnet"},
	} {
		status, body := refusedDial(t, ts, tc.ip, tc.path)
		if status != http.StatusForbidden || body != tc.reason {
			t.Errorf("%s from %q: %d %q, want 403 %q", tc.path, tc.ip, status, body, tc.reason)
		}
		if strings.Contains(body, "secret") {
			t.Errorf("%s: the refusal leaks history: %q", tc.path, body)
		}
	}
	// /api/session tells the page the same.
	for _, q := range []string{"?room=lobby&as=u-eve", "?room=lobby&name=Mallory"} {
		if status, body, _ := do(t, ts, "GET", "/api/session"+q, "", ""); status != 403 || !strings.HasPrefix(jsonErr(body), "you are banned from lobby: ") {
			t.Errorf("/api/session%s: %d %s", q, status, body)
		}
	}
	// Not banned: another room, another name, another address, an
	// account whose name is the banned guest name (names never match
	// accounts).
	ts.Dial(t, "/chat/other?as=u-eve", "")
	inRoom(t, ts, "other", "u-eve")
	ts.DialFrom(t, "127.0.0.3", "/chat/lobby?name=bob", "")
	inRoom(t, ts, "lobby", "bob")
	ts.Dial(t, "/chat/lobby?as=mallory", "")
	inRoom(t, ts, "lobby", "mallory")
	if got := metricLine(t, ts, `moonchat_moderation_refused_total{reason="ban"}`); got != `moonchat_moderation_refused_total{reason="ban"} 9` {
		t.Errorf("metric: %q", got)
	}
	if got := metricLine(t, ts, `moonchat_restrictions{kind="ban"}`); got != `moonchat_restrictions{kind="ban"} 4` {
		t.Errorf("metric: %q", got)
	}
}

// inRoom waits until room has a member called name.
func inRoom(t *testing.T, ts *chattest.Server, room, name string) {
	t.Helper()
	chattest.Eventually(t, name+" in "+room, func() bool { return slices.Contains(ts.Names(room), name) })
}

// A ban kicks the members it matches at once: a notice with the reason,
// then close 1008 with it; the others see them leave. A ban for every
// room reaches an account in any room; one on an address prefix every
// connection from it.
func TestBanKicksMembers(t *testing.T) {
	ts := modServer(t, chattest.NewHistory(), nil, nil)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	eve := ts.Dial(t, "/chat/dev?as=u-eve&n=eve", chat.SubprotocolJSON)
	eve.ExpectEvent("welcome")

	if err := ts.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "Bob"}, time.Hour, "rude", "alice (alice)"); err != nil {
		t.Fatal(err)
	}
	notice := bob.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* you are banned from lobby until ") })
	if !strings.HasSuffix(notice, " UTC: rude") {
		t.Errorf("bob told %q", notice)
	}
	bob.ExpectCloseReason(1008, strings.TrimPrefix(notice, "* "))
	alice.SkipTo(func(s string) bool { return strings.Contains(s, `"bob left"`) })

	if err := ts.Chat.Restrict(chat.KindBan, "", chat.Target{Account: "u-eve"}, 0, "", "admin"); err != nil {
		t.Fatal(err)
	}
	eve.SkipTo(func(s string) bool { return strings.Contains(s, `"text":"you are banned from every room"`) })
	eve.ExpectCloseReason(1008, "you are banned from every room")
	chattest.Eventually(t, "both gone", func() bool {
		return slices.Equal(ts.Names("lobby"), []string{"alice"}) && len(ts.Names("dev")) == 0
	})
	if rs := ts.Chat.Restrictions("lobby"); len(rs) != 2 || rs[0].Target.Name != "Bob" || rs[1].Target.Account != "u-eve" || rs[0].By != "alice (alice)" {
		t.Errorf("restrictions %+v", rs)
	}
	if rs := ts.Chat.Restrictions("dev"); len(rs) != 1 {
		t.Errorf("restrictions in dev %+v", rs)
	}

	// By address: every connection from the prefix.
	dan := ts.DialFrom(t, "127.0.0.5", "/chat/lobby?name=dan", "")
	inRoom(t, ts, "lobby", "dan")
	if err := ts.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Addr: "127.0.0.4/30"}, 0, "", "admin"); err != nil {
		t.Fatal(err)
	}
	dan.ExpectCloseReason(1008, "you are banned from lobby")
	chattest.Eventually(t, "dan gone", func() bool { return slices.Equal(ts.Names("lobby"), []string{"alice"}) })
}

// A mute refuses the member's messages on both wire formats (the plain
// notice and the JSON error "muted" with the reason and expiry) and
// through Host.Action, and its renames; nobody else sees them. Commands
// still reach the scripts. The admin API posts whatever it likes. Lift
// ends it.
func TestMute(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		if m.Text == "/help" {
			return chat.MessageResult{Drop: true, Reason: "help for " + u.Name}
		}
		return chat.MessageResult{}
	}}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Clock: clock}, hooks, hist)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	carol := ts.Dial(t, "/chat/lobby?as=u-carol&n=carol", chat.SubprotocolJSON)
	carol.ExpectEvent("welcome")
	inRoom(t, ts, "lobby", "carol")

	if err := ts.Chat.Restrict(chat.KindMute, "lobby", chat.Target{Name: "bob"}, 10*time.Minute, "calm down", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := ts.Chat.Restrict(chat.KindMute, "", chat.Target{Account: "u-carol"}, 0, "", "alice"); err != nil {
		t.Fatal(err)
	}
	bob.Send("hello?")
	bob.SkipUntil("* message not sent: you are muted in lobby until 2026-01-01 00:10:00 UTC: calm down")
	bob.Send("/help")
	bob.SkipUntil("* help for bob")
	carol.SendJSON(map[string]string{"type": "message", "text": "me too"})
	if e := nextOf(t, carol, "error"); e.Str("code") != "muted" || e.Str("text") != "message not sent: you are muted in every room" {
		t.Errorf("carol got %v", e)
	}
	var bobID uint64
	for _, u := range ts.Chat.Users("lobby") {
		if u.Name == "bob" {
			bobID = u.SessionID
		}
	}
	if err := ts.Chat.Action(bobID, "waves"); err != nil {
		t.Fatal(err)
	}
	bob.SkipUntil("* message not sent: you are muted in lobby until 2026-01-01 00:10:00 UTC: calm down")
	if _, err := ts.Chat.Rename(bobID, "robert"); !errors.Is(err, chat.ErrMuted) {
		t.Errorf("rename of a muted member: %v", err)
	}
	// Nor through the admin API "as" bob (TestAdminPostAsRestricted);
	// the server itself may speak.
	if status, body, _ := do(t, ts, "POST", "/api/rooms/lobby/messages", adminToken, `{"text":"as bob","as":"bob"}`); status != 403 {
		t.Fatalf("admin post as muted bob: %d %s", status, body)
	}
	if status, body, _ := do(t, ts, "POST", "/api/rooms/lobby/messages", adminToken, `{"text":"admin speaks"}`); status != 201 {
		t.Fatalf("admin post: %d %s", status, body)
	}
	// The others saw nothing of the refused messages, only the admin's.
	if e := nextMessage(t, alice); e.Str("text") != "admin speaks" {
		t.Errorf("alice got %v", e)
	}
	if msgs := hist.All("lobby"); len(msgs) != 1 {
		t.Errorf("stored %+v", msgs)
	}

	// The mute ends by itself at its expiry (the fake clock's), and Lift
	// ends one that does not expire.
	clock.Advance(10 * time.Minute)
	bob.Send("free again")
	if e := nextMessage(t, alice); e.Str("text") != "free again" {
		t.Errorf("alice got %v", e)
	}
	if ok, err := ts.Chat.Lift(chat.KindMute, "", chat.Target{Account: "u-carol"}, "alice"); !ok || err != nil {
		t.Fatalf("lift: %v %v", ok, err)
	}
	if ok, err := ts.Chat.Lift(chat.KindMute, "", chat.Target{Account: "u-carol"}, "alice"); ok || err != nil {
		t.Fatalf("second lift: %v %v", ok, err)
	}
	carol.SendJSON(map[string]string{"type": "message", "text": "thanks"})
	if e := nextMessage(t, alice); e.Str("text") != "thanks" {
		t.Errorf("alice got %v", e)
	}
	if got := metricLine(t, ts, `moonchat_moderation_refused_total{reason="mute"}`); got != `moonchat_moderation_refused_total{reason="mute"} 5` {
		t.Errorf("metric: %q", got)
	}
}

// Slow mode refuses a member's second message within the interval
// ("slow_mode", how long to wait) until the interval has passed (a fake
// clock), from any connection of its account; moderators (the room rules' moderate, or the role admin) are
// exempt; it is announced to the room and to newcomers.
func TestSlowMode(t *testing.T) {
	rules, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "*", Read: []string{"*"}, Post: []string{"*"}, Moderate: []string{"mod"}, History: true}})
	if err != nil {
		t.Fatal(err)
	}
	clock := &chattest.Clock{}
	ts := modServer(t, chattest.NewHistory(), clock, rules)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	mod := ts.Dial(t, "/chat/lobby?as=m&role=mod", chat.SubprotocolJSON)
	mod.ExpectEvent("welcome")
	root := ts.Dial(t, "/chat/lobby?as=root&role=admin", "")
	inRoom(t, ts, "lobby", "root")

	if err := ts.Chat.SetRoomSettings("lobby", chat.RoomSettings{Slow: 30 * time.Second}, "m"); err != nil {
		t.Fatal(err)
	}
	want := "slow mode is on: one message per 30s per member (moderators exempt)"
	alice.SkipTo(func(s string) bool { return strings.Contains(s, `"text":"`+want+`"`) })
	root.SkipUntil("* " + want)
	if got := ts.Chat.RoomSettings("lobby").Slow; got != 30*time.Second {
		t.Errorf("settings: slow %v", got)
	}

	alice.SendJSON(map[string]string{"type": "message", "text": "one"})
	if e := nextMessage(t, alice); e.Str("text") != "one" {
		t.Fatalf("got %v", e)
	}
	clock.Advance(10 * time.Second)
	alice.SendJSON(map[string]string{"type": "message", "text": "two"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "slow_mode" || !strings.HasSuffix(e.Str("text"), "wait 20s") {
		t.Errorf("got %v", e)
	}
	// Another tab of the same account shares the interval.
	tab := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	tab.ExpectEvent("welcome")
	tab.SendJSON(map[string]string{"type": "message", "text": "from the other tab"})
	if e := nextOf(t, tab, "error"); e.Str("code") != "slow_mode" {
		t.Errorf("other tab got %v", e)
	}
	for range 2 {
		mod.SendJSON(map[string]string{"type": "message", "text": "mod speaks"})
		root.Send("admin speaks")
	}
	for range 4 {
		if e := nextMessage(t, alice); !strings.HasSuffix(e.Str("text"), "speaks") {
			t.Fatalf("got %v", e)
		}
	}
	clock.Advance(20 * time.Second)
	alice.SendJSON(map[string]string{"type": "message", "text": "three"})
	if e := nextMessage(t, alice); e.Str("text") != "three" {
		t.Fatalf("got %v", e)
	}
	// A newcomer is told.
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* " + want)
	if err := ts.Chat.SetRoomSettings("lobby", chat.RoomSettings{}, "m"); err != nil {
		t.Fatal(err)
	}
	bob.SkipUntil("* slow mode is off")
	if got := metricLine(t, ts, `moonchat_moderation_refused_total{reason="slow"}`); got != `moonchat_moderation_refused_total{reason="slow"} 2` {
		t.Errorf("metric: %q", got)
	}
}

// The topic is sent to the room (a "topic" event and a notice) and to
// newcomers after their welcome (the "topic" event in moonchat.v1, a
// notice in plain text).
func TestTopic(t *testing.T) {
	clock := &chattest.Clock{}
	ts := modServer(t, chattest.NewHistory(), clock, nil)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	if err := ts.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: "release <friday>"}, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := rawNextOf(alice, "topic"); got != `{"type":"topic","room":"lobby","topic":"release \u003cfriday\u003e","by":"alice","since":"2026-01-01T00:00:00.000Z"}` {
		t.Errorf("topic event %s", got)
	}
	if e := nextOf(t, alice, "system"); e.Str("text") != "alice set the topic: release <friday>" {
		t.Errorf("notice %v", e)
	}
	bob := ts.Dial(t, "/chat/lobby?name=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	if e := bob.ExpectEvent("topic"); e.Str("topic") != "release <friday>" || e.Str("by") != "alice" {
		t.Errorf("newcomer got %v", e)
	}
	carol := ts.Dial(t, "/chat/lobby?name=carol", "")
	carol.Expect("* topic: release <friday>")
	st := ts.Chat.RoomSettings("lobby")
	if st.Topic != "release <friday>" || st.TopicBy != "alice" || !st.TopicSince.Equal(clock.Now()) {
		t.Errorf("settings %+v", st)
	}
}

// Restrictions and settings persist in the ModerationStore: a new server
// on the same store enforces them, and a ban's expiry (an absolute time)
// holds after the restart: the fake clock passes it and the ban is gone,
// from the index and the store.
func TestModerationPersists(t *testing.T) {
	hist := chattest.NewHistory()
	log := chattest.TestLogger(t)
	srv1, err := chat.New(chattest.Limits(chat.Config{Clock: &chattest.Clock{}, Logger: log}), nil, hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv1.Restrict(chat.KindBan, "lobby", chat.Target{Name: "bob"}, time.Hour, "cool off", "mod"); err != nil {
		t.Fatal(err)
	}
	if err := srv1.SetRoomSettings("lobby", chat.RoomSettings{Topic: "hello", Slow: 5 * time.Second}, "mod"); err != nil {
		t.Fatal(err)
	}
	if err := srv1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	clock := &chattest.Clock{} // the same epoch: the restart is "at once"
	ts := modServer(t, hist, clock, nil)
	if st := ts.Chat.RoomSettings("lobby"); st.Topic != "hello" || st.Slow != 5*time.Second {
		t.Errorf("settings after restart %+v", st)
	}
	if status, body := refusedDial(t, ts, "", "/chat/lobby?name=bob"); status != 403 || body != "you are banned from lobby until 2026-01-01 01:00:00 UTC: cool off" {
		t.Errorf("after restart: %d %q", status, body)
	}
	clock.Advance(time.Hour)
	if rs := ts.Chat.Restrictions(""); len(rs) != 0 {
		t.Errorf("expired ban still listed: %+v", rs)
	}
	if rs, _ := hist.Restrictions(); len(rs) != 0 {
		t.Errorf("expired ban still stored: %+v", rs)
	}
	ts.Dial(t, "/chat/lobby?name=bob", "")
	inRoom(t, ts, "lobby", "bob")
	entries, err := ts.Chat.Audit("lobby", time.Time{}, 10)
	if err != nil || len(entries) != 4 || entries[0].Action != "ban" || entries[0].Target != "name:bob" || entries[0].Reason != "cool off (for 1h)" ||
		entries[1].Action != "topic" || entries[2].Action != "slow" || entries[2].Reason != "5s" ||
		entries[3].Action != "unban" || entries[3].By != "server" {
		t.Errorf("audit %+v %v", entries, err)
	}
}

// Fail closed: a restriction or setting the store cannot write is not in
// force and the caller gets the error (counted); a store that cannot be
// read fails New; an audit write that fails is counted, the action
// stands.
func TestModerationStoreFailure(t *testing.T) {
	hist := chattest.NewHistory()
	ts := modServer(t, hist, nil, nil)
	hist.FailModeration(chattest.ErrStore, nil)
	if err := ts.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "bob"}, 0, "", "mod"); !errors.Is(err, chattest.ErrStore) {
		t.Fatalf("restrict: %v", err)
	}
	if err := ts.Chat.SetRoomSettings("lobby", chat.RoomSettings{Slow: time.Minute}, "mod"); !errors.Is(err, chattest.ErrStore) {
		t.Fatalf("settings: %v", err)
	}
	if rs := ts.Chat.Restrictions(""); len(rs) != 0 {
		t.Errorf("in force: %+v", rs)
	}
	if st := ts.Chat.RoomSettings("lobby"); st != (chat.RoomSettings{}) {
		t.Errorf("settings %+v", st)
	}
	ts.Dial(t, "/chat/lobby?name=bob", "")
	inRoom(t, ts, "lobby", "bob")

	hist.FailModeration(nil, nil)
	hist.FailAudit(chattest.ErrStore)
	if err := ts.Chat.Restrict(chat.KindMute, "lobby", chat.Target{Name: "bob"}, 0, "", "mod"); err != nil {
		t.Fatal(err)
	}
	hist.FailModeration(chattest.ErrStore, nil)
	if ok, err := ts.Chat.Lift(chat.KindMute, "lobby", chat.Target{Name: "bob"}, "mod"); ok || !errors.Is(err, chattest.ErrStore) {
		t.Fatalf("lift: %v %v", ok, err)
	}
	if rs := ts.Chat.Restrictions("lobby"); len(rs) != 1 {
		t.Errorf("a lift that failed lifted: %+v", rs)
	}
	for _, want := range []string{"moonchat_audit_write_errors_total 1", "moonchat_moderation_store_errors_total 3"} {
		name, _, _ := strings.Cut(want, " ")
		if got := metricLine(t, ts, name); got != want {
			t.Errorf("metric %q, want %q", got, want)
		}
	}

	hist.FailModeration(nil, chattest.ErrStore)
	if _, err := chat.New(chattest.Limits(chat.Config{Logger: chattest.TestLogger(t)}), nil, hist); !errors.Is(err, chattest.ErrStore) {
		t.Errorf("New with an unreadable store: %v", err)
	}
}

// Without a ModerationStore everything is kept in memory: restrictions
// apply, the audit log answers.
func TestModerationInMemory(t *testing.T) {
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken}, nil, nil)
	if err := ts.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Addr: "127.0.0.0/8"}, 0, "closed", "admin"); err != nil {
		t.Fatal(err)
	}
	if status, body := refusedDial(t, ts, "", "/chat/lobby?name=bob"); status != 403 || body != "you are banned from lobby: closed" {
		t.Errorf("%d %q", status, body)
	}
	if es, err := ts.Chat.Audit("", time.Time{}, 10); err != nil || len(es) != 1 || es[0].Target != "addr:127.0.0.0/8" {
		t.Errorf("audit %+v %v", es, err)
	}
	for _, bad := range []chat.Target{{}, {Name: "a", Account: "b"}, {Addr: "not an address"}, {Name: "two words"}} {
		if err := ts.Chat.Restrict(chat.KindBan, "lobby", bad, 0, "", "x"); !errors.Is(err, chat.ErrInvalidRestriction) {
			t.Errorf("target %+v: %v", bad, err)
		}
	}
}

// GET /api/audit (admin token) lists the audit log: bans, mutes, topic,
// and the admin API's kicks and deletions (by "admin"); room, since and
// limit narrow it.
func TestAuditAPI(t *testing.T) {
	hist := chattest.NewHistory()
	add(hist, "lobby", "u", "one")
	clock := &chattest.Clock{}
	ts := modServer(t, hist, clock, nil)
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	inRoom(t, ts, "lobby", "bob")
	if err := ts.Chat.Restrict(chat.KindMute, "lobby", chat.Target{Name: "bob"}, 0, "noise", "alice (u-alice)"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := ts.Chat.SetRoomSettings("dev", chat.RoomSettings{Topic: "builds"}, "carol"); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := do(t, ts, "POST", "/api/rooms/lobby/kick", adminToken, `{"name":"bob","reason":"bye"}`); status != 204 {
		t.Fatalf("kick: %d %s", status, body)
	}
	bob.ExpectCloseReason(1000, "bye")
	if status, body, _ := do(t, ts, "DELETE", "/api/messages/lobby/1", adminToken, ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}

	type entry struct{ Time, Room, By, Action, Target, Reason string }
	get := func(query string) []entry {
		t.Helper()
		status, body, _ := do(t, ts, "GET", "/api/audit"+query, adminToken, "")
		var a struct{ Entries []entry }
		if err := json.Unmarshal([]byte(body), &a); err != nil || status != 200 {
			t.Fatalf("GET /api/audit%s: %d %s", query, status, body)
		}
		return a.Entries
	}
	all := get("")
	var actions []string
	for _, e := range all {
		actions = append(actions, e.By+" "+e.Action+" "+e.Room+" "+e.Target+" "+e.Reason)
	}
	want := []string{"alice (u-alice) mute lobby name:bob noise", "carol topic dev  builds", "admin kick lobby name:bob bye", "admin delete lobby 1 "}
	if !slices.Equal(actions, want) {
		t.Errorf("audit\n%q\nwant\n%q", actions, want)
	}
	if all[0].Time != "2026-01-01T00:00:00.000Z" {
		t.Errorf("time %q", all[0].Time)
	}
	if got := get("?room=dev"); len(got) != 1 || got[0].Action != "topic" {
		t.Errorf("room=dev: %+v", got)
	}
	if got := get("?since=2026-01-01T00:00:30Z&limit=2"); len(got) != 2 || got[0].Action != "kick" {
		t.Errorf("since, limit: %+v", got)
	}
	if status, _, _ := do(t, ts, "GET", "/api/audit", "", ""); status != 401 {
		t.Errorf("without the token: %d", status)
	}
	if status, body, _ := do(t, ts, "GET", "/api/audit?since=yesterday", adminToken, ""); status != 400 {
		t.Errorf("bad since: %d %s", status, body)
	}
	hist.FailModeration(nil, chattest.ErrStore)
	if status, body, _ := do(t, ts, "GET", "/api/audit", adminToken, ""); status != 500 {
		t.Errorf("unreadable audit log: %d %s", status, body)
	}
}

// A ban that matches the name a join script gives a guest refuses the
// join (error "refused", close 1008 with the ban's text; the script gets
// the leave that goes with its join), and a guest cannot rename to a
// banned name.
func TestBanAtJoinAndRename(t *testing.T) {
	hooks := &chattest.Hooks{OnJoin: func(u chat.User) chat.JoinResult {
		if u.Name == "x" {
			return chat.JoinResult{Name: "Mallory"}
		}
		return chat.JoinResult{}
	}}
	ts := chattest.Start(t, chat.Config{}, hooks, chattest.NewHistory())
	if err := ts.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "mallory"}, 0, "no", "mod"); err != nil {
		t.Fatal(err)
	}
	c := ts.Dial(t, "/chat/lobby?name=x", chat.SubprotocolJSON)
	if e := c.ExpectEvent("error"); e.Str("code") != "refused" || e.Str("text") != "you are banned from lobby: no" {
		t.Errorf("got %v", e)
	}
	c.ExpectCloseReason(1008, "you are banned from lobby: no")
	chattest.Eventually(t, "the leave hook", func() bool {
		return slices.Contains(hooks.Events(), "leave lobby Mallory")
	})

	ts.Dial(t, "/chat/lobby?name=bob", "")
	inRoom(t, ts, "lobby", "bob")
	id := ts.Chat.Users("lobby")[0].SessionID
	if _, err := ts.Chat.Rename(id, "MALLORY"); !errors.Is(err, chat.ErrBanned) {
		t.Errorf("rename to a banned name: %v", err)
	}
	if got, err := ts.Chat.Rename(id, "robert"); err != nil || got != "robert" {
		t.Errorf("rename: %q %v", got, err)
	}
}
