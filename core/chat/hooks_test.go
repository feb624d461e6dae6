package chat_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/core/ws"
)

func TestHooks(t *testing.T) {
	hist := chattest.NewHistory()
	var ts *chattest.Server
	hooks := &chattest.Hooks{
		OnJoin: func(u chat.User) chat.JoinResult {
			switch u.Name {
			case "mallory":
				return chat.JoinResult{Refuse: true, Reason: "banned"}
			case "shy":
				return chat.JoinResult{Name: "anon"}
			case "broken":
				return chat.JoinResult{Name: "has space"} // invalid: ignored
			}
			return chat.JoinResult{}
		},
		OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
			switch {
			case m.Text == "spam":
				return chat.MessageResult{Drop: true, Reason: "no spam please"}
			case m.Text == "silent":
				return chat.MessageResult{Drop: true}
			case strings.HasPrefix(m.Text, "/me "):
				return chat.MessageResult{Replace: true, Text: "*" + u.Name + " " + m.Text[4:] + "*"}
			case m.Text == "/who":
				// Host methods from inside a hook, on the room goroutine.
				var names []string
				for _, x := range ts.Chat.Users(u.Room) {
					names = append(names, x.Name)
				}
				_ = ts.Chat.Send(u.SessionID, "here: "+strings.Join(names, " "))
				return chat.MessageResult{Drop: true}
			case strings.HasPrefix(m.Text, "/nick "):
				if _, err := ts.Chat.Rename(u.SessionID, m.Text[6:]); err != nil {
					_ = ts.Chat.Send(u.SessionID, err.Error())
				}
				return chat.MessageResult{Drop: true}
			case m.Text == "/quit":
				_ = ts.Chat.Kick(u.SessionID, "bye")
				return chat.MessageResult{Drop: true}
			case m.Text == "/announce":
				_ = ts.Chat.Broadcast(u.Room, "announcement")
				return chat.MessageResult{Drop: true}
			case m.Text == "/redact1":
				if err := ts.Chat.Redact(u.Room, 1); err != nil {
					_ = ts.Chat.Send(u.SessionID, err.Error())
				}
				return chat.MessageResult{Drop: true}
			case m.Text == "/rooms":
				_ = ts.Chat.Send(u.SessionID, strings.Join(ts.Chat.Rooms(), ","))
				h, err := ts.Chat.History(u.Room, 1)
				if err == nil && len(h) == 1 {
					_ = ts.Chat.Send(u.SessionID, "last: "+h[0].Text)
				}
				return chat.MessageResult{Drop: true}
			}
			return chat.MessageResult{}
		},
	}
	ts = chattest.Start(t, chat.Config{WS: ws.Config{CloseTimeout: time.Minute}}, hooks, hist)

	m := ts.Dial(t, "/chat/r?name=mallory", chat.SubprotocolJSON)
	if e := m.ExpectEvent("error"); e.Str("code") != "refused" || e.Str("text") != "banned" {
		t.Fatalf("%v", e)
	}
	m.ExpectCloseReason(1008, "banned")

	a := ts.Dial(t, "/chat/r?name=alice", "")
	a.Expect("* alice joined")
	s := ts.Dial(t, "/chat/r?name=shy", "")
	s.Expect("* anon joined")
	a.Expect("* anon joined")
	br := ts.Dial(t, "/chat/r?name=broken", "")
	br.Expect("* broken joined")
	a.Expect("* broken joined")
	s.Expect("* broken joined")

	a.Send("hello")
	a.Expect("alice: hello")
	a.Send("spam")
	a.Expect("* no spam please")
	a.Send("silent")
	a.Send("/me waves")
	a.Expect("alice: *alice waves*")
	s.Expect("alice: hello", "alice: *alice waves*")
	if got := hist.All("r"); len(got) != 2 || got[1].Text != "*alice waves*" {
		t.Fatalf("stored %v", got)
	}

	a.Send("/who")
	a.Expect("* here: alice anon broken")
	a.Send("/rooms")
	a.Expect("* r", "* last: *alice waves*")

	a.Send("/nick anon") // taken: suffixed
	a.Expect("* alice is now known as anon-2")
	s.Expect("* alice is now known as anon-2")
	a.Send("/nick bad name")
	a.Expect("* invalid name: white space not allowed")
	a.Send("after rename")
	a.Expect("anon-2: after rename")
	if got := ts.Names("r"); !slices.Equal(got, []string{"anon-2", "anon", "broken"}) {
		t.Fatalf("Users = %v", got)
	}

	j := ts.Dial(t, "/chat/r?name=jay", chat.SubprotocolJSON)
	j.SkipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	a.Expect("* jay joined")
	a.Send("/nick alice")
	if e := j.ExpectEvent("rename"); e.Str("old") != "anon-2" || e.Str("new") != "alice" {
		t.Fatalf("%v", e)
	}
	if e := j.ExpectEvent("system"); e.Str("text") != "anon-2 is now known as alice" {
		t.Fatalf("%v", e)
	}
	a.Expect("* anon-2 is now known as alice")
	// A rename sends no presence event: clients apply the rename event.
	j.Send(`{"type":"presence"}`)
	if got := j.Read(); got != `{"type":"presence","room":"r","users":["alice","anon","broken","jay"]}` {
		t.Fatalf("presence %s", got)
	}

	a.Send("/redact1")
	if e := j.ExpectEvent("redact"); e.Num("id") != 1 || e.Str("room") != "r" {
		t.Fatalf("%v", e)
	}
	a.Send("/redact1")
	a.Expect("* redact r/1: no such message")

	a.Send("/announce")
	a.Expect("* announcement")
	if e := j.ExpectEvent("system"); e.Str("text") != "announcement" {
		t.Fatalf("%v", e)
	}

	s.Send("/quit")
	// The kicked member leaves the room at once, even though its client has
	// not finished the closing handshake (CloseTimeout is a minute here).
	a.Expect("* anon left")
	s.SkipTo(func(l string) bool { return l == "* bye" })
	s.ExpectCloseReason(1000, "bye")
	chattest.Eventually(t, "hooks saw the leave", func() bool { return slices.Contains(hooks.Events(), "leave r anon") })
	ev := hooks.Events()
	for _, want := range []string{"join r mallory", "join r shy", "rename anon-2 alice", "rename alice anon-2"} {
		if !slices.Contains(ev, want) {
			t.Errorf("hooks did not see %q: %v", want, ev)
		}
	}
}

