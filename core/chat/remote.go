package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Cluster presence (issue 15; shared_seams.go, docs/cluster.md). With
// Config.Presence set, a room's members are the whole cluster's:
//
//   - this node's member claims its name in the room for the cluster
//     (Presence.Claim) before anyone is told of it, at its join and at
//     every rename or change of roles; a name another node's member holds
//     (ErrNameTaken) makes the member take the next variant, as a name
//     used in the room does on a single node; a claim that cannot be made
//     refuses the join or rename (fail closed). Its leave releases the
//     name (Presence.Release). The room goroutine waits for the claims, so
//     the joins of one batch are claimed together (joinRun) and its
//     leaves released together after it (releasePending): a burst costs
//     a few round trips to the cluster, not one per member. A member
//     whose claim the cluster lost while this node was cut off is
//     disconnected (PresenceLost);
//   - the other nodes' members come in through the PresenceApplier
//     methods (RemoteJoined, RemoteLeft), called by the node's watcher.
//     They are kept at server level (remoteState), whether or not the room
//     has a goroutine here, and handed to a room with a goroutine as an
//     operation (opRemote): the room adds them to its name table (a
//     newcomer here cannot take their names or look-alikes), its presence
//     lists and Host.Users, and announces them like its own members,
//     through the same presence deltas and coalescing (presence.go);
//   - a remote member has a local session id of its own (synthetic,
//     from the server's session counter), so that Host.Users lists it like
//     the others and Host.Kick of it asks its node (Presence.Kick). Host
//     methods that act on a member's connection (Send, Action, Rename,
//     Grant, ...) cannot reach another node's member: ErrRemoteMember.

// ErrRemoteMember is returned by the Host methods that act on a member's
// connection (Send, Action, Rename, Grant, Revoke, ...) for the session id
// of a member of another node of the cluster (User.Node is set): only a
// kick reaches it from here.
var ErrRemoteMember = errors.New("that member is connected to another node of the cluster: only a kick reaches it from here")

// presenceTimeout bounds each call to Config.Presence (a claim, a release,
// a kick): a cluster that does not answer in that time is unavailable.
const presenceTimeout = 10 * time.Second

// maxClaimTries bounds the variants a join or rename tries when other
// nodes hold the names (ErrNameTaken): the room's table normally knows
// them already, so only a race with another node's newcomer gets here.
const maxClaimTries = 8

// remoteKey names another node's member: session ids are per node.
type remoteKey struct {
	node    string
	session uint64
}

// remoteMember is another node's member of a room as this node knows it.
// Immutable once made: a rename or new roles make a new one (with the
// same sid), so that the server level and the rooms share them.
type remoteMember struct {
	key  remoteKey
	sid  uint64 // the local synthetic SessionID (Host.Users, Host.Kick)
	room string
	e    PresenceEntry
	keys []string // e.Keys, or nameKeys(e.Name) when the entry had none
}

// user returns the Host view of rm.
func (rm *remoteMember) user() User {
	return User{SessionID: rm.sid, Name: rm.e.Name, Room: rm.room, ID: rm.e.Account, Roles: rm.e.Roles, Node: rm.key.node}
}

// remoteState is what the watcher told this node of the other nodes'
// members, by room, whether or not the room has a goroutine here.
//
// Invariants:
//   - guarded by Server.mu: the watcher changes it and hands the change to
//     s.rooms[room] under the same lock that registers a room, and a new
//     room copies its room's members as it is made (newRoom, under
//     Server.mu): every change reaches a room either in its copy or as an
//     opRemote after it, never both, never neither;
//   - sids maps every synthetic session id in rooms to its member's
//     current remoteMember.
type remoteState struct {
	rooms map[string]map[remoteKey]*remoteMember
	sids  map[uint64]*remoteMember
}

// remoteStates holds each Server's remoteState.
//
// TODO(issue 15): this belongs in a Server field (`remote remoteState`,
// server.go), which another helper owns in this step; remote() is the
// one accessor to change.
var remoteStates sync.Map // *Server → *remoteState

