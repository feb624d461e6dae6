package scripting

import (
	"io"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Limits of one Lua state. gopher-lua cannot bound the heap a script
// allocates, so these bound what it can: the call depth, the value stack,
// and the sizes of strings that leave Lua or that one library call builds.
const (
	callStackSize   = 200        // nested Lua calls; deeper is "stack overflow"
	registrySize    = 1024 * 4   // initial value stack (slots)
	registryMaxSize = 1024 * 256 // the stack may grow to this, then "registry overflow"
	maxUnpack       = 4096       // values one unpack() call may return
	maxStringBytes  = 1 << 20    // longest string string.rep, gsub, format or table.concat may build
	maxNoticeBytes  = 64 << 10   // longest chat.send / chat.broadcast / chat.log text
	maxNameBytes    = 256        // longest name a join hook or chat.rename may hand over
	maxKeyBytes     = 256        // longest chat.kv key
	maxValueBytes   = 64 << 10   // longest chat.kv value
	maxHistory      = 1000       // most messages chat.history returns
	minEvery        = 0.01       // shortest chat.every interval, in seconds
)

// baseNames are the base-library globals a script may use. Everything else
// gopher-lua's OpenBase defines is left out on purpose: dofile, loadfile,
// load, loadstring (outside or generated code), require and module (the
// package system), getfenv/setfenv (reach other environments),
// collectgarbage (runs a full Go GC), newproxy, _printregs, xpcall (an
// error handler that runs after the time limit fired), and print, unpack,
// setmetatable which are replaced by safer versions below.
var baseNames = []string{
	"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
	"rawequal", "rawget", "rawset", "select", "tonumber", "tostring", "type",
}

// osNames are the only os functions kept: clocks and dates. No execute,
// exit, getenv, setenv, remove, rename, tmpname, setlocale.
var osNames = []string{"clock", "date", "difftime", "time"}

// Names the sandbox removed that a script might still call: they are
// present as functions (or, for whole libraries, tables) that raise
// "os.getenv is not available in moonchat's Lua sandbox" instead of the
// baffling "attempt to call a non-function object" of calling nil.
var (
	removedGlobals = []string{"collectgarbage", "dofile", "getfenv", "load", "loadfile", "loadstring", "module", "newproxy", "require", "setfenv", "xpcall"}
	removedOS      = []string{"execute", "exit", "getenv", "remove", "rename", "setenv", "setlocale", "tmpname"}
	removedLibs    = []string{"coroutine", "debug", "io", "package"}
)

// unavailable returns a function that raises an error naming name as
// removed from the sandbox.
func unavailable(L *lua.LState, name string) *lua.LFunction {
	return L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s is not available in moonchat's Lua sandbox", name)
		return 0
	})
}

// unavailableLib returns the metatable of a removed library's stand-in:
// reading any field (io.open) raises an error naming it, assigning one
// raises too; the metatable itself is protected.
func unavailableLib(L *lua.LState, lib string) *lua.LTable {
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s.%s is not available in moonchat's Lua sandbox (there is no %s library)", lib, L.CheckAny(2).String(), lib)
		return 0
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s is not available in moonchat's Lua sandbox", lib)
		return 0
	}))
	mt.RawSetString("__metatable", lua.LFalse)
	return mt
}

