package scripting

import (
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/defaults"
)

// docBlock is one ```lua block of docs/lua.md whose first line names it:
// "-- example: NAME.lua" (a script the tests run) or "-- scripts/NAME.lua"
// (a copy of a default script, which must match the file byte for byte).
type docBlock struct {
	kind, name, body string
}

func docBlocks(t *testing.T) (blocks []docBlock, doc string) {
	t.Helper()
	b, err := os.ReadFile("../docs/lua.md")
	if err != nil {
		t.Fatal(err)
	}
	doc = string(b)
	re := regexp.MustCompile("(?s)```lua\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		first, body, _ := strings.Cut(m[1], "\n")
		switch {
		case strings.HasPrefix(first, "-- example: "):
			blocks = append(blocks, docBlock{"example", strings.TrimPrefix(first, "-- example: "), body})
		case strings.HasPrefix(first, "-- scripts/"):
			blocks = append(blocks, docBlock{"script", strings.TrimPrefix(first, "-- scripts/"), body})
		}
	}
	return blocks, doc
}

// TestDocDefaultScripts: the doc shows every default script exactly as it
// ships, and every example script of defaults/scripts/examples (not
// embedded: read from the source tree) exactly as it is.
func TestDocDefaultScripts(t *testing.T) {
	blocks, _ := docBlocks(t)
	shown := map[string]bool{}
	for _, b := range blocks {
		if b.kind != "script" {
			continue
		}
		shown[b.name] = true
		if strings.HasPrefix(b.name, "examples/") {
			src, err := os.ReadFile("../defaults/scripts/" + b.name)
			if err != nil {
				t.Errorf("docs/lua.md shows scripts/%s: %v", b.name, err)
			} else if string(src) != b.body {
				t.Errorf("docs/lua.md's copy of scripts/%s differs from defaults/scripts/%s", b.name, b.name)
			}
			continue
		}
		src, err := fs.ReadFile(defaults.Scripts(), b.name)
		if err != nil {
			t.Errorf("docs/lua.md shows scripts/%s: %v", b.name, err)
			continue
		}
		if string(src) != b.body {
			t.Errorf("docs/lua.md's copy of scripts/%s differs from the file", b.name)
		}
	}
	files, _ := fs.Glob(defaults.Scripts(), "*.lua")
	examples, _ := fs.Glob(os.DirFS("../defaults/scripts"), "examples/*.lua")
	if len(examples) == 0 {
		t.Error("no defaults/scripts/examples/*.lua found")
	}
	files = append(files, examples...)
	for _, f := range files {
		// A script's test (NAME_test.lua) need not be shown; one that is
		// (the Developing scripts chapter) must match, as above.
		if !shown[f] && !strings.HasSuffix(f, "_test.lua") {
			t.Errorf("docs/lua.md does not show scripts/%s", f)
		}
	}
}

// TestDocAPIReference: every chat function has its heading, and every
// heading names a real function.
func TestDocAPIReference(t *testing.T) {
	_, doc := docBlocks(t)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### chat\.([a-z._]+)\(`).FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = true
	}
	for _, f := range apiFuncs {
		if !documented[f] {
			t.Errorf("docs/lua.md has no '### chat.%s(' section", f)
		}
		delete(documented, f)
	}
	for f := range documented {
		t.Errorf("docs/lua.md documents chat.%s, which does not exist", f)
	}
	// And the list matches what scripts actually get.
	r := newRig(t, map[string]string{"a.lua": `
local names = {}
for k, v in pairs(chat) do if type(v) == "function" then names[#names + 1] = k end end
for k in pairs(chat.kv) do names[#names + 1] = "kv." .. k end
chat.command("t", function() return table.concat(names, " ") end)`})
	r.say(alice, "/t")
	calls := r.host.take()
	got := strings.Fields(calls[0].Text)
	want := append([]string(nil), apiFuncs...)
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("chat table has %v, apiFuncs lists %v", got, want)
	}
}

