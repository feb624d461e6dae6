package scripting

import (
	"fmt"
	"log/slog"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// The memory limit in these tests is small (testMaxMemory), so that a
// hostile script is stopped after a few megabytes; the time limit is long,
// so that only the memory limit can stop it.
const (
	testMaxMemory   = 4 << 20
	testHookTimeout = 20 * time.Second
)

// allocated returns the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	s := []metrics.Sample{{Name: allocsMetric}}
	before := readMetric(s)
	f()
	return readMetric(s) - before
}

// hostile are script bodies that would allocate without end; each runs
// in a message hook when the text is "go".
var hostile = map[string]string{
	"concat doubling": `local s = "x" while true do s = s .. s end`,
	"table filler":    `local t = {} while true do t[#t + 1] = #t end`,
	"table.insert":    `local t = {} while true do table.insert(t, "x") end`,
	"string.rep kept": `local t = {} while true do t[#t + 1] = string.rep("x", 1e6) end`,
	"closures":        `local fs = {} while true do local x = {} fs[#fs + 1] = function() return x end end`,
	"table.concat":    `local p = {} for i = 1, 1000 do p[i] = string.rep("y", 1000) end local all = {} while true do all[#all + 1] = table.concat(p) end`,
	"gsub results":    `local s = string.rep("a", 1000) local keep = {} while true do keep[#keep + 1] = s:gsub("a", "bb") end`,
	"string.format":   `local a = string.rep("x", 5e5) local keep = {} while true do keep[#keep + 1] = string.format("%s%s", a, a) end`,
	"string keys":     `local t = {} local i = 0 while true do i = i + 1 t["k" .. i] = i end`,
}

// TestMemoryLimitStopsHostileHooks: each hostile hook fails with the
// memory reason after allocating a bounded amount (far less than the
// gigabytes it would reach by its time limit), the next handler still
// runs, and the engine serves the next message, another room's included.
func TestMemoryLimitStopsHostileHooks(t *testing.T) {
	for name, body := range hostile {
		t.Run(name, func(t *testing.T) {
			r := newRigOpts(t, Options{HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, FS: scriptFS(map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "go" then
    ` + body + `
  end
  return msg.text .. "!"
end)
chat.on("message", function(msg) return msg.text .. "?" end, -1)`})})
			var got chat.MessageResult
			n := allocated(func() { got = r.say(alice, "go") })
			if got.Text != "go?" || !isHookErr(got.Err, chat.HookFailMemory) {
				t.Fatalf("result %+v", got)
			}
			if msg := got.Err.Error(); !strings.Contains(msg, "script memory limit exceeded") || !strings.Contains(msg, "a.lua:") {
				t.Fatalf("error %s", msg)
			}
			// Generous (the first sample is a millisecond in, and the
			// instruction running when the limit fires completes), but
			// megabytes, not the gigabytes of an unbounded run.
			t.Logf("allocated %.1f MiB before it was stopped", float64(n)/(1<<20))
			if n > 256<<20 {
				t.Errorf("the hostile call allocated %d MiB", n>>20)
			}
			if got := r.say(carol, "hi"); got.Text != "hi!?" || got.Err != nil {
				t.Fatalf("another room after the hostile call: %+v", got)
			}
			if got := r.say(alice, "hi"); got.Text != "hi!?" || got.Err != nil {
				t.Fatalf("the same room after the hostile call: %+v", got)
			}
		})
	}
}

// TestMemoryLimitOtherFailures: what the memory limit does not need to
// stop fails as before, with the reason error: a string.rep past the
// string cap, and deep recursion (the call stack's limit).
func TestMemoryLimitOtherFailures(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, FS: scriptFS(map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "rep" then return string.rep("x", 1e10) end
  if msg.text == "deep" then local function f(n) return 1 + f(n + 1) end return f(1) end
  return msg.text .. "!"
end)`})})
	for text, want := range map[string]string{"rep": "string.rep: result too long", "deep": "stack overflow"} {
		got := r.say(alice, text)
		if !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), want) {
			t.Errorf("%s: %+v, want reason error with %q", text, got, want)
		}
	}
	if got := r.say(alice, "hi"); got.Text != "hi!" {
		t.Fatalf("after the failures: %+v", got)
	}
}

// TestMemoryLimitTopLevel: a script whose top level allocates without end
// fails to load, naming the memory limit.
func TestMemoryLimitTopLevel(t *testing.T) {
	_, err := New(t.Context(), Options{HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, Logger: slog.New(slog.DiscardHandler),
		FS: scriptFS(map[string]string{"a.lua": "local t = {}\nwhile true do t[#t + 1] = {} end"})})
	if err == nil || !strings.Contains(err.Error(), "a.lua:2: script memory limit exceeded") {
		t.Fatalf("error %v", err)
	}
}

