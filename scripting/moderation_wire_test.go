package scripting

import (
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/defaults"
)

// TestModerationOverTheWire runs the default moderation.lua behind a real
// chat server whose room rules let the role "mod" moderate: a member
// without it is refused, a moderator's /ban kicks the target (close 1008)
// and keeps them out at the handshake (403), /mute refuses the target's
// messages, /kick closes the connection (1000), and the audit log names
// the moderator.
func TestModerationOverTheWire(t *testing.T) {
	src, err := fs.ReadFile(defaults.Scripts(), "moderation.lua")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{
			"moderation.lua": string(src),
			// /op makes its caller a moderator for the session.
			"op.lua": `chat.command("op", function(user) assert(chat.grant(user, "mod")) return "you moderate" end)`,
		}),
		HookTimeout: 5 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	rules, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "*", Read: []string{"*"}, Post: []string{"*"}, Moderate: []string{"mod"}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler), RoomRules: rules}, e, nil)

	mia := ts.Dial(t, "/chat/lobby?name=mia", "")
	mia.SkipUntil("* mia joined")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")
	carol := ts.Dial(t, "/chat/lobby?name=carol", "")
	carol.SkipUntil("* carol joined")

	bob.Send("/ban carol")
	bob.SkipUntil("* only moderators may /ban")
	mia.Send("/op")
	mia.SkipUntil("* you moderate")
	mia.Send("/ban zed")
	mia.SkipUntil("* nobody called zed is in lobby")

	mia.Send("/ban bob 1h spam")
	notice := bob.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* you are banned from lobby until ") })
	if !strings.HasSuffix(notice, ": spam") {
		t.Errorf("bob told %q", notice)
	}
	bob.ExpectClose(1008)
	mia.SkipUntil("* bob was banned by mia for 1h: spam")
	if c, resp, err := ts.TryDial("/chat/lobby?name=bob", ""); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		if c != nil {
			c.Close()
		}
		t.Errorf("bob again: %v, %v", resp, err)
	}

	mia.Send("/mute carol 10m")
	carol.SkipUntil("* carol was muted by mia for 10m")
	carol.Send("hello?")
	carol.SkipTo(func(s string) bool { return strings.HasPrefix(s, "* message not sent: you are muted in lobby until ") })

	mia.Send("/kick carol calm down")
	carol.SkipUntil("* kicked by mia: calm down")
	carol.ExpectClose(1000)
	mia.SkipUntil("* carol was kicked by mia: calm down")

	mia.Send("/unban bob")
	mia.SkipUntil("* bob is no longer banned (mia)")
	entries, err := ts.Chat.Audit("lobby", time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range entries {
		got = append(got, a.Action+" by "+a.By)
	}
	if want := "ban by mia,mute by mia,kick by mia,unban by mia"; strings.Join(got, ",") != want {
		t.Errorf("audit %q, want %q", got, want)
	}
}
