package chat

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestPlainTextChat(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	alice := ts.dial(t, "/chat/tea?name=alice", "")
	alice.expect("* alice joined")
	bob := ts.dial(t, "/chat/tea?name=bob", "chat")
	bob.expect("* bob joined")
	alice.expect("* bob joined")

	bob.send("hi alice")
	for _, c := range []*client{alice, bob} {
		c.expect("bob: hi alice")
	}
	alice.send("hello bob\n") // a trailing line ending is not part of the text
	for _, c := range []*client{alice, bob} {
		c.expect("alice: hello bob")
	}
	_ = bob.c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	bob.expectClose(1000, "bye") // the server echoes the close
	alice.expect("* bob left")
}

func TestJSONFormat(t *testing.T) {
	hist := newMemHistory()
	hist.add("lobby", "bob", "earlier")
	ts := startServer(t, Config{Replay: 50}, nil, hist)

	bob := ts.dial(t, "/?name=bob", SubprotocolPlain)
	bob.expect(replayAt+"bob: earlier", "* --- end of history ---", "* bob joined")

	alice := ts.dial(t, "/chat?name=alice", SubprotocolJSON)
	if p := alice.c.Subprotocol(); p != SubprotocolJSON {
		t.Fatalf("subprotocol %q", p)
	}
	if got := alice.read(); got != `{"type":"welcome","room":"lobby","user":"alice"}` {
		t.Fatalf("welcome: %s", got)
	}
	h := alice.expectEvent("history")
	msgs, _ := h["messages"].([]any)
	if h.str("reason") != "join" || h["complete"] != true || h["more"] != false || len(msgs) != 1 {
		t.Fatalf("history: %v", h)
	}
	if m := event(msgs[0].(map[string]any)); m.num("id") != 1 || m.str("user") != "bob" || m.str("text") != "earlier" || m.str("room") != "lobby" || len(m.str("ts")) != len("2026-11-22T10:00:00.000Z") {
		t.Fatalf("history message: %v", m)
	}
	if got := alice.read(); got != `{"type":"presence","room":"lobby","users":["bob","alice"]}` {
		t.Fatalf("presence: %s", got)
	}
	// The delta everyone gets; alice already has it in her list.
	if got := alice.read(); got != `{"type":"presence","room":"lobby","joined":["alice"]}` {
		t.Fatalf("presence delta: %s", got)
	}
	if s := alice.expectEvent("system"); s.str("text") != "alice joined" || s.str("room") != "lobby" || !strings.HasSuffix(s.str("ts"), "Z") {
		t.Fatalf("system: %v", s)
	}
	bob.expect("* alice joined")

	alice.sendJSON(map[string]string{"type": "message", "text": `say "hi" <b>`})
	m := alice.expectEvent("message")
	if m.num("id") != 2 || m.str("user") != "alice" || m.str("text") != `say "hi" <b>` || m.str("room") != "lobby" {
		t.Fatalf("message: %v", m)
	}
	bob.expect(`alice: say "hi" <b>`)

	bob.send("plain to json")
	if m := alice.expectEvent("message"); m.num("id") != 3 || m.str("user") != "bob" || m.str("text") != "plain to json" {
		t.Fatalf("message: %v", m)
	}
	bob.expect("bob: plain to json")

	// Bad JSON gets an error event; the connection stays usable.
	alice.send(`{"type":"dance"}`)
	if e := alice.expectEvent("error"); e.str("code") != "bad_request" {
		t.Fatalf("error: %v", e)
	}
	alice.send(`not json`)
	if e := alice.expectEvent("error"); e.str("code") != "bad_request" {
		t.Fatalf("error: %v", e)
	}

	_ = bob.c.Close()
	if s := alice.expectEvent("system"); s.str("text") != "bob left" {
		t.Fatalf("system: %v", s)
	}
	if got := alice.read(); got != `{"type":"presence","room":"lobby","left":["bob"]}` {
		t.Fatalf("presence delta: %s", got)
	}
	// The full list on request.
	alice.send(`{"type":"presence"}`)
	if got := alice.read(); got != `{"type":"presence","room":"lobby","users":["alice"]}` {
		t.Fatalf("presence on request: %s", got)
	}
	if got := hist.all("lobby"); len(got) != 3 || got[2].Text != "plain to json" {
		t.Fatalf("history holds %v", got)
	}
}