// docScenarios exercise each example of docs/lua.md; an example without a
// scenario, or a scenario without an example, fails TestDocExamples.
var docScenarios = map[string]func(t *testing.T, r *rig){
	"invites.lua": func(t *testing.T, r *rig) {
		if err := r.kv.Set("invites.lua", "invite:abc", "1"); err != nil {
			t.Fatal(err)
		}
		refused := ConnectResult{Refuse: true, Reason: "this chat is by invitation"}
		for _, tc := range []struct {
			req  ConnectRequest
			want ConnectResult
		}{
			{ConnectRequest{Room: "lobby", Query: url.Values{"invite": {"abc"}}}, ConnectResult{}},
			{ConnectRequest{Room: "lobby", Query: url.Values{"invite": {"xyz"}}}, refused},
			{ConnectRequest{Room: "lobby"}, refused},
			{ConnectRequest{Room: "lobby", Claims: map[string]any{"sub": "u-1", "team": "core"}}, ConnectResult{}},
			{ConnectRequest{Room: "lobby", Claims: map[string]any{"sub": "u-1", "team": "sales"}}, refused},
		} {
			if got := r.e.Connect(t.Context(), tc.req); got != tc.want {
				t.Errorf("%+v → %+v, want %+v", tc.req, got, tc.want)
			}
		}
	},
	"shout.lua": func(t *testing.T, r *rig) {
		if got := r.say(alice, "hi!"); got.Text != "HI!" {
			t.Errorf("hi! → %+v", got)
		}
		if got := r.say(alice, "hi"); got != (chat.MessageResult{}) {
			t.Errorf("hi → %+v", got)
		}
	},
	"gatekeeper.lua": func(t *testing.T, r *rig) {
		tests := []struct {
			u    chat.User
			want chat.JoinResult
		}{
			{chat.User{SessionID: 9, Name: "Root", Room: "lobby"}, chat.JoinResult{Refuse: true, Reason: "the name Root is reserved"}},
			{chat.User{SessionID: 9, Name: "ann", Room: "vip"}, chat.JoinResult{Name: "vip_ann"}},
			{chat.User{SessionID: 9, Name: "ann", Room: "lobby"}, chat.JoinResult{}},
		}
		for _, tt := range tests {
			if got := r.e.Join(t.Context(), tt.u); got != tt.want {
				t.Errorf("join %+v → %+v, want %+v", tt.u, got, tt.want)
			}
		}
	},
	"karma.lua": func(t *testing.T, r *rig) {
		r.say(alice, "bob++")
		r.say(alice, "bob++")
		r.say(bob, "bob++")           // no self-karma
		r.dm(carol, "alice", "bob++") // nor in public for a direct message
		r.say(alice, "/karma bob")
		if got := r.say(alice, "/karma"); got.Reason != "usage: /karma NAME" {
			t.Errorf("/karma → %+v", got)
		}
		want := []hostCall{
			{Method: "Broadcast", Room: "lobby", Text: "bob now has 1 karma"},
			{Method: "Broadcast", Room: "lobby", Text: "bob now has 2 karma"},
			{Method: "Send", ID: 1, Text: "bob has 2 karma"},
		}
		if got := r.host.take(); !reflect.DeepEqual(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
		if v, _, _ := r.kv.Get("karma.lua", "bob"); v != "2" {
			t.Errorf("kv bob = %q", v)
		}
	},
	"reminder.lua": func(t *testing.T, r *rig) {
		st := r.e.cur.Load()
		if len(st.timers) != 1 || st.timers[0].interval != time.Hour {
			t.Fatalf("timers %+v", st.timers)
		}
		r.e.sem <- struct{}{}
		st.runTimer(&st.timers[0]) // as the timer goroutine would, an hour later
		r.e.release()
		want := []hostCall{
			{Method: "Broadcast", Room: "lobby", Text: "be nice; /help lists the commands"},
			{Method: "Broadcast", Room: "dev", Text: "be nice; /help lists the commands"},
		}
		if got := r.host.take(); !reflect.DeepEqual(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
	},
	"undo.lua": func(t *testing.T, r *rig) {
		r.host.history = []chat.Message{
			{ID: 5, Room: "lobby", User: "alice", Text: "one"},
			{ID: 6, Room: "lobby", User: "alice", Text: "two"},
			{ID: 7, Room: "lobby", User: "bob", Text: "three"},
		}
		r.say(alice, "/undo")
		if got := r.say(carol, "/undo"); got.Reason != "nothing of yours to undo" {
			t.Errorf("carol /undo → %+v", got)
		}
		want := []hostCall{
			{Method: "History", Room: "lobby", N: 50},
			{Method: "Redact", Room: "lobby", N: 6},
			{Method: "Send", ID: 1, Text: "removed: two"},
			{Method: "History", Room: "dev", N: 50},
		}
		if got := r.host.take(); !reflect.DeepEqual(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
	},
	"limits.lua": func(t *testing.T, r *rig) {
		bot := chat.User{SessionID: 7, Name: "bot", Room: "lobby", ID: "u-bot", Roles: []string{"user", "bot"}}
		member := chat.User{SessionID: 8, Name: "dana", Room: "lobby", ID: "u-dana", Roles: []string{"user"}}
		r.host.users = append(r.host.users, bot, member)
		for _, u := range []chat.User{bot, alice, member} {
			r.e.Join(t.Context(), u)
		}
		want := map[uint64]chat.Limits{bot.SessionID: {Rate: 50, Burst: 100}, alice.SessionID: {Rate: 1, Burst: 3}}
		if !reflect.DeepEqual(r.host.limits, want) {
			t.Errorf("limits %v, want %v (an account without the bot role keeps the server's)", r.host.limits, want)
		}
	},
	"departures.lua": func(t *testing.T, r *rig) {
		r.host.users = []chat.User{bob} // alice has gone
		r.e.Leave(t.Context(), alice)
		r.e.Rename(t.Context(), chat.User{SessionID: 2, Name: "robert", Room: "lobby"}, "bob")
		want := []hostCall{{Method: "Broadcast", Room: "lobby", Text: "it's just you now"}}
		if got := r.host.take(); !reflect.DeepEqual(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
		for _, line := range []string{`msg="alice left lobby from 127.0.0.1:5001" script=departures.lua`, `msg="bob is now robert"`} {
			if !strings.Contains(r.log.String(), line) {
				t.Errorf("log lacks %s:\n%s", line, r.log.String())
			}
		}
	},
}

func TestDocExamples(t *testing.T) {
	blocks, _ := docBlocks(t)
	seen := map[string]bool{}
	for _, b := range blocks {
		if b.kind != "example" {
			continue
		}
		seen[b.name] = true
		t.Run(b.name, func(t *testing.T) {
			scenario := docScenarios[b.name]
			if scenario == nil {
				t.Fatalf("docs/lua.md example %s has no scenario in docScenarios", b.name)
			}
			scenario(t, newRig(t, map[string]string{b.name: b.body}))
		})
	}
	for name := range docScenarios {
		if !seen[name] {
			t.Errorf("scenario %s has no example in docs/lua.md", name)
		}
	}
}
