package chat

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/moonchat/moonchat/core/ws"
)

// Ignore lists (issue 14): a member who ignores another user does not get
// that user's chat messages, live or in replay and history pages. It is a
// filter on the read path of the ignoring member only:
//
//   - an account's list is shared by all its connections and stored
//     (IgnoreStore) when it names accounts; a guest's list, and an
//     account's entries for guests (by session), last for the session;
//   - a room keeps its members whose list is not empty (outbox.ignorers,
//     room goroutine only); a batch is checked against them only when
//     there are any, so a room where nobody ignores anyone pays one length
//     check per batch;
//   - an ignoring member whose list hides a sender of the batch gets its
//     own encoding of the batch without those messages (altFrame), written
//     in the broadcast's place and order; everyone else gets the shared
//     one. Presence, notices and other events are never filtered.

// maxIgnored bounds one list (a store record and a per-batch scan).
const maxIgnored = 1000

// ErrIgnoreSelf is returned by Host.Ignore for oneself.
var ErrIgnoreSelf = errors.New("cannot ignore yourself")

// ErrIgnoreListFull is returned by Host.Ignore past the list's bound.
var ErrIgnoreListFull = fmt.Errorf("ignore list full (at most %d)", maxIgnored)

// ignoreSet is one ignore list. Immutable once made: a change makes a new
// one, stored whole (member.ign, ignoreState.byAccount), so that the room
// goroutine reads it with one atomic load.
type ignoreSet struct {
	accounts map[string]struct{}
	// sessions are guests ignored for their session, with their name at
	// the time (what replay matches when they have left).
	sessions map[uint64]string
}

func (is *ignoreSet) empty() bool {
	return is == nil || len(is.accounts)+len(is.sessions) == 0
}

func (is *ignoreSet) size() int {
	if is == nil {
		return 0
	}
	return len(is.accounts) + len(is.sessions)
}

// hides reports whether a message from account (a guest: "") sent by
// session (0 = unknown, e.g. replay or the admin API) is hidden.
func (is *ignoreSet) hides(account string, session uint64) bool {
	if account != "" {
		_, ok := is.accounts[account]
		return ok
	}
	_, ok := is.sessions[session]
	return ok && session != 0
}

// clone returns a copy of is (nil: an empty set) to change.
func (is *ignoreSet) clone() *ignoreSet {
	c := &ignoreSet{accounts: map[string]struct{}{}, sessions: map[uint64]string{}}
	if is != nil {
		for a := range is.accounts {
			c.accounts[a] = struct{}{}
		}
		for id, n := range is.sessions {
			c.sessions[id] = n
		}
	}
	return c
}

