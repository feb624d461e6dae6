package chat

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cluster-wide state (issue 15, shared_seams.go): with Config.Shared set,
// bans, mutes, room settings, the audit log, name owners and accounts'
// ignore lists live in the cluster's SharedState instead of the History.
//
//   - New loads them from it (a read error fails New, as a store's does)
//     and every change is written there first, exactly as to a History's
//     stores: a write that fails refuses the change (fail closed), logged
//     and counted as today;
//   - the watcher (cmd/moonchat, package cluster) hands every stored
//     change back, this node's own included, to the SharedApplier methods
//     below. Each compares the change with the state the server holds: a
//     change it holds already does nothing and tells nobody, so the node
//     that made a change does not act on it twice;
//   - a change this node wrote and the watcher has not handed back yet is
//     pending (sharedEchoes): a change of the same key handed in before
//     it is, in the store's order, older than this node's write, and is
//     held back rather than applied and then undone a moment later (a ban
//     lifted at once would otherwise kick its target again, a topic set
//     twice flip back and forth). Unless this node's write was
//     superseded before the watcher read it (a key's older revisions are
//     not kept: the watcher then never hands it back): so a held-back
//     change is applied after all when this node's write has not come
//     back within sharedDeferWait, and the one that comes after it is
//     then applied as usual;
//   - expiries: every node's timer fires for a restriction that expires;
//     each drops it, but only the node whose DeleteRestriction reported
//     true audits it, so the cluster's audit log has it once. A
//     SharedState that is an ExpiryDeleter removes it only while it is
//     still the stored one (not replaced by a new one meanwhile).

// sharedDeferWait is how long a change held back behind this node's
// pending write of its key waits for that write to come back before it is
// applied after all (the write was superseded). A watcher hands changes
// back within milliseconds; one that lags more only makes the key's
// state go back and forth once, ending in the store's order.
const sharedDeferWait = 2 * time.Second

// sharedEchoMax bounds the pending writes of one key (the oldest are
// forgotten): without a watcher running they would pile up.
const sharedEchoMax = 64

// sharedEchoes is this node's writes to the SharedState that the watcher
// has not handed back yet, by key ("r…" restriction, "s…" room settings,
// "n…" name owner, "i…" ignore list), oldest first, each as a fingerprint
// of the value written, and the changes held back behind them.
//
// Invariants: apply serialises the SharedApplier methods and the held-back
// changes' timers (outermost: taken before moderation.mu, accountNames.mu
// or ignoreState.mu); mu is a leaf lock, taken under those; deferred[key]
// exists only while pending[key] does, and is the latest change of key
// handed in and held back.
type sharedEchoes struct {
	apply    sync.Mutex
	mu       sync.Mutex
	seq      uint64
	pending  map[string][]pendingWrite
	deferred map[string]*deferredChange
	closed   bool
}

// pendingWrite is one write waiting for its echo.
type pendingWrite struct {
	seq uint64
	fp  string
}

// deferredChange is a change held back behind this node's pending write
// of its key: apply applies it (without the pending check), timer applies
// it after sharedDeferWait.
type deferredChange struct {
	apply func()
	timer Timer
}

// sharedWrote records that this node is about to write fp to key in the
// SharedState; the returned func forgets it again (the write failed, or
// changed nothing). A no-op outside a cluster.
func (s *Server) sharedWrote(key, fp string) (cancel func()) {
	if s.shared == nil {
		return func() {}
	}
	e := &s.echoes
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending == nil {
		e.pending = make(map[string][]pendingWrite)
	}
	e.seq++
	seq := e.seq
	list := append(e.pending[key], pendingWrite{seq, fp})
	if len(list) > sharedEchoMax {
		list = slices.Delete(list, 0, len(list)-sharedEchoMax)
	}
	e.pending[key] = list
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		list := slices.DeleteFunc(e.pending[key], func(p pendingWrite) bool { return p.seq == seq })
		if len(list) == 0 {
			e.dropLocked(key)
		} else {
			e.pending[key] = list
		}
	}
}

