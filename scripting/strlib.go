package scripting

import (
	"sort"
	"strings"
	"unsafe"

	"github.com/moonchat/moonchat/scripting/internal/luapattern"
	lua "github.com/yuin/gopher-lua"
)

// This file replaces the library functions whose single call could run
// far past the time limit, which gopher-lua checks only between VM
// instructions (issue 10.13). gopher-lua's pattern functions cannot be
// interrupted (one backtracking match over a long subject ran for
// minutes), and its gsub copied the whole subject once per match, so
// s:gsub("a", ...) over 64 KB took seconds. Here:
//
//   - find, match, gmatch and gsub match with luapattern, which stops as
//     soon as the call's time limit fires; gmatch and gsub look at the time
//     limit between matches too and find one match at a time (gopher-lua
//     found every match of gmatch up front);
//   - gsub builds its result once, and it, string.rep, string.format and
//     table.concat refuse to build a string over maxStringBytes;
//   - string.format refuses widths and precisions over two digits, as Lua
//     5.1 does (Go's fmt would pad to any width);
//   - table.sort checks the time limit between comparisons (a table of a
//     million numbers took a second in one call).

// libError raises a Lua error naming the library function.
func libError(L *lua.LState, fn, format string, args ...any) {
	L.RaiseError(fn+": "+format, args...)
}

// checkDone raises the time limit's error when the call's time is up. It
// is what the VM does between instructions, for loops inside one call.
func checkDone(L *lua.LState) {
	ctx := L.Context()
	if ctx == nil {
		return
	}
	select {
	case <-ctx.Done():
		raiseInterrupted(L)
	default:
	}
}

// raiseInterrupted raises the error of the context that stopped a call.
func raiseInterrupted(L *lua.LState) {
	if ctx := L.Context(); ctx != nil && ctx.Err() != nil {
		L.RaiseError("%s", ctx.Err().Error())
	}
	L.RaiseError("%s", ErrTimeLimit.Error())
}

// done is the channel that closes when the current call's time is up.
func done(L *lua.LState) <-chan struct{} {
	if ctx := L.Context(); ctx != nil {
		return ctx.Done()
	}
	return nil
}

// compilePattern compiles a pattern argument or raises its error.
func compilePattern(L *lua.LState, fn, pat string) *luapattern.Pattern {
	p, err := luapattern.Compile(pat)
	if err != nil {
		libError(L, fn, "%s", err.Error())
	}
	return p
}

// findOne finds the first match of p in s at or after offset, raising the
// time limit's error when the match was stopped.
func findOne(L *lua.LState, fn string, p *luapattern.Pattern, s string, offset int) *luapattern.MatchData {
	md, err := p.Find(unsafeBytes(s), offset, done(L))
	if err == luapattern.ErrInterrupted {
		raiseInterrupted(L)
	}
	if err != nil {
		libError(L, fn, "%s", err.Error())
	}
	return md
}

// unsafeBytes is s as a byte slice without a copy (a copy per match made
// gmatch and gsub quadratic); the matcher only reads it.
func unsafeBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// startIndex turns a Lua init argument (1-based, negative from the end)
// into a byte offset, as gopher-lua's luaIndex2StringIndex for a start.
func startIndex(s string, i int) int {
	if i != 0 {
		i--
	}
	if i < 0 {
		i = len(s) + i + 1
	}
	return max(0, i)
}

// specials are the characters that make a pattern more than plain text.
const specials = "^$*+?.([%-"

// pushCaptures pushes the captures of md (or the whole match when the
// pattern has none, if whole is set) and returns how many.
func pushCaptures(L *lua.LState, s string, md *luapattern.MatchData, whole bool) int {
	if md.CaptureLength() == 2 {
		if !whole {
			return 0
		}
		L.Push(lua.LString(s[md.Capture(0):md.Capture(1)]))
		return 1
	}
	n := 0
	for i := 2; i < md.CaptureLength(); i += 2 {
		if md.IsPosCapture(i) {
			L.Push(lua.LNumber(md.Capture(i)))
		} else {
			L.Push(lua.LString(s[md.Capture(i):md.Capture(i+1)]))
		}
		n++
	}
	return n
}

// luaStrFind is string.find(s, pattern [, init [, plain]]).
func luaStrFind(L *lua.LState) int {
	s := L.CheckString(1)
	pat := L.CheckString(2)
	init := min(startIndex(s, L.OptInt(3, 1)), len(s)) // Lua 5.1 clamps init
	plain := L.GetTop() >= 4 && lua.LVAsBool(L.Get(4))
	if plain || !strings.ContainsAny(pat, specials) {
		i := strings.Index(s[init:], pat)
		if i < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + i + 1))
		L.Push(lua.LNumber(init + i + len(pat)))
		return 2
	}
	p := compilePattern(L, "string.find", pat)
	md := findOne(L, "string.find", p, s, init)
	if md == nil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LNumber(md.Capture(0) + 1))
	L.Push(lua.LNumber(md.Capture(1)))
	return 2 + pushCaptures(L, s, md, false)
}