// TestMemoryLimitKeptData: a script that keeps a little more in a global
// at every call — each call far within the limit — is found holding more
// than the limit; the calls fail with the memory reason until the engine
// has loaded the scripts again into a fresh state, whose data starts
// empty, and then work.
func TestMemoryLimitKeptData(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, FS: scriptFS(map[string]string{"a.lua": `
kept = {}
chat.on("message", function(msg)
  if msg.text == "grow" then
    for i = 1, 2000 do kept[#kept + 1] = string.rep("k", 100) .. i end
  end
  return tostring(#kept)
end)`})})
	// Reloads wait while the test holds reloadMu, so that the calls on the
	// state over its limit can be seen failing.
	r.e.reloadMu.Lock()
	locked := true
	defer func() {
		if locked {
			r.e.reloadMu.Unlock()
		}
	}()
	over := func() bool { return strings.Contains(r.log.String(), "lua scripts over their memory limit") }
	for i := 0; !over(); i++ {
		if i == 400 { // 400 calls would keep some 100 MiB
			t.Fatal("the scripts kept growing past the limit unnoticed")
		}
		if got := r.say(alice, "grow"); got.Err != nil && !isHookErr(got.Err, chat.HookFailMemory) {
			t.Fatalf("call %d failed otherwise: %v", i, got.Err)
		}
	}
	for _, u := range []chat.User{alice, carol} {
		if got := r.say(u, "count"); !isHookErr(got.Err, chat.HookFailMemory) || !strings.Contains(got.Err.Error(), "the scripts' data holds more than") {
			t.Fatalf("a call on the state over its limit: %+v", got)
		}
	}
	r.e.reloadMu.Unlock()
	locked = false
	eventually(t, "the scripts loaded again", func() bool {
		return strings.Contains(r.log.String(), `msg="lua scripts loaded" cause="memory limit"`)
	})
	if got := r.say(bob, "count"); got.Text != "0" || got.Err != nil {
		t.Fatalf("after the reload: %+v\nlog:\n%s", got, r.log.String())
	}
}

// TestMemoryLimitTimer: a chat.every function that grows a global table at
// every tick is stopped the same way: the state is found over the limit
// and the scripts are loaded again (their timers with them).
func TestMemoryLimitTimer(t *testing.T) {
	clk := newFakeClock()
	r := newRigOpts(t, Options{Clock: clk, HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, FS: scriptFS(map[string]string{"tick.lua": `
big = {}
chat.every(0.01, function()
  for i = 1, 2000 do big[#big + 1] = string.rep("t", 100) .. i end
  chat.broadcast("lobby", tostring(#big))
end)
chat.command("size", function() return tostring(#big) end)`})})
	// Reloads wait while the test holds reloadMu (see TestMemoryLimitKeptData).
	r.e.reloadMu.Lock()
	locked := true
	defer func() {
		if locked {
			r.e.reloadMu.Unlock()
		}
	}()
	r.e.Start(t.Context())
	over := func() bool { return strings.Contains(r.log.String(), "lua scripts over their memory limit") }
	tick := func(n int, done func() bool) {
		eventually(t, "a timer waiting", func() bool { return clk.Active() == 1 })
		clk.Advance(10 * time.Millisecond)
		eventually(t, fmt.Sprintf("tick %d", n), done)
	}
	for n := 0; !over(); n++ {
		if n == 200 {
			t.Fatalf("not found over its limit after %d ticks; log:\n%s", n, r.log.String())
		}
		tick(n, func() bool { return len(r.host.take()) > 0 || over() })
	}
	// The next tick fails at once, logged, until the scripts are loaded
	// again. (A timer that fell behind may have run it already.)
	stopped := func() bool {
		return strings.Contains(r.log.String(), "lua timer stopped: memory limit exceeded") && strings.Contains(r.log.String(), "error=\"script memory limit exceeded: the scripts' data holds more than")
	}
	if !stopped() {
		tick(-1, stopped)
	}
	r.e.reloadMu.Unlock()
	locked = false
	eventually(t, "the scripts loaded again", func() bool {
		return strings.Contains(r.log.String(), `msg="lua scripts loaded" cause="memory limit"`)
	})
	r.say(alice, "/size")
	if got := reply(t, r); got != "0" {
		t.Fatalf("/size after the reload: %q", got)
	}
}

