package chat

// May implements Host. It decides as the server does on its own paths:
// the rules for the member's roles now (after Host.Grant and Host.Revoke)
// and, first, the credentials' rooms claim, which no rule can widen. It
// asks RoomRules.Allows itself rather than Server.allows, which lets
// everything through when there are no rules: without rules everyone
// reads and posts, but nobody moderates (DefaultRoomRule).
func (s *Server) May(sessionID uint64, room string, action Action) (bool, error) {
	m := s.session(sessionID)
	if m == nil {
		return false, s.noSession(sessionID)
	}
	if m.rooms != nil && !RoomAllowed(m.rooms, room) {
		return false, nil
	}
	return s.cfg.RoomRules.Allows(room, rolesOrGuest(m.currentRoles()), action), nil
}
