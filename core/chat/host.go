package chat

import (
	"fmt"
	"slices"
	"strings"
)

// This file implements Host, the scripts' API. None of these methods waits
// for a room goroutine: they read under short locks or queue an operation
// that the room performs in order with its other work. That is what makes
// them safe to call from inside a hook, which runs on the room goroutine.

// session returns the member with sessionID, or nil.
func (s *Server) session(sessionID uint64) *member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sessionID]
}

// Send delivers a notice ("* TEXT" in plain text, a "system" event in JSON)
// to one member only, after anything the room already queued.
func (s *Server) Send(sessionID uint64, text string) error {
	m := s.session(sessionID)
	if m == nil {
		return s.noSession(sessionID)
	}
	if !m.room.enqueue(op{kind: opSend, m: m, notice: text}) {
		return ErrServerClosed
	}
	return nil
}

// Broadcast delivers a system notice to every member of room. It is not
// stored in history. In a cluster whose Broker carries notices
// (NoticeBroker) it reaches the room's members on every node, and a room
// whose members are all on other nodes is a room; it fails, wrapping
// ErrUnavailable, while the node cannot reach the cluster.
func (s *Server) Broadcast(room, text string) error {
	s.mu.Lock()
	r := s.rooms[room]
	elsewhere := s.presence != nil && len(s.remote().rooms[room]) > 0
	s.mu.Unlock()
	if r == nil && !elsewhere {
		return fmt.Errorf("broadcast to %q: %w", room, ErrNoSuchRoom)
	}
	if nb, ok := s.broker.(NoticeBroker); ok {
		// Every node's members, this node's through Noticed like the
		// others'.
		if err := nb.PublishNotice(room, text); err != nil {
			return fmt.Errorf("broadcast to %q: %w: %w", room, ErrUnavailable, err)
		}
		return nil
	}
	if r == nil {
		return fmt.Errorf("broadcast to %q: %w", room, ErrNoSuchRoom)
	}
	if !r.enqueue(op{kind: opBroadcast, notice: text}) {
		return ErrServerClosed
	}
	return nil
}

// Action posts text as a /me action of a member ("* alice waves" in plain
// text, a "message" event with "action": true in JSON). It takes the path
// of a chat message the member sent: message hooks (with Message.Action
// set; its text is never a command), History.Append, then the room, in
// order with the room's other messages. The text follows the rules for
// chat messages (at most Config.MaxTextBytes, no control characters but
// tab and line breaks).
func (s *Server) Action(sessionID uint64, text string) error {
	m := s.session(sessionID)
	if m == nil {
		return s.noSession(sessionID)
	}
	switch {
	case text == "":
		return fmt.Errorf("%w: empty", ErrInvalidText)
	case len(text) > s.cfg.MaxTextBytes:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidText, s.cfg.MaxTextBytes)
	}
	if why := textProblem(text); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidText, why)
	}
	m.acquire() // released by the room once the message is done, as for OnMessage
	if !m.room.enqueue(op{kind: opMessage, m: m, text: text, at: nowUTC(), action: true}) {
		m.inflight.Add(-1)
		return ErrServerClosed
	}
	return nil
}

// Rename changes a member's name at once (validated, made unique in the
// room, and in a cluster with Config.Presence claimed for the whole room
// first: a name another node's member holds gives the next variant, a
// cluster that cannot be reached refuses the rename with an error
// wrapping ErrUnavailable) and queues its announcement; it returns the
// name actually given. Renaming to the current name changes nothing and
// announces nothing.
func (s *Server) Rename(sessionID uint64, newName string) (string, error) {
	m := s.session(sessionID)
	if m == nil {
		return "", s.noSession(sessionID)
	}
	newName, err := checkName(newName, s.cfg.MaxNameLength)
	if err != nil {
		return "", err
	}
	if why := s.muteRefusal(m); why != "" {
		return "", fmt.Errorf("%w: %s", ErrMuted, strings.TrimPrefix(why, "message not sent: "))
	}
	if m.account == "" && s.mod.idx.Load().n > 0 {
		if s.mod.idx.Load().find(KindBan, m.roomName, subject{name: newName}, s.cfg.Clock.Now()) != nil {
			return "", fmt.Errorf("%w: %s", ErrBanned, newName)
		}
	}
	r := m.room
	r.roster.mu.Lock()
	if !m.joined.Load() {
		r.roster.mu.Unlock()
		return "", ErrNoSuchUser
	}
	old := m.currentName()
	if old == newName {
		r.roster.mu.Unlock()
		return old, nil
	}
	r.roster.names.remove(old, m)
	s.releaseName(m, old)
	given, err := r.claimName(m, newName) // for the cluster too (remote.go)
	if err != nil {
		r.roster.names.add(old, m)
		s.holdName(m, old)
		r.roster.mu.Unlock()
		return "", renameRefused(err)
	}
	if err := s.recordOwner(m, newName, given); err != nil {
		if s.presence != nil && given != old {
			// The cluster holds given for m now: it gets old back.
			_ = s.claim(r.name, m, old)
		}
		r.roster.names.add(old, m)
		s.holdName(m, old)
		r.roster.mu.Unlock()
		return "", err
	}
	r.roster.names.add(given, m)
	s.holdName(m, given)
	m.name.Store(&given)
	if given != old {
		// Queued under roster.mu: a roles event (Host.Grant) names the
		// member as it reads it under the same lock, so both events
		// reach the room in the order the changes were made.
		r.enqueue(op{kind: opRenamed, m: m, oldName: old})
	}
	r.roster.mu.Unlock()
	return given, nil
}

