package chat_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/defaults"
	"github.com/moonchat/moonchat/scripting"
	"github.com/moonchat/moonchat/store"
)

// "/me waves" typed by a user goes through the default scripts
// (me.lua → chat.action) into the store, and is still an action after a
// restart: replayed as "* alice waves" in plain text and with
// "action": true in moonchat.v1.
func TestMeActionSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	run := func(f func(wsURL string)) {
		t.Helper()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		db, err := store.Open(path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := scripting.New(t.Context(), scripting.Options{FS: defaults.Scripts(), HookTimeout: 5 * time.Second, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := chat.New(chat.Config{Logger: log}, eng, db)
		if err != nil {
			t.Fatal(err)
		}
		eng.Bind(srv)
		hs := httptest.NewServer(srv)
		f("ws" + strings.TrimPrefix(hs.URL, "http"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		hs.Close()
		_ = eng.Close()
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}
	run(func(u string) {
		c := dialE2E(t, u+"/chat/r?name=alice", "")
		skipUntil(t, c, "* alice joined")
		send(t, c, "/me waves")
		skipUntil(t, c, "* alice waves")
		_ = c.Close() // gone before Shutdown, which would wait for its close handshake
	})
	run(func(u string) {
		c := dialE2E(t, u+"/chat/r?name=bob", "")
		line := readLine(t, c)
		if _, rest, ok := strings.Cut(line, " UTC] "); !ok || !strings.HasPrefix(line, "[") || rest != "* alice waves" {
			t.Fatalf("replayed %q, want \"[TIME UTC] * alice waves\"", line)
		}
		if got := readLine(t, c); got != "* --- end of history ---" {
			t.Fatalf("after the replay: %q", got)
		}
		j := dialE2E(t, u+"/chat/r?name=jay", chat.SubprotocolJSON)
		readLine(t, j) // welcome
		var h struct {
			Type     string
			Messages []struct {
				User, Text string
				Action     bool
			}
		}
		if err := json.Unmarshal([]byte(readLine(t, j)), &h); err != nil {
			t.Fatal(err)
		}
		if h.Type != "history" || len(h.Messages) != 1 || !h.Messages[0].Action || h.Messages[0].Text != "waves" || h.Messages[0].User != "alice" {
			t.Fatalf("history %+v", h)
		}
		_, _ = c.Close(), j.Close()
	})
}

// /nick through the default scripts: refusals are worded for the user
// (no Go package prefix), look-alikes count as taken.
func TestNickAnswers(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := scripting.New(t.Context(), scripting.Options{FS: defaults.Scripts(), HookTimeout: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	u := chattest.Start(t, chat.Config{Logger: log}, eng, nil).WS
	admin := dialE2E(t, u+"/chat/r?name=admin", "")
	skipUntil(t, admin, "* admin joined")
	c := dialE2E(t, u+"/chat/r?name=bob", "")
	skipUntil(t, c, "* welcome to r! /help lists the commands; type quit to leave") // after "* bob joined"
	for _, tc := range []struct{ cmd, answer string }{
		{"/nick a:b", "* cannot change your name: invalid name: ':' not allowed"},
		{"/nick аdmin", "* cannot change your name: invalid name: mixes scripts (Cyrillic and Latin): use letters of one script"},
		{"/nick ad\u3164min", "* cannot change your name: invalid name: invisible character U+3164 not allowed"},
		{"/nick Admin", "* that name is taken or looks like one in use; you are now Admin-2"},
	} {
		send(t, c, tc.cmd)
		line := readLine(t, c)
		if strings.HasPrefix(line, "* bob is now known as") {
			line = readLine(t, c) // the room's notice comes first
		}
		if line != tc.answer {
			t.Errorf("%s: got %q, want %q", tc.cmd, line, tc.answer)
		}
	}
	_, _ = admin.Close(), c.Close()
}

func dialE2E(t *testing.T, url, proto string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readLine(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(data)
}

func skipUntil(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	for readLine(t, c) != want {
	}
}

func send(t *testing.T, c *websocket.Conn, text string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
}
