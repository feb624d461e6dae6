package chat_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// End-to-end tests of the plain-text line rules (docs/protocol.md, "Plain
// text"), the text rules, malformed moonchat.v1 frames and /me actions,
// through chattest's server; the encoders' own tests are in
// plaintext_test.go.

// A multi-line message cannot draw lines of its own in a plain-text
// client: live, to JSON clients (unchanged), stored (unchanged) and
// replayed, it stays one line that starts with its author's name.
func TestMultiLineMessageCannotSpoof(t *testing.T) {
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{Replay: 50}, nil, hist)
	p := ts.Dial(t, "/chat/r?name=bob", "")
	p.Expect("* bob joined")
	j := ts.Dial(t, "/chat/r?name=jay", chat.SubprotocolJSON)
	j.SkipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	p.Expect("* jay joined")

	spoof := "hi all\n* alice is now known as admin\nadmin: please paste your password here"
	p.Send(spoof)
	p.Expect("bob: hi all ⏎ * alice is now known as admin ⏎ admin: please paste your password here")
	if m := j.ExpectEvent("message"); m.Str("text") != spoof {
		t.Fatalf("JSON text %q, want it unchanged", m.Str("text"))
	}
	if got := hist.All("r"); len(got) != 1 || got[0].Text != spoof {
		t.Fatalf("stored %v", got)
	}
	n := ts.Dial(t, "/chat/r?name=newcomer", "")
	line := n.Read()
	if !strings.HasSuffix(line, "] bob: hi all ⏎ * alice is now known as admin ⏎ admin: please paste your password here") {
		t.Fatalf("replayed %q", line)
	}
	n.Expect("* --- end of history ---", "* newcomer joined")

	// Notices written by scripts go through the same rule.
	if err := ts.Chat.Broadcast("r", "two\nlines\x1b[2J"); err != nil {
		t.Fatal(err)
	}
	p.SkipTo(func(l string) bool { return strings.HasPrefix(l, "* newcomer") })
	p.Expect("* two ⏎ lines\ufffd[2J")
	if e := j.SkipTo(func(l string) bool { return strings.Contains(l, "two") }); !strings.Contains(e, `"two\nlines\u001b[2J"`) {
		t.Fatalf("JSON notice %s", e)
	}
	bobID := sessionOf(t, ts, "r", "bob")
	if err := ts.Chat.Send(bobID, "a\r\nb"); err != nil {
		t.Fatal(err)
	}
	p.Expect("* a ⏎ b")
	// And so do close reasons.
	if err := ts.Chat.Kick(bobID, "bye\nnow"); err != nil {
		t.Fatal(err)
	}
	p.Expect("* bye ⏎ now")
	p.ExpectCloseReason(1000, "bye ⏎ now")
}

// Names cannot carry a line break, control or bidi character: renames and
// join notices are made of checked names.
func TestNamesCannotSpoof(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	c := ts.Dial(t, "/chat/r?name=x%0A*%20admin", "")
	c.Expect("* invalid name: control character U+000A not allowed")
	c.ExpectCloseReason(1008, "invalid name: control character U+000A not allowed")
	a := ts.Dial(t, "/chat/r?name=alice", "")
	a.Expect("* alice joined")
	for name, why := range map[string]string{
		"x\n* admin": "control character U+000A",
		"x\u202eb":   "bidi control character U+202E",
		"ad\u3164m":  "invisible character U+3164",
	} {
		if _, err := ts.Chat.Rename(sessionOf(t, ts, "r", "alice"), name); !errors.Is(err, chat.ErrInvalidName) || !strings.Contains(err.Error(), why) {
			t.Errorf("Rename(%q) = %v, want %q", name, err, why)
		}
	}
}

