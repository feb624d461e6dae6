package chat_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Nobody but its two users reads a direct conversation: a third user
// (carol, in the same room as both) tries every path — live in the room,
// room replay, room history requests, /api/history and /api/rooms with
// the conversation's key, a room named like it, the Host's room
// functions (chat.history, chat.redact, chat.delete) with the key,
// GET /api/direct and moonchat.v1 requests about another pair — and gets
// nothing of it. The History's room list holds the key: the server
// leaves it out.
func TestDirectPrivacy(t *testing.T) {
	hist := chattest.NewListingHistory()
	ts := dmServer(t, hist, nil, nil)
	alice := joinedJSON(t, ts, "/chat/lobby?as=a1&n=alice")
	bob := joinedJSON(t, ts, "/chat/lobby?as=b1&n=bob")
	gus := joinedJSON(t, ts, "/chat/lobby?name=gus")
	carol := joinedJSON(t, ts, "/chat/lobby?as=c1&n=carol")
	inRoom(t, ts, "lobby", "carol")
	alice.SendJSON(map[string]string{"type": "message", "text": "public hello"})
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "secret one"})
	nextOf(t, bob, "direct")
	alice.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "secret guest"})
	nextOf(t, gus, "direct")
	key := chat.ConversationKey("a1", "b1")
	if len(hist.All(key)) != 1 {
		t.Fatalf("the conversation is not stored under %q", key)
	}
	stats, _ := hist.RoomStats()
	if !strings.Contains(strings.Join(roomNames(stats), " "), key) {
		t.Fatalf("the History's room list lacks %q: the filter below would prove nothing", key)
	}
	noSecret := func(where, s string) {
		t.Helper()
		if strings.Contains(s, "secret") || strings.Contains(s, "@dm") {
			t.Errorf("%s: %s", where, s)
		}
	}

	// Live: carol was in the room all along.
	marker(t, ts, sessionOf(t, ts, "lobby", "carol"), "marker")
	for _, e := range untilSystem(t, carol, "marker") {
		if e.Str("type") == "direct" {
			t.Errorf("carol got %v live", e)
		}
		noSecret("live", e.Str("text"))
	}
	// Room history requests.
	carol.SendJSON(map[string]any{"type": "history"})
	e := nextOf(t, carol, "history")
	if texts := historyTexts(e); len(texts) != 1 || texts[0] != "public hello" {
		t.Errorf("room history: %v", e)
	}
	carol.SendJSON(map[string]any{"type": "history", "after": 0})
	if e := nextOf(t, carol, "history"); len(historyTexts(e)) != 1 {
		t.Errorf("room history after 0: %v", e)
	}
	// Replay on joining, and a resume.
	for _, path := range []string{"/chat/lobby?as=c1&n=carol", "/chat/lobby?as=c1&n=carol&since=0"} {
		c := ts.Dial(t, path, "")
		for {
			line := c.Read()
			noSecret("replay "+path, line)
			if strings.HasSuffix(line, "joined") {
				break
			}
		}
		c.Conn.Close()
	}
	// A conversation's key is no room: not to join, not over HTTP.
	for _, k := range []string{key, "@dm:|a" + "a1|g3"} {
		c := ts.Dial(t, "/chat/"+url.PathEscape(k)+"?as=c1&n=carol", chat.SubprotocolJSON)
		if e := c.ExpectEvent("error"); e.Str("code") != "refused" {
			t.Errorf("join %s: %v", k, e)
		}
		c.ExpectClose(1008)
		for _, p := range []string{"/api/history?as=c1&room=", "/api/history?room=", "/api/session?as=c1&room="} {
			code, body, _ := ts.Get(t, p+url.QueryEscape(k))
			if code != 400 {
				t.Errorf("GET %s%s: %d %s", p, k, code, body)
			}
			noSecret(p, body)
		}
	}
	for _, p := range []string{"/api/rooms?as=c1", "/api/rooms", "/api/rooms?as=a1"} {
		code, body, _ := ts.Get(t, p)
		if code != 200 || !strings.Contains(body, `"room":"lobby"`) {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
		noSecret(p, body)
	}
	// The Host's room functions refuse a key, whoever asks.
	carolID := sessionOf(t, ts, "lobby", "carol")
	aliceID := sessionOf(t, ts, "lobby", "alice")
	if msgs, err := ts.Chat.History(key, 10); !errors.Is(err, chat.ErrInvalidRoom) || len(msgs) != 0 {
		t.Errorf("History(key) = %v, %v", msgs, err)
	}
	for _, id := range []uint64{carolID, aliceID} {
		if msgs, err := ts.Chat.HistoryFor(id, key, 10); err == nil || len(msgs) != 0 {
			t.Errorf("HistoryFor(%d, key) = %v, %v", id, msgs, err)
		}
		if err := ts.Chat.DeleteMessage(id, key, 1); err == nil {
			t.Errorf("DeleteMessage(%d, key) deleted", id)
		}
	}
	if err := ts.Chat.Redact(key, 1); !errors.Is(err, chat.ErrInvalidRoom) {
		t.Errorf("Redact(key) = %v", err)
	}
	// Nor does the admin API take a key for a room.
	for _, req := range []struct{ method, path string }{
		{"DELETE", "/api/messages/" + url.PathEscape(key) + "/1"},
		{"POST", "/api/rooms/" + url.PathEscape(key) + "/messages"},
		{"GET", "/api/members?room=" + url.QueryEscape(key)},
	} {
		code, body := adminDo(t, ts, req.method, req.path, `{"text":"x"}`)
		if code != 400 {
			t.Errorf("%s %s: %d %s", req.method, req.path, code, body)
		}
		noSecret(req.path, body)
	}
	if len(hist.All(key)) != 1 {
		t.Fatal("the conversation lost its message")
	}
	// Carol's own conversations, with either of them, are empty.
	for _, p := range []string{"/api/direct?as=c1", "/api/direct?as=c1&with=bob", "/api/direct?as=c1&with=alice",
		"/api/direct?as=c1&with_id=b1", "/api/direct?as=c1&with_id=" + url.QueryEscape(key)} {
		code, body, _ := ts.Get(t, p)
		if code != 200 || (!strings.Contains(body, `"messages":[]`) && body != "{\"conversations\":[]}\n") || strings.Contains(body, "secret") {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
	for _, with := range []string{"bob", "alice", "gus"} {
		carol.SendJSON(map[string]any{"type": "history", "with": with})
		if e := nextOf(t, carol, "history"); len(historyTexts(e)) != 0 {
			t.Errorf("carol's history with %s: %v", with, e)
		}
	}
	carol.SendJSON(map[string]any{"type": "conversations"})
	if e := nextOf(t, carol, "conversations"); len(e["conversations"].([]any)) != 0 {
		t.Errorf("carol's conversations: %v", e)
	}
	// What bob reads is only his: the guest's conversation with alice is
	// not his either.
	bob.SendJSON(map[string]any{"type": "history", "with": "gus"})
	if e := nextOf(t, bob, "history"); len(historyTexts(e)) != 0 {
		t.Errorf("bob's history with gus: %v", e)
	}
}

// adminDo sends an admin API request with the admin token and returns
// the status and body.
func adminDo(t *testing.T, ts *chattest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.HTTP+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// roomNames returns the names of stats.
func roomNames(stats []chat.RoomStat) []string {
	var out []string
	for _, st := range stats {
		out = append(out, st.Name)
	}
	return out
}
