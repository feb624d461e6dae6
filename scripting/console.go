package scripting

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The console (`moonchat console`, issue 16): an operator's Lua prompt
// inside the running engine. Each line runs in the scripts' Lua state,
// under the engine's semaphore, with the same sandbox (a script
// environment made from the same template, its own chat table) and the
// same time and memory limits as a hook call. A line that is an
// expression prints its values, as Lua 5.3's interpreter does: the line
// is compiled as "return LINE" first and, only when that does not
// compile, as a statement. The console's globals live in its own
// environment for as long as the console and the scripts' generation
// last: a reload starts them afresh (the old Lua state is gone).
//
// What a console keeps counts against the scripts' memory limit (its
// environment is walked with the scripts' own, limits.go), so a console
// cannot hold more than a script could; Close takes it out again.

// ConsoleScript is the name the console's chat table acts under: chat.log
// lines carry script=console, chat.kv is the "console" namespace, and the
// audit entries chat.ban, chat.kick … write say "console".
const ConsoleScript = "console"

// MaxConsoleLine bounds one console line in bytes (the audit log keeps
// the line as an entry's reason, which the store bounds at 4096 bytes).
const MaxConsoleLine = 4096

// Bounds of what one console line prints: the formatted values and
// print's output together, and how deep and wide tables are shown.
const (
	maxConsoleOutput = 64 << 10
	maxShowDepth     = 4
	maxShowItems     = 100
)

// ErrConsoleLine is returned (wrapped) by Console.Eval for a line it does
// not run: too long or not UTF-8-clean text (a NUL).
var ErrConsoleLine = errors.New("console line refused")

// Console is one console session on an engine. It is not safe for
// concurrent use: one line at a time (cmd/moonchat serialises each
// session's requests).
type Console struct {
	e   *Engine
	st  *state      // the generation env belongs to
	env *lua.LTable // the console's globals (nil until the first line)
	out strings.Builder
}

// ConsoleResult is what one console line did.
type ConsoleResult struct {
	// Output is what the line's print calls wrote, each call a line.
	Output string `json:"output,omitempty"`
	// Values are the line's results, formatted for reading (strings as
	// they are at the top level, quoted inside tables; tables expanded
	// to a bounded depth and width), one string per value. Empty for a
	// statement or an expression with no values.
	Values []string `json:"values,omitempty"`
	// Error is the line's failure, "console:1: message" (a syntax error,
	// a runtime error, the time or memory limit), or "" when it ran.
	Error string `json:"error,omitempty"`
	// Reset says the scripts were loaded again since the console's last
	// line, so its globals start afresh.
	Reset bool `json:"reset,omitempty"`
	// Reloaded says the line was the reload command and the scripts were
	// loaded again (a failed reload is Error, the old scripts running).
	Reloaded bool `json:"reloaded,omitempty"`
}

// NewConsole opens a console on the engine. It holds nothing until its
// first line.
func (e *Engine) NewConsole() *Console { return &Console{e: e} }

// ConsoleHelp is the console's answer to "help".
const ConsoleHelp = `Lua lines run inside the server, in the scripts' sandbox, with the hooks' time limit.
  an expression prints its values:   #chat.rooms()   chat.users("lobby")
  a statement runs:                   x = chat.history("lobby", 5)
  reload                              load the scripts again (as SIGHUP does)
  help                                this text
Globals you set last until the scripts are reloaded. Every line is written to the audit log.`

