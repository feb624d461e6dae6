package scripting

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/defaults"
)

// The lint finds unknown events, chat.* names that are not the API, and
// near misses of chat and msg names, each with its line; correct code,
// locals and plain globals are left alone.
func TestLintScript(t *testing.T) {
	src := `local count = 0                       -- 1
seen = {}                                       -- 2 a global, not a near miss
if chat.options.debug then                      -- 3
  chat.on("mesage", function(msg) end)          -- 4 unknown event
end                                             -- 5
chat.on("message", function(msg)                -- 6
  msg.txet = "x"                                -- 7 msg field typo
  mgs = msg.text                                -- 8 global near "msg"
  local text = msg.text                         -- 9 a local: fine
  chat.boradcast(msg.room, text)                -- 10 chat typo
  chat.kv.sett("k", "v")                        -- 11 kv typo
  romo = 1                                      -- 12 global near "room"
  count = count + 1                             -- 13 a local upvalue: fine
  names = {}                                    -- 14 a plural: fine
  chat.frobnicate()                             -- 15 not the API, no near name
  return msg.user.nmae                          -- 16 user field typo? (msg.user.X is not checked)
end)
chat.on("party", function() end)                -- 18
local chat = {}                                 -- 19
chat.whatever = 1                               -- 20 a local named chat: fine
`
	got := LintScript("x.lua", []byte(src))
	var lines []string
	for _, w := range got {
		lines = append(lines, w.String())
	}
	want := []string{
		`x.lua:4: chat.on: unknown event "mesage" (did you mean "message"?)`,
		`x.lua:7: msg.txet looks like a typo of msg.text`,
		`x.lua:8: assigns the global mgs, which looks like a typo of msg`,
		`x.lua:10: chat.boradcast looks like a typo of chat.broadcast`,
		`x.lua:11: chat.kv.sett looks like a typo of chat.kv.set`,
		`x.lua:12: assigns the global romo, which looks like a typo of room`,
		`x.lua:15: chat.frobnicate is not part of the chat API`,
		`x.lua:18: chat.on: unknown event "party" (the events are`,
	}
	if len(lines) != len(want) {
		t.Errorf("%d warnings, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no warning %q in:\n%s", w, strings.Join(lines, "\n"))
		}
	}
}

// The default scripts are lint-clean: a warning there would teach every
// user to ignore the lint.
func TestLintDefaultScripts(t *testing.T) {
	for _, fsys := range []fs.FS{defaults.Scripts(), defaults.Examples()} {
		ws, err := Lint(fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			t.Errorf("default script: %s", w)
		}
	}
}

// A script that does not parse has no warnings (Check reports the error).
func TestLintUnparsable(t *testing.T) {
	if ws := LintScript("bad.lua", []byte("chat.on(")); len(ws) != 0 {
		t.Errorf("warnings for an unparsable script: %v", ws)
	}
}

func TestNearest(t *testing.T) {
	known := []string{"chat", "msg", "text", "room", "name", "to", "id"}
	for in, want := range map[string]string{
		"caht": "chat", "mgs": "msg", "txet": "text", "tex": "text", "rooom": "room",
		"ms": "msg", "chatt": "chat",
		"chat": "", "names": "", "tp": "", "ix": "", "m": "", "banana": "", "msgs": "",
	} {
		got, ok := nearest(in, known)
		if ok != (want != "") || got != want {
			t.Errorf("nearest(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}