// newSandbox makes a Lua state with no libraries, opens the safe ones to
// copy from, and returns it with the template of a script environment and
// the state's read-only tables.
// The state's own global table is emptied afterwards: script code only
// ever runs with its own environment (see state.loadScript), so nothing
// the libraries registered there is reachable.
func newSandbox() (*lua.LState, *lua.LTable, *readOnly) {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       callStackSize,
		RegistrySize:        registrySize,
		RegistryMaxSize:     registryMaxSize,
		MinimizeStackMemory: false, // a fixed call stack reports "stack overflow" with a position
	})
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenTable, lua.OpenString, lua.OpenMath, lua.OpenOs} {
		L.Push(L.NewFunction(open))
		L.Call(0, 0)
	}
	g := L.G.Global
	tmpl := L.NewTable()
	for _, name := range baseNames {
		tmpl.RawSetString(name, g.RawGetString(name))
	}
	tmpl.RawSetString("_VERSION", g.RawGetString("_VERSION"))
	for _, name := range removedGlobals {
		tmpl.RawSetString(name, unavailable(L, name))
	}
	for _, lib := range removedLibs {
		stub := L.NewTable()
		stub.Metatable = unavailableLib(L, lib)
		tmpl.RawSetString(lib, stub)
	}
	tmpl.RawSetString("unpack", L.NewFunction(luaUnpack))
	tmpl.RawSetString("rawlen", L.NewFunction(luaRawlen))
	tmpl.RawSetString("setmetatable", L.NewFunction(luaSetmetatable))

	str := copyTable(L, g.RawGetString("string").(*lua.LTable), nil)
	str.RawSetString("dump", unavailable(L, "string.dump")) // not implemented by gopher-lua anyway
	str.RawSetString("rep", L.NewFunction(luaStrRep))
	// Bounded versions of the calls that could run past the time limit
	// (strlib.go).
	str.RawSetString("find", L.NewFunction(luaStrFind))
	str.RawSetString("match", L.NewFunction(luaStrMatch))
	str.RawSetString("gmatch", L.NewFunction(luaStrGmatch))
	str.RawSetString("gsub", L.NewFunction(luaStrGsub))
	str.RawSetString("format", L.NewFunction(luaStrFormat(str.RawGetString("format").(*lua.LFunction))))
	tmpl.RawSetString("string", str)
	tbl := copyTable(L, g.RawGetString("table").(*lua.LTable), nil)
	tbl.RawSetString("concat", L.NewFunction(luaTableConcat))
	tbl.RawSetString("sort", L.NewFunction(luaTableSort))
	tmpl.RawSetString("table", tbl)
	tmpl.RawSetString("math", g.RawGetString("math"))
	os := copyTable(L, g.RawGetString("os").(*lua.LTable), osNames)
	for _, name := range removedOS {
		os.RawSetString(name, unavailable(L, "os."+name))
	}
	tmpl.RawSetString("os", os)

	// Strings get their own metatable, protected by __metatable, whose
	// __index is a copy of the string library that no script can reach:
	// getmetatable("") returns false, and setmetatable refuses strings, so
	// one script cannot change what ("x"):upper() means for the others.
	mt := L.NewTable()
	mt.RawSetString("__index", copyTable(L, str, nil))
	mt.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(lua.LString(""), mt)

	// chat.options and its tables are read-only; see readOnly.
	ro := newReadOnly(L)
	ro.install(L, tmpl)

	// Empty the state's globals; see the doc comment.
	var keys []lua.LValue
	g.ForEach(func(k, _ lua.LValue) { keys = append(keys, k) })
	for _, k := range keys {
		g.RawSet(k, lua.LNil)
	}
	return L, tmpl, ro
}

// newEnv returns a fresh global environment for one script: the template's
// functions with their own copies of the library tables (string, table,
// math, os), so that a script assigning globals or patching a library
// never affects another script.
func newEnv(L *lua.LState, tmpl *lua.LTable) *lua.LTable {
	env := L.CreateTable(0, 32)
	tmpl.ForEach(func(k, v lua.LValue) {
		if t, ok := v.(*lua.LTable); ok {
			mt := t.Metatable
			v = copyTable(L, t, nil)
			v.(*lua.LTable).Metatable = mt // a removed library's stand-in
		}
		env.RawSet(k, v)
	})
	env.RawSetString("_G", env)
	return env
}

// copyTable makes a shallow copy of t (only the keys in names when given).
func copyTable(L *lua.LState, t *lua.LTable, names []string) *lua.LTable {
	c := L.NewTable()
	if names != nil {
		for _, n := range names {
			c.RawSetString(n, t.RawGetString(n))
		}
		return c
	}
	t.ForEach(func(k, v lua.LValue) { c.RawSet(k, v) })
	return c
}

