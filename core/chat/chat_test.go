package chat_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

func TestPlainTextChat(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	alice := ts.Dial(t, "/chat/tea?name=alice", "")
	alice.Expect("* alice joined")
	bob := ts.Dial(t, "/chat/tea?name=bob", "chat")
	bob.Expect("* bob joined")
	alice.Expect("* bob joined")

	bob.Send("hi alice")
	for _, c := range []*chattest.Client{alice, bob} {
		c.Expect("bob: hi alice")
	}
	alice.Send("hello bob\n") // a trailing line ending is not part of the text
	for _, c := range []*chattest.Client{alice, bob} {
		c.Expect("alice: hello bob")
	}
	_ = bob.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
	bob.ExpectCloseReason(1000, "bye") // the server echoes the close
	alice.Expect("* bob left")
}

func TestJSONFormat(t *testing.T) {
	hist := chattest.NewHistory()
	add(hist, "lobby", "bob", "earlier")
	ts := chattest.Start(t, chat.Config{Replay: 50}, nil, hist)

	bob := ts.Dial(t, "/?name=bob", chat.SubprotocolPlain)
	bob.Expect(replayAt+"bob: earlier", "* --- end of history ---", "* bob joined")

	alice := ts.Dial(t, "/chat?name=alice", chat.SubprotocolJSON)
	if p := alice.Conn.Subprotocol(); p != chat.SubprotocolJSON {
		t.Fatalf("subprotocol %q", p)
	}
	if got := alice.Read(); got != `{"type":"welcome","room":"lobby","user":"alice"}` {
		t.Fatalf("welcome: %s", got)
	}
	h := alice.ExpectEvent("history")
	msgs, _ := h["messages"].([]any)
	if h.Str("reason") != "join" || h["complete"] != true || h["more"] != false || len(msgs) != 1 {
		t.Fatalf("history: %v", h)
	}
	if m := chattest.Event(msgs[0].(map[string]any)); m.Num("id") != 1 || m.Str("user") != "bob" || m.Str("text") != "earlier" || m.Str("room") != "lobby" || len(m.Str("ts")) != len("2026-11-22T10:00:00.000Z") {
		t.Fatalf("history message: %v", m)
	}
	if got := alice.Read(); got != `{"type":"presence","room":"lobby","users":["bob","alice"]}` {
		t.Fatalf("presence: %s", got)
	}
	// The delta everyone gets; alice already has it in her list.
	if got := alice.Read(); got != `{"type":"presence","room":"lobby","joined":["alice"]}` {
		t.Fatalf("presence delta: %s", got)
	}
	if s := alice.ExpectEvent("system"); s.Str("text") != "alice joined" || s.Str("room") != "lobby" || !strings.HasSuffix(s.Str("ts"), "Z") {
		t.Fatalf("system: %v", s)
	}
	bob.Expect("* alice joined")

	alice.SendJSON(map[string]string{"type": "message", "text": `say "hi" <b>`})
	m := alice.ExpectEvent("message")
	if m.Num("id") != 2 || m.Str("user") != "alice" || m.Str("text") != `say "hi" <b>` || m.Str("room") != "lobby" {
		t.Fatalf("message: %v", m)
	}
	bob.Expect(`alice: say "hi" <b>`)

	bob.Send("plain to json")
	if m := alice.ExpectEvent("message"); m.Num("id") != 3 || m.Str("user") != "bob" || m.Str("text") != "plain to json" {
		t.Fatalf("message: %v", m)
	}
	bob.Expect("bob: plain to json")

	// Bad JSON gets an error event; the connection stays usable.
	alice.Send(`{"type":"dance"}`)
	if e := alice.ExpectEvent("error"); e.Str("code") != "bad_request" {
		t.Fatalf("error: %v", e)
	}
	alice.Send(`not json`)
	if e := alice.ExpectEvent("error"); e.Str("code") != "bad_request" {
		t.Fatalf("error: %v", e)
	}

	_ = bob.Conn.Close()
	if s := alice.ExpectEvent("system"); s.Str("text") != "bob left" {
		t.Fatalf("system: %v", s)
	}
	if got := alice.Read(); got != `{"type":"presence","room":"lobby","left":["bob"]}` {
		t.Fatalf("presence delta: %s", got)
	}
	// The full list on request.
	alice.Send(`{"type":"presence"}`)
	if got := alice.Read(); got != `{"type":"presence","room":"lobby","users":["alice"]}` {
		t.Fatalf("presence on request: %s", got)
	}
	if got := hist.All("lobby"); len(got) != 3 || got[2].Text != "plain to json" {
		t.Fatalf("history holds %v", got)
	}
}

