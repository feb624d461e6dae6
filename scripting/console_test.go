package scripting

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// evalOK runs line on c and fails the test when it could not run.
func evalOK(t *testing.T, c *Console, line string) ConsoleResult {
	t.Helper()
	res, err := c.Eval(context.Background(), line)
	if err != nil {
		t.Fatalf("Eval(%q): %v", line, err)
	}
	return res
}

// TestConsoleEval: expressions print their values, statements run and
// print nothing, globals last from line to line, print's output comes
// back, chat.* reaches the host, and tables are shown expanded.
func TestConsoleEval(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": `chat.command("hi", function() return "hello" end)`})
	c := r.e.NewConsole()
	defer c.Close()

	cases := []struct {
		line   string
		values []string
		output string
	}{
		{"1 + 1", []string{"2"}, ""},
		{"=2 * 3", []string{"6"}, ""},
		{"x = 41", nil, ""},
		{"x + 1", []string{"42"}, ""},
		{"local y = 5", nil, ""},
		{"y", []string{"nil"}, ""}, // a local lasts one line, as in lua's own prompt
		{`"plain", 'two'`, []string{"plain", "two"}, ""},
		{`print("a", 1, true) print("b")`, nil, "a\t1\ttrue\nb\n"},
		{"#chat.rooms()", []string{"2"}, ""},
		{`chat.users("dev")[1].name`, []string{"carol"}, ""},
		{`{1, "two", name = "n", ["a b"] = false, [10] = 3}`, []string{`{1, "two", ["a b"] = false, name = "n", [10] = 3}`}, ""},
		{`chat.commands()`, []string{`{{help = "", name = "hi", script = "a.lua"}}`}, ""},
		{`chat.send`, []string{"function<builtin>"}, ""},
		{`function f() end return f`, []string{"function<console:1>"}, ""},
		{`chat.options`, []string{"{}"}, ""},
	}
	for _, tc := range cases {
		res := evalOK(t, c, tc.line)
		if res.Error != "" || strings.Join(res.Values, "|") != strings.Join(tc.values, "|") || res.Output != tc.output {
			t.Errorf("%q: values %q output %q error %q, want values %q output %q", tc.line, res.Values, res.Output, res.Error, tc.values, tc.output)
		}
	}

	evalOK(t, c, `chat.broadcast("lobby", "from the console")`)
	if got := r.host.take(); len(got) != 1 || got[0].Method != "Broadcast" || got[0].Text != "from the console" {
		t.Errorf("host calls %v, want one Broadcast", got)
	}
}

// TestConsoleErrors: syntax errors, runtime errors and the sandbox come
// back as the result's Error with the console's position; the state
// still works afterwards.
func TestConsoleErrors(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": ``})
	c := r.e.NewConsole()
	defer c.Close()
	cases := map[string]string{
		"x = = 1":                "console:1: ",
		`error("boom")`:          "console:1: boom",
		"nil + 1":                "console:1: ",
		`os.getenv("HOME")`:      "os.getenv is not available in moonchat's Lua sandbox",
		`io.open("/etc/passwd")`: "io.open is not available",
		`chat.on("join", print)`: "chat.on: can only be called while the script loads",
		`chat.every(1, print)`:   "chat.every: can only be called while the script loads",
		`setmetatable("", {})`:   "table expected",
		`load("return 1")`:       "load is not available",
		`chat.options.x = 1`:     "read-only",
		"function f() return 1 + f() end return f()": "stack overflow",
	}
	for line, want := range cases {
		res := evalOK(t, c, line)
		if !strings.Contains(res.Error, want) || len(res.Values) != 0 {
			t.Errorf("%q: error %q values %q, want an error containing %q", line, res.Error, res.Values, want)
		}
	}
	if res := evalOK(t, c, "1"); res.Error != "" || len(res.Values) != 1 || res.Values[0] != "1" {
		t.Errorf("after the errors: %+v", res)
	}
}

// TestConsoleTimeLimit: a line runs under the hooks' time limit.
func TestConsoleTimeLimit(t *testing.T) {
	r := newRigOpts(t, Options{FS: scriptFS(map[string]string{"a.lua": ``}), HookTimeout: 50 * time.Millisecond})
	c := r.e.NewConsole()
	defer c.Close()
	res := evalOK(t, c, "while true do end")
	if !strings.Contains(res.Error, ErrTimeLimit.Error()) {
		t.Fatalf("endless loop: %+v, want the time limit", res)
	}
	if res := evalOK(t, c, "1"); res.Values[0] != "1" {
		t.Fatalf("after the time limit: %+v", res)
	}
}