// Compile compiles a chunk of Lua as moonchat runs it: gopher-lua's
// Load, then every tail call made an ordinary call, so that a tail-call
// loop overflows the call stack at once (see noTailCalls). The engine
// compiles every script and console line with it; package scripttest
// compiles the scripts' test files with it, which run in a Lua state of
// their own.
func Compile(L *lua.LState, src io.Reader, name string) (*lua.LFunction, error) {
	return compile(L, src, name)
}

// compile is Compile.
func compile(L *lua.LState, src io.Reader, name string) (*lua.LFunction, error) {
	fn, err := L.Load(src, name)
	if err != nil {
		return nil, err
	}
	noTailCalls(fn.Proto)
	return fn, nil
}

// noTailCalls turns the tail calls of p and of the functions nested in it
// into ordinary calls, so that `return f(x)` takes a level of the call
// stack like any call (callStackSize: "stack overflow" at 200).
//
// Why: gopher-lua runs a tail call in the caller's frame and counts it
// there (callFrame.TailCall, one more per call), and the traceback it
// builds for every error a pcall catches — our call's, or a script's
// pcall — has one line per counted tail call. A tail-call loop
// (`local function f(n) return f(n + 1) end`) runs millions of tail calls
// before its time limit stops it; the traceback of that stop was then
// built after the limit, outside any check: 115 to 180 MB allocated and up
// to 5 times the time limit with hook_timeout 100ms, ten times that at 1s
// (TestTailCallLoopBounded). As ordinary calls, such a loop overflows the
// call stack at once and every traceback has at most 200 frames (of which
// gopher-lua prints 14).
//
// The compiler emits `return f(x)` as CALL A B 0 (all results), then
// changes its opcode to TAILCALL, followed by RETURN A 0 (return up to
// the top): putting CALL back gives exactly the code of a call whose
// results are returned. The opcode is the instruction's top 6 bits
// (gopher-lua's opGetOpCode, opSetOpCode).
func noTailCalls(p *lua.FunctionProto) {
	for i, inst := range p.Code {
		if int(inst>>26) == lua.OP_TAILCALL {
			p.Code[i] = inst&0x3ffffff | uint32(lua.OP_CALL)<<26
		}
	}
	for _, nested := range p.FunctionPrototypes {
		noTailCalls(nested)
	}
}

// luaUnpack is unpack with a bound on the number of values, which
// gopher-lua would otherwise push one by one until memory runs out.
func luaUnpack(L *lua.LState) int {
	tb := L.CheckTable(1)
	start := L.OptInt(2, 1)
	end := L.OptInt(3, tb.Len())
	if end < start {
		return 0
	}
	if n := int64(end) - int64(start) + 1; n > maxUnpack {
		L.RaiseError("unpack: too many results (%d, at most %d)", n, maxUnpack)
	}
	for i := start; i <= end; i++ {
		L.Push(tb.RawGetInt(i))
	}
	return end - start + 1
}

// luaRawlen is Lua 5.2's rawlen, which gopher-lua (Lua 5.1) lacks.
func luaRawlen(L *lua.LState) int {
	switch v := L.Get(1).(type) {
	case *lua.LTable:
		L.Push(lua.LNumber(v.Len()))
	case lua.LString:
		L.Push(lua.LNumber(len(v)))
	default:
		L.ArgError(1, "table or string expected")
	}
	return 1
}

// luaSetmetatable accepts tables only, as in Lua 5.1. gopher-lua's version
// would also set the metatable shared by every string, number or boolean.
func luaSetmetatable(L *lua.LState) int {
	t := L.CheckTable(1)
	mt := L.Get(2)
	if mt != lua.LNil {
		if _, ok := mt.(*lua.LTable); !ok {
			L.ArgError(2, "nil or table expected")
		}
	}
	if cur, ok := t.Metatable.(*lua.LTable); ok && cur.RawGetString("__metatable") != lua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	t.Metatable = mt
	L.SetTop(1)
	return 1
}

// luaStrRep is string.rep with a bound on the result's size: a single call
// must not be able to allocate gigabytes before the time limit can act.
func luaStrRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if int64(len(s))*int64(n) > maxStringBytes {
		L.RaiseError("string.rep: result too long (%d bytes, at most %d)", int64(len(s))*int64(n), maxStringBytes)
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}
