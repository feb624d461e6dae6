package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/store"
)

func TestEscapeLine(t *testing.T) {
	for _, tc := range []struct{ in, line, text string }{
		{"plain text, ünïcödé ✓ 日本", "plain text, ünïcödé ✓ 日本", "plain text, ünïcödé ✓ 日本"},
		{"esc\x1b[31mred", `esc\x1b[31mred`, `esc\x1b[31mred`},
		{"bel\x07 nul\x00 del\x7f", `bel\x07 nul\x00 del\x7f`, `bel\x07 nul\x00 del\x7f`},
		{"two\nlines\r\tx", `two\nlines\r\tx`, "two\nlines\\r\tx"},
		{"c1 \u0085 \u009b", `c1 \u0085 \u009b`, `c1 \u0085 \u009b`},
		{"bidi \u202e \u2066 \u200f \u061c", `bidi \u202e \u2066 \u200f \u061c`, `bidi \u202e \u2066 \u200f \u061c`},
		{"sep \u2028", `sep \u2028`, `sep \u2028`},
		{"bad \xff\xc3 utf8", `bad \xff\xc3 utf8`, `bad \xff\xc3 utf8`},
		{`back\slash`, `back\\slash`, `back\slash`},
	} {
		if got := escapeLine(tc.in); got != tc.line {
			t.Errorf("escapeLine(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := escapeText(tc.in); got != tc.text {
			t.Errorf("escapeText(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
}

// TestEscapeJSON: encoding/json leaves DEL, C1 and bidi controls raw;
// escapeJSON escapes them and the document still decodes to the same text.
func TestEscapeJSON(t *testing.T) {
	text := "x\x1b\x7f\u0085\u009b\u202e\u2066\u2028y\"\\</>"
	raw, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		t.Fatal(err)
	}
	if termUnsafeIn(string(raw)) == "" {
		t.Fatal("encoding/json escaped everything already: this test no longer tests anything")
	}
	safe := escapeJSON(raw)
	if bad := termUnsafeIn(string(safe)); bad != "" {
		t.Errorf("escapeJSON left raw %s: %q", bad, safe)
	}
	var back map[string]string
	if err := json.Unmarshal(safe, &back); err != nil || back["text"] != text {
		t.Errorf("escaped JSON decodes to %q (%v), want %q", back["text"], err, text)
	}
	plain := []byte(`{"text":"ok"}` + "\n")
	if got := escapeJSON(plain); !bytes.Equal(got, plain) {
		t.Errorf("escapeJSON changed clean JSON: %q", got)
	}
}

// TestHistoryAPIOutputEscaped (issue 10.16): what a running server (or
// anything answering at -server) sends is escaped too: messages, room
// names and error texts.
func TestHistoryAPIOutputEscaped(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Format(timeLayout)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/rooms":
			_, _ = w.Write([]byte(`{"rooms":[{"room":"lobby","count":1,"first_id":1,"last_id":1},{"room":"x\u001b]2;t\u0007","count":1,"first_id":1,"last_id":1}]}`))
		case "/api/history":
			if r.URL.Query().Get("room") != "lobby" {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"bad \u001b[2J room"}`))
				return
			}
			_, _ = w.Write([]byte(`{"room":"lobby","complete":true,"more":false,"messages":[{"id":1,"room":"lobby","user":"m\u009b","text":"hi\u001b[5m\u202e\u007f","ts":"` + ts + `"}]}`))
		}
	}))
	defer hs.Close()
	c := &apiClient{base: hs.URL, http: hs.Client()}

	var out, errOut bytes.Buffer
	msgs, more, err := readHistory(t.Context(), c, store.Query{Room: "lobby", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := printMessages(&out, &errOut, msgs, more, false, true); err != nil {
		t.Fatal(err)
	}
	if want := "2026-11-22T10:00:00.000Z lobby #1 m\\u009b: hi\\x1b[5m\\u202e\\x7f\n"; out.String() != want {
		t.Errorf("text output %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := printMessages(&out, &errOut, msgs, more, true, false); err != nil {
		t.Fatal(err)
	}
	if bad := termUnsafeIn(out.String()); bad != "" {
		t.Errorf("-json output holds raw %s: %q", bad, out.String())
	}
	var m jsonMessage
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.Text != "hi\x1b[5m\u202e\x7f" || m.User != "m\u009b" {
		t.Errorf("-json output %q decodes to %+v (%v)", out.String(), m, err)
	}

	rooms, err := c.rooms(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := printRooms(&out, rooms, false); err != nil {
		t.Fatal(err)
	}
	if want := "lobby 1\nx\\x1b]2;t\\x07 1\n"; out.String() != want {
		t.Errorf("-rooms output %q, want %q", out.String(), want)
	}

	// An error answer reaches stderr through run, escaped.
	_, _, err = readHistory(t.Context(), c, store.Query{Limit: 10})
	if err == nil || !strings.Contains(err.Error(), "bad \x1b[2J room") {
		t.Fatalf("error answer: %v", err)
	}
	// ...and run prints it escaped. The store file is held open here, as
	// a server would, so that the CLI asks the fake server.
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"history", "-config", cfg, "-server", hs.Listener.Addr().String()}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `bad \x1b[2J room`) || termUnsafeIn(stderr.String()) != "" {
		t.Errorf("code %d, stderr %q", code, stderr.String())
	}
}
