package chat_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// gatedJoins is a join hook that stops the room goroutine inside the join
// of the names in gate until release is called, so that the test can queue
// more operations behind it and have them processed in one go.
type gatedJoins struct {
	gate    map[string]bool
	entered chan string
	open    chan struct{}
}

func newGatedJoins(names ...string) *gatedJoins {
	g := &gatedJoins{gate: map[string]bool{}, entered: make(chan string, len(names)), open: make(chan struct{})}
	for _, n := range names {
		g.gate[n] = true
	}
	return g
}

func (g *gatedJoins) join(u chat.User) chat.JoinResult {
	if g.gate[u.Name] {
		g.entered <- u.Name
		<-g.open
	}
	return chat.JoinResult{}
}

// said has from (a JSON client named name) say text and checks that it is the next
// frame of every plain and JSON client given.
func said(t *testing.T, from *chattest.Client, name, text string, plain, json []*chattest.Client) {
	t.Helper()
	from.SendJSON(map[string]string{"type": "message", "text": text})
	for _, c := range plain {
		c.Expect(name + ": " + text)
	}
	for _, c := range json {
		if m := c.ExpectEvent("message"); m.Str("text") != text {
			t.Fatalf("message: %v, want %q", m, text)
		}
	}
}

// fire advances clock by d and checks that exactly one timer, the room's
// announce timer, fired.
func fire(t *testing.T, clock *chattest.Clock, d time.Duration) {
	t.Helper()
	if n := clock.Advance(d); n != 1 {
		t.Fatalf("%d timers fired, want the announce timer", n)
	}
}

func TestCoalescedAnnouncements(t *testing.T) {
	g1 := newGatedJoins("carol")
	g2 := newGatedJoins("frank")
	hooks := &chattest.Hooks{OnJoin: func(u chat.User) chat.JoinResult {
		if u.Name == "frank" {
			return g2.join(u)
		}
		return g1.join(u)
	}}
	// The clock decides when the interval has passed: nothing held is
	// announced before Advance, whatever the machine's speed.
	const interval = time.Second
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{AnnounceBatchMembers: 2, AnnounceInterval: interval, Clock: clock}, hooks, nil)

	// Up to the threshold, every change is announced at once.
	alice := ts.Dial(t, "/chat/big?name=alice", "")
	alice.Expect("* alice joined")
	bob := ts.Dial(t, "/chat/big?name=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	bob.ExpectEvent("history")
	bob.Expect(`{"type":"presence","room":"big","users":["alice","bob"]}`,
		`{"type":"presence","room":"big","joined":["bob"]}`)
	bob.ExpectEvent("system")
	alice.Expect("* bob joined")

	// Three joins in one interval: carol's join is held in its hook until
	// dave's and erin's are queued behind it.
	carol := ts.Dial(t, "/chat/big?name=carol", chat.SubprotocolJSON)
	<-g1.entered
	// A dial returns with the handshake, which may be before the join is
	// queued: wait for dave's before dialing erin, so the order is fixed.
	dave := ts.Dial(t, "/chat/big?name=dave", "")
	chattest.Eventually(t, "dave's join queued", func() bool { return ts.Chat.Queued("big") >= 1 })
	erin := ts.Dial(t, "/chat/big?name=erin", chat.SubprotocolJSON)
	chattest.Eventually(t, "dave's and erin's joins queued", func() bool { return ts.Chat.Queued("big") >= 2 })
	close(g1.open)

	// Newcomers get their own write first: the full list is the names
	// before the hold began plus themselves.
	if got := carol.ReadEvent(); got.Str("type") != "welcome" || got.Str("user") != "carol" {
		t.Fatalf("carol: %v", got)
	}
	carol.ExpectEvent("history")
	carol.Expect(`{"type":"presence","room":"big","users":["alice","bob","carol"]}`)
	erin.ExpectEvent("welcome")
	erin.ExpectEvent("history")
	erin.Expect(`{"type":"presence","room":"big","users":["alice","bob","erin"]}`)

	// Before the interval has passed the joins are not announced: the
	// next frame everyone gets is a message.
	said(t, bob, "bob", "before", []*chattest.Client{alice, dave}, []*chattest.Client{bob, carol, erin})

	// Then, when the interval has passed, one coalesced notice and one
	// delta, to everyone.
	fire(t, clock, interval)
	const joined = "carol, dave and erin joined"
	for _, c := range []*chattest.Client{bob, carol, erin} {
		c.Expect(`{"type":"presence","room":"big","joined":["carol","dave","erin"]}`)
		if s := c.ExpectEvent("system"); s.Str("text") != joined {
			t.Fatalf("system: %v", s)
		}
	}
	alice.Expect("* " + joined)
	dave.Expect("* " + joined)
	// ... and nothing else about those joins: the next frame is a message.
	said(t, bob, "bob", "hi", []*chattest.Client{alice, dave}, []*chattest.Client{bob, carol, erin})

	// frank joins and leaves within one interval while dave and erin
	// leave: frank is in neither list, nor in the notice.
	frank, _, err := ts.TryDial("/chat/big?name=frank", "")
	if err != nil {
		t.Fatal(err)
	}
	<-g2.entered
	for i, c := range []*websocket.Conn{dave.Conn, erin.Conn, frank} {
		_ = c.Close() // one at a time, so that the leaves queue in this order
		chattest.Eventually(t, "leaves queued", func() bool { return ts.Chat.Queued("big") >= i+1 })
	}
	close(g2.open)
	chattest.Eventually(t, "the leaves processed", func() bool {
		return slices.Equal(ts.Names("big"), []string{"alice", "bob", "carol"})
	})
	said(t, bob, "bob", "during", []*chattest.Client{alice}, []*chattest.Client{bob, carol}) // nothing announced yet
	fire(t, clock, interval)
	const left = "dave and erin left"
	alice.Expect("* " + left)
	for _, c := range []*chattest.Client{bob, carol} {
		c.Expect(`{"type":"presence","room":"big","left":["dave","erin"]}`)
		if s := c.ExpectEvent("system"); s.Str("text") != left {
			t.Fatalf("system: %v", s)
		}
	}
	carol.Send(`{"type":"presence"}`)
	carol.Expect(`{"type":"presence","room":"big","users":["alice","bob","carol"]}`)
	if got := ts.Names("big"); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("members %v", got)
	}

	// Back at the threshold, changes are announced at once again.
	_ = carol.Conn.Close()
	alice.Expect("* carol left")
}

