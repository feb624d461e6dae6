package scripting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// event is one of the hook events a script can register for.
type event int

const (
	evJoin event = iota
	evMessage
	evLeave
	evRename
	evConnect // a WebSocket handshake, before the upgrade (connect.go)
	evLogin   // POST /api/login (connect.go)
	numEvents
)

var eventNames = [numEvents]string{"join", "message", "leave", "rename", "connect", "login"}

// Command describes one chat command a script registered with
// chat.command.
type Command struct {
	Name   string // without the slash, lower case
	Help   string
	Script string // file name of the script that registered it
}

// handler is one registered hook function.
type handler struct {
	fn     *lua.LFunction
	script string
	where  string // file:line of the function's definition, for logs
	prio   int
	obs    *handlerObs // series and failure run (metrics.go); nil in Check
}

type command struct {
	Command
	fn    *lua.LFunction
	where string
	obs   *handlerObs // as handler.obs
}

type timer struct {
	interval time.Duration
	fn       *lua.LFunction
	script   string
	where    string
	obs      *handlerObs // as handler.obs
}

// shared is what every state of an engine (and Check's throwaway state)
// reads: the host, the KV store, the logger and the limits. It never
// changes after construction except for the host, which Bind swaps
// atomically.
type shared struct {
	host        atomic.Pointer[hostBox]
	kv          KV
	log         *slog.Logger
	hookTimeout time.Duration
	loadTimeout time.Duration
	maxText     int
	maxMemory   int64   // bytes a call may allocate and the scripts may keep (limits.go)
	pw          *hasher // chat.password_hash and chat.password_check
	// metrics are the per-handler series (metrics.go); nil for Check.
	metrics *scriptMetrics
	// disableAfter is Options.DisableAfter: failures in a row that
	// disable a handler (0: never).
	disableAfter int
	// timerGated: Options.TimerGate is set, so timers have a series of
	// skipped ticks (metrics.go).
	timerGated bool
}

type hostBox struct{ h chat.Host }

func (sh *shared) hostOf() chat.Host { return sh.host.Load().h }

// state is one generation of loaded scripts: one Lua state, the handlers
// and commands its scripts registered, and their timers. Reload builds a
// new state aside and swaps it in; the handler lists never change after
// loading, so they may be read without the engine's semaphore.
//
// Invariant: the Lua state is used by one goroutine at a time — the one
// building it, then whoever holds the engine's semaphore.
type state struct {
	sh       *shared
	L        *lua.LState
	wd       *watchdog
	tmpl     *lua.LTable
	ro       *readOnly
	opts     ScriptOptions // what this generation's chat.options show
	loading  bool
	handlers [numEvents][]handler
	commands map[string]*command
	timers   []timer
	scripts  []string
	envs     []*lua.LTable // each script's globals, for the memory walk
	mem      memGuard      // what the scripts keep (limits.go)
	// rebuilding: the engine is loading the scripts again because this
	// state is over its memory limit (Engine.release).
	rebuilding bool
	// shadow is this generation's shadow scripts (shadow.go), loaded
	// beside it and replaced with it; nil without any.
	shadow *shadowGen
	// callStart is when the last pcall began (its time limit counts from
	// it; done measures a handler's time from it).
	callStart time.Time

	// The message hook's msg table and its user table (msg.user), reused
	// from message to message (see msgTable), and the boxed values of
	// their last fields: a message from the same sender in the same room
	// costs no allocation for them.
	msg      *lua.LTable
	msgUserT *lua.LTable
	msgName  lua.LString
	msgRoom  lua.LString
	msgText  lua.LString
	msgAddr  lua.LString
	msgSess  lua.LNumber
	msgNameV lua.LValue
	msgRoomV lua.LValue
	msgTextV lua.LValue
	msgAddrV lua.LValue
	msgSessV lua.LValue
	msgID    lua.LString
	msgIDV   lua.LValue // nil for a guest
	// msg.user.roles, reused while the sender's roles are the same, and
	// its last array index boxed once (sameRoles looks past it).
	msgRolesT    *lua.LTable
	msgRolesLast lua.LValue

	// Timer goroutine control; guarded by Engine.mu.
	timerStop chan struct{}
	timerDone chan struct{}
}

// ScriptError is a script that failed to compile or to run while loading,
// with the position of the failure when Lua reported one.
type ScriptError struct {
	Script string // file name
	Line   int    // 0 when unknown
	Msg    string
}

// Error implements error as "file:line: message".
func (e *ScriptError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Script, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Script, e.Msg)
}

// scriptNames lists the *.lua files at the top of fsys in name order.
// Hidden files (editor locks and backups such as .#x.lua) are skipped, and
// so are tests (*_test.lua): `moonchat script test` runs them, each in a
// fake server of its own (package scripttest); loaded into the server
// they would register their handlers among the real ones.
func scriptNames(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list scripts: %w", err)
	}
	var names []string
	for _, de := range entries {
		n := de.Name()
		if de.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".lua") || IsTestScript(n) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// IsTestScript reports whether a file name is a script test (NAME_test.lua),
