package chattest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// History is an in-memory chat.History: tests of the page and of scripts
// need real replay, paging and resume, not a disk. It keeps the seam's
// promises so that the chat server behaves as it does on bbolt: ids grow
// by one per room and are never reused, and After reports a gap (complete
// false) when the next stored id is not the one after the caller's.
type History struct {
	mu     sync.Mutex
	rooms  map[string][]chat.Message // oldest first
	nextID map[string]uint64         // last id assigned per room
	gate   *afterGate                // holds one After call, see HoldAfter

	// Fault injection for Append (BlockAppends, SlowAppends) and what it
	// saw (AppendSizes).
	appendGate  chan struct{} // non-nil: Append waits until it is closed
	waiting     int           // Append calls waiting at appendGate (Blocked)
	appendDelay time.Duration
	appendSizes []int

	// chat.NameOwners: account id → the name it owns, and the fault
	// injection of FailNameOwners.
	owners       map[string]string
	setOwnerErr  error
	loadOwnerErr error

	// chat.ModerationStore (moderation.go) and its fault injection
	// (FailModeration, FailAudit).
	mod moderationStore

	// chat.IgnoreStore (ignore.go): account → ignored account ids, and
	// the error SetIgnoreList returns (FailIgnores).
	ignores   map[string][]string
	ignoreErr error
}

// afterGate holds the After call for one id until release is closed; hit
// is closed when that call arrives.
type afterGate struct {
	after        uint64
	hit, release chan struct{}
}

// NewHistory returns an empty History.
func NewHistory() *History {
	return &History{rooms: map[string][]chat.Message{}, nextID: map[string]uint64{}}
}

var (
	_ chat.History            = (*History)(nil)
	_ chat.NameOwners         = (*History)(nil)
	_ chat.ModerationStore    = (*History)(nil)
	_ chat.ConversationLister = (*History)(nil)
)

// NameOwners implements chat.NameOwners: a copy of who owns which name.
func (h *History) NameOwners() (map[string]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loadOwnerErr != nil {
		return nil, h.loadOwnerErr
	}
	out := make(map[string]string, len(h.owners))
	for id, name := range h.owners {
		out[id] = name
	}
	return out, nil
}

// SetNameOwner implements chat.NameOwners: account id now owns name (and
// no longer the name it owned before).
func (h *History) SetNameOwner(id, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.setOwnerErr != nil {
		return fmt.Errorf("set owner of %q: %w", name, h.setOwnerErr)
	}
	if h.owners == nil {
		h.owners = map[string]string{}
	}
	h.owners[id] = name
	return nil
}

// FailNameOwners makes SetNameOwner fail with set and NameOwners with
// load from now on (nil: succeed again), as a store whose disk fails.
func (h *History) FailNameOwners(set, load error) {
	h.mu.Lock()
	h.setOwnerErr, h.loadOwnerErr = set, load
	h.mu.Unlock()
}

// HoldAfter makes the next After(room, after, …) wait until the returned
// release func is called; the hit channel closes when that call arrives.
// A test uses it to let live messages queue up behind a resume.
func (h *History) HoldAfter(after uint64) (hit <-chan struct{}, release func()) {
	g := &afterGate{after: after, hit: make(chan struct{}), release: make(chan struct{})}
	h.mu.Lock()
	h.gate = g
	h.mu.Unlock()
	var once sync.Once
	return g.hit, func() { once.Do(func() { close(g.release) }) }
}

// BlockAppends makes every Append wait until release is called or the
// Append's context ends (then Append fails with the context's error), as
// a store that does not answer. release may be called more than once.
func (h *History) BlockAppends() (release func()) {
	gate := make(chan struct{})
	h.mu.Lock()
	h.appendGate = gate
	h.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// Blocked returns how many Append calls wait for BlockAppends' release
// now: a test knows that a message has reached the store and is held.
func (h *History) Blocked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waiting
}

// SlowAppends makes every Append take at least d, as an fsync does.
func (h *History) SlowAppends(d time.Duration) {
	h.mu.Lock()
	h.appendDelay = d
	h.mu.Unlock()
}

// AppendSizes returns how many messages each completed Append call
// stored, in call order (Seed and Add count too).
func (h *History) AppendSizes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.appendSizes...)
}

