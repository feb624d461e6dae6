package chat

import (
	"errors"
	"time"
)

// errModerationPending is what the moderation Host methods return until
// they are built (issue 14, in progress).
var errModerationPending = errors.New("chat: moderation is not built yet")

// Restrict implements Host.
func (s *Server) Restrict(kind RestrictionKind, room string, t Target, d time.Duration, reason, by string) error {
	return errModerationPending
}

// Lift implements Host.
func (s *Server) Lift(kind RestrictionKind, room string, t Target, by string) (bool, error) {
	return false, errModerationPending
}

// Restrictions implements Host.
func (s *Server) Restrictions(room string) []Restriction { return nil }

// SetRoomSettings implements Host.
func (s *Server) SetRoomSettings(room string, rs RoomSettings, by string) error {
	return errModerationPending
}

// RoomSettings implements Host.
func (s *Server) RoomSettings(room string) RoomSettings { return RoomSettings{} }

// Audit implements Host.
func (s *Server) Audit(room string, since time.Time, n int) ([]AuditEntry, error) {
	return nil, errModerationPending
}