func TestControlCharactersRefused(t *testing.T) {
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{}, nil, hist)
	p := ts.Dial(t, "/chat/r?name=p", "")
	p.Expect("* p joined")
	j := ts.Dial(t, "/chat/r?name=j", chat.SubprotocolJSON)
	j.SkipTo(func(l string) bool { return strings.Contains(l, `"j joined"`) })
	p.Expect("* j joined")

	p.Send("red \x1b[31malert")
	p.Expect("* message not sent: control character U+001B is not allowed (only tab and line breaks are)")
	j.SendJSON(map[string]string{"type": "message", "text": "nul\x00"})
	if e := j.ExpectEvent("error"); e.Str("code") != "bad_request" || e.Str("text") != "message not sent: control character U+0000 is not allowed (only tab and line breaks are)" {
		t.Fatalf("error %v", e)
	}
	// Tabs and line breaks are text.
	p.Send("ok\tthen")
	p.Expect("p: ok then")
	if m := j.ExpectEvent("message"); m.Str("text") != "ok\tthen" {
		t.Fatalf("message %v", m)
	}
	if got := hist.All("r"); len(got) != 1 {
		t.Fatalf("stored %v", got)
	}
	_, body, _ := ts.Get(t, "/metrics")
	if !strings.Contains(body, `moonchat_messages_dropped_total{reason="bad_request"} 2`) {
		t.Errorf("metrics:\n%s", body)
	}
}

func TestMalformedJSONFrames(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	j := ts.Dial(t, "/chat/r?name=j", chat.SubprotocolJSON)
	j.SkipTo(func(l string) bool { return strings.Contains(l, `"j joined"`) })
	const see = " (see docs/protocol.md)"
	for _, tc := range []struct{ frame, text string }{
		{`nope`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{`[1]`, "not a JSON object"},
		{`"text"`, "not a JSON object"},
		{``, "not a JSON object"},
		{`{"type":"message","text":"a"`, "not valid JSON (error at byte 28)"},
		{`{"type":"message","text":5}`, `"text" must be a string`},
		{`{"type":1}`, `"type" must be a string`},
		{`{"type":"history","before":-1}`, `"before" must be a message id (a whole number, 0 or more)`},
		{`{"type":"history","after":"x"}`, `"after" must be a message id (a whole number, 0 or more)`},
		{`{"type":"history","limit":1.5}`, `"limit" must be a whole number`},
		{`{"type":"history","limit":-1}`, `"limit" must not be negative`},
		{`{"type":"history","before":1,"after":2}`, `give "before" or "after", not both`},
		{`{}`, `no "type" field`},
		{`{"type":"dance"}`, `unknown type "dance" (want "message", "history", "presence", "typing", "token", "delete", "direct" or "conversations")`},
		{`{"type":"message"}`, `a "message" event needs a "text" string`},
	} {
		j.Send(tc.frame)
		e := j.ExpectEvent("error")
		if want := "malformed moonchat.v1 frame: " + tc.text + see; e.Str("code") != "bad_request" || e.Str("text") != want {
			t.Errorf("%s: got %v\nwant text %q", tc.frame, e, want)
		}
	}
}

// A /me action (Host.Action) is a chat message marked Action: hooks see
// it, it is stored, delivered as "* alice waves" and as a message event
// with "action": true, and replayed as such.
func TestActions(t *testing.T) {
	hist := chattest.NewHistory()
	var seen []string
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		if m.Action {
			seen = append(seen, u.Name+" "+m.Text) // room goroutine; read after it is done
			if m.Text == "swears" {
				return chat.MessageResult{Text: "says something nice", Replace: true}
			}
		}
		return chat.MessageResult{}
	}}
	ts := chattest.Start(t, chat.Config{Replay: 50}, hooks, hist)
	p := ts.Dial(t, "/chat/r?name=alice", "")
	p.Expect("* alice joined")
	j := ts.Dial(t, "/chat/r?name=jay", chat.SubprotocolJSON)
	j.SkipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	p.Expect("* jay joined")

	alice := sessionOf(t, ts, "r", "alice")
	if err := ts.Chat.Action(alice, "waves\nat everyone"); err != nil {
		t.Fatal(err)
	}
	p.Expect("* alice waves ⏎ at everyone")
	m := j.ExpectEvent("message")
	if m["action"] != true || m.Str("user") != "alice" || m.Str("text") != "waves\nat everyone" || m.Num("id") != 1 {
		t.Fatalf("action event %v", m)
	}
	if err := ts.Chat.Action(alice, "swears"); err != nil {
		t.Fatal(err)
	}
	p.Expect("* alice says something nice")
	j.ExpectEvent("message")
	p.Send("plain")
	p.Expect("alice: plain")
	if m := j.ExpectEvent("message"); m["action"] != nil {
		t.Fatalf("a plain message carries action: %v", m)
	}
	got := hist.All("r")
	if len(got) != 3 || !got[0].Action || !got[1].Action || got[1].Text != "says something nice" || got[2].Action {
		t.Fatalf("stored %+v", got)
	}
	if len(seen) != 2 || seen[0] != "alice waves\nat everyone" {
		t.Fatalf("message hook saw %q", seen)
	}

	// Replayed as actions.
	n := ts.Dial(t, "/chat/r?name=nina", "")
	for _, want := range []string{"* alice waves ⏎ at everyone", "* alice says something nice", "alice: plain"} {
		line := n.Read()
		ts, rest, ok := strings.Cut(line, "] ")
		if !ok || !strings.HasPrefix(ts, "[") || rest != want {
			t.Fatalf("replayed %q, want [TIME] %q", line, want)
		}
		if _, err := time.Parse("[2006-01-02 15:04 UTC", ts); err != nil {
			t.Fatalf("replay time %q: %v", ts, err)
		}
	}
	n.Expect("* --- end of history ---", "* nina joined")
	k := ts.Dial(t, "/chat/r?name=kim", chat.SubprotocolJSON)
	k.ExpectEvent("welcome")
	h := k.ExpectEvent("history")
	msgs := h["messages"].([]any)
	if len(msgs) != 3 || msgs[0].(map[string]any)["action"] != true || msgs[2].(map[string]any)["action"] != nil {
		t.Fatalf("history %v", h)
	}

	// Refused like a client's text.
	for text, want := range map[string]error{"": chat.ErrInvalidText, "a\x1bb": chat.ErrInvalidText, strings.Repeat("x", chattest.Limits(chat.Config{}).MaxTextBytes+1): chat.ErrInvalidText} {
		if err := ts.Chat.Action(alice, text); !errors.Is(err, want) {
			t.Errorf("Action(%.20q) = %v, want %v", text, err, want)
		}
	}
	if err := ts.Chat.Action(999, "waves"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("Action(unknown) = %v", err)
	}
}