// TestArrayIndexBounded: t[n] = v for a large n does not fill an array up
// to n (gopher-lua would allocate a slot for every index below it: a
// gigabyte for n = 6e7, in one instruction no sampling can interrupt).
func TestArrayIndexBounded(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: testHookTimeout, FS: scriptFS(map[string]string{"a.lua": fmt.Sprintf(`
chat.on("message", function(msg)
  local t = {}
  t[%d] = true
  t[6e7] = true
  local u = {}
  for i = 1, 100 do u[i] = i end
  return tostring(t[%d]) .. tostring(t[6e7]) .. " " .. #u
end)`, maxArrayIndex+1, maxArrayIndex+1)})})
	var got chat.MessageResult
	n := allocated(func() { got = r.say(alice, "x") })
	if got.Text != "truetrue 100" || got.Err != nil {
		t.Fatalf("result %+v", got)
	}
	if n > 16<<20 {
		t.Fatalf("two sparse assignments allocated %d MiB", n>>20)
	}
}

// TestPasswordHashWithinMemoryLimit: the memory a password hash needs
// (argon2id, 19 MiB) is granted to the call that asks for it, so a limit
// below it does not fail chat.password_hash.
func TestPasswordHashWithinMemoryLimit(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: testHookTimeout, MaxMemory: testMaxMemory, FS: scriptFS(map[string]string{"a.lua": `
chat.command("h", function(user, args)
  local h = chat.password_hash(args)
  return tostring(chat.password_check(h, args))
end)`})})
	r.say(alice, "/h secret")
	if got := reply(t, r); got != "true" {
		t.Fatalf("/h: %q; log:\n%s", got, r.log.String())
	}
}

// TestRegistrationBounded: a script cannot register handlers or timers
// without end.
func TestRegistrationBounded(t *testing.T) {
	for src, want := range map[string]string{
		`for i = 1, 1e6 do chat.every(1, function() end) end`:                                                        "chat.every: too many timers",
		`for i = 1, 1e6 do chat.on("message", function() end) end`:                                                   "chat.on: too many message handlers",
		fmt.Sprintf(`for i = 1, %d do chat.every(1, function() end) chat.on("join", function() end) end`, maxTimers): "",
	} {
		_, err := New(t.Context(), Options{Logger: slog.New(slog.DiscardHandler), FS: scriptFS(map[string]string{"a.lua": src})})
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}

// TestMemoryLimitOverTheWire: with the real chat server, a hostile hook in
// one room fails closed with the memory reason — the sender told why, the
// failure counted in /metrics — while a member of another room chats on.
func TestMemoryLimitOverTheWire(t *testing.T) {
	e, err := New(t.Context(), Options{
		FS: scriptFS(map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.room == "hog" then local s = "x" while true do s = s .. s end end
end)`}),
		HookTimeout: testHookTimeout,
		MaxMemory:   testMaxMemory,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ts := chattest.Start(t, chat.Config{Logger: slog.New(slog.DiscardHandler)}, e, nil)
	hog := ts.Dial(t, "/chat/hog?name=hog", "")
	readContaining(t, hog, "hog joined")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	readContaining(t, bob, "bob joined")

	hog.Send("more")
	readContaining(t, hog, "message not sent: a server script used too much memory")
	bob.Send("still here")
	readContaining(t, bob, "bob: still here")
	_, body, _ := ts.Get(t, "/metrics")
	if want := `moonchat_hook_failures_total{hook="message",reason="memory"} 1`; !strings.Contains(body, want+"\n") {
		t.Fatalf("metrics lack %s", want)
	}
}

// TestSizeOfState: the walk's estimate of what the scripts keep is within
// a small factor of the real size, sees data reachable only through a
// registered function's upvalues, counts a long string kept in many places
// once, and stops at its limit.
func TestSizeOfState(t *testing.T) {
	r := newRig(t, map[string]string{
		"a.lua": `kept = {} for i = 1, 10000 do kept[i] = string.rep("k", 100) .. i end`,
		"b.lua": `local hidden = {} for i = 1, 10000 do hidden["h" .. i] = string.rep("h", 100) end
chat.on("message", function() return tostring(#hidden) end)`,
		"c.lua": `local s = string.rep("s", 1e5) shared = {} for i = 1, 1000 do shared[i] = s end`,
	})
	r.e.sem <- struct{}{}
	defer func() { <-r.e.sem }()
	st := r.e.cur.Load()
	// kept: 10,000 strings of about 105 bytes in an array, some 1.4 MB on
	// the heap; hidden: 10,000 keys and values, some 2.5 MB; shared: one
	// 100 KB string, not 100 MB.
	size, ok := st.sizeOfState(64 << 20)
	t.Logf("estimate: %d bytes", size)
	if !ok || size < 3<<20 || size > 8<<20 {
		t.Fatalf("estimate %d bytes (within limit: %v), want 3 to 8 MiB", size, ok)
	}
	if size, ok := st.sizeOfState(1 << 20); ok || size > 2<<20 {
		t.Fatalf("with a 1 MiB limit: %d bytes, within: %v; want a stop just past the limit", size, ok)
	}
}