// luaStrMatch is string.match(s, pattern [, init]).
func luaStrMatch(L *lua.LState) int {
	s := L.CheckString(1)
	pat := L.CheckString(2)
	init := min(startIndex(s, L.OptInt(3, 1)), len(s))
	p := compilePattern(L, "string.match", pat)
	md := findOne(L, "string.match", p, s, init)
	if md == nil {
		L.Push(lua.LNil)
		return 1
	}
	return pushCaptures(L, s, md, true)
}

// luaStrGmatch is string.gmatch(s, pattern): an iterator that finds the
// next match on each call, so each call is bounded by the time limit of
// the call it runs in.
func luaStrGmatch(L *lua.LState) int {
	s := L.CheckString(1)
	p := compilePattern(L, "string.gmatch", L.CheckString(2))
	pos := 0
	finished := false
	L.Push(L.NewFunction(func(L *lua.LState) int {
		if finished || pos > len(s) {
			return 0
		}
		md := findOne(L, "string.gmatch", p, s, pos)
		if md == nil {
			finished = true
			return 0
		}
		// As Lua: the next search starts where this match ended, or one
		// past its start for an empty match.
		pos = max(md.Capture(0)+1, md.Capture(1))
		if p.Anchored {
			finished = true
		}
		return pushCaptures(L, s, md, true)
	}))
	return 1
}

// luaStrGsub is string.gsub(s, pattern, repl [, n]): one pass over s,
// finding one match at a time, writing the result once.
func luaStrGsub(L *lua.LState) int {
	const fn = "string.gsub"
	s := L.CheckString(1)
	p := compilePattern(L, fn, L.CheckString(2))
	L.CheckTypes(3, lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	limit := L.OptInt(4, -1)

	var b strings.Builder
	last, pos, count := 0, 0, 0
	for pos <= len(s) && (limit < 0 || count < limit) {
		checkDone(L)
		md := findOne(L, fn, p, s, pos)
		if md == nil {
			break
		}
		start, end := md.Capture(0), md.Capture(1)
		count++
		b.WriteString(s[last:start])
		b.WriteString(gsubValue(L, s, md, repl))
		last = end
		if b.Len() > maxStringBytes {
			libError(L, fn, "result too long (more than %d bytes)", maxStringBytes)
		}
		pos = max(start+1, end)
		if p.Anchored {
			break
		}
	}
	if count == 0 {
		L.Push(lua.LString(s))
		L.Push(lua.LNumber(0))
		return 2
	}
	b.WriteString(s[last:])
	if b.Len() > maxStringBytes {
		libError(L, fn, "result too long (%d bytes, at most %d)", b.Len(), maxStringBytes)
	}
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(count))
	return 2
}

// gsubValue is what replaces one match: repl expanded (string), looked up
// (table) or called (function); false or nil keep the match.
func gsubValue(L *lua.LState, s string, md *luapattern.MatchData, repl lua.LValue) string {
	whole := s[md.Capture(0):md.Capture(1)]
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		return expandRepl(L, s, md, lua.LVAsString(r))
	case *lua.LTable:
		v = L.GetTable(r, firstCapture(s, md))
	case *lua.LFunction:
		L.Push(r)
		n := pushCaptures(L, s, md, true)
		L.Call(n, 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch x := v.(type) {
	case lua.LString, lua.LNumber:
		return lua.LVAsString(x)
	case lua.LBool:
		if !x {
			return whole
		}
	case *lua.LNilType:
		return whole
	}
	L.RaiseError("string.gsub: invalid replacement value (a %s)", v.Type().String())
	return ""
}

// firstCapture is the first capture of md, or the whole match.
func firstCapture(s string, md *luapattern.MatchData) lua.LValue {
	i := 0
	if md.CaptureLength() > 2 {
		i = 2
	}
	if md.IsPosCapture(i) {
		return lua.LNumber(md.Capture(i))
	}
	return lua.LString(s[md.Capture(i):md.Capture(i+1)])
}

// expandRepl expands a gsub replacement string: %0 to %9 are captures (%0
// and, without captures, %1 the whole match), %% is %; as in gopher-lua,
// any other %x stays as it is.
func expandRepl(L *lua.LState, s string, md *luapattern.MatchData, repl string) string {
	if !strings.Contains(repl, "%") {
		return repl
	}
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' || i+1 == len(repl) {
			b.WriteByte(c)
			continue
		}
		i++
		d := repl[i]
		switch {
		case d == '%':
			b.WriteByte('%')
		case d >= '0' && d <= '9':
			idx := 2 * int(d-'0')
			if idx == 2 && md.CaptureLength() == 2 {
				idx = 0 // %1 without captures is the whole match
			}
			if idx >= md.CaptureLength() {
				L.RaiseError("string.gsub: invalid capture index %%%c", d)
			}
			if md.IsPosCapture(idx) {
				b.WriteString(lua.LNumber(md.Capture(idx)).String())
			} else {
				b.WriteString(s[md.Capture(idx):md.Capture(idx+1)])
			}
		default:
			b.WriteByte('%')
			b.WriteByte(d)
		}
	}
	return b.String()
}