func TestAnnounceHeldNotWaitedFor(t *testing.T) {
	// Until the clock moves the held notices do not come, yet a newcomer
	// gets its welcome, replay and list at once.
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{AnnounceBatchMembers: 1, AnnounceInterval: time.Hour, Clock: clock, Replay: 50}, nil, chattest.NewHistory())
	alice := ts.Dial(t, "/chat/r?name=alice", "")
	alice.Expect("* alice joined")
	alice.Send("before")
	alice.Expect("alice: before")
	bob := ts.Dial(t, "/chat/r?name=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	if h := bob.ExpectEvent("history"); len(h["messages"].([]any)) != 1 {
		t.Fatalf("history: %v", h)
	}
	bob.Expect(`{"type":"presence","room":"r","users":["alice","bob"]}`)
	bob.Send(`{"type":"message","text":"hi"}`)
	alice.Expect("bob: hi") // no "* bob joined" before it
	if m := bob.ExpectEvent("message"); m.Str("text") != "hi" {
		t.Fatalf("message: %v", m)
	}
	// The held notice comes when the interval has passed.
	fire(t, clock, time.Hour)
	alice.Expect("* bob joined")
	bob.Expect(`{"type":"presence","room":"r","joined":["bob"]}`)
	if s := bob.ExpectEvent("system"); s.Str("text") != "bob joined" {
		t.Fatalf("system: %v", s)
	}
}

func TestAnnounceIntervalOff(t *testing.T) {
	ts := chattest.Start(t, chat.Config{AnnounceBatchMembers: 1, AnnounceInterval: 0}, nil, nil)
	alice := ts.Dial(t, "/chat/r?name=alice", "")
	alice.Expect("* alice joined")
	for _, n := range []string{"bob", "carol"} {
		c := ts.Dial(t, "/chat/r?name="+n, "")
		c.Expect("* " + n + " joined")
		alice.Expect("* " + n + " joined")
	}
}

func TestCoalescedPresenceConverges(t *testing.T) {
	// Joins and leaves race with each other and with 200ms announcement
	// intervals; every stayer's list, built from its full list and the
	// deltas, must end up as the server's.
	ts := chattest.Start(t, chat.Config{AnnounceBatchMembers: 2, AnnounceInterval: 200 * time.Millisecond}, nil, nil)
	const stayers, churners = 6, 30
	var mu sync.Mutex
	lists := make([][]string, stayers)
	failed := make([]error, stayers)
	for i := range stayers {
		c, _, err := ts.TryDial(fmt.Sprintf("/chat/p?name=s%d", i), chat.SubprotocolJSON)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(4 * chattest.Wait))
			for {
				_, data, err := c.ReadMessage()
				var ev struct {
					Type                string
					Users, Joined, Left []string
				}
				if err == nil {
					err = json.Unmarshal(data, &ev)
				}
				mu.Lock()
				if err != nil {
					failed[i] = err
					mu.Unlock()
					return
				}
				list := lists[i]
				switch {
				case ev.Type == "presence" && ev.Users != nil:
					list = slices.Clone(ev.Users)
				case ev.Type == "presence":
					list = chattest.ApplyPresence(list, ev.Left, ev.Joined)
				}
				lists[i] = list
				mu.Unlock()
			}
		}()
	}
	var churn sync.WaitGroup
	for i := range churners {
		churn.Add(1)
		go func() {
			defer churn.Done()
			c, _, err := ts.TryDial(fmt.Sprintf("/chat/p?name=c%d", i%7), chat.SubprotocolJSON)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			// Every churner waits for its welcome, so that all joins are
			// done when churn.Wait returns (leaves may still be queued).
			_ = c.SetReadDeadline(time.Now().Add(chattest.Wait))
			if _, _, err := c.ReadMessage(); err != nil {
				t.Errorf("read: %v", err)
			}
			if i%3 != 0 {
				_ = c.Close()
			} else {
				t.Cleanup(func() { _ = c.Close() }) // a third of them stay
			}
		}()
	}
	churn.Wait()
	if t.Failed() {
		return
	}
	chattest.Eventually(t, "churn settled", func() bool {
		return len(ts.Names("p")) == stayers+churners/3
	})
	sorted := func(l []string) []string { return slices.Sorted(slices.Values(l)) }
	want := sorted(ts.Names("p"))
	deadline := time.Now().Add(chattest.Wait)
	for i := range stayers {
		for {
			mu.Lock()
			got, err := sorted(lists[i]), failed[i]
			mu.Unlock()
			if err != nil {
				t.Fatalf("s%d: %v", i, err)
			}
			if slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("s%d: applied deltas give %v, server says %v", i, got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if now := sorted(ts.Names("p")); !slices.Equal(now, want) {
		t.Fatalf("members changed after settling: %v, then %v", want, now)
	}
}
