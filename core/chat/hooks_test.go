package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHooks(t *testing.T) {
	hist := newMemHistory()
	var ts *testServer
	hooks := &testHooks{
		join: func(u User) JoinResult {
			switch u.Name {
			case "mallory":
				return JoinResult{Refuse: true, Reason: "banned"}
			case "shy":
				return JoinResult{Name: "anon"}
			case "broken":
				return JoinResult{Name: "has space"} // invalid: ignored
			}
			return JoinResult{}
		},
		message: func(u User, m *Message) MessageResult {
			switch {
			case m.Text == "spam":
				return MessageResult{Drop: true, Reason: "no spam please"}
			case m.Text == "silent":
				return MessageResult{Drop: true}
			case strings.HasPrefix(m.Text, "/me "):
				return MessageResult{Replace: true, Text: "*" + u.Name + " " + m.Text[4:] + "*"}
			case m.Text == "/who":
				// Host methods from inside a hook, on the room goroutine.
				var names []string
				for _, x := range ts.srv.Users(u.Room) {
					names = append(names, x.Name)
				}
				_ = ts.srv.Send(u.SessionID, "here: "+strings.Join(names, " "))
				return MessageResult{Drop: true}
			case strings.HasPrefix(m.Text, "/nick "):
				if _, err := ts.srv.Rename(u.SessionID, m.Text[6:]); err != nil {
					_ = ts.srv.Send(u.SessionID, err.Error())
				}
				return MessageResult{Drop: true}
			case m.Text == "/quit":
				_ = ts.srv.Kick(u.SessionID, "bye")
				return MessageResult{Drop: true}
			case m.Text == "/announce":
				_ = ts.srv.Broadcast(u.Room, "announcement")
				return MessageResult{Drop: true}
			case m.Text == "/redact1":
				if err := ts.srv.Redact(u.Room, 1); err != nil {
					_ = ts.srv.Send(u.SessionID, err.Error())
				}
				return MessageResult{Drop: true}
			case m.Text == "/rooms":
				_ = ts.srv.Send(u.SessionID, strings.Join(ts.srv.Rooms(), ","))
				h, err := ts.srv.History(u.Room, 1)
				if err == nil && len(h) == 1 {
					_ = ts.srv.Send(u.SessionID, "last: "+h[0].Text)
				}
				return MessageResult{Drop: true}
			}
			return MessageResult{}
		},
	}
	ts = startServer(t, Config{WS: wsConfig{CloseTimeout: time.Minute}}, hooks, hist)

	m := ts.dial(t, "/chat/r?name=mallory", SubprotocolJSON)
	if e := m.expectEvent("error"); e.str("code") != "refused" || e.str("text") != "banned" {
		t.Fatalf("%v", e)
	}
	m.expectClose(1008, "banned")

	a := ts.dial(t, "/chat/r?name=alice", "")
	a.expect("* alice joined")
	s := ts.dial(t, "/chat/r?name=shy", "")
	s.expect("* anon joined")
	a.expect("* anon joined")
	br := ts.dial(t, "/chat/r?name=broken", "")
	br.expect("* broken joined")
	a.expect("* broken joined")
	s.expect("* broken joined")

	a.send("hello")
	a.expect("alice: hello")
	a.send("spam")
	a.expect("* no spam please")
	a.send("silent")
	a.send("/me waves")
	a.expect("alice: *alice waves*")
	s.expect("alice: hello", "alice: *alice waves*")
	if got := hist.all("r"); len(got) != 2 || got[1].Text != "*alice waves*" {
		t.Fatalf("stored %v", got)
	}

	a.send("/who")
	a.expect("* here: alice anon broken")
	a.send("/rooms")
	a.expect("* r", "* last: *alice waves*")

	a.send("/nick anon") // taken: suffixed
	a.expect("* alice is now known as anon-2")
	s.expect("* alice is now known as anon-2")
	a.send("/nick bad name")
	a.expect("* invalid name: white space not allowed")
	a.send("after rename")
	a.expect("anon-2: after rename")
	if got := ts.names("r"); !slices.Equal(got, []string{"anon-2", "anon", "broken"}) {
		t.Fatalf("Users = %v", got)
	}

	j := ts.dial(t, "/chat/r?name=jay", SubprotocolJSON)
	j.skipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	a.expect("* jay joined")
	a.send("/nick alice")
	if e := j.expectEvent("rename"); e.str("old") != "anon-2" || e.str("new") != "alice" {
		t.Fatalf("%v", e)
	}
	if e := j.expectEvent("system"); e.str("text") != "anon-2 is now known as alice" {
		t.Fatalf("%v", e)
	}
	a.expect("* anon-2 is now known as alice")
	// A rename sends no presence event: clients apply the rename event.
	j.send(`{"type":"presence"}`)
	if got := j.read(); got != `{"type":"presence","room":"r","users":["alice","anon","broken","jay"]}` {
		t.Fatalf("presence %s", got)
	}

	a.send("/redact1")
	if e := j.expectEvent("redact"); e.num("id") != 1 || e.str("room") != "r" {
		t.Fatalf("%v", e)
	}
	a.send("/redact1")
	a.expect("* redact r/1: no such message")

	a.send("/announce")
	a.expect("* announcement")
	if e := j.expectEvent("system"); e.str("text") != "announcement" {
		t.Fatalf("%v", e)
	}

	s.send("/quit")
	// The kicked member leaves the room at once, even though its client has
	// not finished the closing handshake (CloseTimeout is a minute here).
	a.expect("* anon left")
	s.skipTo(func(l string) bool { return l == "* bye" })
	s.expectClose(1000, "bye")
	eventually(t, "hooks saw the leave", func() bool { return slices.Contains(hooks.seen(), "leave r anon") })
	ev := hooks.seen()
	for _, want := range []string{"join r mallory", "join r shy", "rename anon-2 alice", "rename alice anon-2"} {
		if !slices.Contains(ev, want) {
			t.Errorf("hooks did not see %q: %v", want, ev)
		}
	}
}