// Append implements chat.History.
func (h *History) Append(ctx context.Context, msgs []*chat.Message) error {
	h.mu.Lock()
	gate, delay := h.appendGate, h.appendDelay
	h.mu.Unlock()
	if gate != nil {
		h.mu.Lock()
		h.waiting++
		h.mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
		}
		h.mu.Lock()
		h.waiting--
		h.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	time.Sleep(delay)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.appendSizes = append(h.appendSizes, len(msgs))
	for _, m := range msgs {
		h.nextID[m.Room]++
		m.ID = h.nextID[m.Room]
		stored := *m
		stored.To = "" // not stored (chat.Message.To), as package store does
		h.rooms[m.Room] = append(h.rooms[m.Room], stored)
	}
	return nil
}

// Seed stores n messages in room from user ("seeded message 1" …), one a
// minute up to now, as if sent before the test.
func (h *History) Seed(room, user string, n int) {
	msgs := make([]*chat.Message, n)
	start := time.Now().Add(-time.Duration(n) * time.Minute).UTC()
	for i := range msgs {
		msgs[i] = &chat.Message{Room: room, User: user, Text: fmt.Sprintf("seeded message %d", i+1),
			Time: start.Add(time.Duration(i) * time.Minute)}
	}
	h.mustAppend(msgs)
}

// Add stores one message in room from user, sent at t.
func (h *History) Add(room, user, text string, t time.Time) {
	h.mustAppend([]*chat.Message{{Room: room, User: user, Text: text, Time: t.UTC()}})
}

func (h *History) mustAppend(msgs []*chat.Message) {
	if err := h.Append(context.Background(), msgs); err != nil {
		panic(err) // cannot happen: the context is never cancelled
	}
}

// PruneTo removes room's messages with ids up to id, as retention does:
// a resume from before id then finds a gap.
func (h *History) PruneTo(room string, id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	i := sort.Search(len(all), func(i int) bool { return all[i].ID > id })
	h.rooms[room] = clone(all[i:])
}

// All returns room's stored messages, oldest first.
func (h *History) All(room string) []chat.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return clone(h.rooms[room])
}

// Recent implements chat.History.
func (h *History) Recent(room string, n int) ([]chat.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	return clone(all[max(0, len(all)-n):]), nil
}

// Before implements chat.History.
func (h *History) Before(room string, before uint64, n int) ([]chat.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	end := sort.Search(len(all), func(i int) bool { return all[i].ID >= before })
	return clone(all[max(0, end-n):end]), nil
}

// After implements chat.History.
func (h *History) After(room string, after uint64, n int) ([]chat.Message, bool, bool, error) {
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
func (h *History) Redact(room string, id uint64) (bool, error) {
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

// ErrStore is the error a History double fails with when a test asks it
// to (ListingHistory.Fail).
var ErrStore = errors.New("chattest: store failure")

// ListingHistory is a History that also lists its rooms (chat.RoomLister,
// for GET /api/rooms), computed from what it holds. A plain History does
// not, so that the servers of other tests list live rooms only.
type ListingHistory struct {
	*History
	// Fail makes RoomStats fail with ErrStore.
	Fail bool
}

var _ chat.RoomLister = (*ListingHistory)(nil)

// NewListingHistory returns an empty ListingHistory.
func NewListingHistory() *ListingHistory { return &ListingHistory{History: NewHistory()} }

// RoomStats implements chat.RoomLister: every room that ever stored a
// message, sorted by name, with its count, first and last ids.
func (h *ListingHistory) RoomStats() ([]chat.RoomStat, error) {
	if h.Fail {
		return nil, ErrStore
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chat.RoomStat
	for name, last := range h.nextID {
		st := chat.RoomStat{Name: name, Count: len(h.rooms[name]), LastID: last}
		if st.Count > 0 {
			st.FirstID = h.rooms[name][0].ID
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Conversations implements chat.ConversationLister: account's direct
// conversations (keys chat.ParseConversationKey accepts), newest first.
func (h *History) Conversations(account string) ([]chat.ConversationStat, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chat.ConversationStat
	for key, last := range h.nextID {
		a, b, ok := chat.ParseConversationKey(key)
		if !ok || (a != account && b != account) {
			continue
		}
		peer := a
		if a == account {
			peer = b
		}
		st := chat.ConversationStat{Key: key, Peer: peer, Count: len(h.rooms[key]), LastID: last}
		if st.Count > 0 {
			st.LastTime = h.rooms[key][st.Count-1].Time
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastTime.Equal(out[j].LastTime) {
			return out[i].LastTime.After(out[j].LastTime)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}