func TestBroadcastManySameOrder(t *testing.T) {
	t.Run("room goroutine writes", func(t *testing.T) {
		testBroadcastSameOrder(t, 50, Config{fanoutWorkers: -1})
	})
	// Above fanoutMinMembers the writes are shared with the fan-out
	// workers; every member must still see one order.
	t.Run("parallel fan-out", func(t *testing.T) {
		testBroadcastSameOrder(t, fanoutMinMembers+22, Config{fanoutWorkers: 3})
	})
}

func testBroadcastSameOrder(t *testing.T, clients int, cfg Config) {
	const senders, perSender = 5, 20
	hist := newMemHistory()
	ts := startServer(t, cfg, nil, hist)
	cs := make([]*client, clients)
	for i := range cs {
		cs[i] = ts.dial(t, fmt.Sprintf("/chat/big?name=u%d", i), "")
	}
	// A few JSON members: the other encoding of the same batches.
	js := make([]*client, 3)
	for i := range js {
		js[i] = ts.dial(t, fmt.Sprintf("/chat/big?name=j%d", i), "moonchat.v1")
	}
	eventually(t, "all joined", func() bool { return len(ts.srv.Users("big")) == clients+len(js) })
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				if err := cs[s].c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "m%d-%d", s, i)); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var first []string
	for i, c := range cs {
		var got []string
		for len(got) < senders*perSender {
			line := c.read()
			if strings.HasPrefix(line, "* ") {
				continue // joins of later clients
			}
			got = append(got, line)
		}
		// Per sender, messages keep their order.
		for s := range senders {
			want := 0
			for _, l := range got {
				if strings.HasPrefix(l, fmt.Sprintf("u%d: m%d-", s, s)) {
					if l != fmt.Sprintf("u%d: m%d-%d", s, s, want) {
						t.Fatalf("client %d: %q out of order (want m%d-%d)", i, l, s, want)
					}
					want++
				}
			}
		}
		if i == 0 {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("client %d saw a different order than client 0", i)
		}
	}
	for i, c := range js {
		var got []string
		for len(got) < senders*perSender {
			if e := c.readEvent(); e.str("type") == "message" {
				got = append(got, e.str("user")+": "+e.str("text"))
			}
		}
		if !slices.Equal(got, first) {
			t.Fatalf("JSON member %d saw a different order than plain member 0", i)
		}
	}
	// And the order is the stored order.
	stored := hist.all("big")
	for i, m := range stored {
		if want := m.User + ": " + m.Text; first[i] != want {
			t.Fatalf("delivery %d %q, stored %q", i, first[i], want)
		}
	}
	// Every message's server-side delay was observed once its broadcast
	// had reached everyone (by the room goroutine or by the sweepers).
	want := fmt.Sprintf("moonchat_message_delay_seconds_count %d\n", senders*perSender)
	eventually(t, want, func() bool {
		_, body, _ := ts.get(t, "/metrics")
		return strings.Contains(body, want)
	})
}

func TestRoomIsolation(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	a := ts.dial(t, "/chat/a?name=x", "")
	a.expect("* x joined")
	b := ts.dial(t, "/chat/b?name=x", "") // the same name in another room is fine
	b.expect("* x joined")
	a.send("in a")
	a.expect("x: in a")
	b.send("in b")
	b.expect("x: in b")
	if rooms := ts.srv.Rooms(); !slices.Equal(rooms, []string{"a", "b"}) {
		t.Fatalf("Rooms() = %v", rooms)
	}
}

func TestNameCollisionsAndGuests(t *testing.T) {
	ts := startServer(t, Config{MaxNameLength: 8}, nil, nil)
	c1 := ts.dial(t, "/chat/r?name=alice", "")
	c1.expect("* alice joined")
	c2 := ts.dial(t, "/chat/r?name=alice", "")
	c2.expect("* alice-2 joined")
	c3 := ts.dial(t, "/chat/r?name=Alice", "") // names collide regardless of case
	c3.expect("* Alice-3 joined")
	c4 := ts.dial(t, "/chat/r?name=abcdefgh", "")
	c4.expect("* abcdefgh joined")
	c5 := ts.dial(t, "/chat/r?name=abcdefgh", "")
	c5.expect("* abcdef-2 joined") // shortened to fit max_name_length
	g1 := ts.dial(t, "/chat/r", "")
	line := g1.read()
	var n int
	if _, err := fmt.Sscanf(line, "* guest-%d joined", &n); err != nil {
		t.Fatalf("guest join notice %q", line)
	}
	g2 := ts.dial(t, "/chat/r", "")
	line2 := g2.read()
	if line2 == line || !strings.HasPrefix(line2, "* guest-") {
		t.Fatalf("second guest %q after %q", line2, line)
	}
	g1.expect(line2)
	g3 := ts.dial(t, "/chat/r?name=", "") // an empty name also asks for a guest name
	if line3 := g3.read(); !strings.HasPrefix(line3, "* guest-") {
		t.Fatalf("empty name: %q", line3)
	}
	g1.skipTo(func(s string) bool { return strings.HasPrefix(s, "* guest-") })
	g1.send("hi")
	g1.expect(fmt.Sprintf("guest-%d: hi", n))
}

