package scripting

import "time"

// Clock is the time source of the engine's timers (chat.every) and of the
// scripts directory watcher. Options.Clock injects one; tests use a fake
// clock to show deterministically that a timer does, or does not, fire.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that sends on its channel once d has
	// passed, as time.NewTimer.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer, with the semantics of *time.Timer
// since Go 1.23 (Stop and Reset leave no stale value in the channel).
type Timer interface {
	// C is the channel the time is sent on.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was
	// active.
	Stop() bool
	// Reset makes the timer fire d from now.
	Reset(d time.Duration) bool
}

// realClock is the Clock of package time; the default.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
