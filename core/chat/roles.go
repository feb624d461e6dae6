package chat

import "errors"

// errRolesPending is what Grant and Revoke return until session roles are
// built (issue 12, in progress this session).
var errRolesPending = errors.New("chat: session roles are not built yet")

// Grant implements Host.
func (s *Server) Grant(sessionID uint64, role string) error { return errRolesPending }

// Revoke implements Host.
func (s *Server) Revoke(sessionID uint64, role string) error { return errRolesPending }
