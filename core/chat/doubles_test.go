package chat

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// memHistory is an in-memory History for tests. Appends can be slowed down
// (like an fsync), blocked, or made to fail; pruneTo simulates retention.
type memHistory struct {
	mu          sync.Mutex
	rooms       map[string][]Message
	last        map[string]uint64
	pruned      map[string]uint64 // ids <= pruned[room] were removed by retention
	appendCalls int
	appendSizes []int
	delay       time.Duration
	gate        chan struct{} // non-nil: every Append waits for a receive
	fail        bool
}

func newMemHistory() *memHistory {
	return &memHistory{rooms: map[string][]Message{}, last: map[string]uint64{}, pruned: map[string]uint64{}}
}

var errTestStore = errors.New("test store failure")

func (h *memHistory) Append(ctx context.Context, msgs []*Message) error {
	h.mu.Lock()
	gate, delay, fail := h.gate, h.delay, h.fail
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail {
		return errTestStore
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.appendCalls++
	h.appendSizes = append(h.appendSizes, len(msgs))
	for _, m := range msgs {
		h.last[m.Room]++
		m.ID = h.last[m.Room]
		h.rooms[m.Room] = append(h.rooms[m.Room], *m)
	}
	return nil
}

// addedAt is the time of the messages add stores, and replayAt how a
// plain-text replay shows it.
var addedAt = time.Date(2026, 12, 2, 14, 3, 59, 0, time.UTC)

const replayAt = "[2026-12-02 14:03 UTC] "

// add stores messages directly (test setup), at addedAt.
func (h *memHistory) add(room, user string, texts ...string) {
	for _, t := range texts {
		_ = h.Append(context.Background(), []*Message{{Room: room, User: user, Text: t, Time: addedAt}})
	}
}

// pruneTo removes the messages with id <= id.
func (h *memHistory) pruneTo(room string, id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kept []Message
	for _, m := range h.rooms[room] {
		if m.ID > id {
			kept = append(kept, m)
		}
	}
	h.rooms[room] = kept
	h.pruned[room] = id
}

func (h *memHistory) all(room string) []Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Message(nil), h.rooms[room]...)
}

func (h *memHistory) Recent(room string, n int) ([]Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return append([]Message(nil), all...), nil
}

func (h *memHistory) Before(room string, before uint64, n int) ([]Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Message
	for _, m := range h.rooms[room] {
		if m.ID < before {
			out = append(out, m)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

func (h *memHistory) After(room string, after uint64, n int) ([]Message, bool, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Message
	for _, m := range h.rooms[room] {
		if m.ID > after {
			out = append(out, m)
		}
	}
	more := len(out) > n
	if more {
		out = out[:n]
	}
	return out, after >= h.pruned[room], more, nil
}

func (h *memHistory) Redact(room string, id uint64) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, m := range h.rooms[room] {
		if m.ID == id {
			h.rooms[room] = append(h.rooms[room][:i], h.rooms[room][i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

// testHooks is a scripted Hooks: each hook runs the given function (when
// set) and records what it saw.
type testHooks struct {
	join    func(u User) JoinResult
	message func(u User, m *Message) MessageResult
	leave   func(u User) error
	rename  func(u User, old string) error

	mu     sync.Mutex
	events []string
}

func (h *testHooks) record(e string) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *testHooks) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

func (h *testHooks) Join(ctx context.Context, u User) JoinResult {
	h.record("join " + u.Room + " " + u.Name)
	if h.join != nil {
		return h.join(u)
	}
	return JoinResult{}
}

func (h *testHooks) Message(ctx context.Context, u User, m *Message) MessageResult {
	if h.message != nil {
		return h.message(u, m)
	}
	return MessageResult{}
}

func (h *testHooks) Leave(ctx context.Context, u User) error {
	h.record("leave " + u.Room + " " + u.Name)
	if h.leave != nil {
		return h.leave(u)
	}
	return nil
}

func (h *testHooks) Rename(ctx context.Context, u User, old string) error {
	h.record("rename " + old + " " + u.Name)
	if h.rename != nil {
		return h.rename(u, old)
	}
	return nil
}

// contextT shortens the Hooks signatures in test doubles.
type contextT = context.Context

// fakeClock is a Clock whose time moves only when the test calls Advance,
// so that a test decides when an announce interval has passed and can
// show that nothing is announced before.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration // since the clock was made
	timers []*fakeTimer
}

// fakeTimer is a fakeClock's timer; its fields are guarded by the clock's mu.
type fakeTimer struct {
	c      *fakeClock
	at     time.Duration
	active bool
	f      func()
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, active: true, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active, t.at = true, t.c.now+d
	return was
}

// Advance moves the time forward by d and runs the functions of the timers
// that came due, in the order they came due, and returns how many ran.
func (c *fakeClock) Advance(d time.Duration) int {
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
