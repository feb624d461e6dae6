package scripting

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Defaults for Options fields left zero.
const (
	DefaultHookTimeout  = 100 * time.Millisecond
	DefaultPollInterval = 250 * time.Millisecond
)

// ErrClosed is returned by Reload after Close.
var ErrClosed = errors.New("scripting engine closed")

// ErrNoScripts is returned by New when Options has neither FS nor Dir.
var ErrNoScripts = errors.New("scripting: no scripts (Options.FS and Options.Dir are both empty)")

// Options configures an Engine.
type Options struct {
	// FS holds the scripts (*.lua at its top level). When nil, Dir is used
	// through os.DirFS. cmd/moonchat passes the embedded default scripts
	// here when the configured directory does not exist.
	FS fs.FS
	// Dir is the scripts directory on disk, watched for changes (names,
	// sizes, modification times) every PollInterval. "" = no watching.
	Dir string
	// HookTimeout bounds each hook, command and timer call (0 → 100ms).
	// Loading a script's top level gets max(1s, 10×HookTimeout).
	HookTimeout time.Duration
	// KV stores chat.kv. nil → an in-memory store (lost on exit).
	KV KV
	// Logger receives script logs (chat.log, print) and failures
	// (nil → slog.Default()).
	Logger *slog.Logger
	// PollInterval is how often Dir is checked for changes (0 → 250ms).
	PollInterval time.Duration
	// MaxTextBytes bounds a text a message hook puts in place of the
	// original (0 → 64 KiB); cmd/moonchat passes [chat] max_text_bytes.
	MaxTextBytes int
	// LockWait bounds how long a hook waits for the Lua state while other
	// hook calls hold it (0 → max(1s, 10×HookTimeout)). A hook that waits
	// longer fails (a *chat.HookError with reason busy) so that rooms never
	// stall behind scripts; the chat server decides what a failure means.
	LockWait time.Duration
	// Clock drives the chat.every timers and the directory watcher
	// (nil → the real clock).
	Clock Clock
	// MaxMemory bounds, in bytes, both what one script call may allocate
	// and what the scripts may keep between calls (0 → DefaultMaxMemory,
	// 64 MiB; less than MinMaxMemory → MinMaxMemory). A call over it fails
	// like one over its time limit (a *chat.HookError with reason memory);
	// scripts keeping more are loaded again into a fresh Lua state. The
	// bound is coarse: see limits.go and docs/lua.md, Limits.
	// cmd/moonchat passes [scripting] max_memory_bytes.
	MaxMemory int64
	// ScriptOptions are the scripts' own settings, config.toml's
	// [scripts.NAME] tables: NAME.lua reads its table as chat.options.
	// SetScriptOptions changes them for the next reload. The engine does
	// not modify them; the caller must not either.
	ScriptOptions ScriptOptions
	// Shadow names scripts of the scripts directory (file names, such as
	// "newfilter.lua") loaded as shadow scripts instead of among the live
	// ones: their decisions are logged and counted, never applied, and
	// their side effects are recorded, not done (shadow.go). A name with
	// no such file, or a shadow script that does not load, is logged and
	// the live scripts run without shadows. cmd/moonchat passes
	// [scripting] shadow; SetShadow changes it for the next reload.
	Shadow []string
	// DisableAfter is how many calls in a row a handler (chat.on, a
	// command, a timer) may fail or time out before it is disabled until
	// the next reload (0 → DefaultDisableAfter; negative: never).
	// Connect and login handlers are never disabled. cmd/moonchat passes
	// [scripting] disable_after (its 0, never, as -1).
	DisableAfter int
	// TimerGate decides whether this process runs the chat.every
	// functions: when set, a timer whose tick is due runs only if
	// TimerGate returns true; nil runs every tick (a single node). In a
	// cluster cmd/moonchat passes "this node holds the cluster's timer
	// lease" (package cluster), so that the scripts' timers run on one
	// node at a time while each node runs the hooks of its own members.
	//
	// A tick the gate refuses is skipped, as a tick missed while behind
	// is: not run later, not an error, not a call (the handler's failure
	// run is untouched); it is counted in
	// moonchat_script_timer_skipped_total{script,event="timer"} (a series
	// that exists only with a gate). The
	// schedule goes on meanwhile, so a node that starts holding the lease
	// runs each timer at its next tick. TimerGate is called on the
	// engine's timer goroutine before the tick takes the Lua state, once
	// per due timer: it must answer at once (a lease holder's last known
	// state, not a round trip to NATS). A TimerGate that panics counts as
	// false (logged): a node unsure whether it holds the lease does not
	// run the timers.
	TimerGate func() bool
}