// dropLocked forgets key's pending writes and the change held back behind
// them; mu is held. A held-back change is older than what this node holds
// then (a write of its own came back, or failed and changed nothing).
func (e *sharedEchoes) dropLocked(key string) {
	delete(e.pending, key)
	if d := e.deferred[key]; d != nil {
		d.timer.Stop()
		delete(e.deferred, key)
	}
}

// sharedEcho reports whether a stored change of key to fp, handed in by
// the watcher, is to be applied now: yes when this node has no write of
// key pending. When it has, the change is this node's own (fp matches a
// pending write: it and the older pending ones are done with, and it is
// applied only when no newer one is pending) or not (held back: apply
// runs when no write of this node's came back within sharedDeferWait).
// e.apply is held.
func (s *Server) sharedEcho(key, fp string, apply func()) bool {
	e := &s.echoes
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.pending[key]
	if len(list) == 0 {
		return true
	}
	for i, p := range list {
		if p.fp != fp {
			continue
		}
		if i == len(list)-1 {
			e.dropLocked(key)
			return true
		}
		e.pending[key] = list[i+1:]
		if d := e.deferred[key]; d != nil { // older than the write that came back
			d.timer.Stop()
			delete(e.deferred, key)
		}
		return false
	}
	if e.closed {
		return false
	}
	if e.deferred == nil {
		e.deferred = make(map[string]*deferredChange)
	}
	if d := e.deferred[key]; d != nil {
		d.timer.Stop()
	}
	d := &deferredChange{apply: apply}
	d.timer = s.cfg.Clock.AfterFunc(sharedDeferWait, func() { s.applyDeferred(key, d) })
	e.deferred[key] = d
	return false
}

// applyDeferred applies d, held back behind key's pending writes, when it
// still is (nothing of key came back since): those writes were
// superseded in the store before the watcher read them.
func (s *Server) applyDeferred(key string, d *deferredChange) {
	e := &s.echoes
	e.apply.Lock()
	defer e.apply.Unlock()
	e.mu.Lock()
	if e.deferred[key] != d {
		e.mu.Unlock()
		return
	}
	delete(e.deferred, key)
	delete(e.pending, key)
	e.mu.Unlock()
	s.log.Warn("chat: a change this node stored was superseded in the cluster before it came back; the newer one applied", "key", key)
	d.apply()
}

// stopShared stops the held-back changes' timers for good (Shutdown).
func (s *Server) stopShared() {
	e := &s.echoes
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for key, d := range e.deferred {
		d.timer.Stop()
		delete(e.deferred, key)
	}
}

// Keys and fingerprints of sharedEchoes. Times are compared to the
// millisecond: what a store gives back may have lost the rest.
func restrictionKey(kind RestrictionKind, room string, t Target) string {
	return "r" + string(kind) + "\x00" + room + "\x00" + targetString(t)
}

func restrictionFP(r *Restriction) string {
	if r == nil {
		return "-"
	}
	return strings.Join([]string{r.By, r.Reason, fpTime(r.Created), fpTime(r.Expires)}, "\x00")
}

func settingsFP(rs RoomSettings) string {
	return strings.Join([]string{rs.Topic, rs.TopicBy, fpTime(rs.TopicSince), strconv.FormatInt(int64(rs.Slow), 10)}, "\x00")
}

func ignoreFP(ids []string) string {
	return strings.Join(ids, "\x00")
}

func fpTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// ExpiryDeleter is an optional interface of a SharedState: one that
// implements it removes an expired restriction only while the stored one
// is still that restriction. Without it, a node sweeping an expiry could
// remove the restriction another node made in its place (same kind, room
// and target) a moment before, while this node's watcher had not handed
// the new one in yet: the new ban would be lost for the cluster.
type ExpiryDeleter interface {
	// DeleteExpired removes the restriction of r's Kind, Room and Target
	// only while the stored one was created at r.Created (to the
	// millisecond); it reports whether it removed it (true to exactly
	// one of several callers at once).
	DeleteExpired(r Restriction) (bool, error)
}

