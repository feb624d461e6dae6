package scripting

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/moonchat/moonchat/defaults"
)

// A shadow script runs on live traffic beside the real scripts: what it
// would decide is counted and logged, never applied; the live scripts'
// decision is what the chat server gets.
func TestShadowDecisionsNotApplied(t *testing.T) {
	r := newRigOpts(t, Options{Shadow: []string{"new.lua"}, FS: scriptFS(map[string]string{
		"old.lua": `chat.on("message", function(msg) return (msg.text:gsub("darn", "****")) end)`,
		"new.lua": `
chat.on("message", function(msg)
  if msg.text:find("heck") then return false, "no heck" end
  if msg.text:find("darn") then return (msg.text:gsub("darn", "d**n")) end
  if msg.text == "boom" then error("new filter bug") end
end)
chat.on("join", function(u)
  if u.name == "mallory" then return false, "not you" end
  if u.name == "bob" then return "bobby" end
end)`,
	})})
	cases := []struct {
		text     string
		live     string // the text the chat server is told to deliver ("" = unchanged)
		decision string
	}{
		{"hello", "", "pass"},
		{"what the heck", "", "drop"},
		{"darn it", "**** it", "rewrite"},
		{"boom", "", "error"},
	}
	for _, c := range cases {
		res := r.say(alice, c.text)
		if res.Drop || res.Err != nil || (c.live == "") == res.Replace || (c.live != "" && res.Text != c.live) {
			t.Errorf("%q: live result %+v, want only the live script's decision (text %q)", c.text, res, c.live)
		}
	}
	ctx := context.Background()
	for _, u := range []string{"mallory", "bob", "carol"} {
		who := alice
		who.Name = u
		if res := r.e.Join(ctx, who); res.Refuse || res.Name != "" || res.Err != nil {
			t.Errorf("join %s: %+v, want admitted unchanged (no live join handler)", u, res)
		}
	}
	fams := gather(t, r.e)
	for _, d := range []string{"pass", "drop", "rewrite", "error"} {
		wantSample(t, fams, 1, "moonchat_script_shadow_decisions_total", "script", "new.lua", "decision", d)
	}
	for _, d := range []string{"refuse", "rename", "admit"} {
		wantSample(t, fams, 1, "moonchat_script_shadow_decisions_total", "script", "new.lua", "decision", d)
	}
	// Its handlers have their series too, as any script's.
	wantSample(t, fams, 4, "moonchat_script_calls_total", "script", "new.lua", "event", "message")
	wantSample(t, fams, 1, "moonchat_script_errors_total", "script", "new.lua", "event", "message")
	log := r.log.String()
	for _, want := range []string{
		`decision=drop live=pass`,
		`reason="no heck"`,
		`new_text="d**n it"`,
		`decision=refuse`,
		`new_name=bobby`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "decision=pass") || strings.Contains(log, "decision=admit") {
		t.Errorf("passes are logged (only counted):\n%s", log)
	}
	// Commands list only the live scripts'.
	if n := len(r.e.Commands()); n != 0 {
		t.Errorf("%d commands, want none", n)
	}
}

