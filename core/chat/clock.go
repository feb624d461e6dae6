package chat

import "time"

// Clock schedules the server's timers. Config.Clock injects one; the
// default is package time. Tests use a fake clock to decide when an
// interval has passed, so that they can show that something does not
// happen before it (a held announcement) without sleeping.
type Clock interface {
	// AfterFunc calls f in its own goroutine once d has passed, as
	// time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a Clock's timer, with the semantics of the *time.Timer that
// time.AfterFunc returns.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it was
	// active.
	Stop() bool
	// Reset makes the timer fire d from now; it reports whether it was
	// active.
	Reset(d time.Duration) bool
}

// realClock is the Clock of package time.
type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
