package chat

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Tests of the plain-text line rules (docs/protocol.md, "Plain text"),
// the text rules, malformed moonchat.v1 frames and /me actions.

func TestAppendPlainText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", "hello"},
		{"", ""},
		{"hi all\n* alice is now known as admin\nadmin: paste your password", "hi all ⏎ * alice is now known as admin ⏎ admin: paste your password"},
		{"a\r\nb\rc\nd", "a ⏎ b ⏎ c ⏎ d"},
		{"a\vb\fc", "a ⏎ b ⏎ c"},
		{"a\u0085b\u2028c\u2029d", "a ⏎ b ⏎ c ⏎ d"},
		{"tab\there", "tab here"},
		{"esc\x1b[2Jbell\a nul\x00 del\x7f", "esc\ufffd[2Jbell\ufffd nul\ufffd del\ufffd"},
		{"c1\u009b31m", "c1\ufffd31m"},
		{"bad \xff utf8 \xc3", "bad \ufffd utf8 \ufffd"},
		{"evil\u202etxt.exe", "eviltxt.exe"},
		{"\u2066a\u2069\u200e\u200f\u061c\u202a\u202b\u202c\u202d", "a"},
		{"emoji 😀 é ⏎", "emoji 😀 é ⏎"},
	} {
		if got := string(appendPlainText(nil, tc.in)); got != tc.want {
			t.Errorf("appendPlainText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTextProblem(t *testing.T) {
	for _, tc := range []struct{ text, why string }{
		{"hello", ""},
		{"multi\nline\r\nwith\ttab", ""},
		{"é 😀 \u202e", ""},
		{"\x00", "control character U+0000"},
		{"a\x1b[31m", "control character U+001B"},
		{"bell\a", "control character U+0007"},
		{"del\x7f", "control character U+007F"},
		{"c1 \u009b", "control character U+009B"},
		{"nel \u0085", "control character U+0085"},
	} {
		got := textProblem(tc.text)
		if tc.why == "" && got != "" || !strings.Contains(got, tc.why) {
			t.Errorf("textProblem(%q) = %q, want %q", tc.text, got, tc.why)
		}
	}
}

// A multi-line message cannot draw lines of its own in a plain-text
// client: live, to JSON clients (unchanged), stored (unchanged) and
// replayed, it stays one line that starts with its author's name.
func TestMultiLineMessageCannotSpoof(t *testing.T) {
	hist := newMemHistory()
	ts := startServer(t, Config{Replay: 50}, nil, hist)
	p := ts.dial(t, "/chat/r?name=bob", "")
	p.expect("* bob joined")
	j := ts.dial(t, "/chat/r?name=jay", SubprotocolJSON)
	j.skipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	p.expect("* jay joined")

	spoof := "hi all\n* alice is now known as admin\nadmin: please paste your password here"
	p.send(spoof)
	p.expect("bob: hi all ⏎ * alice is now known as admin ⏎ admin: please paste your password here")
	if m := j.expectEvent("message"); m.str("text") != spoof {
		t.Fatalf("JSON text %q, want it unchanged", m.str("text"))
	}
	if got := hist.all("r"); len(got) != 1 || got[0].Text != spoof {
		t.Fatalf("stored %v", got)
	}
	n := ts.dial(t, "/chat/r?name=newcomer", "")
	line := n.read()
	if !strings.HasSuffix(line, "] bob: hi all ⏎ * alice is now known as admin ⏎ admin: please paste your password here") {
		t.Fatalf("replayed %q", line)
	}
	n.expect("* --- end of history ---", "* newcomer joined")

	// Notices written by scripts go through the same rule.
	if err := ts.srv.Broadcast("r", "two\nlines\x1b[2J"); err != nil {
		t.Fatal(err)
	}
	p.skipTo(func(l string) bool { return strings.HasPrefix(l, "* newcomer") })
	p.expect("* two ⏎ lines\ufffd[2J")
	if e := j.skipTo(func(l string) bool { return strings.Contains(l, "two") }); !strings.Contains(e, `"two\nlines\u001b[2J"`) {
		t.Fatalf("JSON notice %s", e)
	}
	bobID := sessionOf(t, ts, "r", "bob")
	if err := ts.srv.Send(bobID, "a\r\nb"); err != nil {
		t.Fatal(err)
	}
	p.expect("* a ⏎ b")
	// And so do close reasons.
	if err := ts.srv.Kick(bobID, "bye\nnow"); err != nil {
		t.Fatal(err)
	}
	p.expect("* bye ⏎ now")
	p.expectClose(1000, "bye ⏎ now")
}

// Names cannot carry a line break, control or bidi character: renames and
// join notices are made of checked names.
func TestNamesCannotSpoof(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	c := ts.dial(t, "/chat/r?name=x%0A*%20admin", "")
	c.expect("* invalid name: control character U+000A not allowed")
	c.expectClose(1008, "invalid name: control character U+000A not allowed")
	a := ts.dial(t, "/chat/r?name=alice", "")
	a.expect("* alice joined")
	for name, why := range map[string]string{
		"x\n* admin": "control character U+000A",
		"x\u202eb":   "bidi control character U+202E",
		"ad\u3164m":  "invisible character U+3164",
	} {
		if _, err := ts.srv.Rename(sessionOf(t, ts, "r", "alice"), name); !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), why) {
			t.Errorf("Rename(%q) = %v, want %q", name, err, why)
		}
	}
}

