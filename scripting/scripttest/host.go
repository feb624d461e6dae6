package scripttest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// The Server is the engine's chat.Host, as core/chat's server is, with
// the parts scripts reach through optional interfaces.
var (
	_ chat.Host     = (*Server)(nil)
	_ chat.Ignorer  = (*Server)(nil)
	_ chat.Directer = (*Server)(nil)
)

// Send implements chat.Host: a notice to one member.
func (s *Server) Send(session uint64, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return errNotMember
	}
	s.eventLocked(Event{Kind: KindSend, Session: session, User: m.user.Name, Room: m.user.Room, Text: text})
	s.eventLocked(Event{Kind: KindReceived, Session: session, User: m.user.Name, Room: m.user.Room, Text: "* " + text})
	return nil
}

// Broadcast implements chat.Host: "* TEXT" to every member of room.
func (s *Server) Broadcast(room, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roomLineLocked(room, "* "+text, nil)
	return nil
}

// Action implements chat.Host: the action is queued and goes through the
// message hooks after the current call, as the server's room goroutine
// takes it.
func (s *Server) Action(session uint64, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memberLocked(session) == nil {
		return errNotMember
	}
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("%w: empty", chat.ErrInvalidText)
	}
	s.enqueueLocked(func() { _, _, _ = s.postOne(session, text, true, "") })
	return nil
}

// Rename implements chat.Host: the name is made unique in the room and
// announced; the rename hooks run after the current call.
func (s *Server) Rename(session uint64, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return "", errNotMember
	}
	if name == "" || strings.ContainsAny(name, ": \t\n") || len(name) > 64 {
		return "", fmt.Errorf("invalid name: %q (1 to 64 bytes, no spaces or ':')", name)
	}
	if _, muted := s.restrictedLocked(chat.KindMute, m.user); muted {
		return "", errors.New("you are muted in " + m.user.Room)
	}
	old := m.user.Name
	given := s.uniqueLocked(m.user.Room, name, session)
	if given == old {
		return given, nil
	}
	m.user.Name = given
	s.eventLocked(Event{Kind: KindRename, Session: session, User: old, Room: m.user.Room, Text: given})
	s.roomLineLocked(m.user.Room, "* "+old+" is now known as "+given, nil)
	u := m.user
	s.enqueueLocked(func() {
		if err := s.eng.Rename(s.ctx, u, old); err != nil {
			s.mu.Lock()
			s.hookErrorLocked(err)
			s.mu.Unlock()
		}
	})
	return given, nil
}

// Kick implements chat.Host: the member gets the reason, leaves, and the
// leave hooks run after the current call.
func (s *Server) Kick(session uint64, reason string) error {
	return s.kick(session, reason, "")
}

// KickBy is Kick by a moderator, written to the audit log.
func (s *Server) KickBy(session uint64, reason, by string) error {
	return s.kick(session, reason, by)
}

func (s *Server) kick(session uint64, reason, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return errNotMember
	}
	if by != "" {
		s.auditLocked(m.user.Room, by, "kick", m.user.Name, reason)
	}
	s.kickLocked(m, reason)
	return nil
}

// kickLocked records the kick, removes the member and queues the leave
// hooks.
func (s *Server) kickLocked(m *member, reason string) {
	s.eventLocked(Event{Kind: KindKick, Session: m.user.SessionID, User: m.user.Name, Room: m.user.Room, Text: reason})
	if reason != "" {
		s.eventLocked(Event{Kind: KindReceived, Session: m.user.SessionID, User: m.user.Name, Room: m.user.Room, Text: "* " + reason})
	}
	u, _ := s.removeLocked(m.user.SessionID)
	s.enqueueLocked(func() { s.leaveHook(u) })
}

// Users implements chat.Host: room's members in join order.
func (s *Server) Users(room string) []chat.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chat.User
	for _, m := range s.members {
		if m.user.Room == room && !m.joining {
			u := m.user
			u.Roles = slices.Clone(u.Roles)
			out = append(out, u)
		}
	}
	return out
}

// Rooms implements chat.Host: the rooms with members, sorted.
func (s *Server) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.members {
		if !m.joining && !slices.Contains(out, m.user.Room) {
			out = append(out, m.user.Room)
		}
	}
	slices.Sort(out)
	return out
}

// History implements chat.Host: room's newest n stored messages.
func (s *Server) History(room string, n int) ([]chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := s.stored[room]
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	return slices.Clone(msgs), nil
}

