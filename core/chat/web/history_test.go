package web_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// memHistory is an in-memory chat.History for the browser tests: the page
// under test needs real replay, paging and resume, not a disk. It keeps the
// seam's promises (ids grow per room, After reports gaps) so that the chat
// server behaves as it does on bbolt.
type memHistory struct {
	mu     sync.Mutex
	rooms  map[string][]chat.Message // oldest first
	nextID map[string]uint64         // last id assigned per room
	gate   *afterGate                // holds one After call, see holdAfter
}

// afterGate holds the After call for one id until release is closed; hit
// is closed when that call arrives.
type afterGate struct {
	after        uint64
	hit, release chan struct{}
}

// holdAfter makes the next After(room, after, …) wait until the returned
// release func is called; the hit channel closes when that call arrives.
// A test uses it to let live messages queue up behind a resume.
func (h *memHistory) holdAfter(after uint64) (hit <-chan struct{}, release func()) {
	g := &afterGate{after: after, hit: make(chan struct{}), release: make(chan struct{})}
	h.mu.Lock()
	h.gate = g
	h.mu.Unlock()
	var once sync.Once
	return g.hit, func() { once.Do(func() { close(g.release) }) }
}

func newMemHistory() *memHistory {
	return &memHistory{rooms: map[string][]chat.Message{}, nextID: map[string]uint64{}}
}

// Append implements chat.History.
func (h *memHistory) Append(ctx context.Context, msgs []*chat.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range msgs {
		h.nextID[m.Room]++
		m.ID = h.nextID[m.Room]
		h.rooms[m.Room] = append(h.rooms[m.Room], *m)
	}
	return nil
}

// seed stores n messages in room from user, as if sent before the test.
func (h *memHistory) seed(room, user string, n int) {
	msgs := make([]*chat.Message, n)
	start := time.Now().Add(-time.Duration(n) * time.Minute).UTC()
	for i := range msgs {
		msgs[i] = &chat.Message{Room: room, User: user, Text: fmt.Sprintf("seeded message %d", i+1),
			Time: start.Add(time.Duration(i) * time.Minute)}
	}
	if err := h.Append(context.Background(), msgs); err != nil {
		panic(err) // cannot happen: the context is never cancelled
	}
}

// Recent implements chat.History.
func (h *memHistory) Recent(room string, n int) ([]chat.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	return clone(all[max(0, len(all)-n):]), nil
}

// Before implements chat.History.
func (h *memHistory) Before(room string, before uint64, n int) ([]chat.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	end := sort.Search(len(all), func(i int) bool { return all[i].ID >= before })
	return clone(all[max(0, end-n):end]), nil
}

// After implements chat.History.
func (h *memHistory) After(room string, after uint64, n int) ([]chat.Message, bool, bool, error) {
	h.mu.Lock()
	if g := h.gate; g != nil && g.after == after {
		h.gate = nil
		h.mu.Unlock()
		close(g.hit)
		<-g.release
		h.mu.Lock()
	}
	defer h.mu.Unlock()
	all := h.rooms[room]
	start := sort.Search(len(all), func(i int) bool { return all[i].ID > after })
	rest := all[start:]
	complete := after >= h.nextID[room] || (len(rest) > 0 && rest[0].ID == after+1)
	more := len(rest) > n
	return clone(rest[:min(n, len(rest))]), complete, more, nil
}

// Redact implements chat.History.
func (h *memHistory) Redact(room string, id uint64) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	i := sort.Search(len(all), func(i int) bool { return all[i].ID >= id })
	if i == len(all) || all[i].ID != id {
		return false, nil
	}
	h.rooms[room] = append(all[:i:i], all[i+1:]...)
	return true, nil
}

func clone(msgs []chat.Message) []chat.Message {
	return append([]chat.Message(nil), msgs...)
}

var _ chat.History = (*memHistory)(nil)

// add stores one message in room from user, sent at t.
func (h *memHistory) add(room, user, text string, t time.Time) {
	m := &chat.Message{Room: room, User: user, Text: text, Time: t.UTC()}
	if err := h.Append(context.Background(), []*chat.Message{m}); err != nil {
		panic(err) // cannot happen: the context is never cancelled
	}
}
