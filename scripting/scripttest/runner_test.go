package scripttest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFiles makes a directory of scripts and tests.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const shout = `
chat.on("message", function(msg)
  if msg.text == "boom" then error("kaboom") end
  return msg.text:upper()
end)
chat.every(10, function() chat.broadcast("lobby", "tick") end)
chat.command("count", function(user)
  local n = tonumber(chat.kv.get("n") or "0") + 1
  chat.kv.set("n", tostring(n))
  return "count " .. n
end)
`

// TestRunnerPasses: expectations that hold pass, across messages,
// commands, kv and timers on the fake clock (two ticks in 25 s, not three).
func TestRunnerPasses(t *testing.T) {
	dir := writeFiles(t, map[string]string{"shout.lua": shout, "shout_test.lua": `
test("upper case", function()
  local t = chat.testing.new{}
  local a = t:join("alice")
  t:expect_eq(a:say("hi"), true, "delivered")
  t:expect_broadcast("lobby", "alice: HI")
  t:expect_stored("lobby", "alice: HI")
  t:expect_received(a, "alice: HI")
end)
test("commands and kv", function()
  local t = chat.testing.new{scripts = {"shout.lua"}}
  local a = t:join("alice")
  a:say("/count")
  a:say("/count")
  t:expect_send(a, "count 1")
  t:expect_send(a, "count 2")
  t:expect_kv("shout", "n", "2")
  t:expect_kv_write("shout", "n", "1")
  t:expect_not_stored("lobby", "alice: /COUNT")
end)
test("timers on the fake clock", function()
  local t = chat.testing.new{}
  t:join("alice")
  t:advance(9)
  t:expect_no_broadcast("lobby", "* tick")
  t:advance(16)
  t:expect_broadcast("lobby", "* tick")
  t:expect_broadcast("lobby", "* tick")
  t:expect_eq(#t:events("line"), 3, "lines (joined, two ticks)")
end)
test("an expected error", function()
  local t = chat.testing.new{}
  local a = t:join("alice")
  local ok, why = a:say("boom")
  t:expect_eq(ok, false)
  t:expect_eq(why, "message not delivered: a script failed")
  t:expect_error("shout.lua:3: kaboom")
end)
`})
	var out bytes.Buffer
	res, err := Run(context.Background(), []string{dir}, Options{Out: &out, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed != 4 || res.Failed != 0 {
		t.Fatalf("passed %d, failed %d:\n%s", res.Passed, res.Failed, out.String())
	}
	if !strings.HasSuffix(out.String(), "4 passed, 0 failed\n") {
		t.Errorf("no summary line:\n%s", out.String())
	}
}

// TestRunnerFailures: each failing expectation is one line at its own
// file:line; a script error nobody expected fails the test at the line
// of the step that caused it; a Lua error in the test stops it at its
// line; other tests still run.
func TestRunnerFailures(t *testing.T) {
	dir := writeFiles(t, map[string]string{"shout.lua": shout, "shout_test.lua": `test("wrong text", function()
  local t = chat.testing.new{}
  local a = t:join("alice")
  a:say("hi")
  t:expect_broadcast("lobby", "alice: hi")
  t:expect_eq(t:users("lobby"), {"alice", "bob"}, "members")
end)
test("unexpected error", function()
  local t = chat.testing.new{}
  local a = t:join("alice")
  a:say("boom")
end)
test("lua error", function()
  local t = chat.testing.new{}
  t:join(nil)
end)
test("fine", function()
  local t = chat.testing.new{}
  t:join("alice")
  t:expect_broadcast("lobby", "* alice joined")
end)
`})
	var out bytes.Buffer
	res, err := Run(context.Background(), []string{filepath.Join(dir, "shout.lua")}, Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed != 1 || res.Failed != 3 {
		t.Fatalf("passed %d, failed %d:\n%s", res.Passed, res.Failed, out.String())
	}
	file := filepath.Join(dir, "shout_test.lua")
	for _, want := range []string{
		"FAIL " + file + `:5: wrong text: expect_broadcast: no line in lobby "alice: hi"; lines: lobby "* alice joined"; lobby "alice: HI"`,
		"FAIL " + file + `:6: wrong text: members: got {"alice"}, want {"alice", "bob"}`,
		"FAIL " + file + ":11: unexpected error: script error: shout.lua:3: kaboom",
		"FAIL " + file + ":15: lua error:",
		"1 passed, 3 failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestFiles: a directory gives its tests, a script its test; a script
// without one is an error, as is a directory without any.
func TestFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.lua": "", "a_test.lua": "", "b.lua": ""})
	got, err := Files([]string{dir})
	if err != nil || len(got) != 1 || filepath.Base(got[0]) != "a_test.lua" {
		t.Errorf("Files(dir) = %v, %v", got, err)
	}
	if _, err := Files([]string{filepath.Join(dir, "b.lua")}); err == nil {
		t.Error("b.lua without b_test.lua: no error")
	}
	if _, err := Files([]string{t.TempDir()}); err == nil {
		t.Error("an empty directory: no error")
	}
}

// TestRunnerConnect: t:connect runs the connect handlers: a refusal, an
// identity, or carry on; a failing handler refuses and is an error.
func TestRunnerConnect(t *testing.T) {
	dir := writeFiles(t, map[string]string{"gate.lua": `
chat.on("connect", function(req)
  if req.name == "root" then return false, "not that name" end
  if req.query.key == "k1" then return {id = "key:1", name = "keyholder", roles = {"bot"}} end
  if req.name == "boom" then error("gate broke") end
end)`, "gate_test.lua": `
local t = chat.testing.new{}
local id, why = t:connect{name = "root"}
t:expect_eq(id, nil)
t:expect_eq(why, "not that name")
t:expect_eq(t:connect{name = "x", query = {key = "k1"}}, {id = "key:1", name = "keyholder", roles = {"bot"}})
t:expect_eq(t:connect{name = "alice"}, true)
t:expect_eq(t:connect{name = "boom"}, nil)
t:expect_error("gate.lua:5: gate broke")
`})
	var out bytes.Buffer
	res, err := Run(context.Background(), []string{dir}, Options{Out: &out})
	if err != nil || res.Passed != 1 || res.Failed != 0 {
		t.Fatalf("%+v %v:\n%s", res, err, out.String())
	}
}

// TestRunnerLogsAndTimerErrors: chat.log and print lines are events
// (t:expect_log); a timer that fails, which the engine only logs, is a
// script error like a hook's: expected, or the test fails at t:advance.
func TestRunnerLogsAndTimerErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"l.lua": `
chat.on("join", function(u) chat.log("hello", u.name) print("printed") end)
chat.every(5, function() error("tick failed") end)`, "l_test.lua": `
test("expected", function()
  local t = chat.testing.new{}
  t:join("alice")
  t:expect_log("hello alice")
  t:expect_log("printed")
  t:advance(5)
  t:expect_error("l.lua:3: tick failed")
end)
test("unexpected", function()
  local t = chat.testing.new{}
  t:advance(11)
end)
`})
	var out bytes.Buffer
	res, err := Run(context.Background(), []string{dir}, Options{Out: &out})
	if err != nil || res.Passed != 1 || res.Failed != 1 || len(res.Failures) != 2 {
		t.Fatalf("%+v %v:\n%s", res, err, out.String())
	}
	for _, f := range res.Failures {
		if f.Line != 12 || f.Test != "unexpected" || !strings.HasPrefix(f.Msg, "script error: l.lua:3: tick failed") {
			t.Errorf("failure %+v", f)
		}
	}
}

// TestRunnerTailCallLoop: a test file's tail-call loop fails at once with
// a stack overflow at its line, as in a script (test files are compiled
// as the engine compiles scripts), rather than running to the test's time
// limit and building a traceback of a line per tail call (0.9 GB for a
// 1 s limit).
func TestRunnerTailCallLoop(t *testing.T) {
	dir := writeFiles(t, map[string]string{"shout.lua": shout, "shout_test.lua": `test("loops", function()
  local function f(n) return f(n + 1) end
  return f(0)
end)
`})
	var out bytes.Buffer
	// Short: should tail calls come back, the test fails by its time
	// limit with a traceback of hundreds of megabytes, not tens of
	// gigabytes.
	res, err := Run(context.Background(), []string{filepath.Join(dir, "shout.lua")}, Options{Out: &out, TestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "shout_test.lua") + ":2: loops: "; res.Failed != 1 || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "stack overflow") {
		t.Fatalf("failed %d, want a stack overflow at %s:\n%s", res.Failed, want, out.String())
	}
}
