package chat_test

import (
	"slices"
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
