package scripting

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"sort"

	"github.com/agnivade/levenshtein"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// Warning is something `moonchat check` found in a script that loads but
// is probably a mistake: a chat.on for an event that does not exist (in a
// branch the load did not run), a chat.* name that is not part of the API,
// a global assigned under a name one or two letters away from a chat or
// msg field. Warnings never stop a script from loading.
type Warning struct {
	Script string
	Line   int
	Msg    string
}

// String is "file:line: message".
func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.Script, w.Line, w.Msg) }

// Names the lint compares against.
var (
	// msgFields and userFields are the fields of a message handler's msg
	// and of a user table (docs/lua.md).
	msgFields  = []string{"user", "room", "text", "action", "to"}
	userFields = []string{"name", "room", "session", "addr", "id", "roles"}
	// chatFields are the chat table's names: its functions and tables.
	chatFields = append(slices.Clone(apiFuncs[:slices.Index(apiFuncs, "kv.get")]), "kv", "options")
	kvFields   = []string{"get", "set", "delete", "keys"}
)

// Lint checks every script of fsys (the ones the engine would load, shadow
// scripts included) without running it and returns its warnings in file
// and line order. A script that does not parse is left to Check, which
// reports it as an error.
func Lint(fsys fs.FS) ([]Warning, error) {
	names, err := scriptNames(fsys)
	if err != nil {
		return nil, err
	}
	var out []Warning
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read script %s: %w", name, err)
		}
		out = append(out, LintScript(name, src)...)
	}
	return out, nil
}

// LintScript returns the warnings of one script (none when it does not
// parse).
func LintScript(name string, src []byte) []Warning {
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil
	}
	l := &linter{script: name}
	l.block(chunk, &scope{})
	sort.SliceStable(l.out, func(i, j int) bool { return l.out[i].Line < l.out[j].Line })
	return l.out
}

// scope is the local names visible in a block.
type scope struct {
	up    *scope
	names []string
}

func (s *scope) has(n string) bool {
	for ; s != nil; s = s.up {
		if slices.Contains(s.names, n) {
			return true
		}
	}
	return false
}

type linter struct {
	script string
	out    []Warning
}