func TestRefusedNamesAndRooms(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	for _, tc := range []struct {
		path, proto, reason string
	}{
		{"/chat/a%20b?name=x", "", "invalid room name: only A-Z a-z 0-9 - _ . allowed"},
		{"/chat/" + strings.Repeat("r", 33), "", "invalid room name: longer than 32 characters"},
		{"/chat/?name=x", "", "invalid room name: empty"},
		{"/chat/r?name=a%20b", "", "invalid name: white space not allowed"},
		{"/chat/r?name=a:b", "", "invalid name: ':' not allowed"},
		{"/chat/r?name=*x", "", "invalid name: must not start with '*'"},
		{"/chat/r?name=a%07b", "", "invalid name: control character U+0007 not allowed"},
		{"/chat/r?name=%D0%B0dmin", "", "invalid name: mixes scripts (Cyrillic and Latin): use letters of one script"},
		{"/chat/r?name=ad%E3%85%A4min", "", "invalid name: invisible character U+3164 not allowed"},
		{"/chat/r?name=a%E2%80%AEb", "", "invalid name: bidi control character U+202E not allowed"},
		{"/chat/r?name=" + strings.Repeat("n", 25), "", "invalid name: longer than 24 characters"},
		{"/chat/r?name=ok&since=x", "", "invalid since: want a message id"},
		{"/chat/r?name=a%20b", SubprotocolJSON, "invalid name: white space not allowed"},
	} {
		c := ts.dial(t, tc.path, tc.proto)
		if tc.proto == SubprotocolJSON {
			e := c.expectEvent("error")
			if e.str("code") != "refused" || e.str("text") != tc.reason {
				t.Errorf("%s: error event %v", tc.path, e)
			}
		} else if got := c.read(); got != "* "+tc.reason {
			t.Errorf("%s: got %q, want %q", tc.path, got, "* "+tc.reason)
		}
		c.expectClose(1008, tc.reason)
	}
	if ts.srv.Rooms() != nil {
		t.Fatalf("refused clients created rooms: %v", ts.srv.Rooms())
	}
	// Not a WebSocket endpoint.
	if _, resp, err := ts.tryDial("/elsewhere", ""); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("upgrade at /elsewhere: %v", err)
	}
}

func TestBinaryAndTooLong(t *testing.T) {
	ts := startServer(t, Config{MaxTextBytes: 10}, nil, nil)
	c := ts.dial(t, "/?name=a", "")
	c.expect("* a joined")
	j := ts.dial(t, "/?name=j", SubprotocolJSON)
	j.skipTo(func(s string) bool { return strings.Contains(s, `"j joined"`) })
	c.expect("* j joined")

	if err := c.c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	c.expect("* binary messages are not supported: send text")
	c.send("0123456789x")
	c.expect("* message too long: at most 10 bytes")
	c.send("0123456789")
	c.expect("a: 0123456789")

	if m := j.expectEvent("message"); m.str("text") != "0123456789" {
		t.Fatalf("%v", m) // a's message; nothing from a's refused ones
	}
	_ = j.c.WriteMessage(websocket.BinaryMessage, []byte("x"))
	if e := j.expectEvent("error"); e.str("code") != "binary" {
		t.Fatalf("%v", e)
	}
	j.sendJSON(map[string]string{"type": "message", "text": "0123456789x"})
	if e := j.expectEvent("error"); e.str("code") != "too_long" {
		t.Fatalf("%v", e)
	}
	j.sendJSON(map[string]string{"type": "message", "text": "ok"})
	if m := j.expectEvent("message"); m.str("text") != "ok" {
		t.Fatalf("%v", m)
	}
	c.expect("j: ok")
}