func TestHostErrors(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	srv := ts.srv
	if err := srv.Send(999, "x"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Send: %v", err)
	}
	if _, err := srv.Rename(999, "x"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Rename: %v", err)
	}
	if err := srv.Kick(999, ""); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Kick: %v", err)
	}
	if err := srv.Broadcast("nowhere", "x"); !errors.Is(err, ErrNoSuchRoom) {
		t.Errorf("Broadcast: %v", err)
	}
	if _, err := srv.History("r", 5); !errors.Is(err, ErrNoHistory) {
		t.Errorf("History: %v", err)
	}
	if err := srv.Redact("r", 1); !errors.Is(err, ErrNoHistory) {
		t.Errorf("Redact: %v", err)
	}
	if srv.Users("nowhere") != nil || srv.Rooms() != nil {
		t.Error("empty server lists users or rooms")
	}
	// From outside a hook too: Host methods work on live members.
	c := ts.dial(t, "/chat/r?name=x", "")
	c.expect("* x joined")
	users := srv.Users("r")
	if len(users) != 1 || users[0].Name != "x" || users[0].Room != "r" || users[0].SessionID == 0 || users[0].Addr == "" {
		t.Fatalf("Users = %+v", users)
	}
	if got, err := srv.Rename(users[0].SessionID, "y"); err != nil || got != "y" {
		t.Fatalf("Rename = %q, %v", got, err)
	}
	c.expect("* x is now known as y")
	if err := srv.Send(users[0].SessionID, "psst"); err != nil {
		t.Fatal(err)
	}
	c.expect("* psst")
}