// A shadow script cannot act through chat.*: every call with a side
// effect is logged and counted, not done; reads see the real server; its
// chat.kv writes stay in an overlay (read back by the script, never
// stored), and its commands and timers never run.
func TestShadowSideEffectsRecorded(t *testing.T) {
	r := newRigOpts(t, Options{Shadow: []string{"s.lua"}, FS: scriptFS(map[string]string{
		"s.lua": `
chat.command("boom", function(u) chat.broadcast(u.room, "command ran") end)
chat.every(0.1, function() chat.broadcast("lobby", "timer ran") end)
chat.on("message", function(msg)
  local n = #chat.users(msg.room)
  assert(chat.send(msg.user, "you were seen by " .. n) == true)
  chat.broadcast(msg.room, "shadow says hi")
  chat.kick(msg.user, "shadow kick")
  chat.rename(msg.user, "renamed")
  assert(chat.ban(msg.room, msg.user, {duration = "1m", reason = "shadow ban"}))
  chat.grant(msg.user, "moderator")
  chat.kv.set("seen", tostring((tonumber(chat.kv.get("seen")) or 0) + 1))
  return false
end)`,
	})})
	r.e.Start(context.Background())
	r.kv.Set("s.lua", "seen", "10")
	r.say(alice, "hi")
	r.say(alice, "/boom")
	r.say(bob, "hi")
	if calls := r.host.take(); len(calls) != 0 {
		t.Errorf("the shadow script reached the host: %v", calls)
	}
	if v, _, _ := r.kv.Get("s.lua", "seen"); v != "10" {
		t.Errorf("kv seen = %q in the real store, want 10 (untouched)", v)
	}
	fams := gather(t, r.e)
	for _, call := range []string{"send", "broadcast", "kick", "rename", "ban", "grant"} {
		wantSample(t, fams, 2, "moonchat_script_shadow_calls_total", "script", "s.lua", "call", call)
	}
	wantSample(t, fams, 0, "moonchat_script_calls_total", "script", "s.lua", "event", "/boom")
	wantSample(t, fams, 2, "moonchat_script_shadow_decisions_total", "script", "s.lua", "decision", "drop")
	// The overlay: the second message saw the first one's write (11 → 12).
	log := r.log.String()
	if !strings.Contains(log, `call=chat.send session=1 text="you were seen by 2"`) || !strings.Contains(log, `lua shadow call not done`) {
		t.Errorf("log lacks the recorded calls:\n%s", log)
	}
	for _, c := range r.host.take() {
		t.Errorf("host call after the fact: %v", c)
	}
}

// The overlay KV reads through, keeps the script's writes and deletions,
// and lists keys with both.
func TestOverlayKV(t *testing.T) {
	real := NewMemKV()
	real.Set("s.lua", "a", "1")
	real.Set("s.lua", "b", "2")
	o := &overlayKV{real: real, vals: map[[2]string]*string{}}
	o.Set("s.lua", "c", "3")
	o.Delete("s.lua", "a")
	if v, ok, _ := o.Get("s.lua", "b"); !ok || v != "2" {
		t.Errorf("b = %q %v, want the real 2", v, ok)
	}
	if _, ok, _ := o.Get("s.lua", "a"); ok {
		t.Error("a deleted in the overlay is still there")
	}
	if keys, _ := o.Keys("s.lua"); strings.Join(keys, ",") != "b,c" {
		t.Errorf("keys %v, want b,c", keys)
	}
	if _, ok, _ := real.Get("s.lua", "a"); !ok {
		t.Error("the real store lost a")
	}
	if _, ok, _ := real.Get("s.lua", "c"); ok {
		t.Error("the real store got c")
	}
}

// A shadow script that does not load, or is not there, never stops the
// live scripts: logged, and they run without shadows. CheckScripts reports
// it as an error.
func TestShadowBrokenNeverBreaksLive(t *testing.T) {
	files := map[string]string{
		"live.lua":   `chat.on("message", function(msg) return false, "live" end)`,
		"broken.lua": `chat.on("message", function(msg) end) error("oops")`,
	}
	for _, shadow := range []string{"broken.lua", "missing.lua"} {
		files := files
		if shadow == "missing.lua" {
			files = map[string]string{"live.lua": files["live.lua"]}
		}
		r := newRigOpts(t, Options{Shadow: []string{shadow}, FS: scriptFS(files)})
		if res := r.say(alice, "x"); !res.Drop || res.Reason != "live" {
			t.Errorf("shadow %s: %+v, want the live script's drop", shadow, res)
		}
		if !strings.Contains(r.log.String(), "lua shadow scripts not loaded") {
			t.Errorf("shadow %s: no log line:\n%s", shadow, r.log)
		}
		if _, err := CheckScripts(context.Background(), scriptFS(files), nil, nil, []string{shadow}); err == nil || !strings.Contains(err.Error(), shadow) {
			t.Errorf("CheckScripts with shadow %s: %v, want an error naming it", shadow, err)
		}
	}
	// Without it as a shadow, broken.lua fails the live load, as always.
	if _, err := New(context.Background(), Options{FS: scriptFS(files)}); err == nil {
		t.Error("broken.lua loaded as a live script")
	}
}

