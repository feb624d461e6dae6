package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// appendAt appends one message sent at t and returns it with its ID.
func appendAt(t *testing.T, db *DB, room, user, text string, at time.Time) chat.Message {
	t.Helper()
	m := &chat.Message{Room: room, User: user, Text: text, Time: at, Account: &chat.Account{ID: "id-" + user, Roles: []string{"user"}}}
	if err := db.Append(context.Background(), []*chat.Message{m}); err != nil {
		t.Fatalf("Append(%s %s %q): %v", room, user, text, err)
	}
	return *m
}

// statsLine prints conversations compactly for comparisons.
func statsLine(cs []chat.ConversationStat) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s %d/%d %s", c.Peer, c.Count, c.LastID, c.LastTime.Format("15:04:05")))
	}
	return strings.Join(parts, ", ")
}

// TestConversationsStoredLikeRooms: a conversation of two accounts is
// appended like a room under its ConversationKey, its ids keep increasing
// across a restart, it reads back in full (account included), and
// Conversations lists each account's own ones, newest first, with the
// peer, count, last id and the newest message's time; a note to self
// names the account as its peer; other accounts see nothing of them.
func TestConversationsStoredLikeRooms(t *testing.T) {
	path := tempPath(t)
	clock := newClock()
	t0 := clock.Now()
	db := openAt(t, path, Options{Now: clock.Now})
	ab := chat.ConversationKey("alice", "bob")
	ac := chat.ConversationKey("carol", "alice")
	self := chat.ConversationKey("alice", "alice")
	appendAt(t, db, ab, "alice", "hi bob", t0)
	appendAt(t, db, ab, "bob", "hi alice", t0.Add(time.Second))
	appendAt(t, db, ac, "carol", "hello", t0.Add(2*time.Second))
	appendAt(t, db, self, "alice", "note", t0.Add(3*time.Second))
	appendText(t, db, "lobby", "alice", "in the room")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, path, Options{Now: clock.Now})
	m := appendAt(t, db, ab, "bob", "after the restart", t0.Add(4*time.Second))
	if m.ID != 3 {
		t.Errorf("id after the restart = %d, want 3", m.ID)
	}
	got, err := db.Recent(ab, 10)
	if err != nil || !equalIDs(got, []uint64{1, 2, 3}) {
		t.Fatalf("Recent(%s) = %v, %v", ab, ids(got), err)
	}
	if g := got[0]; g.Room != ab || g.User != "alice" || g.Text != "hi bob" || !g.Time.Equal(t0) || g.Account == nil || g.Account.ID != "id-alice" {
		t.Errorf("first message read back as %+v", g)
	}

	for _, tc := range []struct{ account, want string }{
		{"alice", "bob 3/3 10:00:04, alice 1/1 10:00:03, carol 1/1 10:00:02"},
		{"bob", "alice 3/3 10:00:04"},
		{"carol", "alice 1/1 10:00:02"},
		{"dave", ""},
		{"lobby", ""},
		{"", ""},
	} {
		cs, err := db.Conversations(tc.account)
		if err != nil || statsLine(cs) != tc.want {
			t.Errorf("Conversations(%q) = %q, %v; want %q", tc.account, statsLine(cs), err, tc.want)
		}
		for _, c := range cs {
			if a, b, ok := chat.ParseConversationKey(c.Key); !ok || (a != tc.account && b != tc.account) || c.Key != chat.ConversationKey(tc.account, c.Peer) {
				t.Errorf("Conversations(%q): key %q does not belong to it with %q", tc.account, c.Key, c.Peer)
			}
		}
	}

	// Every message of a conversation removed: still listed (its ids go
	// on), with no time, last.
	for id := uint64(1); id <= 3; id++ {
		if ok, err := db.Redact(ab, id); !ok || err != nil {
			t.Fatalf("Redact(%d) = %v, %v", id, ok, err)
		}
	}
	cs, err := db.Conversations("alice")
	if err != nil || len(cs) != 3 || cs[2].Peer != "bob" || cs[2].Count != 0 || cs[2].LastID != 3 || !cs[2].LastTime.IsZero() {
		t.Errorf("after emptying alice–bob: %+v, %v", cs, err)
	}

	// A read-only handle (moonchat history -direct on a stopped server's
	// file) lists the same.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, err := ro.Conversations("carol"); err != nil || statsLine(got) != "alice 1/1 10:00:02" {
		t.Errorf("read-only Conversations(carol) = %q, %v", statsLine(got), err)
	}
}

