package scripting

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/moonchat/moonchat/defaults"
)

// decodeOptions decodes a config.toml text the way cmd/moonchat does and
// returns its [scripts] tables.
func decodeOptions(t *testing.T, text string) ScriptOptions {
	t.Helper()
	var cfg struct {
		Scripts map[string]map[string]any `toml:"scripts"`
	}
	if _, err := toml.Decode(text, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Scripts
}

// answer runs command /t for alice and returns its answer (or the
// failure).
func (r *rig) answer(t *testing.T) string {
	t.Helper()
	res := r.say(alice, "/t")
	if res.Err != nil {
		return "failed: " + res.Err.Error()
	}
	calls := r.host.take()
	if len(calls) == 0 {
		return ""
	}
	return calls[len(calls)-1].Text
}

// TestOptionsReachTheirScript (issue 11.9): [scripts.NAME] reaches NAME.lua,
// and only it, as chat.options, with TOML's types as Lua values.
func TestOptionsReachTheirScript(t *testing.T) {
	opts := decodeOptions(t, `
[scripts.a]
words = ["x", "y"]
n = 3
f = 1.5
on = true
when = 2026-01-02
at = 2026-01-02T10:00:00Z
[scripts.a.nested]
k = "v"
[[scripts.a.list]]
name = "first"
`)
	r := newRigOpts(t, Options{ScriptOptions: opts, FS: scriptFS(map[string]string{
		"a.lua": `chat.command("t", function()
  local o = chat.options
  local words = {}
  for i, w in ipairs(o.words) do words[i] = w end
  local keys = {}
  for k in pairs(o) do keys[#keys + 1] = k end
  table.sort(keys)
  return table.concat(words, ",") .. "|" .. #o.words .. "|" .. table.concat(o.words, "+") ..
    "|" .. o.n .. "|" .. o.f .. "|" .. tostring(o.on) .. "|" .. o.when .. "|" .. o.nested.k ..
    "|" .. o.list[1].name .. "|" .. table.concat(keys, ",") .. "|" .. select("#", unpack(o.words)) ..
    "|" .. o.at .. "|" .. tostring(rawget(o, "n")) .. "|" .. tostring(next(o.nested)) .. "|" .. tostring(getmetatable(o))
end)`,
		"b.lua": `chat.command("b", function() local n = 0 for _ in pairs(chat.options) do n = n + 1 end return "b has " .. n end)`,
	})})
	want := "x,y|2|x+y|3|1.5|true|2026-01-02|v|first|at,f,list,n,nested,on,when,words|2|2026-01-02T10:00:00Z|3|k|false"
	if got := r.answer(t); got != want {
		t.Fatalf("a.lua sees\n%s\nwant\n%s", got, want)
	}
	r.say(alice, "/b")
	if calls := r.host.take(); len(calls) != 1 || calls[0].Text != "b has 0" {
		t.Fatalf("b.lua: %v", calls)
	}
}

// TestOptionsReadOnly: every way of writing into chat.options or a table
// in it raises; nothing changes.
func TestOptionsReadOnly(t *testing.T) {
	opts := ScriptOptions{"a": {"words": []any{"x"}, "nested": map[string]any{"k": "v"}}}
	writes := []string{
		`chat.options.words = {}`,
		`chat.options.new = 1`,
		`chat.options.words[1] = "y"`,
		`chat.options.words[2] = "y"`,
		`chat.options.nested.k = "w"`,
		`rawset(chat.options, "words", {})`,
		`rawset(chat.options.words, 1, "y")`,
		`table.insert(chat.options.words, "y")`,
		`table.remove(chat.options.words)`,
		`table.sort(chat.options.words)`,
		`setmetatable(chat.options, nil)`,
		`for _, w in pairs(chat.options) do if type(w) == "table" then rawset(w, 1, "y") end end`,
	}
	var src strings.Builder
	src.WriteString("chat.command(\"t\", function()\n  local out = {}\n")
	for _, w := range writes {
		src.WriteString("  out[#out + 1] = tostring(pcall(function() " + w + " end))\n")
	}
	src.WriteString(`  local ok, err = pcall(function() chat.options.x = 1 end)
  out[#out + 1] = tostring(err):match("read%-only") and "says read-only" or tostring(err)
  out[#out + 1] = #chat.options.words .. chat.options.words[1] .. chat.options.nested.k .. tostring(chat.options.new)
  return table.concat(out, ",")
end)`)
	r := newRigOpts(t, Options{ScriptOptions: opts, FS: scriptFS(map[string]string{"a.lua": src.String()})})
	want := strings.Repeat("false,", len(writes)) + "says read-only,1xvnil"
	if got := r.answer(t); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestSetScriptOptionsReloads: new options take effect with the reload
// that follows; the same options are no change; a failed reload keeps the
// running scripts and their options.
func TestSetScriptOptionsReloads(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "a.lua", `chat.command("t", function() return chat.options.v or "none" end)`)
	r := newRigOpts(t, Options{FS: os.DirFS(dir)})
	if got := r.answer(t); got != "none" {
		t.Fatalf("without options: %q", got)
	}
	if !r.e.SetScriptOptions(ScriptOptions{"a": {"v": "one"}}) {
		t.Fatal("new options reported unchanged")
	}
	if got := r.answer(t); got != "none" {
		t.Fatalf("options applied before the reload: %q", got)
	}
	if err := r.e.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if got := r.answer(t); got != "one" {
		t.Fatalf("after reload: %q", got)
	}
	if r.e.SetScriptOptions(ScriptOptions{"a": {"v": "one"}}) {
		t.Fatal("the same options reported as a change")
	}
	// A script that refuses its options: the reload fails, the running
	// scripts keep the options they loaded with.
	writeScript(t, dir, "a.lua", `assert(chat.options.v ~= "bad", "bad option")
chat.command("t", function() return chat.options.v or "none" end)`)
	r.e.SetScriptOptions(ScriptOptions{"a": {"v": "bad"}})
	if err := r.e.Reload("SIGHUP"); err == nil || !strings.Contains(err.Error(), "bad option") {
		t.Fatalf("Reload = %v", err)
	}
	if got := r.answer(t); got != "one" {
		t.Fatalf("after a failed reload: %q", got)
	}
}

// TestUnusedOptionsWarn: a [scripts.NAME] table for no loaded script is a
// warning at load and in Check, not an error.
func TestUnusedOptionsWarn(t *testing.T) {
	opts := ScriptOptions{"a": {}, "nosuch": {"x": int64(1)}, "a.lua": {}}
	r := newRigOpts(t, Options{ScriptOptions: opts, FS: scriptFS(map[string]string{"a.lua": ``})})
	log := r.log.String()
	for _, want := range []string{
		`level=WARN msg="config: [scripts.nosuch] names no loaded script; its options are unused"`,
		`[scripts.a.lua] names no loaded script; its options are unused (the table of a.lua is [scripts.a])`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, "[scripts.a] names") {
		t.Errorf("a used table reported unused:\n%s", log)
	}
	var buf logBuf
	if err := Check(t.Context(), scriptFS(map[string]string{"a.lua": ``}), slog.New(slog.NewTextHandler(&buf, nil)), opts); err != nil {
		t.Fatalf("Check = %v, want no error", err)
	}
	if !strings.Contains(buf.String(), "[scripts.nosuch] names no loaded script") {
		t.Errorf("Check did not warn:\n%s", buf.String())
	}
}

// TestWordfilterOptions: the default wordfilter.lua takes its list from
// [scripts.wordfilter] words, with its own list as the default.
func TestWordfilterOptions(t *testing.T) {
	r := newRigOpts(t, Options{FS: defaults.Scripts()})
	if got := r.say(alice, "darn it"); got.Text != "**** it" {
		t.Fatalf("default list: %+v", got)
	}
	r = newRigOpts(t, Options{FS: defaults.Scripts(), ScriptOptions: decodeOptions(t, `
[scripts.wordfilter]
words = ["Gosh", "golly"]`)})
	if got := r.say(alice, "gosh, GOLLY, darn"); got.Text != "****, *****, darn" {
		t.Fatalf("configured list: %+v", got)
	}
	_, err := New(t.Context(), Options{FS: defaults.Scripts(), HookTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler),
		ScriptOptions: ScriptOptions{"wordfilter": {"words": "darn"}}})
	if err == nil || !strings.Contains(err.Error(), "wordfilter.lua") || !strings.Contains(err.Error(), "words") {
		t.Fatalf("words as a string: %v", err)
	}
}