// TestConsoleCommands: "help" answers, "reload" loads the scripts again
// (the new script's command is there) and the console's globals start
// afresh, saying so once; a reload that fails keeps the scripts and says
// why.
func TestConsoleCommands(t *testing.T) {
	fsys := fstest.MapFS{"a.lua": {Data: []byte(`chat.command("one", function() end)`)}}
	r := newRigOpts(t, Options{FS: fsys})
	c := r.e.NewConsole()
	defer c.Close()
	if res := evalOK(t, c, " help "); !strings.Contains(res.Output, "reload") {
		t.Errorf("help: %+v", res)
	}
	evalOK(t, c, "x = 1")
	fsys["a.lua"] = &fstest.MapFile{Data: []byte(`chat.command("two", function() end)`)}
	if res := evalOK(t, c, "reload"); !res.Reloaded || res.Error != "" {
		t.Fatalf("reload: %+v", res)
	}
	res := evalOK(t, c, "x")
	if !res.Reset || res.Values[0] != "nil" {
		t.Errorf("x after the reload: %+v, want nil and Reset", res)
	}
	if res := evalOK(t, c, "chat.commands()[1].name"); res.Reset || res.Values[0] != "two" {
		t.Errorf("commands after the reload: %+v", res)
	}
	fsys["a.lua"] = &fstest.MapFile{Data: []byte(`this is not lua`)}
	if res := evalOK(t, c, "reload"); res.Reloaded || !strings.Contains(res.Error, "a.lua:1") {
		t.Errorf("a failing reload: %+v", res)
	}
	if res := evalOK(t, c, "chat.commands()[1].name"); res.Values[0] != "two" {
		t.Errorf("after the failed reload: %+v", res)
	}
}

// TestConsoleRefused: lines that cannot run are errors, not results: too
// long, a NUL, an engine closed, a context done while the state is busy.
func TestConsoleRefused(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": ``})
	c := r.e.NewConsole()
	if _, err := c.Eval(context.Background(), "return '"+strings.Repeat("x", MaxConsoleLine)+"'"); !errors.Is(err, ErrConsoleLine) {
		t.Errorf("a long line: %v", err)
	}
	if _, err := c.Eval(context.Background(), "x\x00"); !errors.Is(err, ErrConsoleLine) {
		t.Errorf("a NUL: %v", err)
	}
	r.e.sem <- struct{}{} // someone holds the state
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Eval(ctx, "1"); err == nil {
		t.Error("a line ran while the state was held")
	}
	<-r.e.sem
	r.e.Close()
	if _, err := c.Eval(context.Background(), "1"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	c.Close()
}

// TestConsoleMemory: the console's globals count against the scripts'
// memory limit, and Close takes them out of the count.
func TestConsoleMemory(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": ``})
	st := r.e.cur.Load()
	before := len(st.envs)
	c := r.e.NewConsole()
	evalOK(t, c, `big = string.rep("x", 1000000)`)
	if len(st.envs) != before+1 {
		t.Fatalf("envs %d, want %d", len(st.envs), before+1)
	}
	if n, _ := st.sizeOfState(1 << 40); n < 1000000 {
		t.Errorf("the scripts hold %d bytes with the console's 1 MB string", n)
	}
	c.Close()
	if len(st.envs) != before {
		t.Errorf("envs %d after Close, want %d", len(st.envs), before)
	}
}

// TestConsoleShow: tables are shown to a bounded depth and width, cycles
// are marked, output is bounded, and nothing runs a metamethod.
func TestConsoleShow(t *testing.T) {
	r := newRig(t, map[string]string{"a.lua": ``})
	c := r.e.NewConsole()
	defer c.Close()
	cases := map[string]string{
		`t = {} t.self = t return t`: `{self = <cycle>}`,
		`{{{{{1}}}}}`:                `{{{{{…}}}}}`,
		`setmetatable({}, {__index = function() error("ran") end, __tostring = function() error("ran") end})`: `{}`,
		`{["end"] = 1, _ok = 2, [true] = 3}`: `{_ok = 2, ["end"] = 1, [true] = 3}`,
		`{"a\nb"}`:                           `{"a\nb"}`,
	}
	for line, want := range cases {
		if res := evalOK(t, c, line); res.Error != "" || len(res.Values) != 1 || res.Values[0] != want {
			t.Errorf("%q: %+v, want %s", line, res, want)
		}
	}
	res := evalOK(t, c, `local t = {} for i = 1, 150 do t[i] = i end return t`)
	if !strings.HasSuffix(res.Values[0], ", 100, … 50 more}") {
		t.Errorf("150 items: %.200s…", res.Values[0])
	}
	res = evalOK(t, c, `local t = {} for i = 1, 100 do t[i] = string.rep("y", 1000) end return t, t`)
	if total := len(strings.Join(res.Values, "")); total > maxConsoleOutput+100 || !strings.HasSuffix(res.Values[1], "(output cut)") {
		t.Errorf("large output: %d bytes, ends %q", total, res.Values[1][max(0, len(res.Values[1])-30):])
	}
}
