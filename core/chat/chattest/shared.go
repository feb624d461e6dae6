package chattest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Shared is an in-memory chat.SharedState shared by several chat.Servers
// (the nodes of a cluster), standing in for package cluster's key-value
// state in core/chat's tests: restrictions, room settings, the audit log,
// name owners and ignore lists stored once, every write durable when it
// returns, DeleteRestriction true for exactly one of concurrent callers.
// Every write that changes something is a change in one list, in one
// order; a Watcher per node hands the changes to its server
// (chat.SharedApplier), the node's own included, as cmd/moonchat's
// watcher does: first the state as it is when the watch starts, then
// every later change in order. Writes can be made to fail (Fail).
type Shared struct {
	mu           sync.Mutex
	restrictions map[modKey]chat.Restriction
	settings     map[string]chat.RoomSettings
	audit        []chat.AuditEntry
	owners       map[string]string
	ignores      map[string][]string
	changes      []sharedChange
	watchers     []*Watcher

	writeErr, readErr, auditErr error
}

var _ chat.SharedState = (*Shared)(nil)

// sharedChange is one stored change, as a watcher hands it in.
type sharedChange struct {
	// superseded: Compact dropped it (a newer change of its key
	// followed); watchers that had not handed it in skip it.
	superseded bool

	op      sharedOp
	r       chat.Restriction // opRestriction; opUnrestrict: Kind, Room, Target
	room    string
	rs      chat.RoomSettings
	id      string // opOwner: account id; opIgnores: the account
	name    string
	ignored []string
}

type sharedOp int

const (
	opRestriction sharedOp = iota
	opUnrestrict
	opSettings
	opOwner
	opIgnores
)

// key is what c changes: changes of one key supersede each other.
func (c *sharedChange) key() string {
	switch c.op {
	case opRestriction, opUnrestrict:
		return fmt.Sprintf("r %s %s %+v", c.r.Kind, c.r.Room, c.r.Target)
	case opSettings:
		return "s " + c.room
	case opOwner:
		return "o " + c.id
	}
	return "i " + c.id
}

// apply hands c to a.
func (c *sharedChange) apply(a chat.SharedApplier) {
	switch c.op {
	case opRestriction:
		a.RestrictionStored(c.r)
	case opUnrestrict:
		a.RestrictionRemoved(c.r.Kind, c.r.Room, c.r.Target)
	case opSettings:
		a.RoomSettingsStored(c.room, c.rs)
	case opOwner:
		a.NameOwnerStored(c.id, c.name)
	case opIgnores:
		a.IgnoreListStored(c.id, slices.Clone(c.ignored))
	}
}

// NewShared returns an empty shared state.
func NewShared() *Shared {
	return &Shared{
		restrictions: map[modKey]chat.Restriction{},
		settings:     map[string]chat.RoomSettings{},
		owners:       map[string]string{},
		ignores:      map[string][]string{},
	}
}

// Fail makes every write (restrictions, room settings, name owners,
// ignore lists) fail with write and every read with read from now on
// (nil: succeed again), as a cluster that cannot be reached.
func (sh *Shared) Fail(write, read error) {
	sh.mu.Lock()
	sh.writeErr, sh.readErr = write, read
	sh.mu.Unlock()
}

// FailAudit makes AppendAudit fail with err (nil: succeed again).
func (sh *Shared) FailAudit(err error) {
	sh.mu.Lock()
	sh.auditErr = err
	sh.mu.Unlock()
}

// Compact drops every change a newer change of the same key followed, as
// a key-value store that keeps one revision per key does: a watcher that
// had not handed such a change in yet (paused, or behind) never will; it
// gets the newest.
func (sh *Shared) Compact() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	seen := map[string]bool{}
	for i := len(sh.changes) - 1; i >= 0; i-- {
		k := sh.changes[i].key()
		if seen[k] {
			sh.changes[i].superseded = true
		}
		seen[k] = true
	}
}

// Changes returns how many changes were stored.
func (sh *Shared) Changes() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.changes)
}

// Synced reports whether every watcher has handed in every change stored
// so far (its server's applier returned).
func (sh *Shared) Synced() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, w := range sh.watchers {
		if !w.snapDone || w.delivered < len(sh.changes) {
			return false
		}
	}
	return true
}

// record appends c to the changes and wakes the watchers; sh.mu is held.
func (sh *Shared) record(c sharedChange) {
	sh.changes = append(sh.changes, c)
	for _, w := range sh.watchers {
		w.wakeUp()
	}
}