// Engine runs the Lua scripts and implements chat.Hooks. All Lua code —
// hooks, commands, timers — runs in one Lua state, one call at a time.
//
// Concurrency: sem (a one-slot channel) serialises every use of the current
// Lua state; cur is swapped only while holding sem, so a hook never sees a
// state change under it. mu guards the start/close lifecycle and the
// timers of the current state. reloadMu serialises Reload and Close.
type Engine struct {
	sh       *shared
	fsys     fs.FS
	dir      string
	poll     time.Duration
	lockWait time.Duration
	clock    Clock
	gate     func() bool // Options.TimerGate; nil: timers always run

	sem chan struct{}
	cur atomic.Pointer[state]

	reloadMu sync.Mutex
	opts     ScriptOptions // guarded by reloadMu: what the next load uses
	shadow   []string      // guarded by reloadMu: the next load's shadow scripts

	mu      sync.Mutex
	started bool
	closed  bool
	runCtx  context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the watcher goroutine and rebuilds

	rebuildMu  sync.Mutex
	noRebuild  bool        // Close was called: no more rebuilds (guarded by rebuildMu)
	reclaiming atomic.Bool // a reclaim runs

	// snap is the scripts directory as it was just before New loaded it,
	// so that a change between New and Start is not missed.
	snap map[string]fileStamp
}

var _ chat.Hooks = (*Engine)(nil)

// New loads every script and returns the engine. A script that fails to
// compile or to run is an error naming its file and line (a *ScriptError,
// joined with the others). Each script's top level runs under the load
// time limit (max(1s, 10×HookTimeout)); cancelling ctx stops the load
// (the error then wraps ctx's cause). ctx only bounds loading. Hooks work
// at once (with a no-op host until Bind); Start begins watching and
// timers.
func New(ctx context.Context, opts Options) (*Engine, error) {
	fsys := opts.FS
	if fsys == nil {
		if opts.Dir == "" {
			return nil, ErrNoScripts
		}
		fsys = os.DirFS(opts.Dir)
	}
	sh := newShared(opts.Logger, opts.KV, opts.HookTimeout, opts.MaxTextBytes, opts.MaxMemory)
	sh.metrics = newScriptMetrics()
	sh.timerGated = opts.TimerGate != nil
	switch {
	case opts.DisableAfter == 0:
		sh.disableAfter = DefaultDisableAfter
	case opts.DisableAfter > 0:
		sh.disableAfter = opts.DisableAfter
	}
	e := &Engine{
		sh:       sh,
		fsys:     fsys,
		dir:      opts.Dir,
		poll:     opts.PollInterval,
		lockWait: opts.LockWait,
		clock:    opts.Clock,
		gate:     opts.TimerGate,
		opts:     opts.ScriptOptions,
		shadow:   slices.Clone(opts.Shadow),
		sem:      make(chan struct{}, 1),
	}
	if e.clock == nil {
		e.clock = realClock{}
	}
	if e.poll <= 0 {
		e.poll = DefaultPollInterval
	}
	if e.lockWait <= 0 {
		e.lockWait = max(time.Second, 10*sh.hookTimeout)
	}
	if e.dir != "" {
		e.snap = snapshotOf(fsys)
	}
	st, err := e.load(ctx, "start")
	if err != nil {
		sh.pw.wait() // a hash abandoned at the load time limit
		return nil, fmt.Errorf("load scripts: %w", err)
	}
	e.cur.Store(st)
	st.logLoaded("start")
	return e, nil
}

