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
		srv, err := chat.New(chattest.Limits(chat.Config{Logger: log, Replay: 50}), eng, db)
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
		c := chattest.Dial(t, u+"/chat/r?name=alice", "")
		c.SkipUntil("* alice joined")
		c.Send("/me waves")
		c.SkipUntil("* alice waves")
		_ = c.Conn.Close() // gone before Shutdown, which would wait for its close handshake
	})
	run(func(u string) {
		c := chattest.Dial(t, u+"/chat/r?name=bob", "")
		line := c.Read()
		if _, rest, ok := strings.Cut(line, " UTC] "); !ok || !strings.HasPrefix(line, "[") || rest != "* alice waves" {
			t.Fatalf("replayed %q, want \"[TIME UTC] * alice waves\"", line)
		}
		if got := c.Read(); got != "* --- end of history ---" {
			t.Fatalf("after the replay: %q", got)
		}
		j := chattest.Dial(t, u+"/chat/r?name=jay", chat.SubprotocolJSON)
		j.Read() // welcome
		var h struct {
			Type     string
			Messages []struct {
				User, Text string
				Action     bool
			}
		}
		if err := json.Unmarshal([]byte(j.Read()), &h); err != nil {
			t.Fatal(err)
		}
		if h.Type != "history" || len(h.Messages) != 1 || !h.Messages[0].Action || h.Messages[0].Text != "waves" || h.Messages[0].User != "alice" {
			t.Fatalf("history %+v", h)
		}
		_, _ = c.Conn.Close(), j.Conn.Close()
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
	admin := chattest.Dial(t, u+"/chat/r?name=admin", "")
	admin.SkipUntil("* admin joined")
	c := chattest.Dial(t, u+"/chat/r?name=bob", "")
	c.SkipUntil("* welcome to r! /help lists the commands; type quit to leave") // after "* bob joined"
	for _, tc := range []struct{ cmd, answer string }{
		{"/nick a:b", "* cannot change your name: invalid name: ':' not allowed"},
		{"/nick аdmin", "* cannot change your name: invalid name: mixes scripts (Cyrillic and Latin): use letters of one script"},
		{"/nick ad\u3164min", "* cannot change your name: invalid name: invisible character U+3164 not allowed"},
		{"/nick Admin", "* that name is taken or looks like one in use; you are now Admin-2"},
	} {
		c.Send(tc.cmd)
		line := c.Read()
		if strings.HasPrefix(line, "* bob is now known as") {
			line = c.Read() // the room's notice comes first
		}
		if line != tc.answer {
			t.Errorf("%s: got %q, want %q", tc.cmd, line, tc.answer)
		}
	}
	_, _ = admin.Conn.Close(), c.Conn.Close()
}