// accountList is the stored part: the ignored account ids, sorted.
func (is *ignoreSet) accountList() []string {
	if is == nil {
		return nil
	}
	out := make([]string, 0, len(is.accounts))
	for a := range is.accounts {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// ignoreState is the server's ignore lists of accounts.
//
// Invariants: mu guards byAccount and every member.ign store (so that the
// last store is the newest list); mu is taken after s.mu is released,
// never while holding it the other way round, and nothing else is locked
// under it.
type ignoreState struct {
	mu        sync.Mutex
	store     IgnoreStore // nil: kept in memory only
	byAccount map[string]*ignoreSet
}

// initIgnores loads the stored lists from is, the History's IgnoreStore
// or the cluster's SharedState (stateStores; nil: kept in memory; a read
// error fails New).
func (s *Server) initIgnores(is IgnoreStore) error {
	st := &s.ign
	st.byAccount = make(map[string]*ignoreSet)
	if is == nil {
		return nil
	}
	st.store = is
	lists, err := is.IgnoreLists()
	if err != nil {
		return fmt.Errorf("chat: loading ignore lists: %w", err)
	}
	for acc, ids := range lists {
		set := (*ignoreSet)(nil).clone()
		for _, id := range ids {
			set.accounts[id] = struct{}{}
		}
		if !set.empty() {
			st.byAccount[acc] = set
		}
	}
	return nil
}

// loadIgnores gives m its account's list (at join; a guest keeps its own).
func (s *Server) loadIgnores(m *member) {
	if m.account == "" {
		return
	}
	s.ign.mu.Lock()
	m.ign.Store(s.ign.byAccount[m.account])
	s.ign.mu.Unlock()
}

// resolveIgnoreTarget turns t into what a list holds: a connected
// account's session becomes its account; a guest's stays its session.
func (s *Server) resolveIgnoreTarget(t IgnoreTarget) (IgnoreTarget, error) {
	switch {
	case t.Account != "" && t.Session != 0:
		return t, errors.New("ignore: give an account or a session, not both")
	case t.Account != "":
		return IgnoreTarget{Account: t.Account}, nil
	case t.Session != 0:
		tm := s.session(t.Session)
		if tm == nil {
			if rm := s.remoteSession(t.Session); rm != nil && rm.e.Account != "" {
				// Another node's member with an account: its account
				// is ignored, on every node (the list is shared).
				return IgnoreTarget{Account: rm.e.Account}, nil
			}
			return t, s.noSession(t.Session)
		}
		if tm.account != "" {
			return IgnoreTarget{Account: tm.account}, nil
		}
		return IgnoreTarget{Session: tm.id, Name: tm.currentName()}, nil
	}
	return t, errors.New("ignore: no target")
}

// Ignore implements Host: sessionID's user stops getting the target's
// chat messages, live and in replay. target is an account (every session
// of it, stored for an account's list) or a connected user by session
// (its account if it has one, else that guest for its session). For an
// account the list is shared by all its connections.
func (s *Server) Ignore(sessionID uint64, target IgnoreTarget) error {
	m := s.session(sessionID)
	if m == nil {
		return ErrNoSuchUser
	}
	t, err := s.resolveIgnoreTarget(target)
	if err != nil {
		return err
	}
	if t.Session == m.id || (t.Account != "" && t.Account == m.account) {
		return ErrIgnoreSelf
	}
	_, err = s.changeIgnores(m, func(set *ignoreSet) (*ignoreSet, error) {
		if set.size() >= maxIgnored {
			return nil, ErrIgnoreListFull
		}
		c := set.clone()
		if t.Account != "" {
			c.accounts[t.Account] = struct{}{}
		} else {
			c.sessions[t.Session] = t.Name
		}
		return c, nil
	})
	return err
}

// Unignore implements Host: it takes target off sessionID's list (an
// account id, or a user by session as for Ignore); false when it was not
// on it.
func (s *Server) Unignore(sessionID uint64, target IgnoreTarget) (bool, error) {
	m := s.session(sessionID)
	if m == nil {
		return false, ErrNoSuchUser
	}
	t, err := s.resolveIgnoreTarget(target)
	if err != nil {
		return false, err
	}
	return s.changeIgnores(m, func(set *ignoreSet) (*ignoreSet, error) {
		if t.Account != "" {
			if _, ok := set.accounts[t.Account]; !ok {
				return nil, nil
			}
		} else if _, ok := set.sessions[t.Session]; !ok {
			return nil, nil
		}
		c := set.clone()
		delete(c.accounts, t.Account)
		delete(c.sessions, t.Session)
		return c, nil
	})
}

// Ignored implements Host: sessionID's list, accounts first (sorted), then
// guests still connected. Name is the user's current name when connected
// (a guest's name when ignored otherwise), "" for an account not
// connected.
func (s *Server) Ignored(sessionID uint64) ([]IgnoreTarget, error) {
	m := s.session(sessionID)
	if m == nil {
		return nil, ErrNoSuchUser
	}
	set := s.currentIgnores(m)
	if set.empty() {
		return nil, nil
	}
	var out []IgnoreTarget
	for _, a := range set.accountList() {
		out = append(out, IgnoreTarget{Account: a})
	}
	s.mu.Lock()
	names := make(map[string]string)
	for _, x := range s.sessions {
		if x.account != "" {
			if _, ok := set.accounts[x.account]; ok {
				names[x.account] = x.currentName()
			}
		}
	}
	for i := range out {
		out[i].Name = names[out[i].Account]
	}
	var guests []IgnoreTarget
	for id := range set.sessions {
		if g := s.sessions[id]; g != nil {
			guests = append(guests, IgnoreTarget{Session: id, Name: g.currentName()})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(guests, func(a, b IgnoreTarget) int { return int(a.Session) - int(b.Session) })
	return append(out, guests...), nil
}

// currentIgnores is m's list now: its account's, or its own for a guest.
func (s *Server) currentIgnores(m *member) *ignoreSet {
	s.ign.mu.Lock()
	defer s.ign.mu.Unlock()
	if m.account != "" {
		return s.ign.byAccount[m.account]
	}
	return m.ign.Load()
}

// changeIgnores applies change to m's list (nil from change: no change,
// reported as false). An account's stored part is written first: when the
// store fails nothing changes and the error is returned (fail closed). The
// rooms of every connection sharing the list are told (opIgnores).
func (s *Server) changeIgnores(m *member, change func(*ignoreSet) (*ignoreSet, error)) (bool, error) {
	st := &s.ign
	st.mu.Lock()
	old := m.ign.Load()
	if m.account != "" {
		old = st.byAccount[m.account]
	}
	set, err := change(old)
	if err != nil || set == nil {
		st.mu.Unlock()
		return false, err
	}
	if m.account == "" {
		m.ign.Store(set)
		st.mu.Unlock()
		m.room.enqueue(op{kind: opIgnores, m: m})
		return true, nil
	}
	if st.store != nil && !slices.Equal(old.accountList(), set.accountList()) {
		pending := s.sharedWrote("i"+m.account, ignoreFP(set.accountList()))
		if err := st.store.SetIgnoreList(m.account, set.accountList()); err != nil {
			pending()
			st.mu.Unlock()
			s.metrics.mod.storeErrors.Add(1)
			s.log.Error("chat: storing an ignore list failed", "account", m.account, "err", err)
			return false, fmt.Errorf("store ignore list: %w", err)
		}
	}
	if set.empty() {
		delete(st.byAccount, m.account)
	} else {
		st.byAccount[m.account] = set
	}
	st.mu.Unlock()
	s.pushIgnores(m.account)
	return true, nil
}

// pushIgnores gives every connection of account on this node the
// account's list now, and tells their rooms (opIgnores): one at a time
// under ign.mu, so that a concurrent change's newer list is never
// overwritten by an older one.
func (s *Server) pushIgnores(account string) {
	st := &s.ign
	s.mu.Lock()
	var conns []*member
	for _, x := range s.sessions {
		if x.account == account {
			conns = append(conns, x)
		}
	}
	s.mu.Unlock()
	for _, x := range conns {
		st.mu.Lock()
		x.ign.Store(st.byAccount[x.account])
		st.mu.Unlock()
		x.room.enqueue(op{kind: opIgnores, m: x})
	}
}

// ignoresChanged keeps outbox.ignorers: m is in it while joined with a
// list that is not empty, or while it waits for the room to catch up
// with its resume point (member.liveAfter, deliver.go). Room goroutine.
func (r *room) ignoresChanged(m *member) {
	o := &r.out
	has := slices.Contains(o.ignorers, m)
	want := m.joined.Load() && (!m.ign.Load().empty() || m.liveAfter != 0)
	switch {
	case want && !has:
		o.ignorers = append(o.ignorers, m)
	case !want && has:
		o.ignorers = removeMember(o.ignorers, m)
	}
}

// msgFrom is who sent one chat message of the outbox, and where its
// frames are (-1: not encoded for that format).
type msgFrom struct {
	account     string
	session     uint64
	id          uint64 // the message's id (member.liveAfter hides ids up to it)
	plain, json int
}

// altFrame is an ignoring member's own encoding of a batch (nil: nothing
// of it to write), used in place of the shared one.
type altFrame struct {
	m *member
	p *ws.Prepared
}

// altFor returns m's own encoding among alts, if it has one.
func altFor(alts []altFrame, m *member, shared *ws.Prepared) *ws.Prepared {
	for _, a := range alts {
		if a.m == m {
			return a.p
		}
	}
	return shared
}

// ignoreAlts returns the own encodings of the ignoring members who hide a
// message of the outbox (or, in cluster mode, who resumed beyond some of
// its ids: member.liveAfter). Called only when there are ignorers and chat
// messages.
func (r *room) ignoreAlts() []altFrame {
	o := &r.out
	var alts []altFrame
	var skip map[int]bool
	var skipped int
	for _, m := range o.ignorers {
		set := m.ign.Load()
		if set.empty() {
			set = nil
		}
		clear(skip)
		skipped = 0
		for _, f := range o.from {
			if (m.liveAfter == 0 || f.id > m.liveAfter) && (set == nil || !set.hides(f.account, f.session)) {
				continue
			}
			if skip == nil {
				skip = make(map[int]bool)
			}
			if m.format == formatJSON {
				skip[f.json] = true
			} else {
				skip[f.plain] = true
			}
			skipped++
		}
		if skipped == 0 {
			continue
		}
		spans := o.plain
		if m.format == formatJSON {
			spans = o.json
		}
		var lines [][]byte
		for i, sp := range spans {
			if sp.start < sp.end && !skip[i] {
				lines = append(lines, o.arena[sp.start:sp.end])
			}
		}
		var p *ws.Prepared
		if len(lines) > 0 {
			p = ws.NewPrepared(ws.OpText, lines...)
		}
		alts = append(alts, altFrame{m: m, p: p})
	}
	return alts
}

// filterIgnored drops from msgs (a replay or history page for m) the
// messages m's list hides: accounts' by id, a guest's by the name it had
// when ignored or has now.
func (s *Server) filterIgnored(m *member, msgs []Message) []Message {
	set := m.ign.Load()
	if set.empty() {
		return msgs
	}
	var guests map[string]bool
	if len(set.sessions) > 0 {
		guests = make(map[string]bool)
		for id, name := range set.sessions {
			guests[name] = true
			if g := s.session(id); g != nil {
				guests[g.currentName()] = true
			}
		}
	}
	out := msgs[:0]
	for _, msg := range msgs {
		if msg.Account != nil && msg.Account.ID != "" {
			if _, ok := set.accounts[msg.Account.ID]; ok {
				continue
			}
		} else if guests[msg.User] {
			continue
		}
		out = append(out, msg)
	}
	return out
}
