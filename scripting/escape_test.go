package scripting

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// escapeTimeout is the time limit of the escape tests: long, as an
// operator may set it, so that what runs past it would show (the stop of a
// tail-call loop used to take several times the limit, and a gigabyte).
const escapeTimeout = 2 * time.Second

// escapes are hook bodies that ran past the time or memory limit, or came
// near, before the sandbox compiled tail calls as ordinary calls and cut
// error messages: tail-call loops (gopher-lua counts each tail call in
// its frame and writes a traceback line per call when an error is caught:
// built after the limit fired, outside it), errors caught again and again
// deep in a recursion, string.rep growth, error messages of megabytes.
var escapes = map[string]struct{ body, want string }{
	// want: what the error says, when only one failure is right ("" when
	// the time or the memory limit may come first).
	"tail-call loop":          {`local function f(n) return f(n + 1) end return f(0)`, "a.lua:4: stack overflow"},
	"mutual tail calls":       {`local g local function f(n) return g(n + 1) end g = function(n) return f(n + 1) end return f(0)`, "a.lua:4: stack overflow"},
	"tail calls to an error":  {`local function f(n) if n == 1e9 then error("deep") end return f(n + 1) end return f(0)`, "a.lua:4: stack overflow"},
	"tail-call loop retried":  {`local function f(n) return f(n + 1) end while true do pcall(f, 0) end`, ""},
	"pcall in tail-call loop": {`local function f(n) pcall(error, "x") return f(n + 1) end return f(0)`, ""},
	"error deep, retried":     {`local function f(n) if n == 190 then error(string.rep("x", 1e6)) end return 1 + f(n + 1) end while true do pcall(f, 0) end`, ""},
	"error table deep":        {`local function f(n) if n == 190 then error({}) end return 1 + f(n + 1) end while true do pcall(f, 0) end`, ""},
	"string.rep doubling":     {`local s = "x" while true do s = string.rep(s, 2) end`, "string.rep: result too long"},
	"string.rep appended":     {`local s = "" while true do s = s .. string.rep("x", 1e5) end`, ""},
	"huge error message":      {`error(string.rep("x", 1e6) .. string.rep("y", 1e6))`, "… (error message of 2000000 bytes, cut to 4096)"},
}

// TestScriptEscapesBounded: each escape ends within the time limit (a
// failure as soon as it is one, or the time limit, or the memory limit),
// is counted as the handler's error or timeout, allocates megabytes rather
// than the gigabyte it took before, leaves an error message of bounded
// size, and the engine serves the next message.
func TestScriptEscapesBounded(t *testing.T) {
	for name, esc := range escapes {
		t.Run(name, func(t *testing.T) {
			r := newRigOpts(t, Options{HookTimeout: escapeTimeout, FS: scriptFS(map[string]string{"a.lua": `
chat.on("message", function(msg)
  if msg.text == "go" then
    ` + esc.body + `
  end
  return msg.text .. "!"
end)`})})
			var got chat.MessageResult
			start := time.Now()
			n := allocated(func() { got = r.say(alice, "go") })
			elapsed := time.Since(start)
			t.Logf("%v, %.1f MiB allocated: %.200v", elapsed.Round(time.Millisecond), float64(n)/(1<<20), got.Err)
			if got.Err == nil || got.Replace {
				t.Fatalf("result %+v, want a failure", got)
			}
			reason := hookReason(t, got.Err)
			if reason != chat.HookFailError && reason != chat.HookFailTimeout && reason != chat.HookFailMemory {
				t.Fatalf("reason %s", reason)
			}
			if esc.want != "" && (reason != chat.HookFailError || !strings.Contains(got.Err.Error(), esc.want)) {
				t.Errorf("want an error with %q", esc.want)
			}
			// Within the limit, plus the unwinding (generous, for a
			// loaded machine): before, a tail-call loop's stop took
			// seconds more, building its traceback.
			if elapsed > escapeTimeout+escapeTimeout/2 {
				t.Errorf("the call took %v (time limit %v)", elapsed, escapeTimeout)
			}
			// The per-call memory limit (64 MiB) with its documented
			// slack, not the 1 GB of a tail-call loop's traceback.
			if n > 256<<20 {
				t.Errorf("the call allocated %d MiB", n>>20)
			}
			if l := len(got.Err.Error()); l > maxErrorBytes+512 {
				t.Errorf("error of %d bytes", l)
			}
			fams := gather(t, r.e)
			errs, _ := sample(fams, "moonchat_script_errors_total", "script", "a.lua", "event", "message")
			timeouts, _ := sample(fams, "moonchat_script_timeouts_total", "script", "a.lua", "event", "message")
			if errs+timeouts != 1 {
				t.Errorf("counted %v errors and %v timeouts, want one failure", errs, timeouts)
			}
			if got := r.say(carol, "hi"); got.Text != "hi!" || got.Err != nil {
				t.Fatalf("the next message: %+v", got)
			}
		})
	}
}