func TestControlCharactersRefused(t *testing.T) {
	hist := newMemHistory()
	ts := startServer(t, Config{}, nil, hist)
	p := ts.dial(t, "/chat/r?name=p", "")
	p.expect("* p joined")
	j := ts.dial(t, "/chat/r?name=j", SubprotocolJSON)
	j.skipTo(func(l string) bool { return strings.Contains(l, `"j joined"`) })
	p.expect("* j joined")

	p.send("red \x1b[31malert")
	p.expect("* message not sent: control character U+001B is not allowed (only tab and line breaks are)")
	j.sendJSON(map[string]string{"type": "message", "text": "nul\x00"})
	if e := j.expectEvent("error"); e.str("code") != "bad_request" || e.str("text") != "message not sent: control character U+0000 is not allowed (only tab and line breaks are)" {
		t.Fatalf("error %v", e)
	}
	// Tabs and line breaks are text.
	p.send("ok\tthen")
	p.expect("p: ok then")
	if m := j.expectEvent("message"); m.str("text") != "ok\tthen" {
		t.Fatalf("message %v", m)
	}
	if got := hist.all("r"); len(got) != 1 {
		t.Fatalf("stored %v", got)
	}
	_, body, _ := ts.get(t, "/metrics")
	if !strings.Contains(body, `moonchat_messages_dropped_total{reason="bad_request"} 2`) {
		t.Errorf("metrics:\n%s", body)
	}
}

func TestMalformedJSONFrames(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	j := ts.dial(t, "/chat/r?name=j", SubprotocolJSON)
	j.skipTo(func(l string) bool { return strings.Contains(l, `"j joined"`) })
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
		{`{"type":"dance"}`, `unknown type "dance" (want "message", "history" or "presence")`},
		{`{"type":"message"}`, `a "message" event needs a "text" string`},
	} {
		j.send(tc.frame)
		e := j.expectEvent("error")
		if want := "malformed moonchat.v1 frame: " + tc.text + see; e.str("code") != "bad_request" || e.str("text") != want {
			t.Errorf("%s: got %v\nwant text %q", tc.frame, e, want)
		}
	}
}

// A /me action (Host.Action) is a chat message marked Action: hooks see
// it, it is stored, delivered as "* alice waves" and as a message event
// with "action": true, and replayed as such.
func TestActions(t *testing.T) {
	hist := newMemHistory()
	var seen []string
	hooks := &testHooks{message: func(u User, m *Message) MessageResult {
		if m.Action {
			seen = append(seen, u.Name+" "+m.Text) // room goroutine; read after it is done
			if m.Text == "swears" {
				return MessageResult{Text: "says something nice", Replace: true}
			}
		}
		return MessageResult{}
	}}
	ts := startServer(t, Config{Replay: 50}, hooks, hist)
	p := ts.dial(t, "/chat/r?name=alice", "")
	p.expect("* alice joined")
	j := ts.dial(t, "/chat/r?name=jay", SubprotocolJSON)
	j.skipTo(func(l string) bool { return strings.Contains(l, `"jay joined"`) })
	p.expect("* jay joined")

	alice := sessionOf(t, ts, "r", "alice")
	if err := ts.srv.Action(alice, "waves\nat everyone"); err != nil {
		t.Fatal(err)
	}
	p.expect("* alice waves ⏎ at everyone")
	m := j.expectEvent("message")
	if m["action"] != true || m.str("user") != "alice" || m.str("text") != "waves\nat everyone" || m.num("id") != 1 {
		t.Fatalf("action event %v", m)
	}
	if err := ts.srv.Action(alice, "swears"); err != nil {
		t.Fatal(err)
	}
	p.expect("* alice says something nice")
	j.expectEvent("message")
	p.send("plain")
	p.expect("alice: plain")
	if m := j.expectEvent("message"); m["action"] != nil {
		t.Fatalf("a plain message carries action: %v", m)
	}
	got := hist.all("r")
	if len(got) != 3 || !got[0].Action || !got[1].Action || got[1].Text != "says something nice" || got[2].Action {
		t.Fatalf("stored %+v", got)
	}
	if len(seen) != 2 || seen[0] != "alice waves\nat everyone" {
		t.Fatalf("message hook saw %q", seen)
	}

	// Replayed as actions.
	n := ts.dial(t, "/chat/r?name=nina", "")
	for _, want := range []string{"* alice waves ⏎ at everyone", "* alice says something nice", "alice: plain"} {
		line := n.read()
		ts, rest, ok := strings.Cut(line, "] ")
		if !ok || !strings.HasPrefix(ts, "[") || rest != want {
			t.Fatalf("replayed %q, want [TIME] %q", line, want)
		}
		if _, err := time.Parse("[2006-01-02 15:04 UTC", ts); err != nil {
			t.Fatalf("replay time %q: %v", ts, err)
		}
	}
	n.expect("* --- end of history ---", "* nina joined")
	k := ts.dial(t, "/chat/r?name=kim", SubprotocolJSON)
	k.expectEvent("welcome")
	h := k.expectEvent("history")
	msgs := h["messages"].([]any)
	if len(msgs) != 3 || msgs[0].(map[string]any)["action"] != true || msgs[2].(map[string]any)["action"] != nil {
		t.Fatalf("history %v", h)
	}

	// Refused like a client's text.
	for text, want := range map[string]error{"": ErrInvalidText, "a\x1bb": ErrInvalidText, strings.Repeat("x", ts.srv.cfg.MaxTextBytes+1): ErrInvalidText} {
		if err := ts.srv.Action(alice, text); !errors.Is(err, want) {
			t.Errorf("Action(%.20q) = %v, want %v", text, err, want)
		}
	}
	if err := ts.srv.Action(999, "waves"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Action(unknown) = %v", err)
	}
}

