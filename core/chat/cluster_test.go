package chat_test

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Cluster mode (issue 15) with chattest's in-memory Broker standing in for
// package cluster: two chat.Servers (nodes) share one log; each has its
// own replica History, which its consumer fills before it calls Deliver.
// cluster_paths_test.go has the other paths through the log,
// cluster_bench_test.go the benchmark.

// clusterCfg is the config of the cluster tests' nodes: accounts by
// ?as=ID&n=NAME (memberAuth), the admin API, a replay.
func clusterCfg() chat.Config {
	return chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Replay: 20, DeleteOwnWindow: time.Hour}
}

// twoNodes starts two nodes of one new Broker. The accounts ada and bo
// own their names on both (name ownership across nodes is not this
// package's: each node is told, as from a shared store).
func twoNodes(t *testing.T) (*chattest.Broker, [2]*chattest.Server, [2]*chattest.Node) {
	t.Helper()
	return twoNodesWith(t, clusterCfg())
}

// twoNodesWith is twoNodes with cfg.
func twoNodesWith(t *testing.T, cfg chat.Config) (*chattest.Broker, [2]*chattest.Server, [2]*chattest.Node) {
	t.Helper()
	b := chattest.NewBroker()
	var srv [2]*chattest.Server
	var nodes [2]*chattest.Node
	for i := range srv {
		h := chattest.NewHistory()
		for _, id := range []string{"ada", "bo"} {
			if err := h.SetNameOwner(id, id); err != nil {
				t.Fatal(err)
			}
		}
		srv[i], nodes[i] = chattest.StartNode(t, b, cfg, nil, h)
	}
	return b, srv, nodes
}

// joinRoom dials room on ts as a moonchat.v1 client and reads its join up
// to the history event, which it returns.
func joinRoom(t *testing.T, ts *chattest.Server, path string) (*chattest.Client, chattest.Event) {
	t.Helper()
	c := ts.Dial(t, path, chat.SubprotocolJSON)
	c.ExpectEvent("welcome")
	return c, nextOf(t, c, "history")
}

// liveIDs reads c's message events until it has n of them and returns
// their ids, failing on an error event (a duplicate shows as a wrong id).
func liveIDs(t *testing.T, c *chattest.Client, n int) []uint64 {
	t.Helper()
	var out []uint64
	for len(out) < n {
		e := c.ReadEvent()
		switch e.Str("type") {
		case "message":
			out = append(out, e.Num("id"))
		case "error":
			t.Fatalf("error event: %v", e)
		}
	}
	return out
}

// Members on both nodes see the same messages in one order, whoever posts
// on whichever node, all at once; ids are the room's, 1..N without hole;
// both replicas hold exactly the log; no node appended to its History
// itself (the replica is filled by the consumer alone).
func TestClusterSameOrder(t *testing.T) {
	for _, fan := range []struct {
		name string
		mod  func(chat.Config) chat.Config
	}{
		{"room goroutine", func(c chat.Config) chat.Config { return chat.WithFanout(c, -1, 0) }},
		{"sweepers", func(c chat.Config) chat.Config { return chat.WithFanout(c, 2, 2) }},
	} {
		t.Run(fan.name, func(t *testing.T) { testClusterSameOrder(t, fan.mod(clusterCfg())) })
	}
}

