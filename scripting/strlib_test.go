package scripting

import (
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
)

// The bounded string functions (strlib.go) answer as gopher-lua's own did:
// each expression is run by a plain gopher-lua state and by the sandbox.
func TestStrlibMatchesGopherLua(t *testing.T) {
	exprs := []string{
		`string.find("hello world", "o w")`,
		`string.find("hello world", "o", 6)`,
		`string.find("hello world", "l+")`,
		`string.find("hello", "(l)(l)")`,
		`string.find("hello", "()ll()")`,
		`string.find("a.b", ".", 1, true)`,
		`string.find("abc", "b", -1)`,
		`string.find("abc", "x")`,
		`string.find("abc", "^b")`,
		`string.find("abc", "c$")`,
		`string.match("key = value", "(%w+)%s*=%s*(%w+)")`,
		`string.match("  trim  ", "^%s*(.-)%s*$")`,
		`string.match("abc", "b")`,
		`string.match("abc", "()b()")`,
		`string.match("f(a(b)c)", "%b()")`,
		`string.match("hello", "l", -2)`,
		`string.match("abcabc", "(a)(b)c%1%2")`,
		`string.gsub("hello world", "o", "0")`,
		`string.gsub("hello world", "o", "0", 1)`,
		`string.gsub("hello", "", "-")`,
		`string.gsub("abc", "%w", "%0%0")`,
		`string.gsub("abc", "(%w)", "[%1]")`,
		`string.gsub("abc", "b", "%%")`,
		`string.gsub("abc", "b", "%x")`,
		`string.gsub("hello world", "(%w+)", "<%1>")`,
		`string.gsub("hello world", "%w+", {hello = "HI", world = false})`,
		`string.gsub("hello world", "(%w+) (%w+)", "%2 %1")`,
		`string.gsub("abc", ".", function(c) return c:upper() end)`,
		`string.gsub("abc", ".", function(c) if c == "b" then return nil end return "x" end)`,
		`string.gsub("abc", "^a", "A")`,
		`string.gsub("aaa", "^a", "A")`,
		`string.gsub("x = 1, y = 2", "(%w+) = (%w+)", "%2 = %1")`,
		`string.gsub("abc", "b*", "-")`,
		`string.gsub("one two  three", "%s+", " ")`,
		`(function() local t = {} for w in string.gmatch("one two three", "%a+") do t[#t+1] = w end return table.concat(t, ",") end)()`,
		`(function() local t = {} for k, v in string.gmatch("a=1, b=2", "(%w+)=(%w+)") do t[#t+1] = k .. v end return table.concat(t, ",") end)()`,
		`(function() local t = {} for w in string.gmatch("abc", "") do t[#t+1] = "[" .. w .. "]" end return table.concat(t) end)()`,
		`(function() local n = 0 for w in string.gmatch("aaa", "a*") do n = n + 1 end return n end)()`,
		`string.format("%5.2f|%-3d|%s|%q", 3.14159, 7, "x", "a\"b")`,
		`string.format("%d%%", 50)`,
		`table.concat({1, 2, 3}, ", ")`,
		`table.concat({1, 2, 3}, "", 2)`,
		`table.concat({1, 2, 3}, "-", 2, 3)`,
		`table.concat({}, "x")`,
		`table.concat({"a", "b"}, "x", 3)`,
		`("x"):rep(3)`,
	}
	// Where gopher-lua strays from Lua 5.1, the sandbox follows Lua 5.1:
	// string.find(s, "", init) answers init (gopher-lua: 1), and gsub
	// takes a number as the replacement (gopher-lua: an error). Checked
	// separately below.
	for _, e := range exprs {
		ref := lua.NewState()
		want, werr := evalAll(ref, e)
		ref.Close()
		r := newRig(t, map[string]string{"a.lua": `chat.command("e", function() return tostring(select("#", ` + e + `)) .. ":" .. table.concat({tostringall(` + e + `)}, "|") end)
function tostringall(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end return unpack(t) end`})
		res := r.say(alice, "/e")
		calls := r.host.take()
		if werr != nil {
			t.Fatalf("%s: reference failed: %v", e, werr)
		}
		if res.Err != nil || len(calls) != 1 {
			t.Errorf("%s: %+v %v", e, res, calls)
			continue
		}
		if calls[0].Text != want {
			t.Errorf("%s = %q, gopher-lua says %q", e, calls[0].Text, want)
		}
	}
}