// Restrictions implements chat.ModerationStore.
func (sh *Shared) Restrictions() ([]chat.Restriction, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.readErr != nil {
		return nil, fmt.Errorf("restrictions: %w", sh.readErr)
	}
	return sh.restrictionsLocked(), nil
}

func (sh *Shared) restrictionsLocked() []chat.Restriction {
	out := make([]chat.Restriction, 0, len(sh.restrictions))
	for _, r := range sh.restrictions {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b chat.Restriction) int { return a.Created.Compare(b.Created) })
	return out
}

// PutRestriction implements chat.ModerationStore.
func (sh *Shared) PutRestriction(r chat.Restriction) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writeErr != nil {
		return fmt.Errorf("put restriction: %w", sh.writeErr)
	}
	sh.restrictions[modKey{r.Kind, r.Room, r.Target}] = r
	sh.record(sharedChange{op: opRestriction, r: r})
	return nil
}

// DeleteRestriction implements chat.ModerationStore: true for the one
// caller that removed it.
func (sh *Shared) DeleteRestriction(kind chat.RestrictionKind, room string, t chat.Target) (bool, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writeErr != nil {
		return false, fmt.Errorf("delete restriction: %w", sh.writeErr)
	}
	k := modKey{kind, room, t}
	if _, ok := sh.restrictions[k]; !ok {
		return false, nil
	}
	delete(sh.restrictions, k)
	sh.record(sharedChange{op: opUnrestrict, r: chat.Restriction{Kind: kind, Room: room, Target: t}})
	return true, nil
}

var _ chat.ExpiryDeleter = (*Shared)(nil)

// DeleteExpired implements chat.ExpiryDeleter: it removes the restriction
// of r's kind, room and target only while the stored one was created at
// r.Created.
func (sh *Shared) DeleteExpired(r chat.Restriction) (bool, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writeErr != nil {
		return false, fmt.Errorf("delete restriction: %w", sh.writeErr)
	}
	k := modKey{r.Kind, r.Room, r.Target}
	if cur, ok := sh.restrictions[k]; !ok || !cur.Created.Equal(r.Created) {
		return false, nil
	}
	delete(sh.restrictions, k)
	sh.record(sharedChange{op: opUnrestrict, r: chat.Restriction{Kind: r.Kind, Room: r.Room, Target: r.Target}})
	return true, nil
}

// RoomSettings implements chat.ModerationStore.
func (sh *Shared) RoomSettings() (map[string]chat.RoomSettings, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.readErr != nil {
		return nil, fmt.Errorf("room settings: %w", sh.readErr)
	}
	out := make(map[string]chat.RoomSettings, len(sh.settings))
	for room, s := range sh.settings {
		out[room] = s
	}
	return out, nil
}

// PutRoomSettings implements chat.ModerationStore (the zero value
// deletes).
func (sh *Shared) PutRoomSettings(room string, s chat.RoomSettings) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writeErr != nil {
		return fmt.Errorf("put room settings: %w", sh.writeErr)
	}
	if s == (chat.RoomSettings{}) {
		delete(sh.settings, room)
	} else {
		sh.settings[room] = s
	}
	sh.record(sharedChange{op: opSettings, room: room, rs: s})
	return nil
}

// AppendAudit implements chat.ModerationStore.
func (sh *Shared) AppendAudit(e chat.AuditEntry) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.auditErr != nil {
		return fmt.Errorf("append audit: %w", sh.auditErr)
	}
	sh.audit = append(sh.audit, e)
	return nil
}

// Audit implements chat.ModerationStore.
func (sh *Shared) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.readErr != nil {
		return nil, fmt.Errorf("audit: %w", sh.readErr)
	}
	var out []chat.AuditEntry
	for _, e := range sh.audit {
		if (room == "" || e.Room == room) && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return slices.Clone(out), nil
}

// NameOwners implements chat.NameOwners.
func (sh *Shared) NameOwners() (map[string]string, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.readErr != nil {
		return nil, fmt.Errorf("name owners: %w", sh.readErr)
	}
	out := make(map[string]string, len(sh.owners))
	for id, name := range sh.owners {
		out[id] = name
	}
	return out, nil
}

// SetNameOwner implements chat.NameOwners ("" owns none).
func (sh *Shared) SetNameOwner(id, name string) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writeErr != nil {
		return fmt.Errorf("set name owner: %w", sh.writeErr)
	}
	if name == "" {
		delete(sh.owners, id)
	} else {
		sh.owners[id] = name
	}
	sh.record(sharedChange{op: opOwner, id: id, name: name})
	return nil
}