func TestHostErrors(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	srv := ts.Chat
	if err := srv.Send(999, "x"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("Send: %v", err)
	}
	if _, err := srv.Rename(999, "x"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("Rename: %v", err)
	}
	if err := srv.Kick(999, ""); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("Kick: %v", err)
	}
	if err := srv.Broadcast("nowhere", "x"); !errors.Is(err, chat.ErrNoSuchRoom) {
		t.Errorf("Broadcast: %v", err)
	}
	if _, err := srv.History("r", 5); !errors.Is(err, chat.ErrNoHistory) {
		t.Errorf("History: %v", err)
	}
	if err := srv.Redact("r", 1); !errors.Is(err, chat.ErrNoHistory) {
		t.Errorf("Redact: %v", err)
	}
	if srv.Users("nowhere") != nil || srv.Rooms() != nil {
		t.Error("empty server lists users or rooms")
	}
	// From outside a hook too: Host methods work on live members.
	c := ts.Dial(t, "/chat/r?name=x", "")
	c.Expect("* x joined")
	users := srv.Users("r")
	if len(users) != 1 || users[0].Name != "x" || users[0].Room != "r" || users[0].SessionID == 0 || users[0].Addr == "" {
		t.Fatalf("Users = %+v", users)
	}
	if got, err := srv.Rename(users[0].SessionID, "y"); err != nil || got != "y" {
		t.Fatalf("Rename = %q, %v", got, err)
	}
	c.Expect("* x is now known as y")
	if err := srv.Send(users[0].SessionID, "psst"); err != nil {
		t.Fatal(err)
	}
	c.Expect("* psst")
}

