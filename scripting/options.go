package scripting

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// ScriptOptions are the scripts' own settings: ScriptOptions["wordfilter"]
// is config.toml's [scripts.wordfilter] table, which wordfilter.lua reads
// as chat.options. Values are what a TOML decoder gives for a table
// (string, bool, int64, float64, time.Time, []any, map[string]any, …);
// dates and times become their TOML text.
type ScriptOptions map[string]map[string]any

// optionsKey is the ScriptOptions key of a script file: its name without
// ".lua" ("wordfilter.lua" ↔ [scripts.wordfilter]).
func optionsKey(script string) string { return strings.TrimSuffix(script, ".lua") }

// unusedOptions lists the option tables (sorted) that name no loaded
// script: a typo, or a script not written yet. Not an error — the script
// may be added later — but worth a warning.
func unusedOptions(opts ScriptOptions, scripts []string) []string {
	var unused []string
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		if !slices.Contains(scripts, k+".lua") {
			unused = append(unused, k)
		}
	}
	return unused
}

// warnUnusedOptions logs one warning per [scripts.NAME] table with no
// NAME.lua among scripts.
func warnUnusedOptions(log *slog.Logger, opts ScriptOptions, scripts []string) {
	for _, k := range unusedOptions(opts, scripts) {
		hint := ""
		if strings.HasSuffix(k, ".lua") {
			hint = fmt.Sprintf(" (the table of %s is [scripts.%s])", k, optionsKey(k))
		}
		log.Warn("config: [scripts."+k+"] names no loaded script; its options are unused"+hint, "script", k+".lua")
	}
}

// sameOptions reports whether a and b hold the same settings.
func sameOptions(a, b ScriptOptions) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// readOnly tracks the read-only tables of one Lua state (chat.options and
// the tables in it). A read-only table is an empty proxy whose metatable
// reads through to a backing table and refuses writes; the backing table
// holds plain values and further proxies, never a writable table, and no
// script can reach it: the proxy's metatable is protected (__metatable),
// and the sandbox's pairs, ipairs, next, rawget, rawlen, unpack and the
// reading table functions see through a proxy to its backing, while
// rawset and the writing table functions (insert, remove, sort) refuse it.
//
// Invariant: like the Lua state, it is used by one goroutine at a time;
// proxies are only added while the state loads.
type readOnly struct {
	backing map[*lua.LTable]*lua.LTable // proxy → backing table
	newidx  *lua.LFunction
	length  *lua.LFunction
}

func newReadOnly(L *lua.LState) *readOnly {
	ro := &readOnly{backing: map[*lua.LTable]*lua.LTable{}}
	ro.newidx = L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("chat.options is read-only (its values come from config.toml's [scripts.NAME] table)")
		return 0
	})
	ro.length = L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(ro.see(L.CheckTable(1)).Len()))
		return 1
	})
	return ro
}

// see returns the backing table of a proxy, or t itself.
func (ro *readOnly) see(t *lua.LTable) *lua.LTable {
	if t.Metatable == lua.LNil { // the common case: no map lookup
		return t
	}
	if b, ok := ro.backing[t]; ok {
		return b
	}
	return t
}

// isProxy reports whether v is a read-only table.
func (ro *readOnly) isProxy(v lua.LValue) bool {
	t, ok := v.(*lua.LTable)
	if !ok || t.Metatable == lua.LNil {
		return false
	}
	_, ok = ro.backing[t]
	return ok
}

// proxy makes a read-only view of backing.
func (ro *readOnly) proxy(L *lua.LState, backing *lua.LTable) *lua.LTable {
	p := L.NewTable()
	mt := L.CreateTable(0, 4)
	mt.RawSetString("__index", backing)
	mt.RawSetString("__newindex", ro.newidx)
	mt.RawSetString("__len", ro.length)
	mt.RawSetString("__metatable", lua.LFalse)
	p.Metatable = mt
	ro.backing[p] = backing
	return p
}

// value converts one decoded TOML value into a Lua value, tables into
// read-only tables.
func (ro *readOnly) value(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case map[string]any:
		return ro.table(L, x)
	case time.Time:
		return lua.LString(tomlTime(x))
	case fmt.Stringer:
		return lua.LString(x.String())
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array: // []any, []map[string]any
		b := L.CreateTable(rv.Len(), 0)
		for i := range rv.Len() {
			b.RawSetInt(i+1, ro.value(L, rv.Index(i).Interface()))
		}
		return ro.proxy(L, b)
	case reflect.Map:
		m := map[string]any{}
		for _, k := range rv.MapKeys() {
			m[fmt.Sprint(k.Interface())] = rv.MapIndex(k).Interface()
		}
		return ro.table(L, m)
	}
	return lua.LString(fmt.Sprint(v))
}

