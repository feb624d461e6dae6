package chat

import (
	"slices"
)

// A room's copy of the other nodes' members (cluster presence, remote.go):
// its table, what the room does with their joins, leaves and changes, and
// their accounts in presence events.

// remoteRoster is a room's copy of the other nodes' members (roster.remote).
//
// Invariants:
//   - written by the room goroutine under roster.mu (opRemote, and newRoom
//     before the goroutine starts), read under roster.mu;
//   - order holds the members in the order the room learnt of them (the
//     copy made by newRoom in join order), with nil holes left by leaves;
//     idx maps each member's key to its index; holes counts the nils and
//     is compacted away once they are half of order (a leave is O(1)
//     amortised: a room of 100,000 members churns without scanning);
//   - names maps every name key of every member to it.
type remoteRoster struct {
	idx   map[remoteKey]int
	order []*remoteMember
	holes int
	names map[string]*remoteMember
}

// len is the number of remote members.
func (rr *remoteRoster) len() int { return len(rr.order) - rr.holes }

// put adds rm, or replaces the member with its key; it returns the
// member replaced (nil for a newcomer).
func (rr *remoteRoster) put(rm *remoteMember) *remoteMember {
	if rr.idx == nil {
		rr.idx = make(map[remoteKey]int)
		rr.names = make(map[string]*remoteMember)
	}
	var old *remoteMember
	if i, ok := rr.idx[rm.key]; ok {
		old = rr.order[i]
		rr.unname(old)
		rr.order[i] = rm
	} else {
		rr.idx[rm.key] = len(rr.order)
		rr.order = append(rr.order, rm)
	}
	for _, k := range rm.keys {
		rr.names[k] = rm
	}
	return old
}

// remove takes out the member with key and returns it (nil: unknown).
func (rr *remoteRoster) remove(key remoteKey) *remoteMember {
	i, ok := rr.idx[key]
	if !ok {
		return nil
	}
	old := rr.order[i]
	rr.unname(old)
	delete(rr.idx, key)
	rr.order[i] = nil
	rr.holes++
	if rr.holes > 16 && rr.holes*2 > len(rr.order) {
		kept := rr.order[:0]
		for _, x := range rr.order {
			if x != nil {
				rr.idx[x.key] = len(kept)
				kept = append(kept, x)
			}
		}
		clear(rr.order[len(kept):])
		rr.order, rr.holes = kept, 0
	}
	return old
}

// unname drops rm's name keys.
func (rr *remoteRoster) unname(rm *remoteMember) {
	for _, k := range rm.keys {
		if rr.names[k] == rm {
			delete(rr.names, k)
		}
	}
}

// byName returns the member called name, or nil.
func (rr *remoteRoster) byName(name string) *remoteMember {
	if len(rr.names) == 0 {
		return nil
	}
	for _, k := range nameKeys(name) {
		if rm := rr.names[k]; rm != nil && rm.e.Name == name {
			return rm
		}
	}
	return nil
}

// loadRemote copies the server-level remote members of r's room into its
// roster (newRoom, under Server.mu, before the room goroutine starts).
func (r *room) loadRemote() {
	s := r.srv
	if s.presence == nil {
		return
	}
	for _, rm := range sortedRemote(s.remote().rooms[r.name]) {
		r.roster.remote.put(rm)
	}
}

// remoteChanged applies an opRemote: another node's member joined, left,
// was renamed or got new roles; the room's members are told as of its
// own members (presence delta and notices, coalesced in a big room).
func (r *room) remoteChanged(o *op) {
	ro := &r.roster
	rm := o.remote
	if o.remoteGone {
		ro.mu.Lock()
		old := ro.remote.remove(rm.key)
		ro.mu.Unlock()
		if old != nil {
			r.announceLeft(old.e.Name)
		}
		return
	}
	ro.mu.Lock()
	for _, k := range rm.keys {
		if x := ro.names[k]; x != nil {
			// Two members with look-alike names: the cluster's roster
			// let both claim them (its state was lost, or healed after
			// a split). Both stay; the roster's reconciliation decides.
			r.srv.log.Warn("chat: another node's member has a look-alike of a name used here", "room", r.name, "name", rm.e.Name, "node", rm.key.node, "local", x.currentName())
			break
		}
	}
	old := ro.remote.put(rm)
	ro.mu.Unlock()
	switch {
	case old == nil:
		r.announceJoined(rm.e.Name)
	case old.e.Name != rm.e.Name:
		r.announceRename(old.e.Name, rm.e.Name)
	}
	if old != nil && (old.e.Account != rm.e.Account || !slices.Equal(old.e.Roles, rm.e.Roles)) && len(ro.json) > 0 {
		start := len(r.out.arena)
		r.out.arena = appendJSONRolesEvent(r.out.arena, r.name, rm.e.Name, rm.e.Account, rm.e.Roles)
		r.out.json = append(r.out.json, span{start, len(r.out.arena)})
	}
}

// presenceAccounts is accountsIn for names that may include remote
// members: the members with an account or roles besides "guest", in
// names' order.
func (r *room) presenceAccounts(names []string) []accountInfo {
	local := r.accountsIn(names)
	ro := &r.roster
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.remote.len() == 0 || len(names) == 0 {
		return local
	}
	var out []accountInfo
	li := 0
	for _, n := range names {
		if li < len(local) && local[li].name == n {
			out = append(out, local[li])
			li++
			continue
		}
		if rm := ro.remote.byName(n); rm != nil && (rm.e.Account != "" || !guestOnly(rm.e.Roles)) {
			out = append(out, accountInfo{name: n, id: rm.e.Account, roles: rm.e.Roles})
		}
	}
	return out
}