func TestBroadcastManySameOrder(t *testing.T) {
	t.Run("room goroutine writes", func(t *testing.T) {
		testBroadcastSameOrder(t, 50, chat.WithFanout(chat.Config{}, -1, 0))
	})
	// Above fanoutMinMembers the writes are shared with the fan-out
	// workers; every member must still see one order.
	t.Run("parallel fan-out", func(t *testing.T) {
		testBroadcastSameOrder(t, chat.FanoutMinMembers+22, chat.WithFanout(chat.Config{}, 3, 0))
	})
}

func testBroadcastSameOrder(t *testing.T, clients int, cfg chat.Config) {
	const senders, perSender = 5, 20
	hist := chattest.NewHistory()
	ts := chattest.Start(t, cfg, nil, hist)
	cs := make([]*chattest.Client, clients)
	for i := range cs {
		cs[i] = ts.Dial(t, fmt.Sprintf("/chat/big?name=u%d", i), "")
	}
	// A few JSON members: the other encoding of the same batches.
	js := make([]*chattest.Client, 3)
	for i := range js {
		js[i] = ts.Dial(t, fmt.Sprintf("/chat/big?name=j%d", i), "moonchat.v1")
	}
	chattest.Eventually(t, "all joined", func() bool { return len(ts.Chat.Users("big")) == clients+len(js) })
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				if err := cs[s].Conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "m%d-%d", s, i)); err != nil {
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
			line := c.Read()
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
			if e := c.ReadEvent(); e.Str("type") == "message" {
				got = append(got, e.Str("user")+": "+e.Str("text"))
			}
		}
		if !slices.Equal(got, first) {
			t.Fatalf("JSON member %d saw a different order than plain member 0", i)
		}
	}
	// And the order is the stored order.
	stored := hist.All("big")
	for i, m := range stored {
		if want := m.User + ": " + m.Text; first[i] != want {
			t.Fatalf("delivery %d %q, stored %q", i, first[i], want)
		}
	}
	// Every message's server-side delay was observed once its broadcast
	// had reached everyone (by the room goroutine or by the sweepers).
	want := fmt.Sprintf("moonchat_message_delay_seconds_count %d\n", senders*perSender)
	chattest.Eventually(t, want, func() bool {
		_, body, _ := ts.Get(t, "/metrics")
		return strings.Contains(body, want)
	})
}

func TestRoomIsolation(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	a := ts.Dial(t, "/chat/a?name=x", "")
	a.Expect("* x joined")
	b := ts.Dial(t, "/chat/b?name=x", "") // the same name in another room is fine
	b.Expect("* x joined")
	a.Send("in a")
	a.Expect("x: in a")
	b.Send("in b")
	b.Expect("x: in b")
	if rooms := ts.Chat.Rooms(); !slices.Equal(rooms, []string{"a", "b"}) {
		t.Fatalf("Rooms() = %v", rooms)
	}
}

func TestNameCollisionsAndGuests(t *testing.T) {
	ts := chattest.Start(t, chat.Config{MaxNameLength: 8}, nil, nil)
	c1 := ts.Dial(t, "/chat/r?name=alice", "")
	c1.Expect("* alice joined")
	c2 := ts.Dial(t, "/chat/r?name=alice", "")
	c2.Expect("* alice-2 joined")
	c3 := ts.Dial(t, "/chat/r?name=Alice", "") // names collide regardless of case
	c3.Expect("* Alice-3 joined")
	c4 := ts.Dial(t, "/chat/r?name=abcdefgh", "")
	c4.Expect("* abcdefgh joined")
	c5 := ts.Dial(t, "/chat/r?name=abcdefgh", "")
	c5.Expect("* abcdef-2 joined") // shortened to fit max_name_length
	g1 := ts.Dial(t, "/chat/r", "")
	line := g1.Read()
	var n int
	if _, err := fmt.Sscanf(line, "* guest-%d joined", &n); err != nil {
		t.Fatalf("guest join notice %q", line)
	}
	g2 := ts.Dial(t, "/chat/r", "")
	line2 := g2.Read()
	if line2 == line || !strings.HasPrefix(line2, "* guest-") {
		t.Fatalf("second guest %q after %q", line2, line)
	}
	g1.Expect(line2)
	g3 := ts.Dial(t, "/chat/r?name=", "") // an empty name also asks for a guest name
	if line3 := g3.Read(); !strings.HasPrefix(line3, "* guest-") {
		t.Fatalf("empty name: %q", line3)
	}
	g1.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* guest-") })
	g1.Send("hi")
	g1.Expect(fmt.Sprintf("guest-%d: hi", n))
}

