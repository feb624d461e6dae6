package chat_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// deleteServer starts a server whose rules make "mod" moderate every
// room, with [chat] delete_own_window = window on clock.
func deleteServer(t *testing.T, hist *chattest.History, clock *chattest.Clock, window time.Duration) *chattest.Server {
	t.Helper()
	rules, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "*", Read: []string{"*"}, Post: []string{"*"}, Moderate: []string{"mod"}, History: true}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Replay: 10, RoomRules: rules, Clock: clock, DeleteOwnWindow: window}
	return chattest.Start(t, cfg, nil, hist)
}

// expectRedact skips c's frames (earlier redactions too) to the redact
// event of message id in lobby.
func expectRedact(t *testing.T, c *chattest.Client, id uint64) {
	t.Helper()
	for {
		if e := nextOf(t, c, "redact"); e.Num("id") == id && e.Str("room") == "lobby" {
			return
		}
	}
}

// TestDeleteOwnMessage (issue 14): over moonchat.v1 {"type":"delete"}, an
// account deletes its own message (from another tab too) within [chat]
// delete_own_window and everyone sees the redaction; someone else's is
// refused with not_yours, an old one with too_late, a missing one with
// no_such_message; a guest may delete only what this connection sent (not
// another guest's), until the window has passed on the server's clock; a
// moderator deletes anyone's at any age. Each deletion is in the audit log, and gone from history.
func TestDeleteOwnMessage(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	// Message 1: alice's, an hour before the server's clock.
	old := &chat.Message{Room: "lobby", User: "alice", Text: "old", Time: clock.Now().Add(-time.Hour), Account: &chat.Account{ID: "alice"}}
	if err := hist.Append(context.Background(), []*chat.Message{old}); err != nil {
		t.Fatal(err)
	}
	ts := deleteServer(t, hist, clock, 15*time.Minute)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	tab := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	tab.ExpectEvent("welcome")
	bob := ts.Dial(t, "/chat/lobby?as=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	guest := ts.Dial(t, "/chat/lobby?name=gus", chat.SubprotocolJSON)
	guest.ExpectEvent("welcome")

	post := func(c *chattest.Client, text string) uint64 {
		t.Helper()
		c.SendJSON(map[string]string{"type": "message", "text": text})
		for {
			if e := nextMessage(t, c); e.Str("text") == text {
				return e.Num("id")
			}
		}
	}
	del := func(c *chattest.Client, id uint64) {
		t.Helper()
		c.SendJSON(map[string]any{"type": "delete", "id": id})
	}
	refused := func(c *chattest.Client, id uint64, code string) {
		t.Helper()
		del(c, id)
		if e := nextOf(t, c, "error"); e.Str("code") != code {
			t.Fatalf("delete %d: got %v, want error %s", id, e, code)
		}
	}

	a := post(alice, "mine")    // 2
	b := post(bob, "bob's")     // 3
	g := post(guest, "guest's") // 4
	refused(alice, b, "not_yours")
	refused(alice, g, "not_yours")
	refused(alice, 1, "too_late")
	refused(alice, 99, "no_such_message")
	// Another tab of the account: its own message too.
	del(tab, a)
	expectRedact(t, bob, a)
	expectRedact(t, alice, a)

	// A guest: what this connection sent, not another guest's of the
	// same name on another connection.
	same := ts.Dial(t, "/chat/lobby?name=gus2", chat.SubprotocolJSON)
	same.ExpectEvent("welcome")
	refused(same, g, "not_yours")
	refused(bob, g, "not_yours")
	del(guest, g)
	expectRedact(t, bob, g)

	// A moderator deletes anyone's, at any age (message 1 is alice's,
	// an hour old).
	b2 := post(bob, "later")
	mod := ts.Dial(t, "/chat/lobby?as=m&role=mod", chat.SubprotocolJSON)
	mod.ExpectEvent("welcome")
	del(mod, b2)
	expectRedact(t, alice, b2)
	del(mod, 1)
	expectRedact(t, alice, 1)

	// A guest's record expires with the window too.
	g2 := post(guest, "guest later")
	clock.Advance(15*time.Minute + time.Second)
	refused(guest, g2, "too_late")

	for _, id := range []uint64{1, a, g, b2} {
		for _, m := range hist.All("lobby") {
			if m.ID == id {
				t.Errorf("message %d still in history", id)
			}
		}
	}
	entries, err := ts.Chat.Audit("lobby", time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.Target+" by "+e.By)
	}
	want := []string{"delete 2 by alice-2 (alice)", "delete 4 by gus", "delete 5 by m (m)", "delete 1 by m (m)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := metric(t, ts, `moonchat_moderation_refused_total{reason="delete"}`); n != 6 {
		t.Errorf("refused deletions counted: %v, want 6", n)
	}
}

// TestDeleteOwnWindowZero: with [chat] delete_own_window = 0 members may
// not delete their own messages (too_late, said so), moderators still may;
// the Host method returns the named errors.
func TestDeleteOwnWindowZero(t *testing.T) {
	ts := deleteServer(t, chattest.NewHistory(), &chattest.Clock{}, 0)
	alice := ts.Dial(t, "/chat/lobby?as=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	alice.SendJSON(map[string]string{"type": "message", "text": "mine"})
	id := nextMessage(t, alice).Num("id")
	alice.SendJSON(map[string]any{"type": "delete", "id": id})
	if e := nextOf(t, alice, "error"); e.Str("code") != "too_late" || !strings.Contains(e.Str("text"), "members may not delete their messages here") {
		t.Fatalf("got %v", e)
	}
	users := ts.Chat.Users("lobby")
	if len(users) != 1 {
		t.Fatalf("users %v", users)
	}
	if err := ts.Chat.DeleteMessage(users[0].SessionID, "lobby", id); !errors.Is(err, chat.ErrTooLate) {
		t.Errorf("DeleteMessage: %v, want ErrTooLate", err)
	}
	if err := ts.Chat.DeleteMessage(users[0].SessionID, "elsewhere", id); !errors.Is(err, chat.ErrNotAllowed) {
		t.Errorf("DeleteMessage in another room: %v, want ErrNotAllowed", err)
	}
	// A delete event without an id is a bad request.
	alice.SendJSON(map[string]any{"type": "delete"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "bad_request" || !strings.Contains(e.Str("text"), `needs an "id"`) {
		t.Errorf("got %v", e)
	}
	mod := ts.Dial(t, "/chat/lobby?as=m&role=mod", chat.SubprotocolJSON)
	mod.ExpectEvent("welcome")
	mod.SendJSON(map[string]any{"type": "delete", "id": id})
	expectRedact(t, alice, id)
}