// remote returns s's remoteState; Server.mu must be held.
func (s *Server) remote() *remoteState {
	if v, ok := remoteStates.Load(s); ok {
		return v.(*remoteState)
	}
	st := &remoteState{rooms: make(map[string]map[remoteKey]*remoteMember), sids: make(map[uint64]*remoteMember)}
	v, _ := remoteStates.LoadOrStore(s, st)
	return v.(*remoteState)
}

var _ PresenceApplier = (*Server)(nil)

// RemoteJoined implements PresenceApplier: another node's member e is in
// room (a newcomer, or a rename or new roles of one already there). It
// never waits for a room: a room with a goroutine here gets the change as
// an operation. An entry of this node, or for an invalid room, is
// ignored, and so is every entry on a server without Config.Presence
// (its rooms claim nothing: they could not keep names unique).
func (s *Server) RemoteJoined(room string, e PresenceEntry) {
	if s.presence == nil || e.Node == s.presence.Node() {
		return
	}
	if ValidRoomName(room) != nil || e.Node == "" || e.Name == "" {
		s.log.Warn("chat: ignoring an invalid presence entry", "room", room, "node", e.Node, "session", e.Session, "name", e.Name)
		return
	}
	key := remoteKey{e.Node, e.Session}
	e.Keys = slices.Clone(e.Keys)
	e.Roles = slices.Clone(e.Roles)
	rm := &remoteMember{key: key, room: room, e: e, keys: e.Keys}
	if len(rm.keys) == 0 {
		rm.keys = nameKeys(e.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.remote()
	members := st.rooms[room]
	if members == nil {
		members = make(map[remoteKey]*remoteMember)
		st.rooms[room] = members
	}
	old := members[key]
	if old != nil && sameEntry(old.e, e) {
		return // told again (a watcher may repeat a change)
	}
	if old != nil {
		rm.sid = old.sid
	} else {
		rm.sid = s.nextSession.Add(1)
	}
	members[key] = rm
	st.sids[rm.sid] = rm
	if r := s.rooms[room]; r != nil {
		r.enqueue(op{kind: opRemote, remote: rm})
	}
}

// RemoteLeft implements PresenceApplier: node's member session left room
// (or node is gone). Unknown members are ignored.
func (s *Server) RemoteLeft(room, node string, session uint64) {
	if s.presence == nil {
		return
	}
	key := remoteKey{node, session}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.remote()
	members := st.rooms[room]
	rm := members[key]
	if rm == nil {
		return
	}
	delete(members, key)
	if len(members) == 0 {
		delete(st.rooms, room)
	}
	delete(st.sids, rm.sid)
	if r := s.rooms[room]; r != nil {
		r.enqueue(op{kind: opRemote, remote: rm, remoteGone: true})
	}
}

// sameEntry reports whether a and b say the same of one member.
func sameEntry(a, b PresenceEntry) bool {
	return a.Name == b.Name && a.Account == b.Account && a.Joined.Equal(b.Joined) &&
		slices.Equal(a.Roles, b.Roles) && slices.Equal(a.Keys, b.Keys)
}

// remoteSession returns the remote member whose synthetic session id is
// sid, or nil.
func (s *Server) remoteSession(sid uint64) *remoteMember {
	if s.presence == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote().sids[sid]
}

// noSession is the error of a Host method given a session id that is no
// member of this node: ErrRemoteMember (wrapped with who and where) for
// another node's member, else ErrNoSuchUser.
func (s *Server) noSession(sid uint64) error {
	if rm := s.remoteSession(sid); rm != nil {
		return fmt.Errorf("%w (%s, on node %s)", ErrRemoteMember, rm.e.Name, rm.key.node)
	}
	return ErrNoSuchUser
}

// remoteUsers returns the remote members of room known at server level,
// in join order (Host.Users of a room without a goroutine here).
func (s *Server) remoteUsers(room string) []User {
	if s.presence == nil {
		return nil
	}
	s.mu.Lock()
	list := sortedRemote(s.remote().rooms[room])
	s.mu.Unlock()
	users := make([]User, len(list))
	for i, rm := range list {
		users[i] = rm.user()
	}
	return users
}

// remoteRooms appends the rooms where other nodes have members.
func (s *Server) remoteRooms(names []string) []string {
	if s.presence == nil {
		return names
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for room, members := range s.remote().rooms {
		if len(members) > 0 {
			names = append(names, room)
		}
	}
	return names
}

// sortedRemote returns members in join order (ties by node and session).
func sortedRemote(members map[remoteKey]*remoteMember) []*remoteMember {
	list := make([]*remoteMember, 0, len(members))
	for _, rm := range members {
		list = append(list, rm)
	}
	slices.SortFunc(list, func(a, b *remoteMember) int {
		if c := a.e.Joined.Compare(b.e.Joined); c != 0 {
			return c
		}
		if a.key.node != b.key.node {
			if a.key.node < b.key.node {
				return -1
			}
			return 1
		}
		switch {
		case a.key.session < b.key.session:
			return -1
		case a.key.session > b.key.session:
			return 1
		}
		return 0
	})
	return list
}

// kickRemote routes a kick of a remote member's synthetic session id to
// its node (Presence.Kick), which kicks and audits it as by. It reports
// false when sid is no remote member (the caller kicks locally).
func (s *Server) kickRemote(sid uint64, reason, by string) (bool, error) {
	rm := s.remoteSession(sid)
	if rm == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
	defer cancel()
	if err := s.presence.Kick(ctx, rm.key.node, rm.key.session, reason, by); err != nil {
		s.presenceFailed("kick", rm.room, err)
		return true, fmt.Errorf("kick %s on node %s: %w", rm.e.Name, rm.key.node, err)
	}
	return true, nil
}

// presenceFailed logs and counts a call to Config.Presence that failed.
func (s *Server) presenceFailed(what, room string, err error) {
	s.metrics.presenceErrors.Add(1)
	s.log.Warn("chat: cluster presence "+what+" failed", "room", room, "err", err)
}

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

// claimName gives m, asking for wanted, a name in r: giveName's, which is
// then claimed for the cluster when Config.Presence is set. A name another
// node's member holds (ErrNameTaken) is treated as used in the room: the
// next variant is tried, at most maxClaimTries names in all. Any other
// error refuses the name. roster.mu must be held (the room's Host readers
// wait for the claim: it happens only at joins, renames and role changes).
func (r *room) claimName(m *member, wanted string) (string, error) {
	return r.claimNameAfter(m, wanted, "")
}

// claimNameAfter is claimName when the cluster already refused the name
// refused ("": none), which counts as one of the tries.
func (r *room) claimNameAfter(m *member, wanted, refused string) (string, error) {
	if r.srv.presence == nil {
		return r.giveName(m, wanted), nil
	}
	ro := &r.roster
	defer func() { ro.refused = nil }()
	err := ErrNameTaken
	tries := maxClaimTries
	if refused != "" {
		ro.refused = make(map[string]bool)
		for _, k := range nameKeys(refused) {
			ro.refused[k] = true
		}
		tries--
	}
	for range tries {
		name := r.giveName(m, wanted)
		if err = r.srv.claim(r.name, m, name); err == nil {
			return name, nil
		}
		if !errors.Is(err, ErrNameTaken) {
			return "", err
		}
		if ro.refused == nil {
			ro.refused = make(map[string]bool)
		}
		for _, k := range nameKeys(name) {
			ro.refused[k] = true
		}
	}
	return "", err
}

// preclaim is a claim joinRun made for a joiner: the name it chose (and
// reserved in the room) and the claim's result.
type preclaim struct {
	name string
	err  error
}

// claimFor gives m, asking for wanted, its name in the room at its join
// (enter; roster.mu held, m.joinedAt set): claimName's, or pre's when
// joinRun claimed one for m (its reservation is dropped; a name the
// cluster refused counts as one try of claimName).
func (r *room) claimFor(m *member, wanted string, pre *preclaim) (string, error) {
	if pre == nil {
		m.joinedAt = nowUTC()
		return r.claimName(m, wanted)
	}
	r.roster.unreserve(pre.name, m)
	switch {
	case pre.err == nil:
		return pre.name, nil
	case errors.Is(pre.err, ErrNameTaken):
		return r.claimNameAfter(m, wanted, pre.name)
	}
	return "", pre.err
}

// joinParallel bounds the claims joinRun has under way at once.
const joinParallel = 32

// joinRun joins the members of a run of opJoin operations of one batch
// (cluster presence, more than one): each is admitted in turn (rules,
// bans, join hook), then each admitted one is given a name in turn,
// reserved in the room, and the names are claimed for the cluster
// together, up to joinParallel at once, before each member enters in
// turn. A burst of joins (the clients of a restarted node coming back)
// thus costs the room goroutine a few round trips to the cluster rather
// than one per member. The difference a script can see: the join hooks
// of a run all run before its first member is in the room. A name the
// cluster refused is claimed again at the member's turn (claimFor).
func (r *room) joinRun(ops []op) {
	s := r.srv
	type joiner struct {
		m      *member
		wanted string
		pre    preclaim
	}
	var js []joiner
	for i := range ops {
		if name, ok := r.admit(ops[i].m); ok {
			js = append(js, joiner{m: ops[i].m, wanted: name})
		}
	}
	if len(js) == 0 {
		return
	}
	r.releasePending()
	ro := &r.roster
	ro.mu.Lock()
	for i := range js {
		j := &js[i]
		j.m.joinedAt = nowUTC()
		j.pre.name = r.giveName(j.m, j.wanted)
		ro.reserve(j.pre.name, j.m)
	}
	ro.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, joinParallel)
	for i := range js {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j := &js[i]
			j.pre.err = s.claim(r.name, j.m, j.pre.name)
		}()
	}
	wg.Wait()
	for i := range js {
		r.enter(js[i].m, js[i].wanted, &js[i].pre)
	}
}

// reserve holds name for m while joinRun claims it (roster.mu held):
// taken reports it used.
func (ro *roster) reserve(name string, m *member) {
	if ro.reserved == nil {
		ro.reserved = make(map[string]*member)
	}
	for _, k := range nameKeys(name) {
		ro.reserved[k] = m
	}
}

// unreserve drops m's reservation of name (roster.mu held).
func (ro *roster) unreserve(name string, m *member) {
	for _, k := range nameKeys(name) {
		if ro.reserved[k] == m {
			delete(ro.reserved, k)
		}
	}
	if len(ro.reserved) == 0 {
		ro.reserved = nil
	}
}

// claim records m as name in room for the cluster (Presence.Claim) with
// its roles now. An error that is not ErrNameTaken is logged and counted
// here; a claim that did not answer in time is ErrUnavailable.
func (s *Server) claim(room string, m *member, name string) error {
	ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
	defer cancel()
	e := PresenceEntry{
		Node: s.presence.Node(), Session: m.id, Name: name, Keys: nameKeys(name),
		Account: m.account, Roles: m.currentRoles(), Joined: m.joinedAt,
	}
	err := s.presence.Claim(ctx, room, e)
	if err == nil || errors.Is(err, ErrNameTaken) {
		return err
	}
	if !errors.Is(err, ErrUnavailable) && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.presenceFailed("claim", room, err)
	return err
}

// reclaim claims m's name again with its roles now (opRoles: Host.Grant
// or Host.Revoke changed them). A failure is logged and counted: the
// roles stand here, the cluster's roster has the old ones until the next
// claim.
func (r *room) reclaim(m *member) {
	if r.srv.presence == nil || !m.joined.Load() {
		return
	}
	ro := &r.roster
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if m.joined.Load() {
		_ = r.srv.claim(r.name, m, m.currentName())
	}
}

// releaseClaim takes m out of room's cluster roster at once (a join
// refused after its claim). A failure is logged and counted; the Presence
// releases it later (docs of Release).
func (s *Server) releaseClaim(room string, m *member) {
	if s.presence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
	defer cancel()
	if err := s.presence.Release(ctx, room, m.id); err != nil {
		s.presenceFailed("release", room, err)
	}
}

// releaseParallel bounds the releases a room has under way at once
// (releasePending).
const releaseParallel = 32

// releaseLater queues the release of m's claim (its leave) until the end
// of the room's batch (releasePending), so that a burst of leaves (a
// proxy dropping its clients, a shutdown) costs the room goroutine a few
// round trips to the cluster rather than one per member.
func (r *room) releaseLater(m *member) {
	if r.srv.presence != nil {
		r.unclaim = append(r.unclaim, m.id)
	}
}

// releasePending releases the claims releaseLater queued, up to
// releaseParallel at once, and waits for them (room goroutine: at the end
// of a batch, and before a join claims a name, so that a name left just
// before is free in the cluster too). Failures are counted, and logged in
// one line: the Presence releases those later (docs of Release).
func (r *room) releasePending() {
	ids := r.unclaim
	if len(ids) == 0 {
		return
	}
	s := r.srv
	var (
		mu     sync.Mutex
		failed int
		first  error
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, releaseParallel)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
			defer cancel()
			if err := s.presence.Release(ctx, r.name, id); err != nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.unclaim = ids[:0]
	if failed > 0 {
		s.metrics.presenceErrors.Add(uint64(failed))
		s.log.Warn("chat: cluster presence release failed", "room", r.name, "sessions", failed, "of", len(ids), "err", first)
	}
}

// refuseClaim turns m away when its name could not be claimed for the
// cluster: ErrUnavailable (the cluster cannot be reached) with the error
// code "unavailable" and close 1013, as a post is refused; anything else
// with "refused" (the name could not be reserved).
func (s *Server) refuseClaim(m *member, err error) {
	if !errors.Is(err, ErrUnavailable) {
		s.refuse(m, ws.StatusTryAgainLater, "join refused: your name could not be reserved in the cluster; try again later")
		return
	}
	text := "join refused: " + ErrUnavailable.Error()
	s.metrics.refused.Add(1)
	m.write(m.appendError(nil, codeUnavailable, text))
	_ = m.conn.Close(ws.StatusTryAgainLater, closeReason(text))
}

// renameRefused is Host.Rename's error when the new name could not be
// claimed for the cluster.
func renameRefused(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("rename refused: %w", ErrUnavailable)
	}
	return fmt.Errorf("rename refused: the name could not be reserved in the cluster: %w", err)
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

// presenceLostText is what a member whose claim the cluster lost is told
// before its connection closes (PresenceLost).
const presenceLostText = "this server was cut off from the cluster and your name went to someone else; reconnect to join again"

// PresenceLost disconnects this node's member session of room whose claim
// the cluster's roster no longer holds: its name went to another member
// while this node was counted dead (cut off from the cluster too long;
// package cluster reports it through PresenceConfig.OnLost). Keeping it
// would leave two members with one name. It is sent a notice and closed
// with 1013 (try again later): reconnecting, it claims a name afresh.
// Unknown sessions, or one in another room, are ignored. It never waits
// for the room.
func (s *Server) PresenceLost(room string, session uint64) {
	m := s.session(session)
	if m == nil || m.roomName != room || m.room == nil {
		return
	}
	s.log.Warn("chat: a member's name was taken in the cluster while this node was cut off: disconnecting it", "room", room, "session", session, "name", m.currentName())
	m.room.enqueue(op{kind: opKick, m: m, notice: presenceLostText, closeCode: ws.StatusTryAgainLater})
}
