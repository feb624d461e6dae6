package scripting

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/defaults"
)

// The timer tests run on a fake clock: time moves only when the test
// says so, which shows without sleeping that a timer does not fire before
// Start, after Close, after a reload or after its context ends.

func TestEveryFiresAndStopsOnClose(t *testing.T) {
	clk := newFakeClock()
	r := newRigOpts(t, Options{Clock: clk, FS: scriptFS(map[string]string{"tick.lua": `
local n = 0
chat.every(0.02, function()
  n = n + 1
  chat.broadcast("lobby", "tick " .. n)
end)
chat.every(0.02, function() error("timer oops") end)`})})
	// Not before Start: the host must be bound first.
	clk.Advance(time.Hour)
	if calls := r.host.take(); len(calls) != 0 || clk.Created() != 0 {
		t.Fatalf("timer ran before Start: %v (%d clock timers)", calls, clk.Created())
	}
	r.e.Start(t.Context())
	eventually(t, "the timer goroutine waiting", func() bool { return clk.Active() == 1 })
	for n := 1; n <= 3; n++ {
		clk.Advance(20 * time.Millisecond)
		eventually(t, fmt.Sprintf("tick %d", n), func() bool {
			r.host.mu.Lock()
			defer r.host.mu.Unlock()
			return len(r.host.calls) >= n
		})
	}
	if err := r.e.Close(); err != nil {
		t.Fatal(err)
	}
	got := r.host.take()
	for i, c := range got[:3] {
		if want := "tick " + string(rune('1'+i)); c.Text != want {
			t.Fatalf("call %d = %v, want %q", i, c, want)
		}
	}
	// Close waited for the timer goroutine: nothing can fire any more.
	clk.Advance(time.Hour)
	if calls := r.host.take(); len(calls) != 0 || clk.Active() != 0 {
		t.Fatalf("timer fired after Close: %v (%d clock timers active)", calls, clk.Active())
	}
	if !strings.Contains(r.log.String(), "hook=every script=tick.lua at=tick.lua:7") {
		t.Fatalf("timer error not logged:\n%s", r.log.String())
	}
	// Hooks after Close cannot run: they fail (closed), never pass.
	if got := r.say(alice, "x"); !isHookErr(got.Err, chat.HookFailCanceled) || got.Replace {
		t.Fatalf("message after Close: %+v", got)
	}
	if got := r.say(alice, "/x"); !got.Drop || got.Err == nil {
		t.Fatalf("command after Close: %+v", got)
	}
	if err := r.e.Leave(t.Context(), alice); !isHookErr(err, chat.HookFailCanceled) {
		t.Fatalf("leave after Close: %v", err)
	}
	if err := r.e.Reload("test"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reload after Close = %v", err)
	}
}

func TestEveryStopsOnReload(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	writeScript(t, dir, "tick.lua", `chat.every(0.01, function() chat.broadcast("old", "x") end)`)
	r := newRigOpts(t, Options{FS: os.DirFS(dir), Clock: clk})
	r.e.Start(t.Context())
	eventually(t, "the old timer waiting", func() bool { return clk.Active() == 1 })
	clk.Advance(10 * time.Millisecond)
	eventually(t, "old timer", func() bool { return len(r.host.take()) > 0 })
	writeScript(t, dir, "tick.lua", `chat.every(0.01, function() chat.broadcast("new", "x") end)`)
	if err := r.e.Reload("test"); err != nil {
		t.Fatal(err)
	}
	// Reload waited for the old timer goroutine to end; the one clock
	// timer still active is the new goroutine's.
	r.host.take()
	eventually(t, "the new timer waiting", func() bool { return clk.Active() == 1 })
	for range 3 {
		clk.Advance(10 * time.Millisecond)
	}
	eventually(t, "new timer", func() bool {
		for _, c := range r.host.take() {
			if c.Room == "old" {
				t.Fatal("old timer still firing after reload")
			}
			if c.Room == "new" {
				return true
			}
		}
		return false
	})
}

