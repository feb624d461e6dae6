package scripting

import (
	"context"
	"fmt"
	"runtime/metrics"
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
// The same timer bounds the memory a call allocates (limits.go): when
// maxAlloc is set it fires every memTick of a running call, reads the
// process's cumulative heap allocations, and closes done with
// ErrMemoryLimit once the call has allocated more than maxAlloc (plus
// what allow granted) since its first sample. A call shorter than memTick
// costs nothing more than before: the timer is reset and stopped once
// per call either way.
//
// Invariant: begin, end and allow are called by the goroutine that owns
// the Lua state (holding the engine's semaphore), never concurrently; done
// is only replaced by begin, so Done() may be read without the mutex by
// that goroutine. The timer callback runs on its own goroutine and takes
// mu.
type watchdog struct {
	timer    *time.Timer
	maxAlloc uint64 // bytes one call may allocate; 0: not sampled

	mu       sync.Mutex
	done     chan struct{}
	fired    bool      // done is closed
	cause    error     // why it was closed: ErrTimeLimit or a memory error
	active   bool      // a call is running
	deadline time.Time // of the running call
	// aborted is the caller's cancellation (abort): sticky, every later
	// call stops at once too.
	aborted error

	// Memory sampling of the running call, under mu.
	allocs  []metrics.Sample
	sampled bool   // base is set
	base    uint64 // allocations counter at the call's first sample
	allowed uint64 // extra bytes the call may allocate (allow)
}

// newWatchdog returns a watchdog whose calls may allocate maxAlloc bytes
// each (0: no memory sampling).
func newWatchdog(maxAlloc int64) *watchdog {
	w := &watchdog{done: make(chan struct{}), maxAlloc: uint64(max(maxAlloc, 0))}
	if w.maxAlloc > 0 {
		w.allocs = []metrics.Sample{{Name: allocsMetric}}
	}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

// begin arms the time limit d for one call that began at now.
func (w *watchdog) begin(now time.Time, d time.Duration) {
	w.mu.Lock()
	if w.fired && w.aborted == nil {
		w.done = make(chan struct{})
		w.fired = false
	}
	w.active = true
	w.deadline = now.Add(d)
	w.sampled = false
	w.allowed = 0
	w.mu.Unlock()
	if w.maxAlloc > 0 {
		d = min(d, memTick)
	}
	w.timer.Reset(d)
}

// allow lets the running call allocate n bytes more: what an API function
// knows it will spend on the call's behalf (a password hash's memory).
func (w *watchdog) allow(n uint64) {
	w.mu.Lock()
	w.allowed += n
	w.mu.Unlock()
}

// end disarms the limit and reports whether the call ran long enough to
// have its memory sampled (memTick): only such a call can have allocated
// much, so only then is the heap worth a look (state.afterCall).
func (w *watchdog) end() (long bool) {
	w.timer.Stop()
	w.mu.Lock()
	w.active = false
	long = w.sampled
	w.mu.Unlock()
	return long
}

// fire runs on the timer's goroutine. A callback left over from an earlier
// call (Stop raced with it) finds the deadline of the current call not yet
// reached and at most takes a memory sample; the timer stays armed for
// the current call either way (begin reset it, and a running call's
// callback re-arms it).
func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.active || w.fired {
		return
	}
	now := time.Now()
	if !now.Before(w.deadline) {
		w.stopCall(ErrTimeLimit)
		return
	}
	if w.maxAlloc == 0 {
		w.timer.Reset(w.deadline.Sub(now))
		return
	}
	n := readMetric(w.allocs)
	if !w.sampled {
		w.base, w.sampled = n, true
	} else if used := n - w.base; used > w.maxAlloc+w.allowed {
		w.stopCall(fmt.Errorf("%w (%d bytes allocated during the call, at most %d)", ErrMemoryLimit, used, w.maxAlloc+w.allowed))
		return
	}
	w.timer.Reset(min(memTick, w.deadline.Sub(now)))
}

// stopCall closes done for the running call with cause. Caller holds mu.
func (w *watchdog) stopCall(cause error) {
	close(w.done)
	w.fired = true
	w.cause = cause
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
		return w.cause
	}
	return nil
}

// Value implements context.Context.
func (w *watchdog) Value(any) any { return nil }

var _ context.Context = (*watchdog)(nil)
