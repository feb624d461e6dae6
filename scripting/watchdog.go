package scripting

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ErrTimeLimit is the error a script call is stopped with when it runs
// longer than its time limit (Options.HookTimeout for hooks and timers).
var ErrTimeLimit = fmt.Errorf("script time limit exceeded: %w", context.DeadlineExceeded)

// watchdog is the context.Context a Lua state runs under for its whole life.
// gopher-lua checks ctx.Done() before every VM instruction once a context is
// set (LState.SetContext), so closing done stops a runaway script at its
// next instruction, including inside pcall: every instruction of every
// enclosing frame raises again until the outermost call returns.
//
// A fresh context.WithTimeout per hook call would cost a timer and several
// allocations per chat message; instead one watchdog per state reuses one
// time.Timer (Reset/Stop) and one done channel, replacing the channel only
// after it has been closed by a timeout.
//
// Invariant: begin and end are called by the goroutine that owns the Lua
// state (holding the engine's semaphore), never concurrently; done is only
// replaced by begin, so Done() may be read without the mutex by that
// goroutine. The timer callback runs on its own goroutine and takes mu.
type watchdog struct {
	timer *time.Timer

	mu       sync.Mutex
	done     chan struct{}
	fired    bool      // done is closed
	active   bool      // a call is running
	deadline time.Time // of the running call
	// aborted is the caller's cancellation (abort): sticky, every later
	// call stops at once too.
	aborted error
}

func newWatchdog() *watchdog {
	w := &watchdog{done: make(chan struct{})}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

// begin arms the time limit d for one call.
func (w *watchdog) begin(d time.Duration) {
	w.mu.Lock()
	if w.fired && w.aborted == nil {
		w.done = make(chan struct{})
		w.fired = false
	}
	w.active = true
	w.deadline = time.Now().Add(d)
	w.mu.Unlock()
	w.timer.Reset(d)
}

// end disarms the limit and reports whether the call was stopped by it.
func (w *watchdog) end() (timedOut bool) {
	w.timer.Stop()
	w.mu.Lock()
	w.active = false
	timedOut = w.fired
	w.mu.Unlock()
	return timedOut
}

// fire runs on the timer's goroutine. A callback left over from an earlier
// call (Stop raced with it) finds the deadline of the current call not yet
// reached and does nothing; that call's own Reset fires later.
func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active && !w.fired && !time.Now().Before(w.deadline) {
		close(w.done)
		w.fired = true
	}
}

// abort stops the running call, and every later one, with err: the
// caller that is loading the scripts was cancelled (a signal to `moonchat
// check`, the server stopping during start-up or a reload). Safe to call
// from any goroutine.
func (w *watchdog) abort(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted != nil {
		return
	}
	w.aborted = err
	if !w.fired {
		close(w.done)
		w.fired = true
	}
}

// stop releases the timer for good.
func (w *watchdog) stop() { w.timer.Stop() }

// Deadline implements context.Context. The deadline changes per call, so
// none is advertised; gopher-lua only uses Done and Err.
func (w *watchdog) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (w *watchdog) Done() <-chan struct{} { return w.done }

// Err implements context.Context.
func (w *watchdog) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted != nil {
		return w.aborted
	}
	if w.fired {
		return ErrTimeLimit
	}
	return nil
}

// Value implements context.Context.
func (w *watchdog) Value(any) any { return nil }

var _ context.Context = (*watchdog)(nil)