func TestEveryStopsWithContext(t *testing.T) {
	clk := newFakeClock()
	r := newRigOpts(t, Options{Clock: clk, FS: scriptFS(map[string]string{"tick.lua": `chat.every(0.01, function() chat.broadcast("r", "x") end)`})})
	ctx, cancel := contextWithCancel(t)
	r.e.Start(ctx)
	eventually(t, "the timer waiting", func() bool { return clk.Active() == 1 })
	clk.Advance(10 * time.Millisecond)
	eventually(t, "tick", func() bool { return len(r.host.take()) > 0 })
	cancel()
	// The goroutine stops its clock timer as it returns.
	eventually(t, "the timer goroutine gone", func() bool { return clk.Active() == 0 })
	clk.Advance(time.Hour)
	if calls := r.host.take(); len(calls) != 0 {
		t.Fatalf("timer fired after ctx cancelled: %v", calls)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(t.Context(), Options{}); !errors.Is(err, ErrNoScripts) {
		t.Fatalf("New(no FS) = %v", err)
	}
	_, err := New(t.Context(), Options{FS: scriptFS(map[string]string{
		"a.lua": "x = = 1",
		"b.lua": "chat.on('join', function() end)\nlocal t = nil\nt.x = 1",
		"c.lua": "if true then",
	})})
	var se *ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("New = %v, want a *ScriptError", err)
	}
	for _, want := range []string{"a.lua:1: ", "b.lua:3: attempt to index a non-table object(nil) with key 'x'", "c.lua: ", "at end of file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestCheck(t *testing.T) {
	if err := Check(t.Context(), defaults.Scripts(), nil, nil); err != nil {
		t.Fatalf("Check(default scripts) = %v", err)
	}
	fsys := fstest.MapFS{
		"good.lua":       {Data: []byte(`chat.on("message", function() end)`)},
		"bad.lua":        {Data: []byte("\n\nchat.on('nope', print)")},
		"worse.lua":      {Data: []byte("local = 1")},
		".#lock.lua":     {Data: []byte("garbage (editor lock file, skipped)")},
		"readme.txt":     {Data: []byte("not lua")},
		"sub/nested.lua": {Data: []byte("garbage (not at the top level, skipped)")},
	}
	err := Check(t.Context(), fsys, nil, nil)
	if err == nil {
		t.Fatal("Check passed bad scripts")
	}
	msg := err.Error()
	for _, want := range []string{`bad.lua:3: chat.on: unknown event "nope"`, "worse.lua:1: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("Check error lacks %q:\n%s", want, msg)
		}
	}
	for _, notWant := range []string{"lock", "nested", "readme"} {
		if strings.Contains(msg, notWant) {
			t.Errorf("Check looked at %s:\n%s", notWant, msg)
		}
	}
}

// A hook that cannot get the Lua state in time fails (busy); it is never
// skipped as if it had run (issue 10.12).
func TestBusyEngineFailsHook(t *testing.T) {
	r := newRigOpts(t, Options{LockWait: 20 * time.Millisecond, FS: scriptFS(map[string]string{"a.lua": `
chat.on("message", function(msg) return "changed" end)
chat.on("join", function(u) return "renamed" end)
chat.on("leave", function(u) end)`})})
	r.e.sem <- struct{}{} // as if another call held the state
	got := r.say(alice, "x")
	cmd := r.say(alice, "/who")
	join := r.e.Join(t.Context(), alice)
	leave := r.e.Leave(t.Context(), alice)
	<-r.e.sem
	if !isHookErr(got.Err, chat.HookFailBusy) || got.Replace || got.Drop {
		t.Fatalf("busy message = %+v, want a busy failure", got)
	}
	if !cmd.Drop || !isHookErr(cmd.Err, chat.HookFailBusy) {
		t.Fatalf("busy command = %+v, want dropped and failed", cmd)
	}
	if !isHookErr(join.Err, chat.HookFailBusy) || join.Name != "" {
		t.Fatalf("busy join = %+v", join)
	}
	if !isHookErr(leave, chat.HookFailBusy) {
		t.Fatalf("busy leave = %v", leave)
	}
	// A cancelled context (server shutting down) fails too.
	r.e.sem <- struct{}{}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got = r.e.Message(ctx, alice, &chat.Message{Room: alice.Room, Text: "x"})
	<-r.e.sem
	if !isHookErr(got.Err, chat.HookFailCanceled) {
		t.Fatalf("cancelled message = %+v", got)
	}
	// And the engine works again once the state is free.
	if got := r.say(alice, "x"); got.Err != nil || got.Text != "changed" {
		t.Fatalf("after busy: %+v", got)
	}
}

// isHookErr reports whether err is a *chat.HookError with reason.
func isHookErr(err error, reason chat.HookFailReason) bool {
	var he *chat.HookError
	return errors.As(err, &he) && he.Reason == reason
}

// panicHost panics in Send, like a buggy chat server would.
type panicHost struct{ fakeHost }

func (*panicHost) Send(uint64, string) error { panic("host bug") }

func TestHostPanicIsContained(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "send" then chat.send(msg.user, "x") end
  return msg.text .. "!"
end)`})
	r.e.Bind(&panicHost{fakeHost{users: []chat.User{alice}}})
	if got := r.say(alice, "send"); got.Replace || !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), "host bug") {
		t.Fatalf("result %+v, want a failure naming the panic", got)
	}
	if got := r.say(alice, "ok"); got.Text != "ok!" {
		t.Fatalf("engine broken after a panic: %+v", got)
	}
}
