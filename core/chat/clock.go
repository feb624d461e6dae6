package chat

import "time"

// realClock is the Clock of package time (the Clock and Timer seams are
// in seams.go).
type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (realClock) Now() time.Time { return time.Now() }