// which the engine never loads.
func IsTestScript(name string) bool { return strings.HasSuffix(name, "_test.lua") }

// buildState loads every script of fsys into a fresh state. It keeps going
// after a failing script so that all errors are reported at once; any error
// discards the state. Each script's top level runs under the load time
// limit; ctx's cancellation stops the script running and the load (the
// error then wraps ctx's cause).
func buildState(ctx context.Context, sh *shared, fsys fs.FS, opts ScriptOptions) (*state, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scripts not loaded: %w", context.Cause(ctx))
	}
	names, err := scriptNames(fsys)
	if err != nil {
		return nil, err
	}
	L, tmpl, ro := newSandbox()
	st := &state{sh: sh, L: L, wd: newWatchdog(sh.maxMemory), tmpl: tmpl, ro: ro, opts: opts, loading: true, commands: map[string]*command{}, mem: newMemGuard(sh.maxMemory)}
	L.SetContext(st.wd)
	stop := context.AfterFunc(ctx, func() {
		st.wd.abort(fmt.Errorf("scripts load stopped: %w", context.Cause(ctx)))
	})
	defer stop()
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			st.loading = false
			st.close()
			return nil, fmt.Errorf("scripts not loaded: %w", context.Cause(ctx))
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("read script %s: %w", name, err))
			continue
		}
		if err := st.loadScript(name, src); err != nil {
			errs = append(errs, err)
		}
	}
	st.loading = false
	if ctx.Err() != nil {
		// A script stopped by the cancellation reports it as its error;
		// say it plainly, with a cause callers can test for.
		st.close()
		return nil, fmt.Errorf("scripts not loaded: %w", context.Cause(ctx))
	}
	if len(errs) > 0 {
		st.close()
		return nil, errors.Join(errs...)
	}
	for ev := range st.handlers {
		// Higher priority first; equal priorities keep load order.
		sort.SliceStable(st.handlers[ev], func(i, j int) bool {
			return st.handlers[ev][i].prio > st.handlers[ev][j].prio
		})
	}
	return st, nil
}

// loadScript compiles one script and runs its top level in its own
// environment (see newEnv) with the load time limit. Its chat.options is
// a read-only copy of its [scripts.NAME] table (empty without one).
func (st *state) loadScript(name string, src []byte) error {
	fn, err := compile(st.L, bytes.NewReader(src), name)
	if err != nil {
		return syntaxError(name, err)
	}
	env := newEnv(st.L, st.tmpl)
	chatTbl := st.chatTable(name)
	chatTbl.RawSetString("options", st.ro.table(st.L, st.opts[optionsKey(name)]))
	env.RawSetString("chat", chatTbl)
	env.RawSetString("print", chatTbl.RawGetString("log"))
	fn.Env = env
	st.scripts = append(st.scripts, name)
	st.envs = append(st.envs, env)
	st.L.Push(fn)
	if err := st.pcall(st.sh.loadTimeout, 0, 0); err != nil {
		pos, msg := errorPos(err)
		se := &ScriptError{Script: name, Msg: msg}
		if file, line, ok := splitPos(pos); ok && file == name {
			se.Line = line
		} else if pos != "" {
			se.Msg = pos + ": " + msg
		}
		return se
	}
	return nil
}

// syntaxError turns gopher-lua's compile error into a ScriptError.
func syntaxError(name string, err error) error {
	var pe *parse.Error
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Cause != nil && errors.As(ae.Cause, &pe) {
		msg := strings.TrimSpace(pe.Message)
		if pe.Token != "" {
			msg = fmt.Sprintf("%s near '%s'", msg, pe.Token)
		}
		line := pe.Pos.Line
		if line < 0 { // at EOF
			line = 0
			msg += " at end of file"
		}
		return &ScriptError{Script: name, Line: line, Msg: msg}
	}
	return &ScriptError{Script: name, Msg: strings.TrimSpace(err.Error())}
}

// maxErrorBytes bounds the message of a script's error as the engine
// reports it (hook errors, timer logs, load errors, console answers): a
// script can raise a string of megabytes (error(s) with a long s), which
// must not become a log line, or an error kept by the chat server, of
// that size.
const maxErrorBytes = 4 << 10

// errorPos splits a Lua error into its "file:line" prefix (possibly empty)
// and the message, cut to maxErrorBytes.
func errorPos(err error) (pos, msg string) {
	pos, msg = splitError(err)
	return pos, capError(msg)
}

// capError cuts msg to maxErrorBytes, saying so.
func capError(msg string) string {
	if len(msg) <= maxErrorBytes {
		return msg
	}
	return fmt.Sprintf("%s… (error message of %d bytes, cut to %d)", truncate(msg, maxErrorBytes), len(msg), maxErrorBytes)
}

