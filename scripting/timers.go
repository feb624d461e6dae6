package scripting

import (
	"context"
	"fmt"
	"time"
)

// startTimers starts st's timer goroutine if it has timers and none runs.
// Caller holds e.mu and e.started is true.
func (e *Engine) startTimers(st *state) {
	if len(st.timers) == 0 || st.timerStop != nil {
		return
	}
	st.timerStop = make(chan struct{})
	st.timerDone = make(chan struct{})
	go e.runTimers(e.runCtx, st, st.timerStop, st.timerDone)
}

// stopTimers stops st's timer goroutine and waits for it. Caller holds
// e.mu. The goroutine never takes e.mu, so this cannot deadlock.
func (e *Engine) stopTimers(st *state) {
	if st == nil || st.timerStop == nil {
		return
	}
	close(st.timerStop)
	<-st.timerDone
	st.timerStop, st.timerDone = nil, nil
}

// runTimers is the one goroutine that fires st's chat.every functions. It
// takes the engine's semaphore for each call, like a hook, so timers are
// serialised with hooks; it does nothing once st is no longer current.
// A timer that falls behind skips the missed ticks instead of bursting,
// and a tick Options.TimerGate refuses is skipped (counted) without
// taking the semaphore.
func (e *Engine) runTimers(ctx context.Context, st *state, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	now := e.clock.Now()
	next := make([]time.Time, len(st.timers))
	for i := range next {
		next[i] = now.Add(st.timers[i].interval)
	}
	// The timer is made at the first deadline, not made idle and then
	// Reset: a timer exists only armed for the tick it waits for, which is
	// what a test's fake clock sees (Active) before it advances.
	var t Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		i := 0
		for j := range next {
			if next[j].Before(next[i]) {
				i = j
			}
		}
		if d := next[i].Sub(e.clock.Now()); t == nil {
			t = e.clock.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C():
		}
		if !e.mayRunTimers() {
			st.timers[i].obs.skip()
			e.scheduleNext(next, i, st.timers[i].interval)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case e.sem <- struct{}{}:
		}
		if e.cur.Load() == st {
			st.runTimer(&st.timers[i])
		}
		e.release()
		e.scheduleNext(next, i, st.timers[i].interval)
	}
}

// scheduleNext moves timer i's deadline one interval on, or to one
// interval from now when that is already past (a timer that fell behind
// skips the ticks it missed).
func (e *Engine) scheduleNext(next []time.Time, i int, interval time.Duration) {
	now := e.clock.Now()
	next[i] = next[i].Add(interval)
	if next[i].Before(now) {
		next[i] = now.Add(interval)
	}
}

// mayRunTimers asks Options.TimerGate whether a due tick runs on this
// node (true without a gate). A gate that panics answers false: not
// knowing whether this node holds the cluster's timer lease, it does not
// run the timers (fail closed: at worst a tick is skipped, never run on
// two nodes because of a broken gate).
func (e *Engine) mayRunTimers() (ok bool) {
	if e.gate == nil {
		return true
	}
	defer func() {
		if r := recover(); r != nil {
			ok = false
			e.sh.log.Error("lua timer gate panicked; the tick is skipped", "panic", fmt.Sprint(r))
		}
	}()
	return e.gate()
}

// runTimer calls one timer function. Caller holds the semaphore.
func (st *state) runTimer(tm *timer) {
	if tm.obs.off() {
		return
	}
	st.L.Push(tm.fn)
	err := st.pcall(st.sh.hookTimeout, 0, 0)
	if err != nil {
		st.fail("every", tm.script, tm.where, err)
	}
	st.done(tm.obs, err)
}

// Timers is the number of chat.every timers the current scripts
// registered. The engine's timer goroutine keeps exactly one timer of
// Options.Clock armed while there are any, which is what a fake clock
// (package scripttest) waits for between ticks.
func (e *Engine) Timers() int {
	st := e.cur.Load()
	if st == nil {
		return 0
	}
	return len(st.timers)
}