// SetShadow takes effect at the next reload; the shadow script then
// leaves the live ones (and the reverse).
func TestSetShadowReload(t *testing.T) {
	r := newRigOpts(t, Options{FS: scriptFS(map[string]string{
		"f.lua": `chat.on("message", function(msg) return false, "f" end)`,
	})})
	if res := r.say(alice, "x"); !res.Drop {
		t.Fatalf("live f.lua: %+v", res)
	}
	if !r.e.SetShadow([]string{"f.lua"}) || r.e.SetShadow([]string{"f.lua"}) {
		t.Error("SetShadow's changed result is wrong")
	}
	if err := r.e.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if res := r.say(alice, "x"); res.Drop {
		t.Errorf("f.lua shadowed still drops: %+v", res)
	}
	wantSample(t, gather(t, r.e), 1, "moonchat_script_shadow_decisions_total", "script", "f.lua", "decision", "drop")
}

// docs/lua.md's shadow example (Developing scripts, Shadow scripts): the
// example loads as a live script (TestDocExamples' rig) and, as a shadow,
// decides without acting, with the log line the doc shows.
func init() {
	docScenarios["newfilter.lua"] = func(t *testing.T, live *rig) {
		if res := live.say(alice, "oh heck"); !res.Drop || res.Reason != "language" {
			t.Errorf("live: %+v, want dropped (language)", res)
		}
		src, err := fs.ReadFile(live.e.fsys, "newfilter.lua")
		if err != nil {
			t.Fatal(err)
		}
		r := newRigOpts(t, Options{Shadow: []string{"newfilter.lua"}, FS: scriptFS(map[string]string{"newfilter.lua": string(src)})})
		if res := r.say(alice, "what the heck"); res.Drop || res.Replace || res.Err != nil {
			t.Errorf("shadow: %+v, want the message untouched", res)
		}
		if calls := r.host.take(); len(calls) != 0 {
			t.Errorf("shadow reached the host: %v", calls)
		}
		want := `level=INFO msg="lua shadow decision (not applied)" shadow=true script=newfilter.lua event=message decision=drop live=pass room=lobby user=alice text="what the heck" reason=language`
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("log lacks the documented line %s:\n%s", want, r.log)
		}
		fams := gather(t, r.e)
		wantSample(t, fams, 1, "moonchat_script_shadow_decisions_total", "script", "newfilter.lua", "decision", "drop")
		wantSample(t, fams, 1, "moonchat_script_shadow_calls_total", "script", "newfilter.lua", "call", "send")
	}
}

// A shadow script that keeps more than the memory limit gets the
// generation loaded again, as a live one does; the live scripts go on.
func TestShadowMemoryLimit(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, Shadow: []string{"s.lua"}, FS: scriptFS(map[string]string{
		"live.lua": `chat.on("message", function(msg) return msg.text .. "!" end)`,
		"s.lua": `
kept = {}
chat.on("message", function(msg)
  for i = 1, 2000 do kept[#kept + 1] = string.rep("k", 100) .. i end
end)`,
	})})
	for i := 0; !strings.Contains(r.log.String(), `msg="lua scripts loaded" cause="memory limit"`); i++ {
		if i == 400 {
			t.Fatal("the shadow script kept growing past the limit unnoticed")
		}
		if got := r.say(alice, "grow"); got.Err != nil || got.Text != "grow!" {
			t.Fatalf("call %d: the live result %+v changed", i, got)
		}
	}
	if !strings.Contains(r.log.String(), "lua shadow scripts loaded") {
		t.Error("no shadow after the reload")
	}
}

// BenchmarkMessageDefaultScriptsShadow is BenchmarkMessageDefaultScripts
// with a copy of the default word filter as a shadow script: what
// watching a candidate filter on live traffic adds to each message.
func BenchmarkMessageDefaultScriptsShadow(b *testing.B) {
	src, err := fs.ReadFile(defaults.Scripts(), "wordfilter.lua")
	if err != nil {
		b.Fatal(err)
	}
	fsys := fstest.MapFS{"newfilter.lua": &fstest.MapFile{Data: src}}
	names, _ := fs.Glob(defaults.Scripts(), "*.lua")
	for _, n := range names {
		if !IsTestScript(n) {
			data, _ := fs.ReadFile(defaults.Scripts(), n)
			fsys[n] = &fstest.MapFile{Data: data}
		}
	}
	benchMessage(b, newRigOpts(b, Options{FS: fsys, Shadow: []string{"newfilter.lua"}}), "hello there, how are you?")
}