// HistoryFor implements chat.Host; every room is readable here.
func (s *Server) HistoryFor(session uint64, room string, n int) ([]chat.Message, error) {
	return s.History(room, n)
}

// Redact implements chat.Host.
func (s *Server) Redact(room string, id uint64) error { return s.redact(room, id, "") }

// RedactBy is Redact written to the audit log as by's.
func (s *Server) RedactBy(room string, id uint64, by string) error { return s.redact(room, id, by) }

func (s *Server) redact(room string, id uint64, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.stored[room], func(m chat.Message) bool { return m.ID == id })
	if i < 0 {
		return errNoMsg
	}
	s.stored[room] = slices.Delete(s.stored[room], i, i+1)
	s.eventLocked(Event{Kind: KindRedact, Room: room, ID: id})
	if by != "" {
		s.auditLocked(room, by, "delete", fmt.Sprint(id), "")
	}
	return nil
}

// ownWindow is [chat] delete_own_window as shipped.
const ownWindow = 15 * time.Minute

// DeleteMessage implements chat.Host: moderators delete any message of
// their room, members their own for ownWindow.
func (s *Server) DeleteMessage(session uint64, room string, id uint64) error {
	s.mu.Lock()
	m := s.memberLocked(session)
	if m == nil {
		s.mu.Unlock()
		return errNotMember
	}
	if room == "" {
		room = m.user.Room
	}
	i := slices.IndexFunc(s.stored[room], func(x chat.Message) bool { return x.ID == id })
	if i < 0 {
		s.mu.Unlock()
		return errNoMsg
	}
	msg := s.stored[room][i]
	mod := s.mayLocked(m, chat.ActionModerate)
	own := s.senders[room][id] == session || (m.user.ID != "" && msg.Account != nil && msg.Account.ID == m.user.ID)
	by := m.user.Name
	s.mu.Unlock()
	switch {
	case mod:
	case !own:
		return errNotYours
	case s.clock.Now().Sub(msg.Time) > ownWindow:
		return errTooLate
	}
	return s.redact(room, id, by)
}

// Grant implements chat.Host.
func (s *Server) Grant(session uint64, role string) error { return s.changeRole(session, role, true) }

// Revoke implements chat.Host.
func (s *Server) Revoke(session uint64, role string) error { return s.changeRole(session, role, false) }

func (s *Server) changeRole(session uint64, role string, grant bool) error {
	if role == chat.RoleGuest || role == chat.RoleUser {
		return chat.ErrBuiltinRole
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return errNotMember
	}
	has := slices.Contains(m.user.Roles, role)
	switch {
	case grant && !has:
		m.user.Roles = append(slices.Clone(m.user.Roles), role)
	case !grant && has:
		m.user.Roles = slices.DeleteFunc(slices.Clone(m.user.Roles), func(r string) bool { return r == role })
	}
	return nil
}

// Limits implements chat.Host.
func (s *Server) Limits(session uint64) (chat.Limits, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return chat.Limits{}, errNotMember
	}
	return m.limits, nil
}

// SetLimits implements chat.Host.
func (s *Server) SetLimits(session uint64, l chat.Limits) error {
	if l.Rate < 0 || (l.Rate > 0 && l.Burst < 1) {
		return fmt.Errorf("invalid limits: rate %g, burst %d", l.Rate, l.Burst)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return errNotMember
	}
	m.limits = l
	return nil
}

// Restrict implements chat.Host: a ban kicks the members it matches.
func (s *Server) Restrict(kind chat.RestrictionKind, room string, t chat.Target, d time.Duration, reason, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	r := chat.Restriction{Kind: kind, Room: room, Target: t, Created: now, By: by, Reason: reason}
	if d > 0 {
		r.Expires = now.Add(d)
	}
	s.restrict = slices.DeleteFunc(s.restrict, func(x chat.Restriction) bool {
		return x.Kind == kind && x.Room == room && x.Target == t
	})
	s.restrict = append(s.restrict, r)
	s.auditLocked(room, by, string(kind), targetText(t), reason)
	if kind == chat.KindBan {
		for _, m := range slices.Clone(s.members) {
			if (room == "" || m.user.Room == room) && matches(t, m.user) {
				why := "banned"
				if reason != "" {
					why += ": " + reason
				}
				s.kickLocked(m, why)
			}
		}
	}
	return nil
}

