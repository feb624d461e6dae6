package chat

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// accountNames is the server-wide table of the names accounts have a
// claim on, in two parts:
//
//   - owned: the one name each account owns, the one it was last given
//     (on joining or by a rename). It lasts while the account is offline,
//     and across restarts when the History implements NameOwners (loaded
//     in New, every change written with SetNameOwner before the member is
//     announced under the name); without it, for the life of the process;
//   - held: the names connected accounts use now, from a connection's
//     join until it leaves, so that the name an account's connection in
//     one room still uses stays its own after a rename elsewhere moved
//     its ownership.
//
// A guest or another account asking for a name claimed by an account, in
// any room, gets the usual variant ("alice-2"), or with Config.GuestPrefix
// a guest gets GuestPrefix+name (made unique as usual). Names are compared
// by nameKeys, as in a room's nameTable, so look-alikes and other cases
// are claimed too. It is a leaf lock: taken under a room's roster.mu,
// never the other way round.
type accountNames struct {
	mu    sync.Mutex
	keys  map[string]*accountHold // held: name key → the connected account using it
	owned map[string]string       // owned: name key → the id of the account owning it
	owns  map[string]string       // account id → the name it owns
	store NameOwners              // nil: ownership is kept in memory only

	// rolesChanged is set once Host.Grant or Host.Revoke changed a
	// member's roles: presence events then look for guests with roles
	// too. A server of plain guests skips that part without looking.
	rolesChanged atomic.Bool
}

// accountHold is one account's hold on a name: id, and how many of its
// connections use the name.
type accountHold struct {
	id string
	n  int
}

// loadNameOwners reads who owns which name from no, the History's
// NameOwners or the cluster's SharedState (stateStores; New calls it
// once): from then on every ownership change is written there too. nil
// leaves ownership in memory.
func (a *accountNames) loadNameOwners(no NameOwners) error {
	a.owned = make(map[string]string)
	a.owns = make(map[string]string)
	if no == nil {
		return nil
	}
	owners, err := no.NameOwners()
	if err != nil {
		return fmt.Errorf("chat: loading the owners of names: %w", err)
	}
	for id, name := range owners {
		if id == "" || name == "" {
			continue
		}
		a.owns[id] = name
		for _, k := range nameKeys(name) {
			a.owned[k] = id
		}
	}
	a.store = no
	return nil
}

// claimedByOther reports whether name (or a look-alike) is owned or held
// by an account other than id ("" for a guest: any account's claim
// counts).
func (a *accountNames) claimedByOther(name, id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range nameKeys(name) {
		if h := a.keys[k]; h != nil && h.id != id {
			return true
		}
		if o, ok := a.owned[k]; ok && o != id {
			return true
		}
	}
	return false
}

// ownsLookAlike reports whether account id owns name or a look-alike.
func (a *accountNames) ownsLookAlike(id, name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range nameKeys(name) {
		if a.owned[k] == id {
			return true
		}
	}
	return false
}

// own makes account id the owner of name in memory, and no longer of the
// name it owned before (prev, "" when none); changed is false when it
// owned exactly name already. The caller persists the change, or undoes
// it with disown(id, name, prev).
func (a *accountNames) own(id, name string) (prev string, changed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev = a.owns[id]
	if prev == name {
		return prev, false
	}
	a.setOwnerLocked(id, prev, name)
	return prev, true
}

// disown undoes own(id, name) that returned prev, if nothing changed the
// account's name since.
func (a *accountNames) disown(id, name, prev string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.owns[id] == name {
		a.setOwnerLocked(id, name, prev)
	}
}

// setOwnerLocked moves account id's ownership from the name from to the
// name to ("" for none). a.mu must be held.
func (a *accountNames) setOwnerLocked(id, from, to string) {
	if a.owns == nil {
		a.owned, a.owns = make(map[string]string), make(map[string]string)
	}
	if from != "" {
		for _, k := range nameKeys(from) {
			if a.owned[k] == id {
				delete(a.owned, k)
			}
		}
	}
	if to == "" {
		delete(a.owns, id)
		return
	}
	a.owns[id] = to
	for _, k := range nameKeys(to) {
		a.owned[k] = id
	}
}

// hold records that account id uses name on one more connection.
func (a *accountNames) hold(name, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys = make(map[string]*accountHold)
	}
	for _, k := range nameKeys(name) {
		h := a.keys[k]
		if h == nil || h.id != id {
			// A different holder can only be there after a race between
			// two rooms; the newest connection's account takes the key.
			h = &accountHold{id: id}
			a.keys[k] = h
		}
		h.n++
	}
}

// release undoes one hold of name by id.
func (a *accountNames) release(name, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range nameKeys(name) {
		if h := a.keys[k]; h != nil && h.id == id {
			if h.n--; h.n <= 0 {
				delete(a.keys, k)
			}
		}
	}
}

// nameTaken is the taken function for giving m a name in r: used in the
// room, or claimed by another account anywhere. roster.mu must be held.
func (r *room) nameTaken(m *member) func(string) bool {
	return func(name string) bool {
		return r.roster.taken(name) || r.srv.accounts.claimedByOther(name, m.account)
	}
}

// giveName returns the name m gets when it asks for name in r: name, or
// its unique variant. A guest asking for a name an account claims gets
// Config.GuestPrefix+name instead, when the prefix is set and the result
// is a valid name (then made unique in turn). roster.mu must be held.
func (r *room) giveName(m *member, name string) string {
	s := r.srv
	max := s.cfg.MaxNameLength
	if m.account == "" && s.cfg.GuestPrefix != "" && s.accounts.claimedByOther(name, "") {
		if p, ok := prefixedName(s.cfg.GuestPrefix, name, max); ok {
			name = p
		}
	}
	return uniqueName(name, max, r.nameTaken(m))
}