// deleteExpired removes the expired r from the store (a sweep): through
// ExpiryDeleter when the SharedState implements it, else by its key.
func (s *Server) deleteExpired(r *Restriction) (bool, error) {
	if ed, ok := s.shared.(ExpiryDeleter); ok {
		return ed.DeleteExpired(*r)
	}
	return s.mod.store.DeleteRestriction(r.Kind, r.Room, r.Target)
}

// stateStores returns where moderation, name owners and ignore lists are
// kept: the SharedState in a cluster, else the History's optional
// interfaces (nil where it has none: kept in memory).
func (s *Server) stateStores(h History) (ModerationStore, NameOwners, IgnoreStore) {
	if s.shared != nil {
		return s.shared, s.shared, s.shared
	}
	ms, _ := h.(ModerationStore)
	no, _ := h.(NameOwners)
	is, _ := h.(IgnoreStore)
	return ms, no, is
}

var _ SharedApplier = (*Server)(nil)

// sameRestriction reports whether a and b are the same restriction
// (times compared as instants).
func sameRestriction(a, b *Restriction) bool {
	return a.Kind == b.Kind && a.Room == b.Room && a.Target == b.Target && a.By == b.By && a.Reason == b.Reason &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

// sameSettings reports whether a and b are the same settings.
func sameSettings(a, b RoomSettings) bool {
	return a.Topic == b.Topic && a.TopicBy == b.TopicBy && a.TopicSince.Equal(b.TopicSince) && a.Slow == b.Slow
}

// RestrictionStored implements SharedApplier: r is put in force here (the
// index rebuilt, the expiry timer armed). A ban kicks this node's members
// it matches, as Restrict does on the node that made it, unless the same
// ban was in force here already (its members were kicked then). Nothing
// is audited: the node that made it did.
func (s *Server) RestrictionStored(r Restriction) {
	s.echoes.apply.Lock()
	defer s.echoes.apply.Unlock()
	s.restrictionStored(r)
}

func (s *Server) restrictionStored(r Restriction) {
	if r.Kind != KindBan && r.Kind != KindMute {
		s.log.Warn("chat: a restriction of an unknown kind in the cluster's state ignored", "kind", r.Kind, "room", r.Room)
		return
	}
	md := &s.mod
	md.mu.Lock()
	key := modKey{r.Kind, r.Room, r.Target}
	if md.closed || !s.sharedEcho(restrictionKey(r.Kind, r.Room, r.Target), restrictionFP(&r), func() { s.restrictionStored(r) }) {
		md.mu.Unlock()
		return
	}
	old, had := md.all[key]
	if had && sameRestriction(&old, &r) {
		md.mu.Unlock()
		return
	}
	md.all[key] = r
	md.rebuild()
	s.armModTimerLocked()
	md.mu.Unlock()
	now := s.cfg.Clock.Now()
	s.log.Info("chat: restriction stored in the cluster", "kind", r.Kind, "room", r.Room, "target", targetString(r.Target), "by", r.By, "expires", r.Expires, "reason", r.Reason)
	if r.Kind == KindBan && inForce(&r, now) && !(had && inForce(&old, now)) {
		s.kickBanned(&r)
	}
}

// RestrictionRemoved implements SharedApplier: the restriction is no
// longer in force here. Nothing is audited: the node that lifted it did,
// or, for an expiry, the node whose DeleteRestriction reported true.
func (s *Server) RestrictionRemoved(kind RestrictionKind, room string, t Target) {
	s.echoes.apply.Lock()
	defer s.echoes.apply.Unlock()
	s.restrictionRemoved(kind, room, t)
}

func (s *Server) restrictionRemoved(kind RestrictionKind, room string, t Target) {
	md := &s.mod
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed || !s.sharedEcho(restrictionKey(kind, room, t), restrictionFP(nil), func() { s.restrictionRemoved(kind, room, t) }) {
		return
	}
	key := modKey{kind, room, t}
	if _, had := md.all[key]; !had {
		return
	}
	delete(md.all, key)
	md.rebuild()
	s.armModTimerLocked()
	s.log.Info("chat: restriction removed in the cluster", "kind", kind, "room", room, "target", targetString(t))
}

// RoomSettingsStored implements SharedApplier: room's settings become rs
// here, and this node's members of room are told of a new topic (a
// "topic" event and a notice) or slow mode (a notice) as on the node that
// made the change; on that node they hold rs already and nobody is told
// twice. A cleared topic does not say who cleared it (the settings do not
// carry it): "the topic was cleared".
func (s *Server) RoomSettingsStored(room string, rs RoomSettings) {
	s.echoes.apply.Lock()
	defer s.echoes.apply.Unlock()
	s.roomSettingsStored(room, rs)
}

func (s *Server) roomSettingsStored(room string, rs RoomSettings) {
	md := &s.mod
	md.mu.Lock()
	if md.closed || !s.sharedEcho("s"+room, settingsFP(rs), func() { s.roomSettingsStored(room, rs) }) {
		md.mu.Unlock()
		return
	}
	old := md.settings[room]
	if sameSettings(old, rs) {
		md.mu.Unlock()
		return
	}
	if rs == (RoomSettings{}) {
		delete(md.settings, room)
	} else {
		md.settings[room] = rs
	}
	md.rebuild()
	md.mu.Unlock()
	change := &settingsChange{rs: rs, by: rs.TopicBy, topic: rs.Topic != old.Topic, slow: rs.Slow != old.Slow, stored: true}
	if !change.topic && !change.slow {
		return // who set the topic, or when: nothing to tell
	}
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r != nil {
		r.enqueue(op{kind: opSettings, settings: change})
	}
}

// NameOwnerStored implements SharedApplier: account id owns name here
// from now on (and no longer the name it owned before; "" owns none).
// Members already in a room keep their names; the next guest or other
// account asking for name gets a variant.
func (s *Server) NameOwnerStored(id, name string) {
	if id == "" {
		return
	}
	s.echoes.apply.Lock()
	defer s.echoes.apply.Unlock()
	s.nameOwnerStored(id, name)
}

func (s *Server) nameOwnerStored(id, name string) {
	a := &s.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if !s.sharedEcho("n"+id, name, func() { s.nameOwnerStored(id, name) }) {
		return
	}
	if prev := a.owns[id]; prev != name {
		a.setOwnerLocked(id, prev, name)
	}
}

// IgnoreListStored implements SharedApplier: account's stored list (the
// ignored accounts) becomes ignored here, for every connection of the
// account on this node; the guests its connections here ignore by
// session stay on it (they are this node's).
func (s *Server) IgnoreListStored(account string, ignored []string) {
	if account == "" {
		return
	}
	ids := slices.Clone(ignored)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	s.echoes.apply.Lock()
	defer s.echoes.apply.Unlock()
	s.ignoreListStored(account, ids)
}

// ignoreListStored is IgnoreListStored with ids sorted, e.apply held.
func (s *Server) ignoreListStored(account string, ids []string) {
	st := &s.ign
	st.mu.Lock()
	if !s.sharedEcho("i"+account, ignoreFP(ids), func() { s.ignoreListStored(account, ids) }) {
		st.mu.Unlock()
		return
	}
	old := st.byAccount[account]
	if slices.Equal(old.accountList(), ids) {
		st.mu.Unlock()
		return
	}
	set := old.clone()
	clear(set.accounts)
	for _, id := range ids {
		set.accounts[id] = struct{}{}
	}
	if set.empty() {
		delete(st.byAccount, account)
	} else {
		st.byAccount[account] = set
	}
	st.mu.Unlock()
	s.pushIgnores(account)
}
