package chat_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// adminPostAs posts text to room through the admin API "as" name ("" for
// the default sender) and returns the status and the JSON error ("" when
// none).
func adminPostAs(t *testing.T, ts *chattest.Server, room, name, text string) (int, string) {
	t.Helper()
	body := `{"text":"` + text + `"}`
	if name != "" {
		body = `{"text":"` + text + `","as":"` + name + `"}`
	}
	status, resp, _ := do(t, ts, "POST", "/api/rooms/"+room+"/messages", adminToken, body)
	if status == 201 {
		return status, ""
	}
	return status, jsonErr(resp)
}

// A banned or muted user cannot post through the admin API either: a post
// "as" a name a ban or mute in force matches in the room is refused with
// 403 and the handshake's words — a guest-name restriction (look-alikes
// too), the restrictions of the account owning the name (while it is
// offline too), a member's address restriction when it uses the name —
// counted under the restriction's reason and as a "forbidden" admin
// request, and nothing is stored. Lifting it (or its expiry) lets the post
// through; another room and the default sender "server" are never
// matched.
func TestAdminPostAsRestricted(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	ts := modServer(t, hist, clock, nil)
	h := ts.Chat
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	expect := func(room, name string, status int, why string) {
		t.Helper()
		if got, gotWhy := adminPostAs(t, ts, room, name, "hello from "+name); got != status || gotWhy != why {
			t.Errorf("admin post as %q in %s: %d %q, want %d %q", name, room, got, gotWhy, status, why)
		}
	}

	// Guest-name ban.
	must(h.Restrict(chat.KindBan, "lobby", chat.Target{Name: "alice"}, 0, "spam", "mod"))
	expect("lobby", "alice", 403, "you are banned from lobby: spam")
	expect("lobby", "ALICE", 403, "you are banned from lobby: spam") // case
	expect("lobby", "aIice", 403, "you are banned from lobby: spam") // capital I looks like l
	expect("other", "alice", 201, "")                                // the ban is lobby's
	must(h.Restrict(chat.KindBan, "", chat.Target{Name: "server"}, 0, "", "mod"))
	expect("lobby", "", 201, "") // the default sender is never matched
	if ok, err := h.Lift(chat.KindBan, "lobby", chat.Target{Name: "alice"}, "mod"); !ok || err != nil {
		t.Fatalf("unban: %v %v", ok, err)
	}
	expect("lobby", "alice", 201, "")

	// Account ban: the account owns the name "carol" (it joined under it)
	// and is offline when the post is made.
	carol := ts.Dial(t, "/chat/lobby?as=u-carol&n=carol", chat.SubprotocolJSON)
	carol.ExpectEvent("welcome")
	must(h.Restrict(chat.KindBan, "", chat.Target{Account: "u-carol"}, 0, "abuse", "mod"))
	chattest.Eventually(t, "carol kicked", func() bool { return len(ts.Names("lobby")) == 0 })
	expect("lobby", "carol", 403, "you are banned from every room: abuse")
	expect("lobby", "CAROL", 403, "you are banned from every room: abuse")
	if ok, err := h.Lift(chat.KindBan, "", chat.Target{Account: "u-carol"}, "mod"); !ok || err != nil {
		t.Fatalf("unban: %v %v", ok, err)
	}
	expect("lobby", "carol", 201, "")

	// Mutes: a guest name's with an expiry (the fake clock's), an account's
	// while it is online, a member's address while it uses the name.
	must(h.Restrict(chat.KindMute, "lobby", chat.Target{Name: "bob"}, 10*time.Minute, "quiet", "mod"))
	expect("lobby", "bob", 403, "you are muted in lobby until 2026-01-01 00:10:00 UTC: quiet")
	dan := ts.Dial(t, "/chat/lobby?as=u-dan&n=dan", chat.SubprotocolJSON)
	dan.ExpectEvent("welcome")
	must(h.Restrict(chat.KindMute, "lobby", chat.Target{Account: "u-dan"}, 0, "", "mod"))
	expect("lobby", "dan", 403, "you are muted in lobby")
	eve := ts.DialFrom(t, "127.0.0.5", "/chat/lobby?name=eve", "")
	eve.SkipUntil("* eve joined")
	must(h.Restrict(chat.KindMute, "lobby", chat.Target{Addr: "127.0.0.5"}, 0, "", "mod"))
	expect("lobby", "eve", 403, "you are muted in lobby")
	clock.Advance(10 * time.Minute)
	expect("lobby", "bob", 201, "")
	if ok, err := h.Lift(chat.KindMute, "lobby", chat.Target{Account: "u-dan"}, "mod"); !ok || err != nil {
		t.Fatalf("unmute: %v %v", ok, err)
	}
	expect("lobby", "dan", 201, "")

	// Only the allowed posts were stored.
	var stored []string
	for _, m := range hist.All("lobby") {
		stored = append(stored, m.User)
	}
	if want := []string{"server", "alice", "carol", "bob", "dan"}; !slices.Equal(stored, want) {
		t.Errorf("stored posts by %q, want %q", stored, want)
	}
	for _, want := range []string{
		`moonchat_moderation_refused_total{reason="ban"} 5`,
		`moonchat_moderation_refused_total{reason="mute"} 3`,
		`moonchat_admin_requests_total{action="post",result="forbidden"} 8`,
		`moonchat_admin_requests_total{action="post",result="ok"} 6`,
	} {
		series := want[:len(want)-2]
		if got := metricLine(t, ts, series); got != want {
			t.Errorf("metric %q, want %q", got, want)
		}
	}
}