func newShared(log *slog.Logger, kv KV, hookTimeout time.Duration, maxText int, maxMemory int64) *shared {
	if log == nil {
		log = slog.Default()
	}
	if kv == nil {
		kv = NewMemKV()
	}
	if hookTimeout <= 0 {
		hookTimeout = DefaultHookTimeout
	}
	if maxText <= 0 {
		maxText = maxNoticeBytes
	}
	if maxMemory == 0 {
		maxMemory = DefaultMaxMemory
	}
	maxMemory = max(maxMemory, MinMaxMemory)
	sh := &shared{kv: kv, log: log, hookTimeout: hookTimeout, loadTimeout: max(time.Second, 10*hookTimeout), maxText: maxText, maxMemory: maxMemory, pw: newHasher()}
	sh.host.Store(&hostBox{noopHost{}})
	return sh
}

// Bind connects the engine to the chat server, which is created after the
// engine because it needs the engine as its Hooks. Calls before Bind see a
// host that does nothing.
func (e *Engine) Bind(h chat.Host) {
	if h == nil {
		h = noopHost{}
	}
	e.sh.host.Store(&hostBox{h})
}

// Start starts the directory watcher (when Options.Dir is set) and the
// scripts' chat.every timers. They stop when ctx is done or on Close.
func (e *Engine) Start(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return
	}
	e.started = true
	e.runCtx, e.cancel = context.WithCancel(ctx)
	if e.dir != "" {
		snap, ctx := e.snap, e.runCtx
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.watch(ctx, snap)
		}()
	}
	if st := e.cur.Load(); st != nil {
		e.startTimers(st)
	}
}

// Reload loads every script again into a fresh Lua state and, only if all
// of them compile and run, swaps it in between two hook calls; the old
// state's timers stop. On failure the running scripts stay and the error
// (file:line) is logged and returned. cause says what asked for the reload
// ("SIGHUP", "file change"); it is logged with the one line that reports
// the outcome, so callers log nothing more.
func (e *Engine) Reload(cause string) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.cur.Load() == nil {
		return ErrClosed
	}
	// Close (or the end of Start's context) stops a reload in progress.
	e.mu.Lock()
	ctx := e.runCtx
	e.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := e.load(ctx, cause)
	if err != nil {
		e.sh.log.Error("lua scripts not reloaded; the previous scripts keep running", "cause", cause, "error", err)
		return fmt.Errorf("reload scripts: %w", err)
	}
	e.sem <- struct{}{}
	old := e.cur.Swap(st)
	<-e.sem

	e.mu.Lock()
	if e.started && !e.closed {
		e.startTimers(st)
	}
	e.stopTimers(old)
	e.mu.Unlock()
	// Nobody can reach old any more: hooks load cur after taking sem, and
	// its timer goroutine has exited.
	e.sh.metrics.retire(old, st)
	old.close()
	st.logLoaded(cause)
	return nil
}

// load builds a new generation: the live scripts (every script but the
// shadow ones), their series, and the shadow scripts beside them. A
// shadow script that fails to load does not fail the load: it is logged
// and the live scripts run without shadows (an operator's experiment
// never takes the chat down). Caller holds reloadMu, or is New.
func (e *Engine) load(ctx context.Context, cause string) (*state, error) {
	st, err := buildState(ctx, e.sh, liveFS(e.fsys, e.shadow), e.opts)
	if err != nil {
		return nil, err
	}
	st.observe(false)
	g, err := buildShadow(ctx, e.sh, e.fsys, e.opts, e.shadow)
	if ctx.Err() != nil {
		st.close()
		return nil, fmt.Errorf("scripts not loaded: %w", context.Cause(ctx))
	}
	if err != nil {
		e.sh.log.Error("lua shadow scripts not loaded; the live scripts run without them", "cause", cause, "shadow", strings.Join(e.shadow, ","), "error", err)
	} else if g != nil {
		st.shadow = g
		e.sh.log.Info("lua shadow scripts loaded (decisions logged and counted, never applied)", "cause", cause, "scripts", strings.Join(g.st.scripts, ","))
	}
	return st, nil
}