// splitError is errorPos without the cut.
func splitError(err error) (pos, msg string) {
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		msg = ae.Object.String()
	} else {
		msg = err.Error()
	}
	// "file.lua:12: message"
	if i := strings.Index(msg, ": "); i > 0 {
		if _, _, ok := splitPos(msg[:i]); ok {
			return msg[:i], msg[i+2:]
		}
	}
	// An error value without a position (error({}), error("x", 0)): take
	// the innermost Lua frame of the traceback, "\tfile.lua:12: in ...".
	if ae != nil {
		for _, line := range strings.Split(ae.StackTrace, "\n") {
			line = strings.TrimSpace(line)
			if i := strings.Index(line, ": "); i > 0 && !strings.HasPrefix(line, "[G]") {
				if _, _, ok := splitPos(line[:i]); ok {
					return line[:i], msg
				}
			}
		}
	}
	return "", msg
}

// splitPos parses "file:line".
func splitPos(pos string) (file string, line int, ok bool) {
	i := strings.LastIndexByte(pos, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(pos[i+1:])
	if err != nil {
		return "", 0, false
	}
	return pos[:i], n, true
}

// where names a function's definition for logs: "file:line".
func where(fn *lua.LFunction, script string) string {
	if fn.Proto != nil {
		return fmt.Sprintf("%s:%d", fn.Proto.SourceName, fn.Proto.LineDefined)
	}
	return script
}

// pcall calls the function and nargs arguments on top of the stack with
// time limit d, leaving nret results. It never panics: gopher-lua's PCall
// recovers Lua errors and Go panics alike, and a panic outside it is
// recovered here too. On a state whose scripts hold more than their
// memory limit it fails at once (the function and arguments popped, as a
// failed PCall leaves the stack) until the engine replaces the state.
func (st *state) pcall(d time.Duration, nargs, nret int) (err error) {
	// One clock read serves the time limit and the handler's time
	// histogram (handlerObs, metrics.go).
	st.callStart = time.Now()
	if st.mem.over != nil {
		st.L.SetTop(max(st.L.GetTop()-nargs-1, 0))
		return st.mem.over
	}
	st.wd.begin(st.callStart, d)
	defer func() {
		long := st.wd.end()
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in script call: %v", r)
			st.L.SetTop(0)
		}
		st.afterCall(err, long)
	}()
	return st.L.PCall(nargs, nret, nil)
}

// fail logs a failed timer call with the position of the failure and of
// the function. (Hook and command failures are not logged here: they are
// returned to the chat server as a *chat.HookError, see hookError, and it
// logs each one once, with what it did about it.)
func (st *state) fail(kind string, script, fnWhere string, err error) {
	pos, msg := errorPos(err)
	if pos == "" {
		pos = fnWhere
	}
	text := "lua timer failed"
	if isTimeLimit(msg) {
		text = "lua timer stopped: time limit exceeded"
	} else if isMemoryLimit(msg) {
		text = "lua timer stopped: memory limit exceeded"
	}
	st.sh.log.Warn(text, "hook", kind, "script", script, "at", pos, "function", fnWhere, "error", msg)
}

// isTimeLimit reports whether a Lua error message is the time limit's.
func isTimeLimit(msg string) bool { return strings.Contains(msg, ErrTimeLimit.Error()) }

// hookError describes a failed hook or command call for the chat server:
// "file:line: message (join hook defined at file:line)", with the reason
// the time or memory limit when that is what stopped it.
func hookError(kind, fnWhere string, err error) error {
	pos, msg := errorPos(err)
	if pos == "" {
		pos = fnWhere
	}
	reason := chat.HookFailError
	if isTimeLimit(msg) {
		reason = chat.HookFailTimeout
	} else if isMemoryLimit(msg) {
		reason = chat.HookFailMemory
	}
	return &chat.HookError{Reason: reason, Err: fmt.Errorf("%s: %s (%s defined at %s)", pos, msg, kind, fnWhere)}
}

// badResult describes a hook that returned a value that cannot be used.
func badResult(kind, fnWhere, what string) error {
	return &chat.HookError{Reason: chat.HookFailError, Err: fmt.Errorf("%s: %s (%s defined there)", fnWhere, what, kind)}
}

// joinErrs adds err to the failures of one hook call (several handlers
// may fail; the first one's reason is the call's).
func joinErrs(prev, err error) error {
	if prev == nil {
		return err
	}
	var he *chat.HookError
	if errors.As(prev, &he) {
		return &chat.HookError{Reason: he.Reason, Err: errors.Join(he.Err, err)}
	}
	return errors.Join(prev, err)
}

// close releases the Lua state. The state must no longer be in use.
func (st *state) close() {
	if st.shadow != nil {
		st.shadow.st.close()
	}
	st.wd.stop()
	st.L.Close()
}

// commandList returns the registered commands sorted by name.
func (st *state) commandList() []Command {
	out := make([]Command, 0, len(st.commands))
	for _, c := range st.commands {
		out = append(out, c.Command)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