// luaStrFormat wraps gopher-lua's string.format: widths and precisions of
// more than two digits are refused (as in Lua 5.1), and so is a result
// over maxStringBytes.
func luaStrFormat(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		f := L.CheckString(1)
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				continue
			}
			i++
			if i < len(f) && f[i] == '%' {
				continue
			}
			for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
				i++
			}
			n := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				n++
			}
			if i < len(f) && f[i] == '.' {
				i++
				m := 0
				for i < len(f) && f[i] >= '0' && f[i] <= '9' {
					i++
					m++
				}
				n = max(n, m)
			}
			if n > 2 {
				libError(L, "string.format", "invalid format (width or precision too long, at most 99)")
			}
		}
		top := L.GetTop()
		L.Push(orig)
		for i := 1; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top, 1)
		if s, ok := L.Get(-1).(lua.LString); ok && len(s) > maxStringBytes {
			libError(L, "string.format", "result too long (%d bytes, at most %d)", len(s), maxStringBytes)
		}
		return 1
	}
}

// luaTableConcat is table.concat(t [, sep [, i [, j]]]), which refuses a
// result over maxStringBytes before building it.
func luaTableConcat(L *lua.LState) int {
	const fn = "table.concat"
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	if i > j {
		L.Push(lua.LString(""))
		return 1
	}
	if int64(j)-int64(i) >= maxStringBytes {
		libError(L, fn, "too many values (%d, at most %d)", int64(j)-int64(i)+1, maxStringBytes)
	}
	total := 0
	parts := make([]string, 0, j-i+1)
	for k := i; k <= j; k++ {
		if (k-i)%4096 == 4095 {
			checkDone(L)
		}
		v := t.RawGetInt(k)
		if !lua.LVCanConvToString(v) {
			L.RaiseError("invalid value (%s) at index %d in table for concat", v.Type().String(), k)
		}
		s := lua.LVAsString(v)
		total += len(s)
		if k < j {
			total += len(sep)
		}
		if total > maxStringBytes {
			libError(L, fn, "result too long (more than %d bytes)", maxStringBytes)
		}
		parts = append(parts, s)
	}
	L.Push(lua.LString(strings.Join(parts, sep)))
	return 1
}

// luaTableSort is table.sort, stopped by the time limit whatever it
// compares. gopher-lua's sorts the array part with Go's sort.Sort, where
// nothing sees the limit unless the comparator is a Lua function: without
// one (numbers, strings), or with a Go function as the comparator
// (table.sort(t, rawequal)), sorting the largest table the memory limit
// lets a script keep ran for about a second in one instruction. This one
// sorts a copy of the values 1..#t and checks the limit every 1024
// comparisons; a comparator is called as gopher-lua calls it (and a Lua
// comparator's instructions are checked by the VM too). On an error (the
// limit, "attempt to compare", the comparator's own) the table is left as
// it was; on success it holds the sorted values.
func luaTableSort(L *lua.LState) int {
	t := L.CheckTable(1)
	s := &checkedSort{L: L}
	if L.GetTop() != 1 {
		s.fn = L.CheckFunction(2)
	}
	n := t.Len()
	s.v = make([]lua.LValue, n)
	for i := range s.v {
		s.v[i] = t.RawGetInt(i + 1)
	}
	sort.Sort(s)
	for i, v := range s.v {
		t.RawSetInt(i+1, v)
	}
	return 0
}

// checkedSort is the sort.Interface of luaTableSort.
type checkedSort struct {
	L     *lua.LState
	fn    *lua.LFunction // nil: Lua's < (numbers, strings, __lt)
	v     []lua.LValue
	calls int
}

func (s *checkedSort) Len() int      { return len(s.v) }
func (s *checkedSort) Swap(i, j int) { s.v[i], s.v[j] = s.v[j], s.v[i] }

func (s *checkedSort) Less(i, j int) bool {
	s.calls++
	if s.calls%1024 == 0 {
		checkDone(s.L)
	}
	if s.fn == nil {
		return s.L.LessThan(s.v[i], s.v[j])
	}
	s.L.Push(s.fn)
	s.L.Push(s.v[i])
	s.L.Push(s.v[j])
	s.L.Call(2, 1)
	r := s.L.Get(-1)
	s.L.Pop(1)
	return lua.LVAsBool(r)
}