// SetShadow replaces the names of the shadow scripts ([scripting]
// shadow) and reports whether they changed. Like SetScriptOptions, they
// take effect with the next reload.
func (e *Engine) SetShadow(names []string) (changed bool) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if slices.Equal(e.shadow, names) {
		return false
	}
	e.shadow = slices.Clone(names)
	return true
}

// logLoaded is the one log line of a successful load: at start and at
// every reload, the same message and format.
func (st *state) logLoaded(cause string) {
	st.sh.log.Info("lua scripts loaded", "cause", cause, "scripts", strings.Join(st.scripts, ","))
	warnUnusedOptions(st.sh.log, st.opts, st.scripts)
}

// SetScriptOptions replaces the scripts' settings (config.toml's
// [scripts.NAME] tables) and reports whether they changed. They take
// effect with the next reload — a change is a reason to reload, as
// cmd/moonchat does on SIGHUP — and only if that reload succeeds: until
// then the running scripts keep the chat.options they loaded with.
func (e *Engine) SetScriptOptions(opts ScriptOptions) (changed bool) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if sameOptions(e.opts, opts) {
		return false
	}
	e.opts = opts
	return true
}

// Close stops the watcher and the timers and releases the Lua state; hooks
// called afterwards do nothing. It waits for the goroutines it stops.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	if e.cancel != nil {
		e.cancel()
	}
	e.mu.Unlock()
	e.rebuildMu.Lock()
	e.noRebuild = true
	e.rebuildMu.Unlock()
	e.wg.Wait() // the watcher or a rebuild may be in Reload; let it finish

	e.reloadMu.Lock()
	e.sem <- struct{}{}
	st := e.cur.Swap(nil)
	<-e.sem
	e.reloadMu.Unlock()

	if st != nil {
		e.mu.Lock()
		e.stopTimers(st)
		e.mu.Unlock()
		st.close()
	}
	e.sh.pw.wait() // a hash abandoned at its time limit
	return nil
}

// Commands lists the chat commands the current scripts registered, sorted
// by name.
func (e *Engine) Commands() []Command {
	st := e.cur.Load()
	if st == nil {
		return nil
	}
	return st.commandList()
}

// Check compiles and runs every script of fsys in a throwaway sandbox with
// a host that does nothing, for `moonchat check`, each with its chat.options
// from opts. It reports all failures (each a *ScriptError with file:line),
// not just the first; an options table for no script is a warning on
// logger, not an error (the script may be added later). Each script's
// top level runs under the load time limit of the default hook timeout
// (1s); cancelling ctx (SIGINT, SIGTERM) stops it at once, and the error
// then wraps ctx's cause. CheckScripts does the same with shadow scripts
// and lint warnings.
func Check(ctx context.Context, fsys fs.FS, logger *slog.Logger, opts ScriptOptions) error {
	_, err := CheckScripts(ctx, fsys, logger, opts, nil)
	return err
}