func (l *linter) warn(line int, format string, args ...any) {
	l.out = append(l.out, Warning{Script: l.script, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (l *linter) block(stmts []ast.Stmt, sc *scope) {
	for _, s := range stmts {
		l.stmt(s, sc)
	}
}

func (l *linter) stmt(s ast.Stmt, sc *scope) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		for _, e := range s.Rhs {
			l.expr(e, sc)
		}
		for _, e := range s.Lhs {
			l.target(e, sc, s.Line())
		}
	case *ast.LocalAssignStmt:
		// "local function f" sees itself; "local x = x" does not.
		if len(s.Names) == 1 && len(s.Exprs) == 1 {
			if _, ok := s.Exprs[0].(*ast.FunctionExpr); ok {
				sc.names = append(sc.names, s.Names[0])
			}
		}
		for _, e := range s.Exprs {
			l.expr(e, sc)
		}
		sc.names = append(sc.names, s.Names...)
	case *ast.FuncCallStmt:
		l.expr(s.Expr, sc)
	case *ast.DoBlockStmt:
		l.block(s.Stmts, &scope{up: sc})
	case *ast.WhileStmt:
		l.expr(s.Condition, sc)
		l.block(s.Stmts, &scope{up: sc})
	case *ast.RepeatStmt:
		inner := &scope{up: sc}
		l.block(s.Stmts, inner)
		l.expr(s.Condition, inner)
	case *ast.IfStmt:
		l.expr(s.Condition, sc)
		l.block(s.Then, &scope{up: sc})
		l.block(s.Else, &scope{up: sc})
	case *ast.NumberForStmt:
		l.expr(s.Init, sc)
		l.expr(s.Limit, sc)
		l.expr(s.Step, sc)
		l.block(s.Stmts, &scope{up: sc, names: []string{s.Name}})
	case *ast.GenericForStmt:
		for _, e := range s.Exprs {
			l.expr(e, sc)
		}
		l.block(s.Stmts, &scope{up: sc, names: slices.Clone(s.Names)})
	case *ast.FuncDefStmt:
		if s.Name.Func != nil {
			// function NAME() / function a.b() end: an assignment.
			l.target(s.Name.Func, sc, s.Line())
		} else {
			l.expr(s.Name.Receiver, sc)
		}
		l.expr(s.Func, sc)
	case *ast.ReturnStmt:
		for _, e := range s.Exprs {
			l.expr(e, sc)
		}
	}
}

// target checks the left side of an assignment.
func (l *linter) target(e ast.Expr, sc *scope, line int) {
	switch t := e.(type) {
	case *ast.IdentExpr:
		if sc.has(t.Value) {
			return
		}
		if near, ok := nearest(t.Value, lintGlobalNames); ok {
			l.warn(line, "assigns the global %s, which looks like a typo of %s (a global is shared by every call of the script: declare it local, or check the spelling)", t.Value, near)
		}
	case *ast.AttrGetExpr:
		l.expr(t.Object, sc)
		l.expr(t.Key, sc)
		if base, ok := t.Object.(*ast.IdentExpr); ok {
			if key, ok := t.Key.(*ast.StringExpr); ok {
				l.field(base.Value, key.Value, sc, line)
			}
		}
	default:
		l.expr(e, sc)
	}
}

// lintGlobalNames are the names a global assignment must not be a near
// miss of: the chat table, msg, user and their fields.
var lintGlobalNames = func() []string {
	names := []string{"chat", "msg", "user"}
	for _, n := range append(slices.Clone(msgFields), userFields...) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}()

// field checks base.key: chat.NAME (the global chat) against the API,
// msg.NAME and user.NAME against their fields (a near miss only: a
// script may add fields of its own).
func (l *linter) field(base, key string, sc *scope, line int) {
	var known []string
	what := base
	switch {
	case base == "chat" && !sc.has("chat"):
		known = chatFields
	case base == "msg":
		known = msgFields
	case base == "user":
		known = userFields
	default:
		return
	}
	if slices.Contains(known, key) {
		return
	}
	if near, ok := nearest(key, known); ok {
		l.warn(line, "%s.%s looks like a typo of %s.%s", what, key, what, near)
	} else if base == "chat" {
		l.warn(line, "chat.%s is not part of the chat API (docs/lua.md)", key)
	}
}

func (l *linter) expr(e ast.Expr, sc *scope) {
	switch e := e.(type) {
	case nil:
	case *ast.AttrGetExpr:
		l.expr(e.Object, sc)
		l.expr(e.Key, sc)
		key, ok := e.Key.(*ast.StringExpr)
		if !ok {
			return
		}
		switch obj := e.Object.(type) {
		case *ast.IdentExpr:
			l.field(obj.Value, key.Value, sc, e.Line())
		case *ast.AttrGetExpr:
			// chat.kv.NAME
			if base, ok := obj.Object.(*ast.IdentExpr); ok && base.Value == "chat" && !sc.has("chat") {
				if k, ok := obj.Key.(*ast.StringExpr); ok && k.Value == "kv" && !slices.Contains(kvFields, key.Value) {
					if near, ok := nearest(key.Value, kvFields); ok {
						l.warn(e.Line(), "chat.kv.%s looks like a typo of chat.kv.%s", key.Value, near)
					} else {
						l.warn(e.Line(), "chat.kv.%s is not part of the chat API (get, set, delete, keys)", key.Value)
					}
				}
			}
		}
	case *ast.TableExpr:
		for _, f := range e.Fields {
			l.expr(f.Key, sc)
			l.expr(f.Value, sc)
		}
	case *ast.FuncCallExpr:
		l.expr(e.Func, sc)
		l.expr(e.Receiver, sc)
		for _, a := range e.Args {
			l.expr(a, sc)
		}
		l.chatOn(e, sc)
	case *ast.LogicalOpExpr:
		l.expr(e.Lhs, sc)
		l.expr(e.Rhs, sc)
	case *ast.RelationalOpExpr:
		l.expr(e.Lhs, sc)
		l.expr(e.Rhs, sc)
	case *ast.StringConcatOpExpr:
		l.expr(e.Lhs, sc)
		l.expr(e.Rhs, sc)
	case *ast.ArithmeticOpExpr:
		l.expr(e.Lhs, sc)
		l.expr(e.Rhs, sc)
	case *ast.UnaryMinusOpExpr:
		l.expr(e.Expr, sc)
	case *ast.UnaryNotOpExpr:
		l.expr(e.Expr, sc)
	case *ast.UnaryLenOpExpr:
		l.expr(e.Expr, sc)
	case *ast.FunctionExpr:
		inner := &scope{up: sc}
		if e.ParList != nil {
			inner.names = slices.Clone(e.ParList.Names)
		}
		l.block(e.Stmts, inner)
	}
}

// chatOn checks chat.on("EVENT", …) with a literal event name. The load
// refuses an unknown event when it runs the call; this also finds the
// ones in a branch the load did not take.
func (l *linter) chatOn(e *ast.FuncCallExpr, sc *scope) {
	f, ok := e.Func.(*ast.AttrGetExpr)
	if !ok || len(e.Args) == 0 {
		return
	}
	base, ok1 := f.Object.(*ast.IdentExpr)
	key, ok2 := f.Key.(*ast.StringExpr)
	ev, ok3 := e.Args[0].(*ast.StringExpr)
	if !ok1 || !ok2 || !ok3 || base.Value != "chat" || sc.has("chat") || key.Value != "on" {
		return
	}
	if slices.Contains(eventNames[:], ev.Value) {
		return
	}
	if near, ok := nearest(ev.Value, eventNames[:]); ok {
		l.warn(e.Line(), "chat.on: unknown event %q (did you mean %q?)", ev.Value, near)
	} else {
		l.warn(e.Line(), "chat.on: unknown event %q (the events are join, message, leave, rename, connect and login)", ev.Value)
	}
}

// nearest returns the known name s is a near miss of: a Levenshtein
// distance of 1 or 2 (1 for names of three letters or fewer, where 2 is
// most of the word), an adjacent transposition counting as 1. A plural
// ("names" for "name") is not a miss. s itself being known is not one.
func nearest(s string, known []string) (string, bool) {
	best, bestD := "", 3
	for _, k := range known {
		if k == s {
			return "", false
		}
		if s == k+"s" || k == s+"s" || len(k) < 3 {
			continue
		}
		d := levenshtein.ComputeDistance(s, k)
		if transposed(s, k) {
			d = 1
		}
		limit := 2
		if len(k) <= 3 {
			limit = 1
		}
		if d <= limit && d < bestD {
			best, bestD = k, d
		}
	}
	return best, best != ""
}

// transposed reports whether a and b differ only by two adjacent letters
// swapped ("mgs" and "msg").
func transposed(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}