func TestHookTimeMetrics(t *testing.T) {
	hooks := &chattest.Hooks{}
	ts := chattest.Start(t, chat.Config{}, hooks, chattest.NewHistory())
	c := ts.Dial(t, "/?name=a", "")
	c.Expect("* a joined")
	c.Send("x")
	c.Expect("a: x")
	_, body, _ := ts.Get(t, "/metrics")
	for _, want := range []string{
		`moonchat_hook_duration_seconds_count{hook="join"} 1`,
		`moonchat_hook_duration_seconds_count{hook="message"} 1`,
		"moonchat_history_append_duration_seconds_count 1",
		"moonchat_messages_in_total 1",
		"moonchat_messages_out_total 1",
		"moonchat_connections 1",
		"moonchat_rooms 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// Observed right after the writes: the client may read first.
	for _, want := range []string{
		"moonchat_broadcast_duration_seconds_count 2\n", // the join notice, the message
		"moonchat_message_delay_seconds_count 1\n",
	} {
		chattest.Eventually(t, want, func() bool {
			_, body, _ := ts.Get(t, "/metrics")
			return strings.Contains(body, want)
		})
	}
}

// A hook's MessageResult.Code reaches JSON clients when the protocol lists
// it; anything else is reported as "dropped". Plain text shows the reason.
func TestDropCodes(t *testing.T) {
	hooks := &chattest.Hooks{
		OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
			code, reason, _ := strings.Cut(m.Text, " ")
			if code == "-" {
				code = ""
			}
			return chat.MessageResult{Drop: true, Reason: reason, Code: code}
		},
	}
	ts := chattest.Start(t, chat.Config{}, hooks, chattest.NewHistory())
	j := ts.Dial(t, "/chat/r?name=j", chat.SubprotocolJSON)
	j.SkipTo(func(s string) bool { return strings.Contains(s, `"j joined"`) })
	p := ts.Dial(t, "/chat/r?name=p", "")
	p.Expect("* p joined")
	for _, tc := range []struct{ code, want string }{
		{"unknown_command", "unknown_command"},
		{"-", "dropped"},
		{"dropped", "dropped"},
		{"flood", "flood"},
		{"no_such_code", "dropped"},
		{"Unknown_Command", "dropped"}, // codes are exact
	} {
		j.Send(`{"type":"message","text":"` + tc.code + ` why not"}`)
		e := j.SkipTo(func(s string) bool { return strings.Contains(s, `"type":"error"`) })
		want := `{"type":"error","code":"` + tc.want + `","text":"why not"}`
		if e != want {
			t.Errorf("hook code %q: got %s, want %s", tc.code, e, want)
		}
		p.Send(tc.code + " why not")
		p.Expect("* why not")
	}
}

// Members still connected at Shutdown get their Leave hook, exactly once
// per join, in every room.
func TestShutdownCallsLeave(t *testing.T) {
	hooks := &chattest.Hooks{}
	ts := chattest.Start(t, chat.Config{}, hooks, chattest.NewHistory())
	a := ts.Dial(t, "/chat/r1?name=a", "")
	a.Expect("* a joined")
	b := ts.Dial(t, "/chat/r1?name=b", chat.SubprotocolJSON)
	b.SkipTo(func(s string) bool { return strings.Contains(s, `"b joined"`) })
	c := ts.Dial(t, "/chat/r2?name=c", "")
	c.Expect("* c joined")
	gone := ts.Dial(t, "/chat/r2?name=gone", "")
	gone.Expect("* gone joined")
	_ = gone.Conn.Close() // leaves before the shutdown: its Leave must not repeat
	c.SkipTo(func(s string) bool { return s == "* gone left" })

	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.Chat.Shutdown(ctx) }()
	// The clients answer the close handshake while reading.
	a.ExpectCloseReason(1001, "")
	b.ExpectCloseReason(1001, "")
	c.ExpectCloseReason(1001, "")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	var leaves []string
	for _, e := range hooks.Events() {
		if strings.HasPrefix(e, "leave ") {
			leaves = append(leaves, e)
		}
	}
	slices.Sort(leaves)
	want := []string{"leave r1 a", "leave r1 b", "leave r2 c", "leave r2 gone"}
	if !slices.Equal(leaves, want) {
		t.Fatalf("leave hooks %q, want %q", leaves, want)
	}
}

// blockingLeave is a Hooks whose Leave waits for its context: it stands
// for a script that does not return.
type blockingLeave struct {
	chattest.Hooks
	cancelled chan struct{}
}

func (h *blockingLeave) Leave(ctx context.Context, u chat.User) error {
	<-ctx.Done()
	h.cancelled <- struct{}{}
	return nil
}

// A Leave hook that does not return cannot hold Shutdown past its context:
// the hook's context is cancelled when the shutdown's ends.
func TestShutdownLeaveBoundedByContext(t *testing.T) {
	hooks := &blockingLeave{cancelled: make(chan struct{}, 1)}
	ts := chattest.Start(t, chat.Config{}, hooks, nil)
	a := ts.Dial(t, "/chat/r?name=a", "")
	a.Expect("* a joined")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.Chat.Shutdown(ctx) }()
	select {
	case <-hooks.cancelled:
	case <-time.After(chattest.Wait):
		t.Fatal("the Leave hook's context was not cancelled when the shutdown's ended")
	}
	select {
	case <-done:
	case <-time.After(chattest.Wait):
		t.Fatal("Shutdown did not return")
	}
	a.ExpectCloseReason(1001, "")
}