// TestTailCallsAreCalls: `return f(x)` still returns every result of f,
// whatever f is (a Lua function, a Go function, a method, varargs), and
// no compiled chunk has a tail call left; a tail recursion deeper than
// the call stack is a "stack overflow" error at its line.
func TestTailCallsAreCalls(t *testing.T) {
	r := newRigOpts(t, Options{FS: scriptFS(map[string]string{"a.lua": `
local function three() return 1, 2, 3 end
local function tail() return three() end
local function va(...) return select(2, ...) end
local obj = { n = 7 }
function obj:get(k) return self.n, k end
local function count(n, acc) if n == 0 then return acc end return count(n - 1, acc + 1) end
chat.on("message", function(msg)
  local a, b, c = tail()
  local x, y = va("p", "q", "r")
  local n, k = (function() return obj:get("k") end)()
  local s = (function() return tostring(12) end)()
  if msg.text == "deep" then return tostring(count(1000, 0)) end
  return table.concat({ a, b, c, x, y, n, k, s, select("#", tail()), count(150, 0) }, ",")
end)`})})
	if got := r.say(alice, "x"); got.Text != "1,2,3,q,r,7,k,12,3,150" || got.Err != nil {
		t.Fatalf("results through tail calls: %+v", got)
	}
	got := r.say(alice, "deep")
	if !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), "a.lua:7: stack overflow") {
		t.Fatalf("a tail recursion 1000 deep: %+v", got)
	}

	L, _, _ := newSandbox()
	defer L.Close()
	fn, err := compile(L, strings.NewReader(`local function f() return (function() return g() end)() end return f()`), "t.lua")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(p *lua.FunctionProto) int
	walk = func(p *lua.FunctionProto) int {
		n := 0
		for _, inst := range p.Code {
			if int(inst>>26) == lua.OP_TAILCALL {
				n++
			}
		}
		for _, c := range p.FunctionPrototypes {
			n += walk(c)
		}
		return n
	}
	if n := walk(fn.Proto); n != 0 {
		t.Fatalf("%d tail calls left", n)
	}
	raw, _ := L.Load(strings.NewReader(`return f()`), "raw.lua")
	if walk(raw.Proto) != 1 {
		t.Fatal("gopher-lua no longer compiles `return f()` as a tail call: the test sees nothing")
	}
}

// TestTableSortStopped: table.sort with a Go function as its comparator
// (here chat.log, which logs each comparison), where no Lua instruction
// runs for the VM to check the limit at, is stopped by the time limit
// within the sort: after a fraction of the comparisons of the whole sort.
// (Without a comparator it is the same loop, comparing with Lua's <.)
// Sorting still sorts, with and without a comparator, and refuses what
// cannot be compared.
func TestTableSortStopped(t *testing.T) {
	// chat.log answers nil (false) to every comparison: Go's sort makes
	// about n of them to find the order already right (measured 20,011
	// for 20,000) — all of them, when nothing checks the limit.
	const n = 100000
	r := newRigOpts(t, Options{HookTimeout: 10 * time.Millisecond, FS: scriptFS(map[string]string{"a.lua": fmt.Sprintf(`
local big = {}
for i = 1, %d do big[i] = (i * 7919) %% 1000003 end
chat.on("message", function(msg)
  if msg.text == "go-cmp" then table.sort(big, chat.log) end
  if msg.text == "mixed" then table.sort({ 1, "x", 2 }) end
  local t = { 5, 3, 9, 1 }
  table.sort(t)
  local s = { "b", "c", "a" }
  table.sort(s, function(a, b) return a > b end)
  return table.concat(t, ",") .. " " .. table.concat(s, ",")
end)`, n)})})
	got := r.say(alice, "go-cmp")
	if !isHookErr(got.Err, chat.HookFailTimeout) {
		t.Fatalf("go-cmp: %+v, want the time limit", got)
	}
	compared := strings.Count(r.log.String(), "script=a.lua")
	t.Logf("stopped after %d comparisons", compared)
	if compared > n/2 {
		t.Fatalf("the sort ran on past its time limit: %d comparisons", compared)
	}
	if got := r.say(alice, "mixed"); !isHookErr(got.Err, chat.HookFailError) || !strings.Contains(got.Err.Error(), "attempt to compare") {
		t.Fatalf("mixed: %+v", got)
	}
	if got := r.say(alice, "x"); got.Text != "1,3,5,9 c,b,a" || got.Err != nil {
		t.Fatalf("sorted: %+v", got)
	}
}