func TestRefusedNamesAndRooms(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
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
		{"/chat/r?name=a%20b", chat.SubprotocolJSON, "invalid name: white space not allowed"},
	} {
		c := ts.Dial(t, tc.path, tc.proto)
		if tc.proto == chat.SubprotocolJSON {
			e := c.ExpectEvent("error")
			if e.Str("code") != "refused" || e.Str("text") != tc.reason {
				t.Errorf("%s: error event %v", tc.path, e)
			}
		} else if got := c.Read(); got != "* "+tc.reason {
			t.Errorf("%s: got %q, want %q", tc.path, got, "* "+tc.reason)
		}
		c.ExpectCloseReason(1008, tc.reason)
	}
	if ts.Chat.Rooms() != nil {
		t.Fatalf("refused clients created rooms: %v", ts.Chat.Rooms())
	}
	// Not a WebSocket endpoint.
	if _, resp, err := ts.TryDial("/elsewhere", ""); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("upgrade at /elsewhere: %v", err)
	}
}

func TestBinaryAndTooLong(t *testing.T) {
	ts := chattest.Start(t, chat.Config{MaxTextBytes: 10}, nil, nil)
	c := ts.Dial(t, "/?name=a", "")
	c.Expect("* a joined")
	j := ts.Dial(t, "/?name=j", chat.SubprotocolJSON)
	j.SkipTo(func(s string) bool { return strings.Contains(s, `"j joined"`) })
	c.Expect("* j joined")

	if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	c.Expect("* binary messages are not supported: send text")
	c.Send("0123456789x")
	c.Expect("* message too long: at most 10 bytes")
	c.Send("0123456789")
	c.Expect("a: 0123456789")

	if m := j.ExpectEvent("message"); m.Str("text") != "0123456789" {
		t.Fatalf("%v", m) // a's message; nothing from a's refused ones
	}
	_ = j.Conn.WriteMessage(websocket.BinaryMessage, []byte("x"))
	if e := j.ExpectEvent("error"); e.Str("code") != "binary" {
		t.Fatalf("%v", e)
	}
	j.SendJSON(map[string]string{"type": "message", "text": "0123456789x"})
	if e := j.ExpectEvent("error"); e.Str("code") != "too_long" {
		t.Fatalf("%v", e)
	}
	j.SendJSON(map[string]string{"type": "message", "text": "ok"})
	if m := j.ExpectEvent("message"); m.Str("text") != "ok" {
		t.Fatalf("%v", m)
	}
	c.Expect("j: ok")
}

func TestFloodLimit(t *testing.T) {
	ts := chattest.Start(t, chat.Config{FloodRate: 0.001, FloodBurst: 3}, nil, nil)
	f := ts.Dial(t, "/?name=f", chat.SubprotocolJSON)
	f.SkipTo(func(s string) bool { return strings.Contains(s, `"f joined"`) })
	w := ts.Dial(t, "/?name=w", "")
	w.Expect("* w joined")
	for i := range 10 {
		f.SendJSON(map[string]string{"type": "message", "text": fmt.Sprint("m", i)})
	}
	w.Expect("f: m0", "f: m1", "f: m2")
	w.Send("after")
	w.Expect("w: after") // the rest of f's messages never reached the room
	var nErr, msgs int
	for msgs < 4 {
		e := f.ReadEvent()
		switch e.Str("type") {
		case "error":
			if e.Str("code") != "flood" {
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
	slow := &chattest.Hooks{OnJoin: func(chat.User) chat.JoinResult { time.Sleep(2 * time.Millisecond); return chat.JoinResult{} }}
	ts := chattest.Start(t, chat.Config{}, slow, chattest.NewHistory())
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
			c, _, err := ts.TryDial(fmt.Sprintf("/chat/p?name=c%d", i%6), chat.SubprotocolJSON)
			if err != nil {
				return
			}
			if i%2 == 0 {
				// Half of them leave only once joined, half at once
				// (their join and leave then often share a delta).
				_ = c.SetReadDeadline(time.Now().Add(chattest.Wait))
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
			c, _, err := ts.TryDial(fmt.Sprintf("/chat/p?name=s%d", i), chat.SubprotocolJSON)
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
			_ = c.SetReadDeadline(time.Now().Add(chattest.Wait))
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
					list = chattest.ApplyPresence(list, ev.Left, ev.Joined)
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