// Kick closes a member's connection with code 1000, after sending reason
// as a notice when it is not empty. It is audited as by "script" (KickBy
// names who acted). Another node's member (User.Node set) is kicked by
// its node, asked through Config.Presence: Kick returns once it has (or
// with the error), and that node audits it.
func (s *Server) Kick(sessionID uint64, reason string) error {
	return s.KickBy(sessionID, reason, auditByScript)
}

// Users lists the members of room: this node's in join order, then, in a
// cluster with Config.Presence, the other nodes' (User.Node set) in the
// order this node learnt of them.
func (s *Server) Users(room string) []User {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return s.remoteUsers(room)
	}
	r.roster.mu.Lock()
	defer r.roster.mu.Unlock()
	users := make([]User, 0, r.roster.count())
	for _, m := range r.roster.members {
		users = append(users, m.user())
	}
	for _, rm := range r.roster.remote.order {
		if rm != nil {
			users = append(users, rm.user())
		}
	}
	return users
}

// Rooms lists the rooms that have at least one member, sorted by name
// (in a cluster with Config.Presence, a member on any node).
func (s *Server) Rooms() []string {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	var names []string
	for _, r := range rooms {
		r.roster.mu.Lock()
		if r.roster.count() > 0 {
			names = append(names, r.name)
		}
		r.roster.mu.Unlock()
	}
	names = s.remoteRooms(names)
	slices.Sort(names)
	return slices.Compact(names)
}

// History returns up to n of room's most recent stored messages, oldest
// first (n is capped at Config.APILimit).
func (s *Server) History(room string, n int) ([]Message, error) {
	return s.recent(room, n)
}

// HistoryFor implements Host: the member's read permission for room is the
// one a join there would get (its roles now, its credentials' rooms claim).
func (s *Server) HistoryFor(sessionID uint64, room string, n int) ([]Message, error) {
	m := s.session(sessionID)
	if m == nil {
		return nil, s.noSession(sessionID)
	}
	if m.rooms != nil && !RoomAllowed(m.rooms, room) {
		return nil, fmt.Errorf("%w: your credentials do not allow room %q", ErrNotAllowed, room)
	}
	if reason := s.readRefusal(room, m.currentRoles()); reason != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotAllowed, reason)
	}
	return s.recent(room, n)
}

// recent is History's read: up to n (at most APILimit) of room's newest
// messages.
func (s *Server) recent(room string, n int) ([]Message, error) {
	if err := ValidRoomName(room); err != nil {
		// A direct conversation's key among them: never read as a room.
		return nil, err
	}
	if s.history == nil {
		return nil, ErrNoHistory
	}
	if n <= 0 {
		return nil, nil
	}
	msgs, err := s.history.Recent(room, min(n, s.cfg.APILimit))
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", room, err)
	}
	return msgs, nil
}

// Redact deletes a stored message for good and tells the room's live
// members (JSON "redact" event). It is audited as by "script" (RedactBy
// names who acted).
func (s *Server) Redact(room string, id uint64) error {
	return s.RedactBy(room, id, auditByScript)
}

// redact is Redact without the audit entry.
func (s *Server) redact(room string, id uint64) error {
	if err := ValidRoomName(room); err != nil {
		// A direct conversation's key among them: not a room's message.
		return fmt.Errorf("redact %q/%d: %w", room, id, err)
	}
	if s.history == nil {
		return ErrNoHistory
	}
	if s.broker != nil {
		return s.redactInCluster(room, id) // deliver.go
	}
	ok, err := s.history.Redact(room, id)
	if err != nil {
		return fmt.Errorf("redact %s/%d: %w", room, id, err)
	}
	if !ok {
		return fmt.Errorf("redact %s/%d: %w", room, id, ErrNoSuchMessage)
	}
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r != nil {
		r.enqueue(op{kind: opRedact, msgID: id})
	}
	return nil
}
