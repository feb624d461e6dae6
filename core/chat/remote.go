package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Cluster presence (issue 15; shared_seams.go, docs/cluster.md). With
// Config.Presence set, a room's members are the whole cluster's (this
// file: the other nodes' members at server level and the Host's view of
// them; remote_roster.go: a room's copy; remote_claim.go: claims):
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

// remote returns s's remoteState; Server.mu must be held.
func (s *Server) remote() *remoteState {
	if s.remoteSt.rooms == nil {
		s.remoteSt.rooms = make(map[string]map[remoteKey]*remoteMember)
		s.remoteSt.sids = make(map[uint64]*remoteMember)
	}
	return &s.remoteSt
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
	if rm.e.Account == "" {
		s.dm.dropRemote(key) // a guest's conversations end with its session (direct_relay.go)
	}
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
