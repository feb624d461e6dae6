package chat_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// dmServer is a server whose ?as=ID&n=NAME callers are accounts
// (memberAuth) and whose History is hist.
func dmServer(t *testing.T, hist chat.History, hooks chat.Hooks, mod func(*chat.Config)) *chattest.Server {
	t.Helper()
	cfg := chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Replay: 20}
	if mod != nil {
		mod(&cfg)
	}
	return chattest.Start(t, cfg, hooks, hist)
}

// joinedJSON dials path with moonchat.v1 and reads up to its welcome.
func joinedJSON(t *testing.T, ts *chattest.Server, path string) *chattest.Client {
	t.Helper()
	c := ts.Dial(t, path, chat.SubprotocolJSON)
	c.ExpectEvent("welcome")
	return c
}

// untilSystem reads c's JSON events up to the system notice text and
// returns the events before it.
func untilSystem(t *testing.T, c *chattest.Client, text string) []chattest.Event {
	t.Helper()
	var before []chattest.Event
	for {
		e := c.ReadEvent()
		if e.Str("type") == "system" && e.Str("text") == text {
			return before
		}
		before = append(before, e)
	}
}

// directsOf returns the "direct" events among evs.
func directsOf(evs []chattest.Event) []chattest.Event {
	var out []chattest.Event
	for _, e := range evs {
		if e.Str("type") == "direct" {
			out = append(out, e)
		}
	}
	return out
}

// marker makes Host.Send write a notice to session: what a connection
// reads before it came before the notice.
func marker(t *testing.T, ts *chattest.Server, session uint64, text string) {
	t.Helper()
	if err := ts.Chat.Send(session, text); err != nil {
		t.Fatal(err)
	}
}

// A direct message reaches every connection of both accounts — two rooms,
// two tabs, both wire formats — only once History.Append returned, and
// all of them get a conversation's messages in one order (id order) even
// when both users send at once from different rooms. A third user in the
// same rooms gets nothing. Small rooms and sweepers (fanout.go) alike.
func TestDirectDelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		fan  func(*chat.Config)
	}{
		{"room goroutine", func(c *chat.Config) { *c = chat.WithFanout(*c, -1, 0) }},
		{"sweepers", func(c *chat.Config) { *c = chat.WithFanout(*c, 2, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testDirectDelivery(t, tc.fan) })
	}
}

