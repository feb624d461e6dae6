package chattest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

// PresenceHub is an in-memory cluster-wide roster (chat.Presence) shared
// by several servers, each a PresenceNode, standing in for package
// cluster's: per room, which member holds each name key, and every
// member's entry. Every change is appended to one ordered list that each
// node's watcher goroutine hands to its server (chat.PresenceApplier),
// leaving out the node's own entries, as cmd/moonchat's watcher does. The
// hub can be made unavailable (SetAvailable): claims, releases and kicks
// then fail with chat.ErrUnavailable; the releases that failed are made
// when it is available again, as the real roster reconciles them. Each
// node is also a chat.DirectRelay: a relayed direct message goes to the
// ServeDirects function of its node (StartPresence gives the server's
// ServeDirect), on the caller's goroutine.
type PresenceHub struct {
	mu   sync.Mutex
	cond *sync.Cond // signalled on every change, watcher progress and stop
	// keys: room → name key → holder; entries: room → holder → entry.
	keys    map[string]map[string]holder
	entries map[string]map[holder]chat.PresenceEntry
	changes []presenceChange
	down    bool
	pending []pendingRelease // releases refused while down
	kicks   map[string]func(session uint64, reason, by string) error
	directs map[string]func(chat.RelayedDirect) chat.RelayAnswer
	relayed int // RelayDirect calls that reached a node
	nodes   []*PresenceNode
}

// holder names a member in the cluster: its node and its session there.
type holder struct {
	node    string
	session uint64
}

// presenceChange is one change of the roster: e joined (or changed), or
// left when left is set (e.Node and e.Session name who).
type presenceChange struct {
	room string
	e    chat.PresenceEntry
	left bool
}

type pendingRelease struct {
	room string
	h    holder
}

// NewPresenceHub returns an empty, available roster.
func NewPresenceHub() *PresenceHub {
	h := &PresenceHub{
		keys:    make(map[string]map[string]holder),
		entries: make(map[string]map[holder]chat.PresenceEntry),
		kicks:   make(map[string]func(uint64, string, string) error),
		directs: make(map[string]func(chat.RelayedDirect) chat.RelayAnswer),
	}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// Node returns the chat.Presence of node name (one per server).
func (h *PresenceHub) Node(name string) *PresenceNode {
	return &PresenceNode{hub: h, name: name}
}

// SetAvailable makes the roster reachable (up) or not. Back up, it makes
// the releases it refused meanwhile.
func (h *PresenceHub) SetAvailable(up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = !up
	if up {
		for _, p := range h.pending {
			h.releaseLocked(p.room, p.h)
		}
		h.pending = nil
	}
}

// Entries returns room's entries, in no particular order.
func (h *PresenceHub) Entries(room string) []chat.PresenceEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chat.PresenceEntry
	for _, e := range h.entries[room] {
		out = append(out, e)
	}
	return out
}

// Settle waits until every running watcher has handed every change made
// so far to its server (each server then has them queued to its rooms).
func (h *PresenceHub) Settle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		done := true
		for _, n := range h.nodes {
			if n.watching && n.applied < len(h.changes) {
				done = false
			}
		}
		if done {
			return
		}
		h.cond.Wait()
	}
}

// PresenceNode is one node's chat.Presence of a PresenceHub.
type PresenceNode struct {
	hub  *PresenceHub
	name string
	// guarded by hub.mu
	watching bool
	applied  int // changes handed to the server so far
	stop     bool
}

var _ chat.Presence = (*PresenceNode)(nil)

// Node implements chat.Presence.
func (n *PresenceNode) Node() string { return n.name }

// Claim implements chat.Presence: e's keys must be free in room or held
// by e's own session; its old keys (a rename) are released once the new
// ones are held.
func (n *PresenceNode) Claim(_ context.Context, room string, e chat.PresenceEntry) error {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return chat.ErrUnavailable
	}
	if e.Node != n.name {
		return fmt.Errorf("presence: node %s claims for node %s", n.name, e.Node)
	}
	self := holder{e.Node, e.Session}
	keys := h.keys[room]
	if keys == nil {
		keys = make(map[string]holder)
		h.keys[room] = keys
	}
	for _, k := range e.Keys {
		if x, ok := keys[k]; ok && x != self {
			return chat.ErrNameTaken
		}
	}
	entries := h.entries[room]
	if entries == nil {
		entries = make(map[holder]chat.PresenceEntry)
		h.entries[room] = entries
	}
	for _, k := range entries[self].Keys {
		if keys[k] == self && !slices.Contains(e.Keys, k) {
			delete(keys, k)
		}
	}
	for _, k := range e.Keys {
		keys[k] = self
	}
	e.Keys, e.Roles = slices.Clone(e.Keys), slices.Clone(e.Roles)
	entries[self] = e
	h.changes = append(h.changes, presenceChange{room: room, e: e})
	h.cond.Broadcast()
	return nil
}

// Release implements chat.Presence. While the hub is unavailable it
// fails, and the release is made when the hub is back.
func (n *PresenceNode) Release(_ context.Context, room string, session uint64) error {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		h.pending = append(h.pending, pendingRelease{room, holder{n.name, session}})
		return chat.ErrUnavailable
	}
	h.releaseLocked(room, holder{n.name, session})
	return nil
}