// Lift implements chat.Host.
func (s *Server) Lift(kind chat.RestrictionKind, room string, t chat.Target, by string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.restrict)
	s.restrict = slices.DeleteFunc(s.restrict, func(x chat.Restriction) bool {
		return x.Kind == kind && x.Room == room && x.Target == t
	})
	if len(s.restrict) == n {
		return false, nil
	}
	s.auditLocked(room, by, "un"+string(kind), targetText(t), "")
	return true, nil
}

// Restrictions implements chat.Host.
func (s *Server) restrictionsLocked(room string) []chat.Restriction {
	now := s.clock.Now()
	var out []chat.Restriction
	for _, r := range s.restrict {
		if (r.Room == room || r.Room == "") && (r.Expires.IsZero() || r.Expires.After(now)) {
			out = append(out, r)
		}
	}
	return out
}

// restrictedLocked finds a restriction of kind in force on u in its room.
func (s *Server) restrictedLocked(kind chat.RestrictionKind, u chat.User) (chat.Restriction, bool) {
	for _, r := range s.restrictionsLocked(u.Room) {
		if r.Kind == kind && matches(r.Target, u) {
			return r, true
		}
	}
	return chat.Restriction{}, false
}

// matches reports whether t names u: its account, a guest's name (without
// case), or its address (or a prefix holding it).
func matches(t chat.Target, u chat.User) bool {
	switch {
	case t.Account != "":
		return t.Account == u.ID
	case t.Name != "":
		return u.ID == "" && strings.EqualFold(t.Name, u.Name)
	case t.Addr != "":
		a, err := netip.ParseAddr(u.Addr)
		if err != nil {
			return false
		}
		if p, err := netip.ParsePrefix(t.Addr); err == nil {
			return p.Contains(a)
		}
		b, err := netip.ParseAddr(t.Addr)
		return err == nil && a == b
	}
	return false
}

func targetText(t chat.Target) string {
	switch {
	case t.Account != "":
		return "account:" + t.Account
	case t.Name != "":
		return "name:" + t.Name
	}
	return "addr:" + t.Addr
}

// SetRoomSettings implements chat.Host: the change is announced.
func (s *Server) SetRoomSettings(room string, rs chat.RoomSettings, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs.Slow < 0 {
		return errors.New("slow mode cannot be negative")
	}
	old := s.settings[room]
	who, _, _ := strings.Cut(by, " (")
	if rs.Topic != old.Topic {
		rs.TopicBy, rs.TopicSince = by, s.clock.Now()
		if rs.Topic == "" {
			s.roomLineLocked(room, "* "+who+" cleared the topic", nil)
		} else {
			s.roomLineLocked(room, "* "+who+" set the topic: "+rs.Topic, nil)
		}
		s.auditLocked(room, by, "topic", "", rs.Topic)
	}
	if rs.Slow != old.Slow {
		if rs.Slow <= 0 {
			s.roomLineLocked(room, "* slow mode is off", nil)
		} else {
			s.roomLineLocked(room, "* slow mode is on: one message per "+rs.Slow.String()+" per member (moderators exempt)", nil)
		}
		s.auditLocked(room, by, "slow", "", rs.Slow.String())
	}
	s.settings[room] = rs
	return nil
}

// RoomSettings implements chat.Host.
func (s *Server) RoomSettings(room string) chat.RoomSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings[room]
}

// Audit implements chat.Host.
func (s *Server) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	var out []chat.AuditEntry
	for _, a := range s.AuditLog(room) {
		if !a.Time.Before(since) {
			out = append(out, a)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

func (s *Server) auditLocked(room, by, action, target, reason string) {
	a := chat.AuditEntry{Time: s.clock.Now(), Room: room, By: by, Action: action, Target: target, Reason: reason}
	s.audit = append(s.audit, a)
	s.eventLocked(Event{Kind: KindModerate, Room: room, User: by, Text: strings.TrimSpace(action + " " + target), Key: reason})
}

// May implements chat.Host: with Config.Rules, as they say; without,
// reading and posting are open to everyone, moderating to the roles of
// Config.Moderate.
func (s *Server) May(session uint64, room string, action chat.Action) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return false, errNotMember
	}
	return s.mayLocked(m, action), nil
}

