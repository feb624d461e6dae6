package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// writeScriptFiles writes files into dir (made if needed).
func writeScriptFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, src := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScriptTestCommand: `moonchat script test` runs the tests of a
// directory (by default the config's scripts directory), prints a line
// per failure at its file:line and the summary, and exits 1 on a failure,
// 0 without; a bad verb is a usage error.
func TestScriptTestCommand(t *testing.T) {
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	writeScriptFiles(t, scripts, map[string]string{
		"shout.lua": `chat.on("message", function(msg) return msg.text:upper() end)`,
		"shout_test.lua": `local t = chat.testing.new{}
local a = t:join("alice")
a:say("hi")
t:expect_broadcast("lobby", "alice: HI")
`,
	})
	cfg := testConfig(t, dir, map[string]string{"scripting": "dir = " + strconvQuote(scripts) + "\n"})
	code, stdout, stderr := runCmd(t, "script", "test", "-config", cfg)
	if code != 0 || stdout != "1 passed, 0 failed\n" || stderr != "" {
		t.Fatalf("passing: code %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, "script", "test", filepath.Join(scripts, "shout.lua"), "-v")
	if code != 0 || !strings.Contains(stdout, "ok   "+filepath.Join(scripts, "shout_test.lua")+": shout_test.lua\n") {
		t.Fatalf("-v after a file: code %d stdout %q", code, stdout)
	}

	writeScriptFiles(t, scripts, map[string]string{"shout.lua": `chat.on("message", function(msg) return msg.text end)`})
	code, stdout, stderr = runCmd(t, "script", "test", scripts)
	wantLine := "FAIL " + filepath.Join(scripts, "shout_test.lua") + `:4: shout_test.lua: expect_broadcast: no line in lobby "alice: HI"`
	if code != 1 || !strings.Contains(stdout, wantLine) || !strings.HasSuffix(stdout, "0 passed, 1 failed\n") ||
		stderr != "moonchat script: script tests failed: 1 of 1\n" {
		t.Fatalf("failing: code %d stdout %q stderr %q", code, stdout, stderr)
	}

	for _, args := range [][]string{{"script"}, {"script", "frob"}, {"script", "try"}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "usage: moonchat script") {
			t.Errorf("%v: code %d stderr %q, want a usage error", args, code, stderr)
		}
	}
	for _, args := range [][]string{{"script", "-h"}, {"help", "script"}} {
		if code, stdout, stderr := runCmd(t, args...); code != 0 || !strings.Contains(stdout+stderr, "moonchat script try") {
			t.Errorf("%v: code %d, does not list the verbs: %q %q", args, code, stdout, stderr)
		}
	}
}

// strconvQuote quotes a path for TOML.
func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestScriptTry: a dry run replays the stored messages through today's
// scripts and the candidate, reports drops (with the reason), rewrites
// (before → after), answers and errors at file:line, and the handler
// time, without changing the store; the running server (which holds the
// file) gives the same report through its API.
func TestScriptTry(t *testing.T) {
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	writeScriptFiles(t, scripts, map[string]string{
		"wordfilter.lua": `chat.on("message", function(msg) return (msg.text:gsub("darn", "****")) end)`,
	})
	cand := filepath.Join(dir, "nospam.lua")
	writeScriptFiles(t, dir, map[string]string{"nospam.lua": `chat.on("message", function(msg)
  if msg.text:find("pills") then
    chat.kv.set("spammer", msg.user.name)
    return false, "no spam here"
  end
  if msg.text == "boom" then
    error("kaboom")
  end
  if msg.text == "hello" then
    chat.send(msg.user, "hi " .. msg.user.name)
  end
end)
`})
	cfg := testConfig(t, dir, map[string]string{"scripting": "dir = " + strconvQuote(scripts) + "\n"})
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := db.Append(context.Background(), []*chat.Message{
		{Room: "lobby", User: "alice", Text: "darn it", Time: t0},
		{Room: "lobby", User: "bob", Text: "cheap pills", Time: t0.Add(time.Second)},
		{Room: "lobby", User: "carol", Text: "hello", Time: t0.Add(2 * time.Second)},
		{Room: "dev", User: "dave", Text: "boom", Time: t0.Add(3 * time.Second)},
		{Room: "dev", User: "dave", Text: "fine", Time: t0.Add(4 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, before, _ := runCmd(t, "history", "-config", cfg)

	code, stdout, stderr := runCmd(t, "script", "try", cand, "-config", cfg)
	if code != 0 {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	for _, want := range []string{
		"scripts: nospam.lua, wordfilter.lua (trying nospam.lua)\n",
		" lobby #1 alice: darn it\n    rewritten → **** it\n",
		" lobby #2 bob: cheap pills\n    dropped: no spam here\n    would: kv nospam.lua spammer = bob\n",
		" lobby #3 carol: hello\n    answered: hi carol\n",
		" dev #1 dave: boom\n    failed: the server would refuse it",
		"    error: nospam.lua:7: kaboom (message hook defined at nospam.lua:1)\n",
		"5 messages replayed: 1 dropped, 1 rewritten, 1 answered, 1 failed; handler time p50 ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "dave: fine") {
		t.Errorf("an unchanged message is listed:\n%s", stdout)
	}
	if !regexp.MustCompile(`p50 [0-9.]+[µnm]?s, p99 [0-9.]+[µnm]?s\n$`).MatchString(stdout) {
		t.Errorf("no handler times:\n%s", stdout)
	}
	if _, after, _ := runCmd(t, "history", "-config", cfg); after != before {
		t.Errorf("the store changed:\nbefore %q\nafter  %q", before, after)
	}

	code, stdout, _ = runCmd(t, "script", "try", "-json", "-room", "lobby", "-config", cfg, cand)
	var rep struct {
		Messages, Dropped, Rewritten int
		Changes                      []struct{ Outcome, Reason, After string }
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil || rep.Messages != 3 || rep.Dropped != 1 || rep.Rewritten != 1 ||
		len(rep.Changes) != 3 || rep.Changes[1].Reason != "no spam here" || rep.Changes[0].After != "**** it" {
		t.Fatalf("-json -room lobby: code %d %+v\n%s", code, rep, stdout)
	}

	// The server holds the file: the same report through its API.
	_, down, _ := runCmd(t, "script", "try", "-config", cfg, cand)
	srv := startInProcess(t, cfg)
	code, up, stderr := runCmd(t, "script", "try", "-config", cfg, "-server", srv.addr, cand)
	if code != 0 || !strings.Contains(stderr, "in use by a running server; reading through its HTTP API") {
		t.Fatalf("server up: code %d stderr %q", code, stderr)
	}
	strip := func(s string) string { return regexp.MustCompile(`p50 .*`).ReplaceAllString(s, "") }
	if strip(up) != strip(down) {
		t.Errorf("server up and down differ:\nup   %s\ndown %s", up, down)
	}
}

// TestScriptTryDoc: docs/lua.md's dry run (Trying a script on history) is
// what `moonchat script try` prints for its nospam.lua over the messages
// it shows, with the built-in wordfilter.lua as today's script; only the
// handler times differ.
func TestScriptTryDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/lua.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const scriptMark = "```lua\n-- nospam.lua (tried below)\n"
	i := strings.Index(doc, scriptMark)
	if i < 0 {
		t.Fatal("docs/lua.md has no nospam.lua block")
	}
	script := doc[i+len("```lua\n"):]
	script = script[:strings.Index(script, "```")]
	const cmd = "$ moonchat script try nospam.lua\n"
	j := strings.Index(doc, cmd)
	if j < 0 {
		t.Fatal("docs/lua.md has no dry run")
	}
	want := doc[j+len(cmd):]
	want = want[:strings.Index(want, "```")]

	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	wf, err := os.ReadFile("../../defaults/scripts/wordfilter.lua")
	if err != nil {
		t.Fatal(err)
	}
	writeScriptFiles(t, scripts, map[string]string{"wordfilter.lua": string(wf)})
	writeScriptFiles(t, dir, map[string]string{"nospam.lua": script})
	cfg := testConfig(t, dir, map[string]string{"scripting": "dir = " + strconvQuote(scripts) + "\n"})
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := db.Append(context.Background(), []*chat.Message{
		{Room: "lobby", User: "alice", Text: "darn it", Time: t0},
		{Room: "lobby", User: "bob", Text: "cheap pills", Time: t0.Add(time.Second)},
		{Room: "lobby", User: "carol", Text: "hello", Time: t0.Add(2 * time.Second)},
		{Room: "dev", User: "dave", Text: "boom", Time: t0.Add(3 * time.Second)},
		{Room: "dev", User: "dave", Text: "fine", Time: t0.Add(4 * time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	code, got, stderr := runCmd(t, "script", "try", "-config", cfg, "nospam.lua")
	if code != 0 {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	times := regexp.MustCompile(`p50 [0-9.]+[µnm]?s, p99 [0-9.]+[µnm]?s`)
	if times.ReplaceAllString(got, "p50 T, p99 T") != times.ReplaceAllString(want, "p50 T, p99 T") {
		t.Errorf("docs/lua.md shows:\n%s\nmoonchat script try prints:\n%s", want, got)
	}
}
