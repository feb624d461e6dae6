package scripttest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/moonchat/moonchat/scripting"
)

// clockEpoch is where every fake clock starts: a fixed time, so that a
// test's stored messages and expiries are the same on every run.
var clockEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// errTimerLost is a timer goroutine that did not arm its timer again
// after a tick: the engine is stuck in a call or closed.
var errTimerLost = errors.New("the scripts' timers did not come back after a tick (a timer function still running?)")

// Clock is the fake scripting.Clock of a test server: time moves only in
// Advance, which fires the due timers one tick at a time, in time order,
// and waits for the engine's timer goroutine to be done with each tick
// (it arms its timer again) before the next: a test sees a timer's
// effects as soon as Advance returns, without sleeping.
type Clock struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	timers []*fakeTimer
}

var _ scripting.Clock = (*Clock)(nil)

// NewClock returns a Clock at clockEpoch.
func NewClock() *Clock {
	c := &Clock{now: clockEpoch}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Now implements scripting.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer implements scripting.Clock.
func (c *Clock) NewTimer(d time.Duration) scripting.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	t.armLocked(d)
	return t
}

// active counts the armed timers. Caller holds c.mu.
func (c *Clock) activeLocked() int {
	n := 0
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

// waitArmed waits until at least n timers are armed, at most wait.
func (c *Clock) waitArmed(n int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	// The cond is woken by arming; a timer wakes it at the deadline.
	stop := time.AfterFunc(wait, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.activeLocked() < n {
		if !time.Now().Before(deadline) {
			return errTimerLost
		}
		c.cond.Wait()
	}
	return nil
}

// Advance moves the clock d forward. Each due timer fires at its own
// time (the clock reads that time meanwhile); after each, Advance waits
// up to wait for the timer goroutine to arm again (armed: how many
// timers are armed between ticks), then calls after (the test server
// runs what the tick queued). It ends at now+d.
func (c *Clock) Advance(d time.Duration, armed int, wait time.Duration, after func()) error {
	if d < 0 {
		return fmt.Errorf("cannot move the clock back (%v)", d)
	}
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if t.active && !t.when.After(target) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return nil
		}
		if next.when.After(c.now) {
			c.now = next.when
		}
		next.active = false
		next.ch <- c.now // buffered; drained by the engine or by a Reset
		c.mu.Unlock()
		if err := c.waitArmed(armed, wait); err != nil {
			return err
		}
		if after != nil {
			after()
		}
	}
}

// fakeTimer is one timer of a Clock.
type fakeTimer struct {
	c      *Clock
	ch     chan time.Time
	when   time.Time
	active bool
}

func (t *fakeTimer) armLocked(d time.Duration) {
	select { // no stale tick after a Reset (Go 1.23 timer semantics)
	case <-t.ch:
	default:
	}
	t.when = t.c.now.Add(d)
	t.active = true
	t.c.cond.Broadcast()
}

// C implements scripting.Timer.
func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// Stop implements scripting.Timer.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	select {
	case <-t.ch:
	default:
	}
	return was
}

// Reset implements scripting.Timer: it arms the timer d after the
// fake clock's now (what Advance waits for between ticks).
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.armLocked(d)
	return was
}