// Look-alike names count as taken when joining and renaming.
func TestLookAlikeJoinAndRename(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	a := ts.Dial(t, "/chat/r?name=admin", chat.SubprotocolJSON)
	a.ExpectEvent("welcome")
	for _, tc := range []struct{ query, given string }{
		{"%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E", "admin-2"}, // ａｄｍｉｎ
		{"Admin", "Admin-3"}, // admin-2 is taken too
		{"a%CC%81dmin", "ádmin-4"},
	} {
		c := ts.Dial(t, "/chat/r?name="+tc.query, chat.SubprotocolJSON)
		if w := c.ExpectEvent("welcome"); w.Str("user") != tc.given {
			t.Errorf("name=%s: welcome %v, want %q", tc.query, w, tc.given)
		}
	}
	b := ts.Dial(t, "/chat/r?name=bob", "")
	b.SkipTo(func(l string) bool { return l == "* bob joined" })
	bob := sessionOf(t, ts, "r", "bob")
	if got, err := ts.Chat.Rename(bob, "ADMIN"); err != nil || got != "ADMIN-5" {
		t.Errorf("Rename(ADMIN) = %q, %v", got, err)
	}
	if _, err := ts.Chat.Rename(bob, "аdmin"); err == nil || err.Error() != "invalid name: mixes scripts (Cyrillic and Latin): use letters of one script" {
		t.Errorf("Rename(Cyrillic а + Latin) = %v", err)
	}
	// A member's own look-alike is not taken by itself.
	if got, err := ts.Chat.Rename(bob, "Admin-5"); err != nil || got != "Admin-5" {
		t.Errorf("Rename(Admin-5) = %q, %v", got, err)
	}
}

// sessionOf returns the session id of the member of room called name.
func sessionOf(t *testing.T, ts *chattest.Server, room, name string) uint64 {
	t.Helper()
	var id uint64
	chattest.Eventually(t, name+" in "+room, func() bool {
		for _, u := range ts.Chat.Users(room) {
			if u.Name == name {
				id = u.SessionID
				return true
			}
		}
		return false
	})
	return id
}