func TestFloodLimit(t *testing.T) {
	ts := startServer(t, Config{FloodRate: 0.001, FloodBurst: 3}, nil, nil)
	f := ts.dial(t, "/?name=f", SubprotocolJSON)
	f.skipTo(func(s string) bool { return strings.Contains(s, `"f joined"`) })
	w := ts.dial(t, "/?name=w", "")
	w.expect("* w joined")
	for i := range 10 {
		f.sendJSON(map[string]string{"type": "message", "text": fmt.Sprint("m", i)})
	}
	w.expect("f: m0", "f: m1", "f: m2")
	w.send("after")
	w.expect("w: after") // the rest of f's messages never reached the room
	var nErr, msgs int
	for msgs < 4 {
		e := f.readEvent()
		switch e.str("type") {
		case "error":
			if e.str("code") != "flood" {
				t.Fatalf("%v", e)
			}
			nErr++
		case "message":
			msgs++
		}
	}
	if nErr != 1 {
		t.Fatalf("%d flood errors, want exactly 1 (at most one a second)", nErr)
	}
}

// TestPresenceDeltasConverge: JSON members join and leave concurrently;
// every member that stays applies the events it receives (its full list,
// then deltas: "left" removed, then "joined" added) and must end with
// exactly the list the server gives on request.
func TestPresenceDeltasConverge(t *testing.T) {
	// A slow join hook makes joins and leaves pile up into shared batches
	// (one delta covering several changes, newcomers joining mid-delta).
	slow := &testHooks{join: func(User) JoinResult { time.Sleep(2 * time.Millisecond); return JoinResult{} }}
	ts := startServer(t, Config{}, slow, newMemHistory())
	const stayers, churners = 8, 24
	type result struct {
		name          string
		applied, full []string
		err           error
	}
	results := make(chan result, stayers)
	var churn sync.WaitGroup
	for i := range churners {
		churn.Add(1)
		go func() {
			defer churn.Done()
			c, _, err := ts.tryDial(fmt.Sprintf("/chat/p?name=c%d", i%6), SubprotocolJSON)
			if err != nil {
				return
			}
			if i%2 == 0 {
				// Half of them leave only once joined, half at once
				// (their join and leave then often share a delta).
				_ = c.SetReadDeadline(time.Now().Add(waitTime))
				_, _, _ = c.ReadMessage()
			}
			_ = c.Close()
		}()
	}
	start := make(chan struct{})
	conns := make([]*websocket.Conn, stayers)
	var dials sync.WaitGroup
	for i := range stayers {
		dials.Add(1)
		go func() {
			defer dials.Done()
			c, _, err := ts.tryDial(fmt.Sprintf("/chat/p?name=s%d", i), SubprotocolJSON)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			t.Cleanup(func() { _ = c.Close() })
			conns[i] = c
		}()
	}
	churn.Wait()
	dials.Wait()
	if t.Failed() {
		return
	}
	for _, c := range conns {
		go func() {
			var list []string
			name := ""
			fulls := 0
			<-start
			_ = c.SetReadDeadline(time.Now().Add(waitTime))
			for {
				_, data, err := c.ReadMessage()
				if err != nil {
					results <- result{name: name, err: err}
					return
				}
				var ev struct {
					Type                string
					User                string
					Users, Joined, Left []string
				}
				if err := json.Unmarshal(data, &ev); err != nil {
					results <- result{err: err}
					return
				}
				switch {
				case ev.Type == "welcome":
					name = ev.User
				case ev.Type == "presence" && ev.Users != nil:
					fulls++
					if fulls == 2 {
						results <- result{name: name, applied: list, full: ev.Users}
						return
					}
					list = slices.Clone(ev.Users)
				case ev.Type == "presence":
					list = applyPresenceDelta(list, ev.Left, ev.Joined)
				}
			}
		}()
	}
	for _, c := range conns {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"presence"}`)); err != nil {
			t.Fatal(err)
		}
	}
	close(start)
	for range stayers {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
		got, want := slices.Sorted(slices.Values(r.applied)), slices.Sorted(slices.Values(r.full))
		if !slices.Equal(got, want) {
			t.Errorf("%s: applied deltas give %v, server says %v", r.name, got, want)
		}
	}
}