// releaseLocked removes who's entry and keys from room; h.mu is held.
func (h *PresenceHub) releaseLocked(room string, who holder) {
	e, ok := h.entries[room][who]
	if !ok {
		return
	}
	delete(h.entries[room], who)
	for _, k := range e.Keys {
		if h.keys[room][k] == who {
			delete(h.keys[room], k)
		}
	}
	h.changes = append(h.changes, presenceChange{room: room, e: e, left: true})
	h.cond.Broadcast()
}

// ServeKicks makes fn answer the kicks other nodes send to n (cmd/moonchat
// gives the server's KickBy).
func (n *PresenceNode) ServeKicks(fn func(session uint64, reason, by string) error) {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kicks[n.name] = fn
}

// Kick implements chat.Presence: node's kick function, called on the
// caller's goroutine.
func (n *PresenceNode) Kick(_ context.Context, node string, session uint64, reason, by string) error {
	h := n.hub
	h.mu.Lock()
	fn, down := h.kicks[node], h.down
	h.mu.Unlock()
	if down {
		return chat.ErrUnavailable
	}
	if fn == nil {
		return fmt.Errorf("presence: no node %q", node)
	}
	return fn(session, reason, by)
}

var _ chat.DirectRelay = (*PresenceNode)(nil)

// ServeDirects makes fn answer the direct messages other nodes relay to
// n (cmd/moonchat gives the server's ServeDirect); nil stops serving
// them: a relay to n then fails as if n did not answer.
func (n *PresenceNode) ServeDirects(fn func(chat.RelayedDirect) chat.RelayAnswer) {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if fn == nil {
		delete(h.directs, n.name)
		return
	}
	h.directs[n.name] = fn
}

// RelayDirect implements chat.DirectRelay: node's ServeDirects function,
// called on the caller's goroutine; chat.ErrUnavailable while the hub is
// unavailable, an error when node serves none.
func (n *PresenceNode) RelayDirect(_ context.Context, node string, d chat.RelayedDirect) (chat.RelayAnswer, error) {
	h := n.hub
	h.mu.Lock()
	fn, down := h.directs[node], h.down
	if !down && fn != nil {
		h.relayed++
	}
	h.mu.Unlock()
	if down {
		return chat.RelayAnswer{}, chat.ErrUnavailable
	}
	if fn == nil {
		return chat.RelayAnswer{}, fmt.Errorf("presence: node %q does not answer", node)
	}
	d.FromRoles = slices.Clone(d.FromRoles)
	return fn(d), nil
}

// Relayed returns how many relayed direct messages reached a node.
func (h *PresenceHub) Relayed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.relayed
}

// Watch starts n's watcher: a goroutine that hands every change of the
// roster (from the first) made by other nodes to a, in order, until the
// returned stop is called; stop waits for it.
func (n *PresenceNode) Watch(a chat.PresenceApplier) (stop func()) {
	h := n.hub
	h.mu.Lock()
	if n.watching {
		h.mu.Unlock()
		panic("chattest: PresenceNode.Watch called twice")
	}
	n.watching, n.stop, n.applied = true, false, 0
	h.nodes = append(h.nodes, n)
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.watch(a)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			n.stop = true
			h.cond.Broadcast()
			h.mu.Unlock()
			<-done
		})
	}
}

// watch is the watcher goroutine's loop.
func (n *PresenceNode) watch(a chat.PresenceApplier) {
	h := n.hub
	h.mu.Lock()
	defer func() {
		n.watching = false
		h.nodes = slices.DeleteFunc(h.nodes, func(x *PresenceNode) bool { return x == n })
		h.cond.Broadcast()
		h.mu.Unlock()
	}()
	for {
		for !n.stop && n.applied == len(h.changes) {
			h.cond.Wait()
		}
		if n.stop {
			return
		}
		batch := h.changes[n.applied:]
		h.mu.Unlock()
		for _, c := range batch {
			switch {
			case c.e.Node == n.name:
			case c.left:
				a.RemoteLeft(c.room, c.e.Node, c.e.Session)
			default:
				a.RemoteJoined(c.room, c.e)
			}
		}
		h.mu.Lock()
		n.applied += len(batch)
		h.cond.Broadcast()
	}
}

// StartPresence runs a server (Start) as node name of hub: cfg.Presence
// is the node, its watcher runs until the test ends, the kicks other
// nodes send it go to its KickBy and the direct messages they relay to
// its ServeDirect.
func StartPresence(t testing.TB, hub *PresenceHub, name string, cfg chat.Config, hooks chat.Hooks, hist chat.History) (*Server, *PresenceNode) {
	t.Helper()
	n := hub.Node(name)
	cfg.Presence = n
	ts := Start(t, cfg, hooks, hist)
	n.ServeKicks(ts.Chat.KickBy)
	n.ServeDirects(ts.Chat.ServeDirect)
	t.Cleanup(n.Watch(ts.Chat))
	return ts, n
}