func TestStrlibLua51(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `
chat.command("e", function()
  local a, b = string.find("abc", "", 2)
  local c, d = string.find("abc", "", 10)
  return table.concat({a, b, c, d, (string.gsub("12 ab", "%d", 7))}, " ")
end)`})
	if res := r.say(alice, "/e"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if calls := r.host.take(); len(calls) != 1 || calls[0].Text != "2 1 4 3 77 ab" {
		t.Fatalf("calls %v", calls)
	}
}

// evalAll evaluates e in L the way the sandbox test formats it.
func evalAll(L *lua.LState, e string) (string, error) {
	err := L.DoString(`function tostringall(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end return unpack(t) end
result = tostring(select("#", ` + e + `)) .. ":" .. table.concat({tostringall(` + e + `)}, "|")`)
	if err != nil {
		return "", err
	}
	return L.GetGlobal("result").String(), nil
}

// One library call is bounded (issue 10.13): a pattern function stops at
// the time limit, gsub over a big subject is linear, and the calls that
// build strings refuse results over 1 MiB with an error naming the limit.
func TestLibraryCallsBounded(t *testing.T) {
	tests := []struct{ name, src, want string }{
		// gsub with 64 KB of matches: seconds (and a stalled room) before.
		{"gsub 64 KB", `local s = string.rep("a", 65536) local r, n = s:gsub("a", string.rep("b", 8)) assert(n == 65536 and #r == 8 * 65536)`, ""},
		{"gsub result", `local s = string.rep("a", 65536) s:gsub("a", string.rep("b", 64))`, "string.gsub: result too long (more than 1048576 bytes)"},
		{"backtracking find", `local s = string.rep("a", 65536) s:find("a*a*a*a*b")`, "time limit exceeded"},
		{"backtracking gmatch", `local s = string.rep("a", 65536) for x in s:gmatch(".-.-.-b") do end`, "time limit exceeded"},
		{"backtracking gsub", `local s = string.rep("a", 65536) s:gsub(".-.-.-b", "")`, "time limit exceeded"},
		{"format width", `string.format("%999999999d", 1)`, "string.format: invalid format (width or precision too long, at most 99)"},
		{"format precision", `string.format("%.100f", 1)`, "string.format: invalid format"},
		{"format result", `local s = string.rep("x", 1048576) string.format("%s%s", s, s)`, "string.format: result too long"},
		{"concat result", `local t = {} local s = string.rep("x", 65536) for i = 1, 17 do t[i] = s end table.concat(t)`, "table.concat: result too long (more than 1048576 bytes)"},
		{"concat range", `table.concat({}, "", 1, 1e9)`, "table.concat: too many values"},
		{"rep", `string.rep("ab", 1e9)`, "string.rep: result too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			// The time limit and the result bounds alone (the memory
			// limit has tests of its own and could fire first).
			_, err := New(t.Context(), Options{HookTimeout: 20 * time.Millisecond, MaxMemory: noMemoryLimit, FS: scriptFS(map[string]string{"a.lua": tt.src})})
			elapsed := time.Since(start)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "a.lua:1:") {
				t.Fatalf("error %v, want a.lua:1: ...%s", err, tt.want)
			}
			// Generous: proves the call was bounded (the load limit is 1s),
			// not how fast.
			if elapsed > 10*time.Second {
				t.Fatalf("took %v", elapsed)
			}
		})
	}
}

// A hook that hits a pattern that would run for minutes is stopped at its
// time limit and fails (the chat server then refuses the message).
func TestPatternInHookStopped(t *testing.T) {
	r := newRigOpts(t, Options{HookTimeout: 250 * time.Millisecond, FS: scriptFS(map[string]string{"a.lua": `
local big = string.rep("a", 65536)
chat.on("message", function(msg)
  if msg.text == "slow" then big:find("a*a*a*a*b") end
  return msg.text .. "!"
end)`})})
	got := r.say(alice, "slow")
	if !isHookErr(got.Err, chat.HookFailTimeout) {
		t.Fatalf("result %+v", got)
	}
	if got := r.say(alice, "ok"); got.Err != nil || got.Text != "ok!" {
		t.Fatalf("after: %+v", got)
	}
}