// Eval runs one line. The console's own commands are "reload" (load the
// scripts again, Engine.Reload with cause "console") and "help"; anything
// else is Lua. A Lua failure is the result's Error; the error return is
// for a line that could not run at all: refused (ErrConsoleLine), the
// engine closed (ErrClosed) or busy past its lock wait, or ctx done.
func (c *Console) Eval(ctx context.Context, line string) (ConsoleResult, error) {
	if len(line) > MaxConsoleLine {
		return ConsoleResult{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrConsoleLine, len(line), MaxConsoleLine)
	}
	if strings.IndexByte(line, 0) >= 0 {
		return ConsoleResult{}, fmt.Errorf("%w: it contains a NUL byte", ErrConsoleLine)
	}
	switch strings.TrimSpace(line) {
	case "help":
		return ConsoleResult{Output: ConsoleHelp + "\n"}, nil
	case "reload":
		// Not under the semaphore: Reload takes it to swap the state.
		if err := c.e.Reload("console"); err != nil {
			if errors.Is(err, ErrClosed) {
				return ConsoleResult{}, err
			}
			return ConsoleResult{Error: err.Error() + " (the previous scripts keep running)"}, nil
		}
		return ConsoleResult{Reloaded: true}, nil
	}
	if err := c.e.acquire(ctx); err != nil {
		return ConsoleResult{}, err
	}
	defer c.e.release()
	st := c.e.cur.Load()
	if st == nil {
		return ConsoleResult{}, ErrClosed
	}
	var res ConsoleResult
	if c.st != st {
		res.Reset = c.st != nil
		c.attach(st)
	}
	fn, err := compileLine(st.L, line)
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	fn.Env = c.env
	c.out.Reset()
	L := st.L
	base := L.GetTop()
	L.Push(fn)
	err = st.pcall(st.sh.hookTimeout, 0, lua.MultRet)
	res.Output = c.out.String()
	c.out.Reset()
	if err != nil {
		pos, msg := errorPos(err)
		if pos == "" {
			pos = ConsoleScript
		}
		res.Error = pos + ": " + msg
		L.SetTop(base)
		return res, nil
	}
	budget := maxConsoleOutput - len(res.Output)
	for i := base + 1; i <= L.GetTop(); i++ {
		s := formatTop(L.Get(i), budget)
		budget -= len(s)
		res.Values = append(res.Values, s)
	}
	L.SetTop(base)
	return res, nil
}

// attach gives the console a fresh environment in st (held under the
// semaphore): the script template, a chat table acting as
// ConsoleScript with empty options, and a print that writes to the
// line's output. It is added to the environments the memory walk counts.
func (c *Console) attach(st *state) {
	L := st.L
	env := newEnv(L, st.tmpl)
	chatTbl := st.chatTable(ConsoleScript)
	chatTbl.RawSetString("options", st.ro.table(L, nil))
	env.RawSetString("chat", chatTbl)
	env.RawSetString("print", L.NewFunction(c.print))
	c.st, c.env = st, env
	st.envs = append(st.envs, env)
}

// print writes its arguments, tab-separated, as one line of the output
// (bounded: past maxConsoleOutput the rest is dropped, once marked).
func (c *Console) print(L *lua.LState) int {
	if c.out.Len() >= maxConsoleOutput {
		return 0
	}
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			c.out.WriteByte('\t')
		}
		c.out.WriteString(L.ToStringMeta(L.Get(i)).String())
		if c.out.Len() >= maxConsoleOutput {
			c.out.WriteString(" … (output cut)")
			break
		}
	}
	c.out.WriteByte('\n')
	return 0
}

// Close takes the console's environment out of the scripts' memory
// accounting. It waits for the Lua state as a hook does; when that
// fails the environment stays counted until the next reload drops the
// state it belongs to.
func (c *Console) Close() {
	if c.env == nil {
		return
	}
	if err := c.e.acquire(context.Background()); err != nil {
		return
	}
	defer c.e.release()
	if st := c.e.cur.Load(); st != nil && st == c.st {
		st.envs = slices.DeleteFunc(st.envs, func(t *lua.LTable) bool { return t == c.env })
	}
	c.st, c.env = nil, nil
}

// compileLine compiles a console line: as an expression ("return LINE",
// or a leading "=" as in Lua 5.1's interpreter) when it is one, else as a
// statement, whose syntax error is the one reported.
func compileLine(L *lua.LState, line string) (*lua.LFunction, error) {
	src := strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(src, "="); ok {
		src = "return " + rest
	} else if fn, err := compile(L, strings.NewReader("return "+src), ConsoleScript); err == nil {
		return fn, nil
	}
	fn, err := compile(L, strings.NewReader(src), ConsoleScript)
	if err != nil {
		se := syntaxError(ConsoleScript, err)
		var s *ScriptError
		if errors.As(se, &s) && s.Line == 0 {
			s.Line = 1
		}
		return nil, se
	}
	return fn, nil
}

