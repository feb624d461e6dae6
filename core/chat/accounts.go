package chat

import "sync"

// accountNames is the server-wide table of the names that connected
// accounts hold: an authenticated user's nick is theirs in every room,
// so a guest (or another account) asking for it anywhere gets a variant
// ("alice-2"), as for a name taken in the room. Names are compared by
// nameKeys, as in a room's nameTable. The table lives only as long as the
// process and holds only connected accounts: a name is held from an
// account's first connection until its last one leaves. It is a leaf lock:
// taken under a room's roster.mu, never the other way round.
type accountNames struct {
	mu   sync.Mutex
	keys map[string]*accountHold // name key → the account holding it
}

// accountHold is one account's hold on a name: id, and how many of its
// connections use the name.
type accountHold struct {
	id string
	n  int
}

// heldByOther reports whether name (or a look-alike) is held by an
// account other than id ("" for a guest: any account's hold counts).
func (a *accountNames) heldByOther(name, id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range nameKeys(name) {
		if h := a.keys[k]; h != nil && h.id != id {
			return true
		}
	}
	return false
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
// room, or held by another account anywhere. roster.mu must be held.
func (r *room) nameTaken(m *member) func(string) bool {
	return func(name string) bool {
		return r.roster.taken(name) || r.srv.accounts.heldByOther(name, m.account)
	}
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
// an account: its name, account id and roles.
type accountInfo struct {
	name, id string
	roles    []string
}

// accountsIn returns the members of r with an account whose current name
// is in names, in names' order: the "accounts" of a presence event listing
// names. Guests are left out (a name not in it is a guest).
func (r *room) accountsIn(names []string) []accountInfo {
	if len(names) == 0 || !r.srv.accounts.any() {
		return nil
	}
	ro := &r.roster
	byName := make(map[string]*member)
	ro.mu.Lock()
	for _, m := range ro.members {
		if m.account != "" {
			byName[m.currentName()] = m
		}
	}
	ro.mu.Unlock()
	var out []accountInfo
	for _, n := range names {
		if m := byName[n]; m != nil {
			out = append(out, accountInfo{name: n, id: m.account, roles: m.roles})
		}
	}
	return out
}

// withAccounts adds `"accounts":{NAME:{"id":…,"roles":[…]},…}` to the
// JSON object that ends b (none when accs is empty).
func withAccounts(b []byte, accs []accountInfo) []byte {
	if len(accs) == 0 || len(b) == 0 || b[len(b)-1] != '}' {
		return b
	}
	b = append(b[:len(b)-1], `,"accounts":{`...)
	for i, a := range accs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, a.name)
		b = append(b, `:{"id":`...)
		b = appendJSONString(b, a.id)
		b = appendJSONRoles(b, a.roles)
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

// appendJSONRoles appends `,"roles":[…]`.
func appendJSONRoles(b []byte, roles []string) []byte {
	b = append(b, `,"roles":[`...)
	for i, r := range roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r)
	}
	return append(b, ']')
}
