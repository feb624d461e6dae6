package chat_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// ignSession returns the session id of room's member called name.
func ignSession(t *testing.T, ts *chattest.Server, room, name string) uint64 {
	t.Helper()
	inRoom(t, ts, room, name)
	for _, u := range ts.Chat.Users(room) {
		if u.Name == name {
			return u.SessionID
		}
	}
	t.Fatalf("%s not in %s", name, room)
	return 0
}

// historyTexts returns the texts of a "history" event's messages.
func historyTexts(e chattest.Event) []string {
	var out []string
	msgs, _ := e["messages"].([]any)
	for _, m := range msgs {
		if mm, ok := m.(map[string]any); ok {
			s, _ := mm["text"].(string)
			out = append(out, s)
		}
	}
	return out
}

// ignoredNames lists sessionID's ignore list as account ids (an account)
// or names (a guest).
func ignoredNames(t *testing.T, ts *chattest.Server, sessionID uint64) []string {
	t.Helper()
	list, err := ts.Chat.Ignored(sessionID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range list {
		if it.Account != "" {
			out = append(out, it.Account)
		} else {
			out = append(out, "guest:"+it.Name)
		}
	}
	return out
}

// An ignoring member does not get the ignored users' messages, live (in
// batches of several senders too, small room and sweepers alike) or in
// replay and history pages; everyone else gets everything. Unignore
// brings them back. The account's list is stored and holds after a
// restart; entries for a guest end with the guest's session.
func TestIgnore(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(chat.Config) chat.Config
	}{
		{"room goroutine", func(c chat.Config) chat.Config { return chat.WithFanout(c, -1, 0) }},
		{"sweepers", func(c chat.Config) chat.Config { return chat.WithFanout(c, 2, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testIgnore(t, tc.cfg) })
	}
}

func testIgnore(t *testing.T, fan func(chat.Config) chat.Config) {
	hist := chattest.NewHistory()
	cfg := fan(chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Replay: 20})
	// A message "hold" holds the room goroutine in its hook until
	// released, so that the next messages queue up into one batch.
	entered, gate := make(chan struct{}), make(chan struct{})
	hooks := &chattest.Hooks{OnMessage: func(_ chat.User, m *chat.Message) chat.MessageResult {
		if m.Text == "hold" {
			close(entered)
			<-gate
		}
		return chat.MessageResult{}
	}}
	ts := chattest.Start(t, cfg, hooks, hist)
	alice := ts.Dial(t, "/chat/lobby?as=u-alice&n=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	alicePlain := ts.Dial(t, "/chat/lobby?as=u-alice&n=alice", "") // a second tab, plain text
	bob := ts.Dial(t, "/chat/lobby?as=u-bob&n=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	carol := ts.Dial(t, "/chat/lobby?name=carol", "")
	carol.SkipUntil("* carol joined")
	dave := ts.Dial(t, "/chat/lobby?as=u-dave&n=dave", chat.SubprotocolJSON)
	dave.ExpectEvent("welcome")
	chattest.Eventually(t, "five in", func() bool { return len(ts.Chat.Users("lobby")) == 5 })
	aliceID := ignSession(t, ts, "lobby", "alice")
	bobID := ignSession(t, ts, "lobby", "bob")
	carolID := ignSession(t, ts, "lobby", "carol")
	ignSession(t, ts, "lobby", "dave")

	if err := ts.Chat.Ignore(aliceID, chat.IgnoreTarget{Session: bobID}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Chat.Ignore(aliceID, chat.IgnoreTarget{Session: carolID}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Chat.Ignore(aliceID, chat.IgnoreTarget{Session: aliceID}); !errors.Is(err, chat.ErrIgnoreSelf) {
		t.Errorf("ignoring oneself: %v", err)
	}
	if got := ignoredNames(t, ts, aliceID); !slices.Equal(got, []string{"u-bob", "guest:carol"}) {
		t.Errorf("alice's list: %v", got)
	}
	if got := hist.Ignores(); !slices.Equal(got, []string{"u-alice"}) {
		t.Errorf("stored lists: %v", got)
	}

	// One message at a time, then a batch of three senders (appends held
	// so that they queue behind one another).
	bob.SendJSON(map[string]string{"type": "message", "text": "bob 1"})
	if e := nextMessage(t, dave); e.Str("text") != "bob 1" {
		t.Fatalf("dave got %v", e)
	}
	carol.Send("carol 1")
	if e := nextMessage(t, dave); e.Str("text") != "carol 1" {
		t.Fatalf("dave got %v", e)
	}
	dave.SendJSON(map[string]string{"type": "message", "text": "hold"})
	<-entered
	bob.SendJSON(map[string]string{"type": "message", "text": "bob 2"})
	chattest.Eventually(t, "one queued", func() bool { return ts.Chat.Queued("lobby") == 1 })
	dave.SendJSON(map[string]string{"type": "message", "text": "dave 2"})
	chattest.Eventually(t, "two queued", func() bool { return ts.Chat.Queued("lobby") == 2 })
	carol.Send("carol 2")
	chattest.Eventually(t, "three queued", func() bool { return ts.Chat.Queued("lobby") == 3 })
	close(gate)
	for _, want := range []string{"hold", "bob 2", "dave 2", "carol 2"} {
		if e := nextMessage(t, dave); e.Str("text") != want {
			t.Fatalf("dave got %v, want %s", e, want)
		}
	}
	for _, want := range []string{"hold", "dave 2"} {
		if e := nextMessage(t, alice); e.Str("text") != want {
			t.Fatalf("alice got %v, want %s", e, want)
		}
	}
	for _, want := range []string{"dave: hold", "dave: dave 2"} {
		line := alicePlain.SkipTo(func(s string) bool { return strings.Contains(s, ": ") && !strings.HasPrefix(s, "* ") })
		if !strings.HasSuffix(line, want) {
			t.Fatalf("alice's plain tab got %q, want %q", line, want)
		}
	}
	// bob sees carol's messages (his list is empty).
	nextMessage(t, bob) // his own
	if e := nextMessage(t, bob); e.Str("text") != "carol 1" {
		t.Errorf("bob got %v", e)
	}

	// Replay and a history page for another tab of alice: without bob's
	// and carol's messages; dave's replay has all.
	alice2 := ts.Dial(t, "/chat/lobby?as=u-alice&n=alice", chat.SubprotocolJSON)
	alice2.ExpectEvent("welcome")
	if got := historyTexts(nextOf(t, alice2, "history")); !slices.Equal(got, []string{"hold", "dave 2"}) {
		t.Errorf("alice's replay: %v", got)
	}
	alice2.SendJSON(map[string]any{"type": "history", "before": 0})
	if got := historyTexts(nextOf(t, alice2, "history")); !slices.Equal(got, []string{"hold", "dave 2"}) {
		t.Errorf("alice's history page: %v", got)
	}
	resume := ts.Dial(t, "/chat/lobby?as=u-alice&n=alice&since=0", chat.SubprotocolJSON)
	if got := historyTexts(nextOf(t, resume, "history")); !slices.Equal(got, []string{"hold", "dave 2"}) {
		t.Errorf("alice's resume: %v", got)
	}
	dave2 := ts.Dial(t, "/chat/lobby?as=u-dave&n=dave", chat.SubprotocolJSON)
	if got := historyTexts(nextOf(t, dave2, "history")); len(got) != 6 {
		t.Errorf("dave's replay: %v", got)
	}

	// Unignore: bob's next message reaches alice.
	if ok, err := ts.Chat.Unignore(aliceID, chat.IgnoreTarget{Account: "u-bob"}); !ok || err != nil {
		t.Fatalf("unignore: %v %v", ok, err)
	}
	if ok, err := ts.Chat.Unignore(aliceID, chat.IgnoreTarget{Account: "u-bob"}); ok || err != nil {
		t.Fatalf("second unignore: %v %v", ok, err)
	}
	bob.SendJSON(map[string]string{"type": "message", "text": "bob 3"})
	if e := nextMessage(t, alice); e.Str("text") != "bob 3" {
		t.Errorf("alice got %v", e)
	}
	if err := ts.Chat.Ignore(aliceID, chat.IgnoreTarget{Account: "u-bob"}); err != nil {
		t.Fatal(err)
	}

	// A guest's ignores end with its session; an entry for a guest ends
	// with the guest's session.
	if err := ts.Chat.Ignore(carolID, chat.IgnoreTarget{Session: bobID}); err != nil {
		t.Fatal(err)
	}
	if got := ignoredNames(t, ts, carolID); !slices.Equal(got, []string{"u-bob"}) {
		t.Errorf("carol's list: %v", got)
	}
	carol.Conn.Close()
	chattest.Eventually(t, "carol gone", func() bool { return !slices.Contains(ts.Names("lobby"), "carol") })
	if got := ignoredNames(t, ts, aliceID); !slices.Equal(got, []string{"u-bob"}) {
		t.Errorf("alice's list after carol left: %v", got)
	}
	carol = ts.Dial(t, "/chat/lobby?name=carol", "")
	carol.SkipUntil("* carol joined")
	carolID = ignSession(t, ts, "lobby", "carol")
	if got := ignoredNames(t, ts, carolID); len(got) != 0 {
		t.Errorf("carol's new session's list: %v", got)
	}
	bob.SendJSON(map[string]string{"type": "message", "text": "bob 4"})
	carol.SkipUntil("bob: bob 4")

	// A store failure changes nothing and says so.
	hist.FailIgnores(errors.New("disk full"))
	if err := ts.Chat.Ignore(aliceID, chat.IgnoreTarget{Account: "u-dave"}); err == nil {
		t.Error("ignore with a failing store: no error")
	}
	hist.FailIgnores(nil)
	if got := ignoredNames(t, ts, aliceID); !slices.Equal(got, []string{"u-bob"}) {
		t.Errorf("alice's list after a failed change: %v", got)
	}

	// A restart (a new server on the same store): alice's list holds.
	ts2 := chattest.Start(t, cfg, nil, hist)
	a := ts2.Dial(t, "/chat/lobby?as=u-alice&n=alice", chat.SubprotocolJSON)
	a.ExpectEvent("welcome")
	b := ts2.Dial(t, "/chat/lobby?as=u-bob&n=bob", chat.SubprotocolJSON)
	b.ExpectEvent("welcome")
	d := ts2.Dial(t, "/chat/lobby?as=u-dave&n=dave", chat.SubprotocolJSON)
	d.ExpectEvent("welcome")
	if got := ignoredNames(t, ts2, ignSession(t, ts2, "lobby", "alice")); !slices.Equal(got, []string{"u-bob"}) {
		t.Errorf("alice's list after the restart: %v", got)
	}
	b.SendJSON(map[string]string{"type": "message", "text": "bob 5"})
	if e := nextMessage(t, d); e.Str("text") != "bob 5" {
		t.Fatalf("dave got %v", e)
	}
	d.SendJSON(map[string]string{"type": "message", "text": "dave 3"})
	if e := nextMessage(t, a); e.Str("text") != "dave 3" {
		raw, _ := json.Marshal(e)
		t.Errorf("alice got %s", raw)
	}
}
