package chat

import (
	"errors"
	"fmt"
)

// AuditAction appends an entry to the moderation audit log for an action
// taken outside the chat server's own paths — today each line typed at
// `moonchat console` (cmd/moonchat) — and, unlike the server's own
// entries (written after the action, a failure logged and counted), says
// whether it was written, so that the caller can refuse to act when it
// was not (fail closed). room "" is every room; action must not be empty.
func (s *Server) AuditAction(room, by, action, target, reason string) error {
	if action == "" {
		return errors.New("chat: audit entry without an action")
	}
	e := AuditEntry{Time: s.cfg.Clock.Now().UTC(), Room: room, By: by, Action: action, Target: target, Reason: reason}
	md := &s.mod
	if md.store == nil {
		md.mu.Lock()
		s.writeAuditLocked(e) // in memory: cannot fail
		md.mu.Unlock()
		return nil
	}
	if err := md.store.AppendAudit(e); err != nil {
		s.metrics.mod.auditErrors.Add(1)
		s.log.Error("chat: writing the audit log failed", "action", e.Action, "room", e.Room, "by", e.By, "target", e.Target, "err", err)
		return fmt.Errorf("writing the audit log: %w", err)
	}
	return nil
}