// TestConversationKeysAppend: Append takes a well-formed conversation key
// longer than any room name (two ids of the longest size, escaped) and
// refuses a malformed "@dm:" key, which could never be listed.
func TestConversationKeysAppend(t *testing.T) {
	db := openTemp(t, Options{NoSync: true})
	long := strings.Repeat(":", MaxAccountIDLen) // escapes to 3 bytes a byte
	key := chat.ConversationKey(long, strings.Repeat("b", MaxAccountIDLen))
	if len(key) <= maxRoomLen {
		t.Fatalf("key of %d bytes proves nothing", len(key))
	}
	appendText(t, db, key, "x", "long ids")
	if cs, err := db.Conversations(long); err != nil || len(cs) != 1 || cs[0].Count != 1 {
		t.Errorf("Conversations(long id) = %+v, %v", cs, err)
	}
	for _, bad := range []string{"@dm:", "@dm:a", "@dm:b:a", "@dm:a:b:c", "@dm:%zz:b"} {
		err := db.Append(context.Background(), []*chat.Message{{Room: bad, User: "x", Text: "x"}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(room %q) = %v, want ErrInvalid", bad, err)
		}
	}
	if !chat.IsConversation(string(conversationPrefix)) || !strings.HasPrefix(chat.ConversationKey("a", "b"), string(conversationPrefix)) {
		t.Errorf("conversationPrefix %q is not chat's", conversationPrefix)
	}
}

// TestConversationsNotRooms: what lists or searches rooms for people —
// RoomStats (GET /api/rooms) and Query over every room — never shows a
// conversation, while Rooms (maintenance) lists it.
func TestConversationsNotRooms(t *testing.T) {
	db := openTemp(t, Options{NoSync: true})
	ab := chat.ConversationKey("alice", "bob")
	appendText(t, db, ab, "alice", "secret plan")
	appendText(t, db, "lobby", "alice", "public plan")
	stats, err := db.RoomStats()
	if err != nil || fmt.Sprint(stats) != "[{lobby 1 1 1}]" {
		t.Errorf("RoomStats = %v, %v; want only lobby", stats, err)
	}
	rooms, err := db.Rooms()
	if err != nil || len(rooms) != 2 {
		t.Errorf("Rooms = %+v, %v; want lobby and the conversation", rooms, err)
	}
	for _, q := range []Query{{}, {Grep: "plan"}, {User: "alice"}, {Grep: "secret"}} {
		msgs, _, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Room != "lobby" {
				t.Errorf("Query(%+v) over every room returned %+v", q, m)
			}
		}
	}
	// Asked by its key (the CLI's -direct -with), a conversation answers.
	if msgs, _, err := db.Query(Query{Room: ab, Grep: "secret"}); err != nil || len(msgs) != 1 {
		t.Errorf("Query(Room: key) = %v, %v", msgs, err)
	}
}

// TestConversationsMaintenance: retention (count and age), DeleteUser and
// Verify cover conversations as they cover rooms.
func TestConversationsMaintenance(t *testing.T) {
	clock := newClock()
	t0 := clock.Now()
	path := tempPath(t)
	db := openAt(t, path, Options{MaxPerRoom: 2, MaxAge: time.Hour, PruneInterval: -1, Now: clock.Now})
	ab := chat.ConversationKey("alice", "bob")
	cd := chat.ConversationKey("carol", "dave")
	for i := range 4 {
		appendAt(t, db, ab, "alice", fmt.Sprint("ab ", i), t0.Add(40*time.Minute+time.Duration(i)*time.Minute))
	}
	appendAt(t, db, cd, "carol", "old", t0)
	appendAt(t, db, cd, "dave", "young", t0.Add(90*time.Minute))

	clock.Advance(time.Hour + 30*time.Minute) // "old" at t0 is now too old
	n, err := db.Prune(clock.Now())
	if err != nil || n != 3 {
		t.Errorf("Prune = %d, %v; want 3 (2 over the count in alice–bob, 1 too old in carol–dave)", n, err)
	}
	if got, _ := db.Recent(ab, 10); !equalIDs(got, []uint64{3, 4}) {
		t.Errorf("alice–bob after retention: %v", ids(got))
	}
	if got, _ := db.Recent(cd, 10); !equalIDs(got, []uint64{2}) {
		t.Errorf("carol–dave after retention: %v", ids(got))
	}

	if n, err := db.DeleteUser("alice"); err != nil || n != 2 {
		t.Errorf("DeleteUser(alice) = %d, %v; want her 2 direct messages", n, err)
	}
	if got, _ := db.Recent(ab, 10); len(got) != 0 {
		t.Errorf("alice–bob after DeleteUser(alice): %v", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A flipped bit in a direct message: Verify names the conversation.
	storeTexts(t, path, cd, "first direct", "second direct here", "third direct")
	flipOnDisk(t, path, "second direct here")
	db = openAt(t, path, Options{})
	var found []*CorruptRecord
	st, err := db.Verify(context.Background(), func(err error) {
		var c *CorruptRecord
		if errors.As(err, &c) {
			found = append(found, c)
		} else {
			t.Errorf("Verify reported %v", err)
		}
	})
	if err != nil || st.Corrupt != 1 || len(found) != 1 || found[0].Room != cd || found[0].ID != 4 {
		t.Errorf("Verify = %+v, %v, found %v; want the record %s/4", st, err, found, cd)
	}
}