// formatTop formats one result of a console line: a string as it is,
// anything else as show does.
func formatTop(v lua.LValue, budget int) string {
	if s, ok := v.(lua.LString); ok {
		if len(s) > budget {
			return string(s[:max(budget, 0)]) + " … (output cut)"
		}
		return string(s)
	}
	f := &shower{budget: budget}
	f.show(v, 0)
	return f.b.String()
}

// shower formats Lua values for the console without running any Lua
// (raw reads only: no metamethod runs outside the time limit), tables to
// maxShowDepth levels and maxShowItems entries each, cycles marked, the
// whole at most budget bytes.
type shower struct {
	b      strings.Builder
	budget int
	path   []*lua.LTable // tables being shown, for cycles
	cut    bool
}

func (f *shower) write(s string) {
	if f.cut {
		return
	}
	if f.b.Len()+len(s) > f.budget {
		f.cut = true
		f.b.WriteString(" … (output cut)")
		return
	}
	f.b.WriteString(s)
}

func (f *shower) show(v lua.LValue, depth int) {
	switch x := v.(type) {
	case lua.LString:
		f.write(strconv.Quote(string(x)))
	case *lua.LFunction:
		if x.Proto != nil {
			f.write(fmt.Sprintf("function<%s:%d>", x.Proto.SourceName, x.Proto.LineDefined))
		} else {
			f.write("function<builtin>")
		}
	case *lua.LTable:
		f.table(x, depth)
	default:
		f.write(v.String())
	}
}

func (f *shower) table(t *lua.LTable, depth int) {
	if slices.Contains(f.path, t) {
		f.write("<cycle>")
		return
	}
	if depth >= maxShowDepth {
		f.write("{…}")
		return
	}
	f.path = append(f.path, t)
	defer func() { f.path = f.path[:len(f.path)-1] }()
	// The sequence 1..n, shown first in order (not t.Len(): gopher-lua's
	// array part may hold nils, {1, [10] = 3}), then the other keys.
	n := 0
	for t.RawGetInt(n+1) != lua.LNil {
		n++
	}
	var keys []lua.LValue
	t.ForEach(func(k, _ lua.LValue) {
		if i, ok := k.(lua.LNumber); ok && float64(i) == float64(int(i)) && int(i) >= 1 && int(i) <= n {
			return
		}
		keys = append(keys, k)
	})
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	f.write("{")
	shown := 0
	sep := func() {
		if shown > 0 {
			f.write(", ")
		}
		shown++
	}
	total := n + len(keys)
	for i := 1; i <= n && shown < maxShowItems && !f.cut; i++ {
		sep()
		f.show(t.RawGetInt(i), depth+1)
	}
	for _, k := range keys {
		if shown >= maxShowItems || f.cut {
			break
		}
		sep()
		if s, ok := k.(lua.LString); ok && isIdent(string(s)) {
			f.write(string(s))
		} else {
			f.write("[")
			f.show(k, depth+1)
			f.write("]")
		}
		f.write(" = ")
		f.show(t.RawGet(k), depth+1)
	}
	if shown < total {
		f.write(fmt.Sprintf(", … %d more", total-shown))
	}
	f.write("}")
}

// keyLess orders table keys for display: strings, then numbers, then the
// rest by their text, so that the same table always prints the same.
func keyLess(a, b lua.LValue) bool {
	ra, rb := keyRank(a), keyRank(b)
	if ra != rb {
		return ra < rb
	}
	switch x := a.(type) {
	case lua.LString:
		return x < b.(lua.LString)
	case lua.LNumber:
		return x < b.(lua.LNumber)
	}
	return a.String() < b.String()
}

func keyRank(v lua.LValue) int {
	switch v.(type) {
	case lua.LString:
		return 0
	case lua.LNumber:
		return 1
	}
	return 2
}

// isIdent reports whether s can be written as a bare field name.
func isIdent(s string) bool {
	if s == "" || !(isLetter(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isLetter(c) || c == '_' || c >= '0' && c <= '9') {
			return false
		}
	}
	return !slices.Contains(luaKeywords, s)
}

var luaKeywords = []string{"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}
