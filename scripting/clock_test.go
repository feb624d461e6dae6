package scripting

import (
	"sync"
	"time"
)

// fakeClock is a Clock that moves only when a test calls Advance, so that
// a test can show that a timer does not fire without sleeping.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created int
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.created++
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	t.resetLocked(d)
	return t
}

// Advance moves the clock by d and fires the timers that are then due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		t.fireIfDueLocked()
	}
}

// Active is the number of timers waiting to fire.
func (c *fakeClock) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

// Created is the number of timers ever made.
func (c *fakeClock) Created() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	when   time.Time
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	t.drainLocked()
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.drainLocked()
	t.resetLocked(d)
	return was
}

func (t *fakeTimer) resetLocked(d time.Duration) {
	t.when = t.c.now.Add(d)
	t.active = true
	t.fireIfDueLocked()
}

func (t *fakeTimer) fireIfDueLocked() {
	if t.active && !t.when.After(t.c.now) {
		t.active = false
		select {
		case t.ch <- t.c.now:
		default:
		}
	}
}

// drainLocked empties the channel, as Stop and Reset do for *time.Timer
// since Go 1.23.
func (t *fakeTimer) drainLocked() {
	select {
	case <-t.ch:
	default:
	}
}
