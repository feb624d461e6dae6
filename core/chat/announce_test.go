package chat

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestAnnounceText(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"alice"}, "alice joined"},
		{[]string{"alice", "bob"}, "alice and bob joined"},
		{[]string{"alice", "bob", "carol"}, "alice, bob and carol joined"},
		{[]string{"alice", "bob", "carol", "dave"}, "alice, bob, carol and 1 other joined"},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o"}, "a, b, c and 12 others joined"},
	}
	for _, tt := range tests {
		if got := announceText(tt.names, "joined"); got != tt.want {
			t.Errorf("announceText(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
}

func TestAnnounceConfig(t *testing.T) {
	cfg, err := testLimits(Config{}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AnnounceBatchMembers != 0 || cfg.AnnounceInterval != 0 {
		t.Fatalf("zero (never coalesce) not kept: %d %v", cfg.AnnounceBatchMembers, cfg.AnnounceInterval)
	}
	if _, err := (testLimits(Config{AnnounceBatchMembers: -1})).withDefaults(); err == nil {
		t.Fatal("negative AnnounceBatchMembers accepted")
	}
	if _, err := New(testLimits(Config{AnnounceBatchMembers: -1}), nil, nil); err == nil {
		t.Fatal("New accepted a negative AnnounceBatchMembers")
	}
}

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

func (g *gatedJoins) join(u User) JoinResult {
	if g.gate[u.Name] {
		g.entered <- u.Name
		<-g.open
	}
	return JoinResult{}
}

// said has from (a JSON client named name) say text and checks that it is the next
// frame of every plain and JSON client given.
func said(t *testing.T, from *client, name, text string, plain, json []*client) {
	t.Helper()
	from.sendJSON(map[string]string{"type": "message", "text": text})
	for _, c := range plain {
		c.expect(name + ": " + text)
	}
	for _, c := range json {
		if m := c.expectEvent("message"); m.str("text") != text {
			t.Fatalf("message: %v, want %q", m, text)
		}
	}
}

// fire advances the clock by d and checks that exactly one timer, the
// room's announce timer, fired.
func (c *fakeClock) fire(t *testing.T, d time.Duration) {
	t.Helper()
	if n := c.Advance(d); n != 1 {
		t.Fatalf("%d timers fired, want the announce timer", n)
	}
}

// queued returns how many operations wait in room's queue.
func (ts *testServer) queued(room string) int {
	ts.srv.mu.Lock()
	r := ts.srv.rooms[room]
	ts.srv.mu.Unlock()
	if r == nil {
		return 0
	}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return len(r.queue)
}

func TestCoalescedAnnouncements(t *testing.T) {
	g1 := newGatedJoins("carol")
	g2 := newGatedJoins("frank")
	hooks := &testHooks{join: func(u User) JoinResult {
		if u.Name == "frank" {
			return g2.join(u)
		}
		return g1.join(u)
	}}
	// The clock decides when the interval has passed: nothing held is
	// announced before Advance, whatever the machine's speed.
	const interval = time.Second
	clock := &fakeClock{}
	ts := startServer(t, Config{AnnounceBatchMembers: 2, AnnounceInterval: interval, Clock: clock}, hooks, nil)

	// Up to the threshold, every change is announced at once.
	alice := ts.dial(t, "/chat/big?name=alice", "")
	alice.expect("* alice joined")
	bob := ts.dial(t, "/chat/big?name=bob", SubprotocolJSON)
	bob.expectEvent("welcome")
	bob.expectEvent("history")
	bob.expect(`{"type":"presence","room":"big","users":["alice","bob"]}`,
		`{"type":"presence","room":"big","joined":["bob"]}`)
	bob.expectEvent("system")
	alice.expect("* bob joined")

	// Three joins in one interval: carol's join is held in its hook until
	// dave's and erin's are queued behind it.
	carol := ts.dial(t, "/chat/big?name=carol", SubprotocolJSON)
	<-g1.entered
	// A dial returns with the handshake, which may be before the join is
	// queued: wait for dave's before dialing erin, so the order is fixed.
	dave := ts.dial(t, "/chat/big?name=dave", "")
	eventually(t, "dave's join queued", func() bool { return ts.queued("big") >= 1 })
	erin := ts.dial(t, "/chat/big?name=erin", SubprotocolJSON)
	eventually(t, "dave's and erin's joins queued", func() bool { return ts.queued("big") >= 2 })
	close(g1.open)

	// Newcomers get their own write first: the full list is the names
	// before the hold began plus themselves.
	if got := carol.readEvent(); got.str("type") != "welcome" || got.str("user") != "carol" {
		t.Fatalf("carol: %v", got)
	}
	carol.expectEvent("history")
	carol.expect(`{"type":"presence","room":"big","users":["alice","bob","carol"]}`)
	erin.expectEvent("welcome")
	erin.expectEvent("history")
	erin.expect(`{"type":"presence","room":"big","users":["alice","bob","erin"]}`)

	// Before the interval has passed the joins are not announced: the
	// next frame everyone gets is a message.
	said(t, bob, "bob", "before", []*client{alice, dave}, []*client{bob, carol, erin})

	// Then, when the interval has passed, one coalesced notice and one
	// delta, to everyone.
	clock.fire(t, interval)
	const joined = "carol, dave and erin joined"
	for _, c := range []*client{bob, carol, erin} {
		c.expect(`{"type":"presence","room":"big","joined":["carol","dave","erin"]}`)
		if s := c.expectEvent("system"); s.str("text") != joined {
			t.Fatalf("system: %v", s)
		}
	}
	alice.expect("* " + joined)
	dave.expect("* " + joined)
	// ... and nothing else about those joins: the next frame is a message.
	said(t, bob, "bob", "hi", []*client{alice, dave}, []*client{bob, carol, erin})

	// frank joins and leaves within one interval while dave and erin
	// leave: frank is in neither list, nor in the notice.
	frank, _, err := ts.tryDial("/chat/big?name=frank", "")
	if err != nil {
		t.Fatal(err)
	}
	<-g2.entered
	for i, c := range []*websocket.Conn{dave.c, erin.c, frank} {
		_ = c.Close() // one at a time, so that the leaves queue in this order
		eventually(t, "leaves queued", func() bool { return ts.queued("big") >= i+1 })
	}
	close(g2.open)
	eventually(t, "the leaves processed", func() bool {
		return slices.Equal(ts.names("big"), []string{"alice", "bob", "carol"})
	})
	said(t, bob, "bob", "during", []*client{alice}, []*client{bob, carol}) // nothing announced yet
	clock.fire(t, interval)
	const left = "dave and erin left"
	alice.expect("* " + left)
	for _, c := range []*client{bob, carol} {
		c.expect(`{"type":"presence","room":"big","left":["dave","erin"]}`)
		if s := c.expectEvent("system"); s.str("text") != left {
			t.Fatalf("system: %v", s)
		}
	}
	carol.send(`{"type":"presence"}`)
	carol.expect(`{"type":"presence","room":"big","users":["alice","bob","carol"]}`)
	if got := ts.names("big"); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("members %v", got)
	}

	// Back at the threshold, changes are announced at once again.
	_ = carol.c.Close()
	alice.expect("* carol left")
}

func TestAnnounceHeldNotWaitedFor(t *testing.T) {
	// Until the clock moves the held notices do not come, yet a newcomer
	// gets its welcome, replay and list at once.
	clock := &fakeClock{}
	ts := startServer(t, Config{AnnounceBatchMembers: 1, AnnounceInterval: time.Hour, Clock: clock, Replay: 50}, nil, newMemHistory())
	alice := ts.dial(t, "/chat/r?name=alice", "")
	alice.expect("* alice joined")
	alice.send("before")
	alice.expect("alice: before")
	bob := ts.dial(t, "/chat/r?name=bob", SubprotocolJSON)
	bob.expectEvent("welcome")
	if h := bob.expectEvent("history"); len(h["messages"].([]any)) != 1 {
		t.Fatalf("history: %v", h)
	}
	bob.expect(`{"type":"presence","room":"r","users":["alice","bob"]}`)
	bob.send(`{"type":"message","text":"hi"}`)
	alice.expect("bob: hi") // no "* bob joined" before it
	if m := bob.expectEvent("message"); m.str("text") != "hi" {
		t.Fatalf("message: %v", m)
	}
	// The held notice comes when the interval has passed.
	clock.fire(t, time.Hour)
	alice.expect("* bob joined")
	bob.expect(`{"type":"presence","room":"r","joined":["bob"]}`)
	if s := bob.expectEvent("system"); s.str("text") != "bob joined" {
		t.Fatalf("system: %v", s)
	}
}

func TestAnnounceIntervalOff(t *testing.T) {
	ts := startServer(t, Config{AnnounceBatchMembers: 1, AnnounceInterval: 0}, nil, nil)
	alice := ts.dial(t, "/chat/r?name=alice", "")
	alice.expect("* alice joined")
	for _, n := range []string{"bob", "carol"} {
		c := ts.dial(t, "/chat/r?name="+n, "")
		c.expect("* " + n + " joined")
		alice.expect("* " + n + " joined")
	}
}

func TestCoalescedPresenceConverges(t *testing.T) {
	// Joins and leaves race with each other and with 200ms announcement
	// intervals; every stayer's list, built from its full list and the
	// deltas, must end up as the server's.
	ts := startServer(t, Config{AnnounceBatchMembers: 2, AnnounceInterval: 200 * time.Millisecond}, nil, nil)
	const stayers, churners = 6, 30
	var mu sync.Mutex
	lists := make([][]string, stayers)
	failed := make([]error, stayers)
	for i := range stayers {
		c, _, err := ts.tryDial(fmt.Sprintf("/chat/p?name=s%d", i), SubprotocolJSON)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(4 * waitTime))
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
					list = applyPresenceDelta(list, ev.Left, ev.Joined)
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
			c, _, err := ts.tryDial(fmt.Sprintf("/chat/p?name=c%d", i%7), SubprotocolJSON)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			// Every churner waits for its welcome, so that all joins are
			// done when churn.Wait returns (leaves may still be queued).
			_ = c.SetReadDeadline(time.Now().Add(waitTime))
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
	eventually(t, "churn settled", func() bool {
		return len(ts.names("p")) == stayers+churners/3
	})
	sorted := func(l []string) []string { return slices.Sorted(slices.Values(l)) }
	want := sorted(ts.names("p"))
	deadline := time.Now().Add(waitTime)
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
	if now := sorted(ts.names("p")); !slices.Equal(now, want) {
		t.Fatalf("members changed after settling: %v, then %v", want, now)
	}
}