func testDirectDelivery(t *testing.T, fan func(*chat.Config)) {
	hist := chattest.NewHistory()
	ts := dmServer(t, hist, nil, fan)
	alice1 := joinedJSON(t, ts, "/chat/lobby?as=alice&n=alice")
	alice2 := joinedJSON(t, ts, "/chat/dev?as=alice&n=alice")
	bobPlain := ts.Dial(t, "/chat/lobby?as=bob&n=bob", "")
	bobPlain.SkipUntil("* bob joined")
	bob2 := joinedJSON(t, ts, "/chat/dev?as=bob&n=bob")
	carol := joinedJSON(t, ts, "/chat/lobby?as=carol&n=carol")
	inRoom(t, ts, "lobby", "carol")
	inRoom(t, ts, "dev", "bob")

	// Held in the store: no connection gets it before Append returns.
	release := hist.BlockAppends()
	alice1.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "hi"})
	chattest.Eventually(t, "the direct message held in Append", func() bool { return hist.Blocked() == 1 })
	// dev's goroutine is free: a notice sent now reaches its members
	// before anything the held message would bring.
	for _, c := range []struct {
		c    *chattest.Client
		name string
	}{{alice2, "alice"}, {bob2, "bob"}} {
		marker(t, ts, sessionOf(t, ts, "dev", c.name), "marker")
		if d := directsOf(untilSystem(t, c.c, "marker")); len(d) > 0 {
			t.Fatalf("%s got %v before the message was stored", c.name, d)
		}
	}
	if n := len(hist.All(chat.ConversationKey("alice", "bob"))); n != 0 {
		t.Fatalf("%d messages stored while Append is held", n)
	}
	release()

	want := func(c *chattest.Client, with string) {
		t.Helper()
		e := nextOf(t, c, "direct")
		if e.Num("id") != 1 || e.Str("with") != with || e.Str("with_id") != with || e.Str("from") != "alice" ||
			e.Str("to") != "bob" || e.Str("text") != "hi" || e.Str("user_id") != "alice" || e.Str("ts") == "" ||
			e["room"] != nil || e["action"] != nil {
			t.Fatalf("got %v", e)
		}
	}
	want(alice1, "bob")
	want(alice2, "bob")
	want(bob2, "alice")
	bobPlain.SkipUntil("[dm] alice: hi")

	// Both ways at once, from two rooms: one order everywhere.
	const n = 20
	var wg sync.WaitGroup
	for _, s := range []struct {
		c        *chattest.Client
		from, to string
	}{{alice1, "alice", "bob"}, {bob2, "bob", "alice"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				b, _ := json.Marshal(map[string]string{"type": "direct", "to": s.to, "text": fmt.Sprintf("%s %d", s.from, i)})
				if err := s.c.Conn.WriteMessage(1, b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var orders [][]string
	for _, c := range []*chattest.Client{alice1, alice2, bob2} {
		var got []string
		var last uint64 = 1
		for len(got) < 2*n {
			e := nextOf(t, c, "direct")
			if e.Num("id") != last+1 {
				t.Fatalf("id %d after %d: %v", e.Num("id"), last, e)
			}
			last = e.Num("id")
			got = append(got, e.Str("text"))
		}
		orders = append(orders, got)
	}
	var plain []string
	for len(plain) < 2*n {
		line := bobPlain.Read()
		switch {
		case strings.HasPrefix(line, "[dm] alice: "):
			plain = append(plain, strings.TrimPrefix(line, "[dm] alice: "))
		case strings.HasPrefix(line, "[dm to alice] bob: "):
			plain = append(plain, strings.TrimPrefix(line, "[dm to alice] bob: "))
		}
	}
	orders = append(orders, plain)
	for i := 1; i < len(orders); i++ {
		if !slices.Equal(orders[i], orders[0]) {
			t.Fatalf("connection %d got\n%q\nconnection 0 got\n%q", i, orders[i], orders[0])
		}
	}
	stored := hist.All(chat.ConversationKey("alice", "bob"))
	if len(stored) != 2*n+1 || stored[0].Text != "hi" || stored[0].Room != chat.ConversationKey("bob", "alice") {
		t.Fatalf("stored %d: %v", len(stored), stored[:1])
	}
	for i, m := range stored[1:] {
		if m.Text != orders[0][i] {
			t.Fatalf("stored #%d %q, delivered %q", i+2, m.Text, orders[0][i])
		}
	}

	// Carol, in both users' room, got none of it.
	alice1.SendJSON(map[string]string{"type": "message", "text": "room talk"})
	for {
		e := carol.ReadEvent()
		if e.Str("type") == "direct" {
			t.Fatalf("carol got %v", e)
		}
		if e.Str("type") == "message" && e.Str("text") == "room talk" {
			break
		}
	}
	_, fams := scrape(t, ts.Chat)
	if v, _ := value(fams, "moonchat_direct_messages_total", "result", "sent"); v != 2*n+1 {
		t.Errorf("moonchat_direct_messages_total{result=sent} = %v, want %d", v, 2*n+1)
	}
}

// An account that is offline gets its direct messages stored: over
// GET /api/direct with its own credentials, and over moonchat.v1
// (conversations, history with the sender) once it connects.
func TestDirectOffline(t *testing.T) {
	hist := chattest.NewHistory()
	ts := dmServer(t, hist, nil, nil)
	bob := joinedJSON(t, ts, "/chat/lobby?as=b1&n=bob") // bob owns "bob" from now on
	inRoom(t, ts, "lobby", "bob")
	bob.Conn.Close()
	chattest.Eventually(t, "bob gone", func() bool { return !slices.Contains(ts.Names("lobby"), "bob") })

	alice := joinedJSON(t, ts, "/chat/dev?as=a1&n=alice")
	for _, text := range []string{"one", "two", "three"} {
		alice.SendJSON(map[string]string{"type": "direct", "to": "Bob", "text": text})
		if e := nextOf(t, alice, "direct"); e.Str("text") != text || e.Str("with") != "bob" || e.Str("with_id") != "b1" {
			t.Fatalf("echo %v", e)
		}
	}

	code, body, _ := ts.Get(t, "/api/direct?as=b1")
	var list struct {
		Conversations []struct {
			With   string `json:"with"`
			ID     string `json:"with_id"`
			LastID uint64 `json:"last_id"`
			Count  int    `json:"count"`
			LastTS string `json:"last_ts"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Conversations) != 1 {
		t.Fatalf("GET /api/direct: %d %s", code, body)
	}
	if c := list.Conversations[0]; c.With != "alice" || c.ID != "a1" || c.LastID != 3 || c.Count != 3 || c.LastTS == "" {
		t.Fatalf("GET /api/direct: %s", body)
	}
	var page struct {
		With     string `json:"with"`
		WithID   string `json:"with_id"`
		More     bool   `json:"more"`
		Messages []struct {
			ID       uint64 `json:"id"`
			From, To string
			Text     string
			With     string `json:"with"`
		} `json:"messages"`
	}
	for _, q := range []string{"with=alice", "with_id=a1"} {
		code, body, _ = ts.Get(t, "/api/direct?as=b1&"+q+"&limit=2")
		if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil {
			t.Fatalf("GET /api/direct?%s: %d %s", q, code, body)
		}
		if page.With != "alice" || page.WithID != "a1" || !page.More || len(page.Messages) != 2 ||
			page.Messages[0].Text != "two" || page.Messages[1].ID != 3 || page.Messages[1].From != "alice" ||
			page.Messages[1].To != "bob" || page.Messages[1].With != "alice" {
			t.Fatalf("GET /api/direct?%s: %s", q, body)
		}
	}
	code, body, _ = ts.Get(t, "/api/direct?as=b1&with=alice&before=2")
	if code != 200 || !strings.Contains(body, `"text":"one"`) || strings.Contains(body, `"text":"two"`) || !strings.Contains(body, `"more":false`) {
		t.Fatalf("before=2: %d %s", code, body)
	}
	code, body, _ = ts.Get(t, "/api/direct?as=b1&with=alice&after=1&before=3")
	if code != 400 {
		t.Fatalf("before and after: %d %s", code, body)
	}
	code, body, _ = ts.Get(t, "/api/direct?as=b1&with=nobody")
	if code != 404 || !strings.Contains(body, "no such user") {
		t.Fatalf("with=nobody: %d %s", code, body)
	}

	// Online again: the same over the WebSocket.
	bob = joinedJSON(t, ts, "/chat/lobby?as=b1&n=bob")
	bob.SendJSON(map[string]string{"type": "conversations"})
	e := nextOf(t, bob, "conversations")
	convs, _ := e["conversations"].([]any)
	if len(convs) != 1 || convs[0].(map[string]any)["with"] != "alice" || convs[0].(map[string]any)["with_id"] != "a1" {
		t.Fatalf("conversations: %v", e)
	}
	bob.SendJSON(map[string]any{"type": "history", "with": "alice", "after": 1})
	e = nextOf(t, bob, "history")
	if e.Str("with") != "alice" || e.Str("with_id") != "a1" || e.Str("reason") != "after" || e["room"] != nil ||
		!slices.Equal(historyTexts(e), []string{"two", "three"}) {
		t.Fatalf("history: %v", e)
	}
	msg := e["messages"].([]any)[0].(map[string]any)
	if msg["from"] != "alice" || msg["to"] != "bob" || msg["with"] != "alice" || msg["type"] != nil {
		t.Fatalf("history entry %v", msg)
	}
	// And alice reads the same conversation from her side.
	alice.SendJSON(map[string]any{"type": "history", "with": "bob", "limit": 1})
	e = nextOf(t, alice, "history")
	msg = e["messages"].([]any)[0].(map[string]any)
	if e.Str("reason") != "before" || e["more"] != true || msg["text"] != "three" || msg["with"] != "bob" || msg["to"] != "bob" {
		t.Fatalf("alice's history: %v", e)
	}
}

// Without a ConversationLister the History still stores accounts'
// conversations, and the server lists those of its own life.
func TestDirectWithoutLister(t *testing.T) {
	hist := chattest.NewHistory()
	ts := dmServer(t, struct{ chat.History }{hist}, nil, nil)
	alice := joinedJSON(t, ts, "/chat/lobby?as=a1&n=alice")
	joinedJSON(t, ts, "/chat/lobby?as=b1&n=bob")
	inRoom(t, ts, "lobby", "bob")
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "x"})
	nextOf(t, alice, "direct")
	alice.SendJSON(map[string]string{"type": "direct", "to": "alice", "text": "note to self"})
	if e := nextOf(t, alice, "direct"); e.Str("with") != "alice" || e.Str("to") != "alice" || e.Num("id") != 1 {
		t.Fatalf("note to self: %v", e)
	}
	code, body, _ := ts.Get(t, "/api/direct?as=b1")
	if code != 200 || !strings.Contains(body, `"with":"alice","with_id":"a1","last_id":1,`) || !strings.Contains(body, `"count":1}`) {
		t.Fatalf("GET /api/direct: %d %s", code, body)
	}
	code, body, _ = ts.Get(t, "/api/direct?as=a1")
	if code != 200 || !strings.HasPrefix(body, `{"conversations":[{"with":"alice","with_id":"a1"`) || !strings.Contains(body, `"with":"bob"`) {
		t.Fatalf("GET /api/direct (newest first, the note to self): %d %s", code, body)
	}
}

// A conversation with a guest lives in the server's memory for the
// guest's session: readable by both while the guest is connected, never
// in the History, gone once the guest leaves. Guests have no
// GET /api/direct.
func TestDirectGuest(t *testing.T) {
	hist := chattest.NewHistory()
	ts := dmServer(t, hist, nil, nil)
	alice := joinedJSON(t, ts, "/chat/lobby?as=a1&n=alice")
	gus := joinedJSON(t, ts, "/chat/dev?name=gus")
	inRoom(t, ts, "dev", "gus")

	alice.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "hello guest"})
	if e := nextOf(t, gus, "direct"); e.Str("from") != "alice" || e.Str("with") != "alice" || e.Str("with_id") != "a1" || e.Num("id") != 1 {
		t.Fatalf("gus got %v", e)
	}
	gus.SendJSON(map[string]string{"type": "direct", "to": "alice", "text": "hi account"})
	if e := nextOf(t, alice, "direct"); e.Str("with") != "gus" || e["with_id"] != nil || e.Num("id") != 1 || e.Str("text") != "hello guest" {
		t.Fatalf("alice's echo %v", e)
	}
	if e := nextOf(t, alice, "direct"); e.Str("with") != "gus" || e["with_id"] != nil || e.Num("id") != 2 || e.Str("text") != "hi account" {
		t.Fatalf("alice got %v", e)
	}
	gus.SendJSON(map[string]string{"type": "conversations"})
	e := nextOf(t, gus, "conversations")
	if c := e["conversations"].([]any); len(c) != 1 || c[0].(map[string]any)["with"] != "alice" || c[0].(map[string]any)["count"] != 2.0 {
		t.Fatalf("gus's conversations: %v", e)
	}
	alice.SendJSON(map[string]any{"type": "history", "with": "gus"})
	if e := nextOf(t, alice, "history"); !slices.Equal(historyTexts(e), []string{"hello guest", "hi account"}) || e.Str("with") != "gus" {
		t.Fatalf("alice's history with gus: %v", e)
	}
	for _, st := range hist.AppendSizes() {
		if st != 0 {
			t.Fatalf("a guest's conversation reached the History: %v", hist.AppendSizes())
		}
	}
	code, body, h := ts.Get(t, "/api/direct")
	if code != 401 || !strings.Contains(body, "direct messages of guests are only on their connection") || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("guest GET /api/direct: %d %s", code, body)
	}

	gus.Conn.Close()
	chattest.Eventually(t, "gus gone", func() bool { return !slices.Contains(ts.Names("dev"), "gus") })
	alice.SendJSON(map[string]string{"type": "conversations"})
	if e := nextOf(t, alice, "conversations"); len(e["conversations"].([]any)) != 0 {
		t.Fatalf("after gus left: %v", e)
	}
	// A new guest of the same name starts with nothing.
	gus2 := joinedJSON(t, ts, "/chat/dev?name=gus")
	inRoom(t, ts, "dev", "gus")
	alice.SendJSON(map[string]any{"type": "history", "with": "gus"})
	if e := nextOf(t, alice, "history"); len(historyTexts(e)) != 0 {
		t.Fatalf("alice's history with the new gus: %v", e)
	}
	gus2.SendJSON(map[string]string{"type": "conversations"})
	if e := nextOf(t, gus2, "conversations"); len(e["conversations"].([]any)) != 0 {
		t.Fatalf("the new gus: %v", e)
	}
}

// The message hooks see a direct message with To set and its
// conversation's key as Room; they may replace its text or drop it (the
// sender told why), and a hook that fails fails closed: not stored, not
// delivered, the sender told.
func TestDirectHooks(t *testing.T) {
	hist := chattest.NewHistory()
	var mu sync.Mutex
	var seen []chat.Message
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		mu.Lock()
		seen = append(seen, *m)
		mu.Unlock()
		switch m.Text {
		case "shout":
			return chat.MessageResult{Replace: true, Text: "SHOUT"}
		case "spam":
			return chat.MessageResult{Drop: true, Reason: "no spam in direct messages"}
		case "boom":
			return chat.MessageResult{Err: &chat.HookError{Reason: chat.HookFailError, Err: errors.New("script error")}}
		}
		return chat.MessageResult{}
	}}
	ts := dmServer(t, hist, hooks, nil)
	alice := joinedJSON(t, ts, "/chat/lobby?as=a1&n=alice")
	bob := joinedJSON(t, ts, "/chat/lobby?as=b1&n=bob")
	inRoom(t, ts, "lobby", "bob")

	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "spam"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "dropped" || e.Str("text") != "no spam in direct messages" {
		t.Fatalf("drop: %v", e)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "boom"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "hook_failed" {
		t.Fatalf("hook failure: %v", e)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "shout"})
	// The first thing bob gets is the replaced one: nothing of the others.
	if e := nextOf(t, bob, "direct"); e.Str("text") != "SHOUT" || e.Num("id") != 1 {
		t.Fatalf("bob got %v", e)
	}
	if got := hist.All(chat.ConversationKey("a1", "b1")); len(got) != 1 || got[0].Text != "SHOUT" {
		t.Fatalf("stored %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("hooks saw %d messages", len(seen))
	}
	for _, m := range seen {
		if m.To != "bob" || m.Room != chat.ConversationKey("a1", "b1") || m.User != "alice" || m.Account == nil || m.Account.ID != "a1" {
			t.Fatalf("hook saw %+v", m)
		}
	}
	_, fams := scrape(t, ts.Chat)
	if v, _ := value(fams, "moonchat_direct_messages_total", "result", "dropped"); v != 2 {
		t.Errorf("moonchat_direct_messages_total{result=dropped} = %v, want 2", v)
	}
}

// A mute in one room does not stop direct messages; a mute in every
// room does (error muted, nothing stored). A recipient who ignores the
// sender does not get it: "not delivered", nothing stored. Unknown
// recipients and malformed events are answered.
func TestDirectRefusals(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	ts := dmServer(t, hist, nil, func(c *chat.Config) { c.Clock = clock })
	alice := joinedJSON(t, ts, "/chat/lobby?as=a1&n=alice")
	bob := joinedJSON(t, ts, "/chat/dev?as=b1&n=bob")
	inRoom(t, ts, "dev", "bob")
	key := chat.ConversationKey("a1", "b1")

	if err := ts.Chat.Restrict(chat.KindMute, "lobby", chat.Target{Account: "a1"}, time.Hour, "", "mod"); err != nil {
		t.Fatal(err)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "muted in lobby only"})
	if e := nextOf(t, bob, "direct"); e.Str("text") != "muted in lobby only" {
		t.Fatalf("bob got %v", e)
	}
	if err := ts.Chat.Restrict(chat.KindMute, "", chat.Target{Account: "a1"}, time.Hour, "calm down", "mod"); err != nil {
		t.Fatal(err)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "muted everywhere"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "muted" || !strings.Contains(e.Str("text"), "muted in every room") {
		t.Fatalf("muted: %v", e)
	}
	// The mute expires (the fake clock): direct messages go again.
	clock.Advance(2 * time.Hour)
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "after the mute"})
	if e := nextOf(t, bob, "direct"); e.Str("text") != "after the mute" {
		t.Fatalf("bob got %v", e)
	}

	if err := ts.Chat.Ignore(sessionOf(t, ts, "dev", "bob"), chat.IgnoreTarget{Account: "a1"}); err != nil {
		t.Fatal(err)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "ignored"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "not_delivered" || e.Str("text") != "message not delivered to bob" {
		t.Fatalf("ignored: %v", e)
	}
	if got := hist.All(key); len(got) != 2 {
		t.Fatalf("stored %d messages, want 2: %v", len(got), got)
	}

	alice.SendJSON(map[string]string{"type": "direct", "to": "nobody", "text": "?"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "no_such_user" || e.Str("text") != "message not sent: no such user: nobody" {
		t.Fatalf("unknown: %v", e)
	}
	for frame, text := range map[string]string{
		`{"type":"direct","text":"hi"}`:                `a "direct" event needs a "to" string`,
		`{"type":"direct","to":"bob"}`:                 `a "direct" event needs a "to" string`,
		`{"type":"direct","to":5,"text":"x"}`:          `"to" must be a string`,
		`{"type":"history","with":""}`:                 `"with" must name the other user`,
		`{"type":"direct","to":"bob","text":"\u0007"}`: "control character U+0007",
	} {
		alice.Send(frame)
		if e := nextOf(t, alice, "error"); e.Str("code") != "bad_request" || !strings.Contains(e.Str("text"), text) {
			t.Errorf("%s: %v", frame, e)
		}
	}
	aliceID := sessionOf(t, ts, "lobby", "alice")
	if err := ts.Chat.Direct(aliceID, "nobody", "x"); !errors.Is(err, chat.ErrNoSuchRecipient) {
		t.Errorf("Direct to nobody: %v", err)
	}
	if err := ts.Chat.Direct(aliceID, "bob", ""); !errors.Is(err, chat.ErrInvalidText) {
		t.Errorf("Direct empty: %v", err)
	}
	if err := ts.Chat.Direct(12345, "bob", "x"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("Direct from nobody: %v", err)
	}
	_, fams := scrape(t, ts.Chat)
	for result, want := range map[string]float64{"muted": 1, "not_delivered": 1, "no_such_user": 2, "sent": 2} {
		if v, _ := value(fams, "moonchat_direct_messages_total", "result", result); v != want {
			t.Errorf("moonchat_direct_messages_total{result=%s} = %v, want %v", result, v, want)
		}
	}
}

// Plain-text clients get "[dm] alice: hi" (recipient) and
// "[dm to bob] alice: hi" (the sender's own connections), made safe for
// a terminal like every plain line; Host.Direct (chat.direct, /msg)
// sends for them.
func TestDirectPlain(t *testing.T) {
	ts := dmServer(t, chattest.NewHistory(), nil, nil)
	alice := ts.Dial(t, "/chat/lobby?as=a1&n=alice", "")
	alice.SkipUntil("* alice joined")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	if err := ts.Chat.Direct(sessionOf(t, ts, "lobby", "alice"), "bob", "hi\nthere\u202e"); err != nil {
		t.Fatal(err)
	}
	bob.SkipUntil("[dm] alice: hi ⏎ there")
	alice.SkipUntil("[dm to bob] alice: hi ⏎ there")
	if err := ts.Chat.Direct(sessionOf(t, ts, "lobby", "bob"), "alice", "back"); err != nil {
		t.Fatal(err)
	}
	alice.SkipUntil("[dm] bob: back")
	bob.SkipUntil("[dm to alice] bob: back")
}

// Guests write to guests: the sender's room first, then any room; a name
// that guests use in several other rooms is ambiguous. A conversation of
// two guests ends for both when either leaves.
func TestDirectGuestToGuest(t *testing.T) {
	ts := dmServer(t, chattest.NewHistory(), nil, nil)
	gusA := joinedJSON(t, ts, "/chat/a?name=gus")
	gusB := joinedJSON(t, ts, "/chat/b?name=gus")
	ann := joinedJSON(t, ts, "/chat/a?name=ann")
	cat := joinedJSON(t, ts, "/chat/c?name=cat")
	inRoom(t, ts, "b", "gus")
	inRoom(t, ts, "c", "cat")

	cat.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "which one?"})
	if e := nextOf(t, cat, "error"); e.Str("code") != "no_such_user" || !strings.Contains(e.Str("text"), "ambiguous") {
		t.Fatalf("ambiguous: %v", e)
	}
	ann.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "same room"})
	if e := nextOf(t, gusA, "direct"); e.Str("text") != "same room" || e.Str("with") != "ann" {
		t.Fatalf("gus in a got %v", e)
	}
	cat.SendJSON(map[string]string{"type": "direct", "to": "ann", "text": "from c"})
	if e := nextOf(t, ann, "direct"); e.Str("text") != "same room" {
		t.Fatalf("ann's echo %v", e)
	}
	if e := nextOf(t, ann, "direct"); e.Str("text") != "from c" || e.Str("with") != "cat" || e.Num("id") != 1 {
		t.Fatalf("ann got %v", e)
	}
	// gus in b got nothing: a marker comes first.
	marker(t, ts, sessionOf(t, ts, "b", "gus"), "marker")
	if d := directsOf(untilSystem(t, gusB, "marker")); len(d) > 0 {
		t.Fatalf("gus in b got %v", d)
	}

	gusA.Conn.Close()
	chattest.Eventually(t, "gus left a", func() bool { return !slices.Contains(ts.Names("a"), "gus") })
	ann.SendJSON(map[string]string{"type": "conversations"})
	e := nextOf(t, ann, "conversations")
	if c := e["conversations"].([]any); len(c) != 1 || c[0].(map[string]any)["with"] != "cat" {
		t.Fatalf("ann's conversations after gus left: %v", e)
	}
	// "gus" is now the one in b.
	ann.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "hi b"})
	if e := nextOf(t, gusB, "direct"); e.Str("text") != "hi b" || e.Num("id") != 1 {
		t.Fatalf("gus in b got %v", e)
	}
}

// Without a History accounts' direct messages are delivered (id 0) and
// kept nowhere: history requests answer no_history, /api/direct 404.
// Guests' conversations still live in memory.
func TestDirectNoStore(t *testing.T) {
	ts := dmServer(t, nil, nil, nil)
	alice := joinedJSON(t, ts, "/chat/lobby?as=a1&n=alice")
	bob := joinedJSON(t, ts, "/chat/lobby?as=b1&n=bob")
	gus := joinedJSON(t, ts, "/chat/lobby?name=gus")
	inRoom(t, ts, "lobby", "gus")
	alice.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "unstored"})
	if e := nextOf(t, bob, "direct"); e.Str("text") != "unstored" || e.Num("id") != 0 {
		t.Fatalf("bob got %v", e)
	}
	alice.SendJSON(map[string]any{"type": "history", "with": "bob"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "no_history" {
		t.Fatalf("history: %v", e)
	}
	if code, body, _ := ts.Get(t, "/api/direct?as=a1&with=bob"); code != 404 {
		t.Fatalf("GET /api/direct: %d %s", code, body)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "kept for gus"})
	if e := nextOf(t, gus, "direct"); e.Num("id") != 1 {
		t.Fatalf("gus got %v", e)
	}
	gus.SendJSON(map[string]any{"type": "history", "with": "alice"})
	if e := nextOf(t, gus, "history"); !slices.Equal(historyTexts(e), []string{"kept for gus"}) {
		t.Fatalf("gus's history: %v", e)
	}
}
