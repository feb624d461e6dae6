package chat

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Session roles: Host.Grant and Host.Revoke change a member's roles for the
// rest of its session (issue 12). Roles are read on the room goroutine
// (room rules on every post and history request, the message hooks'
// User.Roles, Message.Account), while Grant and Revoke run on any
// goroutine and must never wait for a room's goroutine. So a member's
// roles are an immutable value behind an atomic pointer (member.granted):
// a change builds a new sessionRoles and swaps it in (compare-and-swap, so
// two concurrent changes never lose one), and a reader loads the pointer
// once. Between changes every message of the member shares one *Account,
// and the scripts see the same roles slice: the message path allocates
// nothing for identity (BenchmarkPostIdentity).
//
// moonchat.v1 members of the room learn of a change through a "roles"
// event, queued to the room so that it comes in order with the member's
// messages and renames (docs/protocol.md).

// sessionRoles is a member's roles as Grant and Revoke left them.
// Immutable once stored in member.granted.
type sessionRoles struct {
	roles []string
	// acct is what the member's messages carry (Message.Account): the
	// account id and roles, or nil for a guest whose roles are just
	// "guest" again.
	acct *Account
}

// maxRoleLength bounds a role name, in bytes.
const maxRoleLength = 64

// maxSessionRoles bounds how many roles Grant lets a member have: every
// message carries them (and a store keeps them with it, package store
// refusing more than 256), so a script granting in a loop must not make
// a member's messages unstorable.
const maxSessionRoles = 64

// checkRole says why role cannot be granted or revoked (nil when it can):
// ErrBuiltinRole for "guest" and "user", ErrInvalidRole (wrapped with the
// reason) for an empty or too long name, "*" (which means everyone in
// room rules), or one with white space, control or bidi control
// characters (roles travel in events and logs).
func checkRole(role string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidRole, role, why) }
	switch {
	case role == RoleGuest || role == RoleUser:
		return ErrBuiltinRole
	case role == "":
		return fmt.Errorf("%w: empty", ErrInvalidRole)
	case len(role) > maxRoleLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidRole, maxRoleLength)
	case role == RoleEveryone:
		return bad(`"*" means everyone in room rules, it cannot be a role`)
	case !utf8.ValidString(role):
		return bad("not UTF-8")
	}
	for _, r := range role {
		if unicode.IsSpace(r) || unicode.IsControl(r) || isBidiControl(r) || unicode.Is(unicode.Cf, r) {
			return bad("white space, control and format characters are not allowed")
		}
	}
	return nil
}

// guestOnly reports whether roles are a guest's default: just "guest".
func guestOnly(roles []string) bool {
	return len(roles) == 1 && roles[0] == RoleGuest
}

// Grant implements Host: it gives the member role for the rest of its
// session. A member still joining may be granted roles too (from a Join
// hook); its presence then already carries them.
func (s *Server) Grant(sessionID uint64, role string) error {
	return s.changeRole(sessionID, role, true)
}

// Revoke implements Host: it takes role away from the member for the rest
// of its session, whether its credentials or Grant gave it.
func (s *Server) Revoke(sessionID uint64, role string) error {
	return s.changeRole(sessionID, role, false)
}

// changeRole adds (grant) or removes role from a member's session roles
// and tells the room.
func (s *Server) changeRole(sessionID uint64, role string, grant bool) error {
	if err := checkRole(role); err != nil {
		return err
	}
	m := s.session(sessionID)
	if m == nil || m.gone.Load() {
		return s.noSession(sessionID)
	}
	for {
		cur := m.granted.Load()
		roles := m.roles
		if cur != nil {
			roles = cur.roles
		}
		if slices.Contains(roles, role) == grant {
			return nil // nothing changes: no event
		}
		var next []string
		if grant && len(roles) >= maxSessionRoles {
			return fmt.Errorf("%w %q: the member has %d roles already, the most a session may have", ErrInvalidRole, role, len(roles))
		}
		if grant {
			next = append(make([]string, 0, len(roles)+1), roles...)
			next = append(next, role)
		} else {
			next = make([]string, 0, len(roles))
			for _, r := range roles {
				if r != role {
					next = append(next, r)
				}
			}
		}
		ns := &sessionRoles{roles: next}
		if m.account != "" || !guestOnly(next) {
			ns.acct = &Account{ID: m.account, Roles: next}
		}
		if m.granted.CompareAndSwap(cur, ns) {
			break
		}
	}
	s.accounts.rolesChanged.Store(true)
	// The event names the member as the room last announced it: the name
	// is read and the event queued under roster.mu, as Host.Rename changes
	// the name and queues its announcement, so the two keep their order.
	r := m.room
	r.roster.mu.Lock()
	ok := r.enqueue(op{kind: opRoles, m: m, oldName: m.currentName()})
	r.roster.mu.Unlock()
	if !ok {
		return ErrServerClosed
	}
	return nil
}

// rolesChangedEvent tells the room's moonchat.v1 members that m's roles
// changed (opRoles): a "roles" event with the name it was known by when
// the change was made and its roles now (the latest change wins: events
// of several quick changes all carry the final roles).
func (r *room) rolesChangedEvent(m *member, name string) {
	if !m.joined.Load() || len(r.roster.json) == 0 {
		return // one still joining gets its roles in the presence events
	}
	start := len(r.out.arena)
	r.out.arena = appendJSONRolesEvent(r.out.arena, r.name, name, m.account, m.currentRoles())
	r.out.json = append(r.out.json, span{start, len(r.out.arena)})
}