func (s *Server) mayLocked(m *member, action chat.Action) bool {
	if s.rules != nil {
		return s.rules.Allows(m.user.Room, m.user.Roles, action)
	}
	if action != chat.ActionModerate {
		return true
	}
	for _, r := range m.user.Roles {
		if slices.Contains(s.mod, r) || slices.Contains(s.mod, chat.RoleEveryone) {
			return true
		}
	}
	return false
}

// Ignore implements chat.Ignorer.
func (s *Server) Ignore(session uint64, t chat.IgnoreTarget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return errNotMember
	}
	if t.Session != 0 {
		other := s.memberLocked(t.Session)
		if other == nil {
			return errors.New("no such user")
		}
		if other.user.SessionID == session || (m.user.ID != "" && other.user.ID == m.user.ID) {
			return errors.New("you cannot ignore yourself")
		}
		t = chat.IgnoreTarget{Session: other.user.SessionID, Account: other.user.ID}
		if t.Account != "" {
			t.Session = 0
		}
	}
	if !slices.ContainsFunc(m.ignored, func(x chat.IgnoreTarget) bool { return x.Session == t.Session && x.Account == t.Account }) {
		m.ignored = append(m.ignored, t)
	}
	return nil
}

// Unignore implements chat.Ignorer.
func (s *Server) Unignore(session uint64, t chat.IgnoreTarget) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return false, errNotMember
	}
	if t.Session != 0 {
		if other := s.memberLocked(t.Session); other != nil && other.user.ID != "" {
			t = chat.IgnoreTarget{Account: other.user.ID}
		}
	}
	n := len(m.ignored)
	m.ignored = slices.DeleteFunc(m.ignored, func(x chat.IgnoreTarget) bool {
		return (t.Session != 0 && x.Session == t.Session) || (t.Account != "" && x.Account == t.Account)
	})
	return len(m.ignored) < n, nil
}

// Ignored implements chat.Ignorer; names are the members' current ones.
func (s *Server) Ignored(session uint64) ([]chat.IgnoreTarget, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return nil, errNotMember
	}
	out := slices.Clone(m.ignored)
	for i := range out {
		for _, o := range s.members {
			if (out[i].Session != 0 && o.user.SessionID == out[i].Session) || (out[i].Account != "" && o.user.ID == out[i].Account) {
				out[i].Name = o.user.Name
			}
		}
	}
	return out, nil
}

// Direct implements chat.Directer: checked now, queued through the
// message hooks after the current call.
func (s *Server) Direct(session uint64, to, text string) error {
	if err := s.checkDirect(session, to, text); err != nil {
		return err
	}
	s.mu.Lock()
	s.enqueueLocked(func() { _, _, _ = s.postOne(session, text, false, to) })
	s.mu.Unlock()
	return nil
}

// checkDirect is what Direct checks at once: the sender, the text, the
// recipient.
func (s *Server) checkDirect(session uint64, to, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(session)
	if m == nil {
		return chat.ErrNoSuchUser
	}
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("%w: empty", chat.ErrInvalidText)
	}
	if s.recipientLocked(m.user.Room, to) == nil {
		return chat.ErrNoSuchRecipient
	}
	return nil
}

// recipientLocked finds the member called to, in room first.
func (s *Server) recipientLocked(room, to string) *member {
	var found *member
	for _, m := range s.members {
		if strings.EqualFold(m.user.Name, to) && (found == nil || m.user.Room == room && found.user.Room != room) {
			found = m
		}
	}
	return found
}

// deliverDirectLocked delivers a direct message that passed the hooks:
// "[dm] alice: text" to the recipient (unless they ignore the sender),
// "[dm to bob] alice: text" to the sender.
func (s *Server) deliverDirectLocked(from chat.User, to string, msg chat.Message) {
	r := s.recipientLocked(from.Room, to)
	if r == nil {
		s.eventLocked(Event{Kind: KindRefused, Session: from.SessionID, User: from.Name, Room: from.Room, Text: "message not sent: " + to + " has left"})
		return
	}
	line := from.Name + ": " + msg.Text
	s.eventLocked(Event{Kind: KindDirect, Session: from.SessionID, User: from.Name, To: r.user.Name, Text: msg.Text})
	s.eventLocked(Event{Kind: KindReceived, Session: from.SessionID, User: from.Name, Room: from.Room, Text: "[dm to " + r.user.Name + "] " + line})
	if !ignores(r, from) {
		s.eventLocked(Event{Kind: KindReceived, Session: r.user.SessionID, User: r.user.Name, Room: r.user.Room, Text: "[dm] " + line})
	}
}
