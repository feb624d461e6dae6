package main

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// readPlainUntil reads conn's plain-text lines until want comes, failing
// after waitLong.
func readPlainUntil(t *testing.T, who string, conn *websocket.Conn, want string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	var seen []string
	for time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(deadline)
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("%s waiting for %q: %v (read %q)", who, want, err, seen)
		}
		if string(data) == want {
			return
		}
		seen = append(seen, string(data))
	}
	t.Fatalf("%s: no %q within %v (read %q)", who, want, waitLong, seen)
}

// TestClusterGuestDirect (issue 15): two guests connected to two nodes
// exchange direct messages both ways, one with moonchat.v1 events, the
// other in plain text with /msg (msg.lua): the nodes relay them on NATS,
// each guest's node keeping its guest's conversation in memory.
func TestClusterGuestDirect(t *testing.T) {
	natsURL := startTestNATS(t)
	a := startChild(t, sharedNodeConfig(t, natsURL, "node-a", ""))
	b := startChild(t, sharedNodeConfig(t, natsURL, "node-b", ""))

	gia := dial(t, a.addr, "lobby", "gia", nil)
	if got := welcomeName(t, gia); got != "gia" {
		t.Fatalf("gia was given %q", got)
	}
	u := url.URL{Scheme: "ws", Host: b.addr, Path: "/chat/lobby", RawQuery: "name=gus"}
	gus, resp, err := websocket.DefaultDialer.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", u.String(), err, resp)
	}
	t.Cleanup(func() { gus.Close() })
	readPlainUntil(t, "gus", gus, "* gus joined")
	// Node a knows gus (the roster) once gia sees it join.
	await(t, gia, waitLong, "gus joining", func(e sharedEvent) bool {
		return e.Type == "presence" && (slices.Contains(e.Joined, "gus") || slices.Contains(e.Users, "gus"))
	})

	if err := gia.conn.WriteJSON(map[string]string{"type": "direct", "to": "gus", "text": "hello from node a"}); err != nil {
		t.Fatal(err)
	}
	readPlainUntil(t, "gus", gus, "[dm] gia: hello from node a")
	isDM := func(e sharedEvent) bool { return e.Type == "direct" || e.Type == "error" }
	if e := await(t, gia, waitLong, "gia's copy", isDM); e.Type != "direct" || e.Text != "hello from node a" || e.ID != 1 {
		t.Fatalf("gia on node a: %+v", e)
	}

	if err := gus.WriteMessage(websocket.TextMessage, []byte("/msg gia hello from node b")); err != nil {
		t.Fatal(err)
	}
	if e := await(t, gia, waitLong, "gus's message", isDM); e.Type != "direct" || e.Text != "hello from node b" || e.ID != 2 {
		t.Fatalf("gia on node a: %+v", e)
	}
	readPlainUntil(t, "gus", gus, "[dm to gia] gus: hello from node b")
}