// CheckScripts is Check with the shadow scripts of [scripting] shadow:
// they load apart from the others, as the engine loads them, and a
// shadow name with no such file or a shadow script that fails is an error
// here (the server only logs it and runs without shadows). On success it
// returns the lint warnings of every script (Lint), which do not fail
// the check.
func CheckScripts(ctx context.Context, fsys fs.FS, logger *slog.Logger, opts ScriptOptions, shadow []string) ([]Warning, error) {
	sh := newShared(logger, nil, 0, 0, 0)
	defer sh.pw.wait() // a hash abandoned at the load time limit
	st, err := buildState(ctx, sh, liveFS(fsys, shadow), opts)
	if err != nil {
		return nil, err
	}
	scripts := st.scripts
	st.close()
	g, err := buildShadow(ctx, sh, fsys, opts, shadow)
	if err != nil {
		return nil, err
	}
	if g != nil {
		scripts = append(slices.Clone(scripts), g.st.scripts...)
		g.st.close()
	}
	warnUnusedOptions(sh.log, opts, scripts)
	return Lint(fsys)
}

// acquire takes the Lua state for one call. It waits at most lockWait (or
// until ctx is done), so that a room whose hook waits behind slow scripts
// — or, through a misbehaving Host, behind itself — is not stuck: the
// call then fails with a *chat.HookError (reason busy, or canceled), and
// the chat server decides what that means (by default: refused). It is
// never skipped as if it had run.
func (e *Engine) acquire(ctx context.Context) error {
	select {
	case e.sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(e.lockWait)
	defer t.Stop()
	select {
	case e.sem <- struct{}{}:
		return nil
	case <-t.C:
		return &chat.HookError{Reason: chat.HookFailBusy, Err: fmt.Errorf("lua scripts busy with other calls for %v", e.lockWait)}
	case <-ctx.Done():
		return &chat.HookError{Reason: chat.HookFailCanceled, Err: fmt.Errorf("waiting for the lua scripts: %w", context.Cause(ctx))}
	}
}

// release gives the Lua state back. When the scripts were found holding
// more than their memory limit during the call (limits.go), it first
// starts loading them again into a fresh state, once: until that is
// swapped in, every call on the old state fails at once.
func (e *Engine) release() {
	if st := e.cur.Load(); st != nil {
		if st.mem.over != nil && !st.rebuilding {
			st.rebuilding = true
			e.rebuild()
		}
		if st.mem.stopped {
			st.mem.stopped = false
			e.reclaim()
		}
		// The shadow scripts' state has its own memory guard: over it,
		// the whole generation is loaded again (a shadow never holds
		// more than the live scripts could).
		if sh := st.shadowState(); sh != nil {
			if sh.mem.over != nil && !st.rebuilding {
				st.rebuilding = true
				e.rebuild()
			}
			if sh.mem.stopped {
				sh.mem.stopped = false
				e.reclaim()
			}
		}
	}
	<-e.sem
}

// reclaim gives the memory of a call stopped by the memory limit back to
// the operating system, on a goroutine of the engine (Close waits for it),
// at most one at a time. Without it the garbage the call left raises the
// Go heap's next GC goal, so that each further runaway call adds to the
// process's resident size before a collection (measured: 270, 370, 470
// MB for three runaway `s = s .. s` calls; with it the size falls back to
// where it was after each). A forced collection holds no lock of the
// engine; hooks go on meanwhile.
func (e *Engine) reclaim() {
	if !e.reclaiming.CompareAndSwap(false, true) {
		return
	}
	e.rebuildMu.Lock()
	defer e.rebuildMu.Unlock()
	if e.noRebuild {
		e.reclaiming.Store(false)
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.reclaiming.Store(false)
		debug.FreeOSMemory()
	}()
}

// rebuild reloads the scripts on a goroutine of the engine (Close waits
// for it): the state over its memory limit is replaced as a reload
// replaces it, or, should the scripts no longer load, stays and keeps
// failing every call (fail closed) until a reload succeeds.
func (e *Engine) rebuild() {
	// Not e.mu: whoever holds it may be waiting for a timer goroutine
	// that is here.
	e.rebuildMu.Lock()
	defer e.rebuildMu.Unlock()
	if e.noRebuild {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = e.Reload("memory limit") // Reload logs the outcome
	}()
}
