package chattest

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Clock is a chat.Clock whose time moves only when the test calls
// Advance, so that a test decides when an interval has passed and can
// show that nothing happens before it, without sleeping. The zero value
// is ready to use.
type Clock struct {
	mu     sync.Mutex
	now    time.Duration // since the clock was made
	timers []*timer
}

var _ chat.Clock = (*Clock)(nil)

// timer is a Clock's timer; its fields are guarded by the clock's mu.
type timer struct {
	c      *Clock
	at     time.Duration
	active bool
	f      func()
}

// AfterFunc implements chat.Clock: f runs in the Advance call that moves
// the time to d from now or past it.
func (c *Clock) AfterFunc(d time.Duration, f func()) chat.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now + d, active: true, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop implements chat.Timer.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

// Reset implements chat.Timer.
func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active, t.at = true, t.c.now+d
	return was
}

// epoch is what a Clock's Now returns before the first Advance: a fixed
// time, so that tests do not depend on the date they run.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Now implements chat.Clock: a fixed epoch plus every Advance so far.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return epoch.Add(c.now)
}

// Pending returns how many timers are armed (made or reset, and neither
// stopped nor fired yet): a test checks that a timer it expects to be
// stopped was.
func (c *Clock) Pending() int {
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

// Advance moves the time forward by d, runs the functions of the timers
// that came due, in the order they came due, and returns how many ran.
func (c *Clock) Advance(d time.Duration) int {
	type call struct {
		at time.Duration
		f  func()
	}
	c.mu.Lock()
	c.now += d
	var due []call
	for _, t := range c.timers {
		if t.active && t.at <= c.now {
			t.active = false
			due = append(due, call{t.at, t.f})
		}
	}
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b call) int { return cmp.Compare(a.at, b.at) })
	for _, t := range due {
		t.f()
	}
	return len(due)
}
