package scripting

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestUnknownCommandOverTheWire runs the engine behind a real chat server:
// a JSON client sending an unregistered command gets an error event with
// code unknown_command, while a command refused by its script (false,
// reason) stays "dropped".
func TestUnknownCommandOverTheWire(t *testing.T) {
	url := serveChat(t, map[string]string{"a.lua": `
chat.command("help", function() return "/help: this" end)
chat.command("deny", function() return false, "not now" end)
`}, nil)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{chat.SubprotocolJSON}}
	c, _, err := d.Dial(url+"/chat/r?name=alice", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	nextError := func() map[string]string {
		t.Helper()
		for {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var ev map[string]any
			if json.Unmarshal(data, &ev) == nil && ev["type"] == "error" {
				code, _ := ev["code"].(string)
				text, _ := ev["text"].(string)
				return map[string]string{"code": code, "text": text}
			}
		}
	}
	for _, tc := range []struct{ send, code, text string }{
		{"/dance", "unknown_command", "unknown command /dance — try /help"},
		{"/deny", "dropped", "not now"},
	} {
		msg, _ := json.Marshal(map[string]string{"type": "message", "text": tc.send})
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
		if got := nextError(); got["code"] != tc.code || got["text"] != tc.text {
			t.Errorf("%s: got error %v, want code %q text %q", tc.send, got, tc.code, tc.text)
		}
	}
}

// TestLeaveAtShutdown: a "leave" handler runs for every member still
// connected when the chat server shuts down.
func TestLeaveAtShutdown(t *testing.T) {
	kv := NewMemKV()
	url, srv := serveChatServer(t, map[string]string{"bye.lua": `
chat.on("leave", function(u) chat.kv.set("left:" .. u.name, u.room) end)
`}, kv)
	var conns []*websocket.Conn
	for _, path := range []string{"/chat/r1?name=ann", "/chat/r2?name=ben"} {
		c, _, err := websocket.DefaultDialer.Dial(url+path, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		defer c.Close()
		// Joined once the join notice arrives.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, data, err := c.ReadMessage(); err != nil || !strings.HasSuffix(string(data), " joined") {
			t.Fatalf("%s: first frame %q, %v", path, data, err)
		}
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for _, c := range conns {
		// Reading answers the server's close frame.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	keys, err := kv.Keys("bye.lua")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"left:ann", "left:ben"}; !slices.Equal(keys, want) {
		t.Fatalf("the leave handler ran for %q, want %q", keys, want)
	}
}

// serveChat runs the engine with the given scripts behind a real chat
// server and returns its ws:// base URL; both stop when the test ends.
func serveChat(t *testing.T, files map[string]string, kv KV) string {
	url, _ := serveChatServer(t, files, kv)
	return url
}

// serveChatServer is serveChat that also returns the chat server.
func serveChatServer(t *testing.T, files map[string]string, kv KV) (string, *chat.Server) {
	t.Helper()
	e, err := New(t.Context(), Options{
		FS:          scriptFS(files),
		KV:          kv,
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)
	return ts.WS, ts.Chat
}