// tomlTime writes a TOML date or time as config.toml had it: a local
// date, time or date-time (BurntSushi/toml marks them with the locations
// date-local, time-local, datetime-local) without an offset, others in
// RFC 3339.
func tomlTime(t time.Time) string {
	switch t.Location().String() {
	case "date-local":
		return t.Format(time.DateOnly)
	case "time-local":
		return t.Format("15:04:05.999999999")
	case "datetime-local":
		return t.Format("2006-01-02T15:04:05.999999999")
	}
	return t.Format(time.RFC3339Nano)
}

// table converts a decoded TOML table into a read-only table.
func (ro *readOnly) table(L *lua.LState, m map[string]any) *lua.LTable {
	b := L.CreateTable(0, len(m))
	for k, v := range m {
		b.RawSetString(k, ro.value(L, v))
	}
	return ro.proxy(L, b)
}

// install replaces the functions of the script template tmpl (built by
// newSandbox) that would see a proxy as the empty table it is, or write
// into it, with versions that see through it or refuse it.
func (ro *readOnly) install(L *lua.LState, tmpl *lua.LTable) {
	// pairs and ipairs hand the loop the backing table itself: the loop's
	// state is not reachable from the loop's body, and what the iterator
	// returns are the backing's values (plain values and proxies).
	next := tmpl.RawGetString("next").(*lua.LFunction) // no upvalues
	ipairs := tmpl.RawGetString("ipairs").(*lua.LFunction)
	L.Push(ipairs)
	L.Push(L.NewTable())
	L.Call(1, 3)
	ipairsAux := L.Get(-3)
	L.Pop(3)
	tmpl.RawSetString("next", L.NewFunction(func(L *lua.LState) int {
		L.Replace(1, ro.see(L.CheckTable(1)))
		return next.GFunction(L)
	}))
	tmpl.RawSetString("pairs", L.NewFunction(func(L *lua.LState) int {
		t := ro.see(L.CheckTable(1))
		L.Push(next)
		L.Push(t)
		L.Push(lua.LNil)
		return 3
	}))
	tmpl.RawSetString("ipairs", L.NewFunction(func(L *lua.LState) int {
		t := ro.see(L.CheckTable(1))
		L.Push(ipairsAux)
		L.Push(t)
		L.Push(lua.LNumber(0))
		return 3
	}))
	for _, name := range []string{"rawget", "rawlen", "unpack"} {
		tmpl.RawSetString(name, ro.seeThrough(L, tmpl.RawGetString(name).(*lua.LFunction)))
	}
	tmpl.RawSetString("rawset", ro.refuse(L, "rawset", tmpl.RawGetString("rawset").(*lua.LFunction)))
	tbl := tmpl.RawGetString("table").(*lua.LTable)
	for _, name := range []string{"concat", "getn", "maxn"} {
		if fn, ok := tbl.RawGetString(name).(*lua.LFunction); ok {
			tbl.RawSetString(name, ro.seeThrough(L, fn))
		}
	}
	for _, name := range []string{"insert", "remove", "sort"} {
		if fn, ok := tbl.RawGetString(name).(*lua.LFunction); ok {
			tbl.RawSetString(name, ro.refuse(L, "table."+name, fn))
		}
	}
}

// seeThrough wraps a Go function whose first argument is a table so that
// it reads a proxy's backing table.
func (ro *readOnly) seeThrough(L *lua.LState, fn *lua.LFunction) *lua.LFunction {
	return L.NewFunction(func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok {
			L.Replace(1, ro.see(t))
		}
		return fn.GFunction(L)
	})
}

// refuse wraps a Go function that writes into its first argument so that
// it raises for a read-only table.
func (ro *readOnly) refuse(L *lua.LState, name string, fn *lua.LFunction) *lua.LFunction {
	return L.NewFunction(func(L *lua.LState) int {
		if ro.isProxy(L.Get(1)) {
			L.RaiseError("%s: chat.options is read-only (its values come from config.toml's [scripts.NAME] table)", name)
		}
		return fn.GFunction(L)
	})
}