func TestHookTimeMetrics(t *testing.T) {
	hooks := &testHooks{}
	ts := startServer(t, Config{}, hooks, newMemHistory())
	c := ts.dial(t, "/?name=a", "")
	c.expect("* a joined")
	c.send("x")
	c.expect("a: x")
	_, body, _ := ts.get(t, "/metrics")
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
		eventually(t, want, func() bool {
			_, body, _ := ts.get(t, "/metrics")
			return strings.Contains(body, want)
		})
	}
}

// A hook's MessageResult.Code reaches JSON clients when the protocol lists
// it; anything else is reported as "dropped". Plain text shows the reason.
func TestDropCodes(t *testing.T) {
	hooks := &testHooks{
		message: func(u User, m *Message) MessageResult {
			code, reason, _ := strings.Cut(m.Text, " ")
			if code == "-" {
				code = ""
			}
			return MessageResult{Drop: true, Reason: reason, Code: code}
		},
	}
	ts := startServer(t, Config{}, hooks, newMemHistory())
	j := ts.dial(t, "/chat/r?name=j", SubprotocolJSON)
	j.skipTo(func(s string) bool { return strings.Contains(s, `"j joined"`) })
	p := ts.dial(t, "/chat/r?name=p", "")
	p.expect("* p joined")
	for _, tc := range []struct{ code, want string }{
		{"unknown_command", "unknown_command"},
		{"-", "dropped"},
		{"dropped", "dropped"},
		{"flood", "flood"},
		{"no_such_code", "dropped"},
		{"Unknown_Command", "dropped"}, // codes are exact
	} {
		j.send(`{"type":"message","text":"` + tc.code + ` why not"}`)
		e := j.skipTo(func(s string) bool { return strings.Contains(s, `"type":"error"`) })
		want := `{"type":"error","code":"` + tc.want + `","text":"why not"}`
		if e != want {
			t.Errorf("hook code %q: got %s, want %s", tc.code, e, want)
		}
		p.send(tc.code + " why not")
		p.expect("* why not")
	}
}

// Members still connected at Shutdown get their Leave hook, exactly once
// per join, in every room.
func TestShutdownCallsLeave(t *testing.T) {
	hooks := &testHooks{}
	ts := startServer(t, Config{}, hooks, newMemHistory())
	a := ts.dial(t, "/chat/r1?name=a", "")
	a.expect("* a joined")
	b := ts.dial(t, "/chat/r1?name=b", SubprotocolJSON)
	b.skipTo(func(s string) bool { return strings.Contains(s, `"b joined"`) })
	c := ts.dial(t, "/chat/r2?name=c", "")
	c.expect("* c joined")
	gone := ts.dial(t, "/chat/r2?name=gone", "")
	gone.expect("* gone joined")
	_ = gone.c.Close() // leaves before the shutdown: its Leave must not repeat
	c.skipTo(func(s string) bool { return s == "* gone left" })

	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	// The clients answer the close handshake while reading.
	a.expectClose(1001, "")
	b.expectClose(1001, "")
	c.expectClose(1001, "")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	var leaves []string
	for _, e := range hooks.seen() {
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
	testHooks
	cancelled chan struct{}
}

func (h *blockingLeave) Leave(ctx context.Context, u User) error {
	<-ctx.Done()
	h.cancelled <- struct{}{}
	return nil
}

// A Leave hook that does not return cannot hold Shutdown past its context:
// the hook's context is cancelled when the shutdown's ends.
func TestShutdownLeaveBoundedByContext(t *testing.T) {
	hooks := &blockingLeave{cancelled: make(chan struct{}, 1)}
	ts := startServer(t, Config{}, hooks, nil)
	a := ts.dial(t, "/chat/r?name=a", "")
	a.expect("* a joined")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	select {
	case <-hooks.cancelled:
	case <-time.After(waitTime):
		t.Fatal("the Leave hook's context was not cancelled when the shutdown's ended")
	}
	select {
	case <-done:
	case <-time.After(waitTime):
		t.Fatal("Shutdown did not return")
	}
	a.expectClose(1001, "")
}