// prefixedName is prefix+name as a checked name of at most max
// characters (name shortened to fit), or false when that is no valid
// name (the caller then falls back to the usual variant).
func prefixedName(prefix, name string, max int) (string, bool) {
	room := max - utf8.RuneCountInString(prefix)
	if room < 1 {
		return "", false
	}
	given, err := checkName(prefix+truncateRunes(name, room), max)
	return given, err == nil
}

// recordOwner makes m's account the owner of given, the name m was just
// given when it asked for wanted, and writes that down (NameOwners)
// before the caller announces m under it. Guests own nothing. A variant
// given only because the room already has a look-alike of a name the
// account owns (its own second connection, say) leaves the ownership as
// it is. When the change cannot be written the ownership is restored and
// the error is returned: the caller refuses the join or rename (fail
// closed: a name that is not on record would not be the account's after
// a restart), logged and counted here. roster.mu is held: only this
// room's Host readers wait for the write, which happens only when an
// account's name changes.
func (s *Server) recordOwner(m *member, wanted, given string) error {
	id := m.account
	if id == "" {
		return nil
	}
	a := &s.accounts
	if given != wanted && a.ownsLookAlike(id, wanted) {
		return nil
	}
	// In a cluster the write is pending before the change is made here,
	// so that an older change of id's name handed in meanwhile is not
	// applied over it (shared.go).
	pending := func() {}
	if s.shared != nil {
		pending = s.sharedWrote("n"+id, given)
	}
	prev, changed := a.own(id, given)
	if !changed || a.store == nil {
		pending()
		return nil
	}
	if err := a.store.SetNameOwner(id, given); err != nil {
		pending()
		a.disown(id, given, prev)
		s.metrics.nameOwnerErrors.Add(1)
		s.log.Error("chat: recording the owner of a name failed", "room", m.roomName, "session", m.id, "name", given, "err", err)
		return fmt.Errorf("%w: the server could not record %q as your name; try again later", ErrNameNotRecorded, given)
	}
	return nil
}

// holdName and releaseName keep the server-wide table in step with an
// account member's name (no-ops for guests).
func (s *Server) holdName(m *member, name string) {
	if m.account != "" {
		s.accounts.hold(name, m.account)
	}
}

func (s *Server) releaseName(m *member, name string) {
	if m.account != "" {
		s.accounts.release(name, m.account)
	}
}

// any reports whether any account is connected: a server of guests alone
// skips the accounts part of presence events without looking.
func (a *accountNames) any() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys) > 0
}

// accountInfo is what moonchat.v1 presence events say about a member with
// an account, or a guest whose session was granted roles: its name,
// account id ("" for a guest) and roles.
type accountInfo struct {
	name, id string
	roles    []string
}

// accountsIn returns the members of r whose current name is in names and
// that have an account or roles besides "guest", in names' order: the
// "accounts" and "guests" of a presence event listing names. Plain guests
// are left out (a name in neither is a guest).
func (r *room) accountsIn(names []string) []accountInfo {
	a := &r.srv.accounts
	if len(names) == 0 || (!a.any() && !a.rolesChanged.Load()) {
		return nil
	}
	ro := &r.roster
	byName := make(map[string]*member)
	ro.mu.Lock()
	for _, m := range ro.members {
		if m.account != "" || !guestOnly(m.currentRoles()) {
			byName[m.currentName()] = m
		}
	}
	ro.mu.Unlock()
	var out []accountInfo
	for _, n := range names {
		if m := byName[n]; m != nil {
			out = append(out, accountInfo{name: n, id: m.account, roles: m.currentRoles()})
		}
	}
	return out
}

// withAccounts adds `"accounts":{NAME:{"id":…,"roles":[…]},…}` (members
// with an account) and `"guests":{NAME:{"roles":[…]},…}` (guests granted
// roles) to the JSON object that ends b; each only when not empty.
func withAccounts(b []byte, accs []accountInfo) []byte {
	if len(accs) == 0 || len(b) == 0 || b[len(b)-1] != '}' {
		return b
	}
	b = b[:len(b)-1]
	for _, guests := range [...]bool{false, true} {
		n := 0
		for _, a := range accs {
			if (a.id == "") != guests {
				continue
			}
			if n == 0 {
				if guests {
					b = append(b, `,"guests":{`...)
				} else {
					b = append(b, `,"accounts":{`...)
				}
			} else {
				b = append(b, ',')
			}
			n++
			b = appendJSONString(b, a.name)
			b = append(b, ':')
			if guests {
				b = append(b, `{"roles":[`...)
				b = appendJSONStrings(b, a.roles)
				b = append(b, ']')
			} else {
				b = append(b, `{"id":`...)
				b = appendJSONString(b, a.id)
				b = appendJSONRoles(b, a.roles)
			}
			b = append(b, '}')
		}
		if n > 0 {
			b = append(b, '}')
		}
	}
	return append(b, '}')
}

// appendJSONRoles appends `,"roles":[…]`.
func appendJSONRoles(b []byte, roles []string) []byte {
	b = append(b, `,"roles":[`...)
	b = appendJSONStrings(b, roles)
	return append(b, ']')
}

// appendJSONStrings appends list as comma-separated JSON strings.
func appendJSONStrings(b []byte, list []string) []byte {
	for i, r := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r)
	}
	return b
}