// auditActions lists entries as "ACTION TARGET by BY: REASON" lines.
func auditActions(entries []chat.AuditEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Action+" "+e.Target+" by "+e.By+": "+e.Reason)
	}
	return out
}

// A ban or mute that ends by itself is audited when the sweep removes it
// (the fake clock's time): "unban"/"unmute" by "server", the reason
// saying when it expired, written to the ModerationStore like every
// entry; nothing more once swept.
func TestExpiryAudited(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	ts := modServer(t, hist, clock, nil)
	h := ts.Chat
	if err := h.Restrict(chat.KindBan, "lobby", chat.Target{Name: "bob"}, time.Hour, "cool off", "mod"); err != nil {
		t.Fatal(err)
	}
	if err := h.Restrict(chat.KindMute, "", chat.Target{Account: "u-x"}, 30*time.Minute, "", "mod"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(29 * time.Minute)
	if es, _ := hist.Audit("", time.Time{}, 100); len(es) != 2 {
		t.Fatalf("before any expiry: %q", auditActions(es))
	}
	clock.Advance(time.Minute)
	clock.Advance(30 * time.Minute)
	clock.Advance(time.Hour)
	es, err := hist.Audit("", time.Time{}, 100) // the store's own log
	want := []string{
		"ban name:bob by mod: cool off (for 1h)",
		"mute account:u-x by mod: for 30m",
		"unmute account:u-x by server: expired at 2026-01-01 00:30:00 UTC",
		"unban name:bob by server: expired at 2026-01-01 01:00:00 UTC",
	}
	if err != nil || !slices.Equal(auditActions(es), want) {
		t.Errorf("audit %q %v, want %q", auditActions(es), err, want)
	}
	if len(es) == 4 && (es[2].Room != "" || !es[2].Time.Equal(clock.Now().Add(-90*time.Minute)) || es[3].Room != "lobby") {
		t.Errorf("expiry entries %+v", es[2:])
	}
	if api, err := h.Audit("lobby", time.Time{}, 10); err != nil || len(api) != 2 || api[1].Action != "unban" {
		t.Errorf("Host.Audit(lobby) %+v %v", api, err)
	}
}

// An expiry found at startup (it came while the server was down) is
// audited once, when that start removes it from the store, not at every
// restart; a start that cannot remove it does not audit it, the next one
// does.
func TestExpiryAuditedOnceAcrossRestarts(t *testing.T) {
	hist := chattest.NewHistory()
	log := chattest.TestLogger(t)
	// start runs a server over hist whose clock is at after past the
	// epoch, lets its due timers run and shuts it down.
	start := func(after time.Duration, setup func(*chat.Server)) {
		t.Helper()
		clock := &chattest.Clock{}
		clock.Advance(after)
		srv, err := chat.New(chattest.Limits(chat.Config{Clock: clock, Logger: log}), nil, hist)
		if err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			setup(srv)
		}
		clock.Advance(0) // the sweep New armed for what expired meanwhile
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	unbans := func() []string {
		t.Helper()
		es, err := hist.Audit("", time.Time{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range auditActions(es) {
			if strings.HasPrefix(l, "unban ") {
				out = append(out, l)
			}
		}
		return out
	}
	start(0, func(srv *chat.Server) {
		if err := srv.Restrict(chat.KindBan, "lobby", chat.Target{Name: "bob"}, time.Hour, "", "mod"); err != nil {
			t.Fatal(err)
		}
		if err := srv.Restrict(chat.KindBan, "lobby", chat.Target{Name: "carol"}, time.Hour, "", "mod"); err != nil {
			t.Fatal(err)
		}
		if ok, err := srv.Lift(chat.KindBan, "lobby", chat.Target{Name: "carol"}, "mod"); !ok || err != nil {
			t.Fatalf("unban: %v %v", ok, err)
		}
	})
	// Down for two hours; this start cannot write the store: the expired
	// ban applies nowhere, but stays stored and is not audited.
	hist.FailModeration(chattest.ErrStore, nil)
	start(2*time.Hour, nil)
	hist.FailModeration(nil, nil)
	if got := unbans(); !slices.Equal(got, []string{"unban name:carol by mod: "}) {
		t.Errorf("after a start that could not sweep: %q", got)
	}
	if rs, _ := hist.Restrictions(); len(rs) != 1 {
		t.Errorf("stored %+v", rs)
	}
	want := []string{"unban name:carol by mod: ", "unban name:bob by server: expired at 2026-01-01 01:00:00 UTC"}
	for range 2 {
		start(3*time.Hour, nil)
		if got := unbans(); !slices.Equal(got, want) {
			t.Errorf("after restarts: %q, want %q", got, want)
		}
	}
	if rs, _ := hist.Restrictions(); len(rs) != 0 {
		t.Errorf("still stored %+v", rs)
	}
}

// Without a ModerationStore the in-memory audit log gets the expiry, and
// a Lift of a restriction that expired unswept audits the expiry, not a
// lift.
func TestExpiryAuditedInMemory(t *testing.T) {
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{Clock: clock}, nil, nil)
	h := ts.Chat
	if err := h.Restrict(chat.KindMute, "lobby", chat.Target{Name: "bob"}, time.Minute, "", "mod"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	es, err := h.Audit("", time.Time{}, 10)
	if want := []string{"mute name:bob by mod: for 1m", "unmute name:bob by server: expired at 2026-01-01 00:01:00 UTC"}; err != nil || !slices.Equal(auditActions(es), want) {
		t.Errorf("audit %q %v, want %q", auditActions(es), err, want)
	}
}

// Deleting spends flood tokens like a message: a moonchat.v1
// {"type":"delete"} beyond the connection's limits is refused with the
// usual "flood" error and deletes nothing, until the bucket refills (the
// fake clock); so is a "/delete ID" command (a chat message, here handled
// by a hook as delete.lua does). Both refusals are counted by limit.
func TestDeleteFloodLimited(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	var srv atomic.Pointer[chat.Server]
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		arg, ok := strings.CutPrefix(m.Text, "/delete ")
		if !ok {
			return chat.MessageResult{}
		}
		id, err := strconv.ParseUint(arg, 10, 64)
		if err == nil {
			err = srv.Load().DeleteMessage(u.SessionID, "", id)
		}
		if err != nil {
			return chat.MessageResult{Drop: true, Reason: err.Error()}
		}
		return chat.MessageResult{Drop: true}
	}}
	cfg := chat.Config{Authenticator: authFunc(memberAuth), FloodRate: 1, FloodBurst: 3, Clock: clock, DeleteOwnWindow: 15 * time.Minute}
	ts := chattest.Start(t, cfg, hooks, hist)
	srv.Store(ts.Chat)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	w := ts.Dial(t, "/chat/lobby?name=w", chat.SubprotocolJSON) // watches
	w.ExpectEvent("welcome")
	inRoom(t, ts, "lobby", "w")

	// posted reads w's events to the message text and returns its id.
	posted := func(text string) uint64 {
		t.Helper()
		for {
			if e := nextMessage(t, w); e.Str("text") == text {
				return e.Num("id")
			}
		}
	}
	stored := func(id uint64) bool {
		for _, m := range hist.All("lobby") {
			if m.ID == id {
				return true
			}
		}
		return false
	}
	del := func(c *chattest.Client, id uint64) { c.SendJSON(map[string]any{"type": "delete", "id": id}) }

	say(alice, "one")
	a1 := posted("one")
	say(alice, "two")
	a2 := posted("two")
	del(alice, a1) // the third token
	expectRedact(t, w, a1)
	del(alice, a2)
	floodError(t, alice, "flood", "you are sending too fast; messages were dropped")
	if !stored(a2) {
		t.Fatalf("message %d deleted by a delete beyond the flood limit", a2)
	}
	clock.Advance(time.Second)
	del(alice, a2)
	expectRedact(t, w, a2)

	bob.Send("b1")
	b1 := posted("b1")
	bob.Send("b2")
	b2 := posted("b2")
	bob.Send("/delete " + strconv.FormatUint(b1, 10))
	expectRedact(t, w, b1)
	bob.Send("/delete " + strconv.FormatUint(b2, 10))
	bob.SkipUntil("* you are sending too fast; messages were dropped")
	if !stored(b2) {
		t.Fatalf("message %d deleted by a /delete beyond the flood limit", b2)
	}
	if got := metricLine(t, ts, `moonchat_flood_refused_total{limit="connection"}`); got != `moonchat_flood_refused_total{limit="connection"} 2` {
		t.Errorf("metric %q", got)
	}
}