// IgnoreLists implements chat.IgnoreStore.
func (sh *Shared) IgnoreLists() (map[string][]string, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.readErr != nil {
		return nil, fmt.Errorf("ignore lists: %w", sh.readErr)
	}
	out := make(map[string][]string, len(sh.ignores))
	for acc, ids := range sh.ignores {
		out[acc] = slices.Clone(ids)
	}
	return out, nil
}

// SetIgnoreList implements chat.IgnoreStore (an empty list deletes).
func (sh *Shared) SetIgnoreList(account string, ignored []string) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.writeErr != nil {
		return fmt.Errorf("set ignore list: %w", sh.writeErr)
	}
	if len(ignored) == 0 {
		delete(sh.ignores, account)
	} else {
		sh.ignores[account] = slices.Clone(ignored)
	}
	sh.record(sharedChange{op: opIgnores, id: account, ignored: slices.Clone(ignored)})
	return nil
}

// Watcher hands a Shared's changes to one server (chat.SharedApplier)
// from its own goroutine, in the order they were stored, until Close:
// first the state as it was when Watch was called (every restriction,
// room's settings, name owner and ignore list), then every change stored
// from then on. Pause holds it back (the node lags).
type Watcher struct {
	sh *Shared
	a  chat.SharedApplier
	// snapshot is the state when the watch started (snapDone once it was
	// handed in); delivered is how many of sh.changes were handed in
	// (both under sh.mu).
	snapshot  []sharedChange
	snapDone  bool
	delivered int
	paused    bool

	wake, stop, done chan struct{}
}

// Watch starts a watcher handing sh's changes to a.
func (sh *Shared) Watch(a chat.SharedApplier) *Watcher {
	w := &Watcher{sh: sh, a: a, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	sh.mu.Lock()
	for _, r := range sh.restrictionsLocked() {
		w.snapshot = append(w.snapshot, sharedChange{op: opRestriction, r: r})
	}
	for room, rs := range sh.settings {
		w.snapshot = append(w.snapshot, sharedChange{op: opSettings, room: room, rs: rs})
	}
	for id, name := range sh.owners {
		w.snapshot = append(w.snapshot, sharedChange{op: opOwner, id: id, name: name})
	}
	for acc, ids := range sh.ignores {
		w.snapshot = append(w.snapshot, sharedChange{op: opIgnores, id: acc, ignored: slices.Clone(ids)})
	}
	w.delivered = len(sh.changes)
	sh.watchers = append(sh.watchers, w)
	sh.mu.Unlock()
	go w.run()
	return w
}

// Pause stops the watcher before the next change (the store goes on
// changing: the node lags); Resume lets it catch up.
func (w *Watcher) Pause() {
	w.sh.mu.Lock()
	w.paused = true
	w.sh.mu.Unlock()
}

// Resume ends Pause.
func (w *Watcher) Resume() {
	w.sh.mu.Lock()
	w.paused = false
	w.sh.mu.Unlock()
	w.wakeUp()
}

// Close stops the watcher and waits for its goroutine; it no longer
// counts for Synced.
func (w *Watcher) Close() {
	close(w.stop)
	<-w.done
	w.sh.mu.Lock()
	w.sh.watchers = slices.DeleteFunc(w.sh.watchers, func(x *Watcher) bool { return x == w })
	w.sh.mu.Unlock()
}

func (w *Watcher) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run is the watcher's goroutine.
func (w *Watcher) run() {
	defer close(w.done)
	for _, c := range w.snapshot {
		select {
		case <-w.stop:
			return
		default:
		}
		c.apply(w.a)
	}
	w.snapshot = nil
	w.sh.mu.Lock()
	w.snapDone = true
	w.sh.mu.Unlock()
	for {
		w.sh.mu.Lock()
		var c *sharedChange
		if !w.paused && w.delivered < len(w.sh.changes) {
			cc := w.sh.changes[w.delivered]
			c = &cc
		}
		w.sh.mu.Unlock()
		if c == nil {
			select {
			case <-w.stop:
				return
			case <-w.wake:
			}
			continue
		}
		if !c.superseded {
			c.apply(w.a)
		}
		w.sh.mu.Lock()
		w.delivered++
		w.sh.mu.Unlock()
	}
}

// StartShared runs a chat.Server (Start) with cfg.Shared set to sh and a
// Watcher handing sh's changes to it; both stop when the test ends (the
// watcher first). It returns the watcher too.
func StartShared(t testing.TB, sh *Shared, cfg chat.Config, hooks chat.Hooks, hist chat.History) (*Server, *Watcher) {
	t.Helper()
	cfg.Shared = sh
	s := Start(t, cfg, hooks, hist)
	w := sh.Watch(s.Chat)
	t.Cleanup(w.Close) // before the server's shutdown (cleanups run last first)
	return s, w
}
