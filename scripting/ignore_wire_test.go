package scripting

import (
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/defaults"
)

// The default ignore.lua behind a real chat server: /ignore hides the
// ignored user's messages from the caller only, /ignore alone lists,
// /unignore brings them back, and unknown names are answered.
func TestIgnoreOverTheWire(t *testing.T) {
	src, err := fs.ReadFile(defaults.Scripts(), "ignore.lua")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), Options{
		FS:          scriptFS(map[string]string{"ignore.lua": string(src)}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)
	mia := ts.Dial(t, "/chat/lobby?name=mia", "")
	mia.SkipUntil("* mia joined")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	carol := ts.Dial(t, "/chat/lobby?name=carol", "")
	carol.SkipUntil("* carol joined")
	isChat := func(s string) bool { return strings.Contains(s, ": ") && !strings.HasPrefix(s, "* ") }

	mia.Send("/ignore")
	mia.SkipUntil("* you ignore nobody")
	mia.Send("/ignore zed")
	mia.SkipUntil("* no user zed here")
	mia.Send("/ignore bob")
	mia.SkipUntil("* you now ignore bob")
	mia.Send("/ignore")
	mia.SkipUntil("* you ignore: bob")
	bob.Send("hidden from mia")
	carol.SkipUntil("bob: hidden from mia")
	carol.Send("seen by all")
	if got := mia.SkipTo(isChat); got != "carol: seen by all" {
		t.Errorf("mia got %q", got)
	}
	if got := carol.SkipTo(isChat); got != "carol: seen by all" {
		t.Errorf("carol got %q", got)
	}
	mia.Send("/unignore carol")
	mia.SkipUntil("* you do not ignore carol")
	mia.Send("/unignore bob")
	mia.SkipUntil("* you no longer ignore bob")
	bob.Send("back")
	if got := mia.SkipTo(isChat); got != "bob: back" {
		t.Errorf("mia got %q", got)
	}
}