func testClusterSameOrder(t *testing.T, cfg chat.Config) {
	b, srv, nodes := twoNodesWith(t, cfg)
	const perClient = 25
	var clients []*chattest.Client
	for i, ts := range [...]*chattest.Server{srv[0], srv[0], srv[1], srv[1]} {
		c, _ := joinRoom(t, ts, fmt.Sprintf("/chat/lobby?name=c%d", i))
		clients = append(clients, c)
	}
	total := perClient * len(clients)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perClient {
				if err := c.Conn.WriteMessage(1, fmt.Appendf(nil, `{"type":"message","text":"c%d-%d"}`, i, k)); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var first []string
	for i, c := range clients {
		var seen []string
		for len(seen) < total {
			e := c.ReadEvent()
			if e.Str("type") == "error" {
				t.Fatalf("client %d: %v", i, e)
			}
			if e.Str("type") != "message" {
				continue
			}
			if want := uint64(len(seen) + 1); e.Num("id") != want {
				t.Fatalf("client %d: message %d has id %d, want %d", i, len(seen), e.Num("id"), want)
			}
			seen = append(seen, e.Str("user")+":"+e.Str("text"))
		}
		if i == 0 {
			first = seen
		} else if !slices.Equal(seen, first) {
			t.Fatalf("client %d saw another order:\n%v\nclient 0:\n%v", i, seen, first)
		}
	}
	log := b.Messages("lobby")
	for k, n := range nodes {
		chattest.Eventually(t, "the replica to catch up", func() bool { return n.Applied() == b.Records() })
		got := n.Hist.All("lobby")
		if len(got) != len(log) {
			t.Fatalf("node %d's replica holds %d messages, the log %d", k, len(got), len(log))
		}
		for i := range got {
			if got[i].ID != log[i].ID || got[i].Text != log[i].Text {
				t.Fatalf("node %d replica[%d] = %d %q, log %d %q", k, i, got[i].ID, got[i].Text, log[i].ID, log[i].Text)
			}
		}
		if sizes := n.Hist.AppendSizes(); len(sizes) != 0 {
			t.Errorf("node %d appended to its History itself: %v", k, sizes)
		}
	}
}

// Without a replay (and without since), nothing reads the room's end at
// a join: the room goroutine reads it as it starts, so the first message
// delivered there is not taken for one already settled. Plain text.
func TestClusterNoReplay(t *testing.T) {
	cfg := clusterCfg()
	cfg.Replay = 0
	_, srv, _ := twoNodesWith(t, cfg)
	alice := srv[0].Dial(t, "/chat/lobby?name=alice", "")
	alice.SkipUntil("* alice joined")
	carol := srv[1].Dial(t, "/chat/lobby?name=carol", "")
	carol.SkipUntil("* carol joined")
	alice.Send("hello")
	carol.Expect("alice: hello")
	carol.Send("hi")
	alice.SkipUntil("alice: hello")
	alice.Expect("carol: hi")
}

// A member joining a node while a message is on its way gets it exactly
// once, in its replay or live: the message published but not yet applied
// to this node's replica (live), applied but not yet delivered to a room
// that already has members here, or to a room the join starts (replay, and
// the delivery that follows is skipped).
func TestClusterJoinInFlight(t *testing.T) {
	for _, tc := range []struct {
		name      string
		roomHere  bool // a member keeps the room's goroutine on node 2
		applied   bool // the message is in node 2's replica at the join
		wantTail  []uint64
		wantReply []uint64
	}{
		{"published, room here", true, false, []uint64{2, 3}, []uint64{1}},
		{"published, new room", false, false, []uint64{2, 3}, []uint64{1}},
		{"applied, room here", true, true, []uint64{2, 3}, []uint64{1}},
		{"applied, new room", false, true, []uint64{3}, []uint64{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv, nodes := twoNodes(t)
			alice, _ := joinRoom(t, srv[0], "/chat/lobby?name=alice")
			var carol *chattest.Client
			if tc.roomHere {
				carol, _ = joinRoom(t, srv[1], "/chat/lobby?name=carol")
			}
			alice.SendJSON(map[string]string{"type": "message", "text": "one"})
			liveIDs(t, alice, 1)
			chattest.Eventually(t, "node 2 to apply message 1", func() bool { return nodes[1].Applied() == 1 })
			var release func()
			if tc.applied {
				var reached <-chan struct{}
				reached, release = nodes[1].HoldDelivery()
				alice.SendJSON(map[string]string{"type": "message", "text": "two"})
				<-reached
			} else {
				nodes[1].Pause()
				release = nodes[1].Resume
				alice.SendJSON(map[string]string{"type": "message", "text": "two"})
			}
			liveIDs(t, alice, 1)
			bob, hist := joinRoom(t, srv[1], "/chat/lobby?name=bob")
			if got := historyIDs(hist); !slices.Equal(got, tc.wantReply) {
				t.Fatalf("bob's replay = %v, want %v", got, tc.wantReply)
			}
			release()
			alice.SendJSON(map[string]string{"type": "message", "text": "three"})
			if got := liveIDs(t, bob, len(tc.wantTail)); !slices.Equal(got, tc.wantTail) {
				t.Fatalf("bob's live messages = %v, want %v", got, tc.wantTail)
			}
			if carol != nil {
				if got := liveIDs(t, carol, 3); !slices.Equal(got, []uint64{1, 2, 3}) {
					t.Fatalf("carol's live messages = %v", got)
				}
			}
		})
	}
}

// A client resuming with ?since=ID on a node behind the one it read live
// from gets every message after ID once: none it already had comes live
// when the lagging node delivers it, and the next ones come in order. The
// same for a resume point the node has, and for a plain-text client.
func TestClusterSinceAcrossNodes(t *testing.T) {
	for _, fan := range []struct {
		name string
		mod  func(chat.Config) chat.Config
	}{
		{"room goroutine", func(c chat.Config) chat.Config { return chat.WithFanout(c, -1, 0) }},
		{"sweepers", func(c chat.Config) chat.Config { return chat.WithFanout(c, 2, 2) }},
	} {
		t.Run(fan.name, func(t *testing.T) { testClusterSinceAcrossNodes(t, fan.mod(clusterCfg())) })
	}
}

func testClusterSinceAcrossNodes(t *testing.T, cfg chat.Config) {
	for _, tc := range []struct {
		name   string
		since  uint64
		replay []uint64 // node 2 has delivered 1 and 2 when the client joins it
		live   []uint64
	}{
		{"beyond the lagging node", 4, nil, []uint64{5}},
		{"between", 3, nil, []uint64{4, 5}},
		{"at the lagging node's end", 2, nil, []uint64{3, 4, 5}},
		{"behind it", 1, []uint64{2}, []uint64{3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv, nodes := twoNodesWith(t, cfg)
			alice, _ := joinRoom(t, srv[0], "/chat/lobby?name=alice")
			carol, _ := joinRoom(t, srv[1], "/chat/lobby?name=carol") // the room runs on node 2
			for _, text := range []string{"one", "two"} {
				alice.SendJSON(map[string]string{"type": "message", "text": text})
			}
			liveIDs(t, carol, 2)
			nodes[1].Pause() // node 2 lags from here
			for _, text := range []string{"three", "four"} {
				alice.SendJSON(map[string]string{"type": "message", "text": text})
			}
			liveIDs(t, alice, 4)
			// A client that read up to tc.since on node 1 comes back on
			// node 2.
			dave, hist := joinRoom(t, srv[1], "/chat/lobby?name=dave&since="+strconv.FormatUint(tc.since, 10))
			if got := historyIDs(hist); !slices.Equal(got, tc.replay) {
				t.Fatalf("dave's resume = %v, want %v", got, tc.replay)
			}
			plain := srv[1].Dial(t, "/chat/lobby?name=pat&since="+strconv.FormatUint(tc.since, 10), "")
			plain.SkipUntil("* pat joined")
			nodes[1].Resume()
			alice.SendJSON(map[string]string{"type": "message", "text": "five"})
			if got := liveIDs(t, dave, len(tc.live)); !slices.Equal(got, tc.live) {
				t.Fatalf("dave's live messages = %v, want %v", got, tc.live)
			}
			texts := map[uint64]string{1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
			var want []string
			for _, id := range tc.live {
				want = append(want, "alice: "+texts[id])
			}
			var got []string
			for len(got) < len(want) {
				line := plain.Read()
				if line[0] != '*' {
					got = append(got, line)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pat's live lines = %q, want %q", got, want)
			}
		})
	}
}

// History pages asked for on a node serve only what its room delivered:
// a page forwards read while a message is applied but not delivered ends
// before it (it then comes live), and a page backwards starts below it.
func TestClusterPagesBounded(t *testing.T) {
	_, srv, nodes := twoNodes(t)
	alice, _ := joinRoom(t, srv[0], "/chat/lobby?name=alice")
	bob, _ := joinRoom(t, srv[1], "/chat/lobby?name=bob")
	alice.SendJSON(map[string]string{"type": "message", "text": "one"})
	liveIDs(t, bob, 1)
	reached, release := nodes[1].HoldDelivery()
	alice.SendJSON(map[string]string{"type": "message", "text": "two"})
	<-reached
	bob.SendJSON(map[string]any{"type": "history", "after": 0})
	if e := nextOf(t, bob, "history"); !slices.Equal(historyIDs(e), []uint64{1}) || e["more"] != false {
		t.Fatalf("page after 0 = %v", e)
	}
	bob.SendJSON(map[string]any{"type": "history", "before": 0})
	if e := nextOf(t, bob, "history"); !slices.Equal(historyIDs(e), []uint64{1}) {
		t.Fatalf("page before 0 = %v", e)
	}
	release()
	if got := liveIDs(t, bob, 1); got[0] != 2 {
		t.Fatalf("bob's next live message = %v, want 2", got)
	}
	bob.SendJSON(map[string]any{"type": "history", "after": 0})
	if e := nextOf(t, bob, "history"); !slices.Equal(historyIDs(e), []uint64{1, 2}) {
		t.Fatalf("page after 0 = %v", e)
	}
}

// Members join a node again and again (the room's goroutine ends with the
// last one and starts again with the next) while another node posts
// without pause: each member's replay (or since-resume) followed by its
// live messages is every id once, in order, from where the replay starts.
func TestClusterJoinsUnderLoad(t *testing.T) {
	const total = 300
	_, srv, _ := twoNodes(t)
	alice, _ := joinRoom(t, srv[0], "/chat/lobby?name=alice")
	sent := make(chan struct{})
	defer func() { <-sent }() // the sender ends before the test, failed or not
	go func() {
		defer close(sent)
		for i := range total {
			if err := alice.Conn.WriteMessage(1, fmt.Appendf(nil, `{"type":"message","text":"m%d"}`, i)); err != nil {
				t.Errorf("send: %v", err)
				return
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for k := 0; ; k++ {
		path := fmt.Sprintf("/chat/lobby?name=j%d", k)
		since := uint64(0)
		if k%3 == 1 {
			since = uint64(k * 7 % total)
			path += "&since=" + strconv.FormatUint(since, 10)
		}
		c, hist := joinRoom(t, srv[1], path)
		ids := historyIDs(hist)
		if k%3 == 1 && len(ids) > 0 && ids[0] != since+1 {
			t.Fatalf("joiner %d resumed after %d from %d", k, since, ids[0])
		}
		// Live until 5 more, or the end.
		for n := 0; n < 5; {
			if len(ids) > 0 && ids[len(ids)-1] == total {
				break
			}
			ids = append(ids, liveIDs(t, c, 1)...)
			n++
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] != ids[i-1]+1 {
				t.Fatalf("joiner %d (since %d): ids %v", k, since, ids)
			}
		}
		if k%3 == 1 && len(ids) > 0 && ids[0] != since+1 {
			t.Fatalf("joiner %d resumed after %d but got %v first", k, since, ids[0])
		}
		_ = c.Conn.Close()
		if len(ids) > 0 && ids[len(ids)-1] == total {
			break
		}
	}
}