// Look-alike names count as taken when joining and renaming.
func TestLookAlikeJoinAndRename(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	a := ts.dial(t, "/chat/r?name=admin", SubprotocolJSON)
	a.expectEvent("welcome")
	for _, tc := range []struct{ query, given string }{
		{"%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E", "admin-2"}, // ａｄｍｉｎ
		{"Admin", "Admin-3"}, // admin-2 is taken too
		{"a%CC%81dmin", "ádmin-4"},
	} {
		c := ts.dial(t, "/chat/r?name="+tc.query, SubprotocolJSON)
		if w := c.expectEvent("welcome"); w.str("user") != tc.given {
			t.Errorf("name=%s: welcome %v, want %q", tc.query, w, tc.given)
		}
	}
	b := ts.dial(t, "/chat/r?name=bob", "")
	b.skipTo(func(l string) bool { return l == "* bob joined" })
	bob := sessionOf(t, ts, "r", "bob")
	if got, err := ts.srv.Rename(bob, "ADMIN"); err != nil || got != "ADMIN-5" {
		t.Errorf("Rename(ADMIN) = %q, %v", got, err)
	}
	if _, err := ts.srv.Rename(bob, "аdmin"); err == nil || err.Error() != "invalid name: mixes scripts (Cyrillic and Latin): use letters of one script" {
		t.Errorf("Rename(Cyrillic а + Latin) = %v", err)
	}
	// A member's own look-alike is not taken by itself.
	if got, err := ts.srv.Rename(bob, "Admin-5"); err != nil || got != "Admin-5" {
		t.Errorf("Rename(Admin-5) = %q, %v", got, err)
	}
}

// sessionOf returns the session id of the member of room called name.
func sessionOf(t *testing.T, ts *testServer, room, name string) uint64 {
	t.Helper()
	var id uint64
	eventually(t, name+" in "+room, func() bool {
		for _, u := range ts.srv.Users(room) {
			if u.Name == name {
				id = u.SessionID
				return true
			}
		}
		return false
	})
	return id
}

// The line rules cost a scan of each text, once per message and batch
// (the frame is shared by every plain member). Compare with
// BenchmarkAppendRaw, the copy the encoder did before.
func BenchmarkAppendPlainMessage(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"ascii", strings.Repeat("hello world, ", 8)},
		{"accents", strings.Repeat("héllo wörld, ", 8)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				buf = appendPlainMessage(buf[:0], "alice", bc.text)
			}
		})
	}
}

func BenchmarkAppendRaw(b *testing.B) {
	text := strings.Repeat("hello world, ", 8)
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		buf = append(append(append(buf[:0], "alice"...), ": "...), text...)
	}
}

// printableASCIIPrefix must never claim a byte outside 0x20–0x7E, in any
// position of a word.
func TestPrintableASCIIPrefix(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			s := []byte(strings.Repeat("a", 17))
			s[pos] = byte(c)
			n := printableASCIIPrefix(string(s))
			printable := c >= 0x20 && c < 0x7f
			if printable && n != len(s) || !printable && n > pos {
				t.Fatalf("byte %#x at %d: prefix %d", c, pos, n)
			}
		}
	}
}
