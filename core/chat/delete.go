package chat

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Deleting messages from the chat (issue 14): a moderator of the room may
// delete any message; a member may delete their own within
// Config.DeleteOwnWindow. A message is a member's own when their account
// sent it (any connection of the account, matched by the stored account
// id), or, for a guest, when this very connection sent it: guests have no
// identity beyond the connection, and a name can be taken by the next
// guest. Every deletion goes through RedactBy, so the room gets the
// redaction event and the audit log names who deleted.

// Errors of DeleteMessage.
var (
	// ErrNotYours: the message is someone else's (or, for a guest, was
	// not sent on this connection) and the caller does not moderate.
	ErrNotYours = errors.New("not your message: only moderators may delete it")
	// ErrTooLate: the caller's own message is older than
	// Config.DeleteOwnWindow (or the window is 0: members may not delete
	// their own messages).
	ErrTooLate = errors.New("too late to delete your message: only moderators may delete it now")
)

// ownMax bounds a guest connection's record of its own messages: the
// newest ownMax within the window are deletable. A guest who posts more
// than that within the window can delete only the newest (a moderator
// can delete the rest).
const ownMax = 64

// ownMessage is one message a connection sent.
type ownMessage struct {
	id uint64
	at time.Time
}

// ownRecord is a guest connection's newest messages, in order of id: the
// messages it may delete as its own. The room goroutine adds; the caller
// of DeleteMessage reads.
type ownRecord struct {
	mu   sync.Mutex
	msgs []ownMessage // at most ownMax, oldest first
}

// add records message id sent at at, dropping those older than window
// before now and the oldest beyond ownMax.
func (o *ownRecord) add(id uint64, at, now time.Time, window time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	drop := 0
	for drop < len(o.msgs) && now.Sub(o.msgs[drop].at) > window {
		drop++
	}
	if len(o.msgs)-drop >= ownMax {
		drop = len(o.msgs) - ownMax + 1
	}
	if drop > 0 {
		o.msgs = append(o.msgs[:0], o.msgs[drop:]...)
	}
	o.msgs = append(o.msgs, ownMessage{id, at})
}

// find returns when the connection sent message id, if it is recorded.
func (o *ownRecord) find(id uint64) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.msgs {
		if m.id == id {
			return m.at, true
		}
	}
	return time.Time{}, false
}

// noteOwn records stored messages of guest senders, so that they can
// delete them (room goroutine, after the append; msgs[i] is senders[i]'s).
// The window runs from when the message was stored, on Config.Clock.
func (r *room) noteOwn(msgs []*Message, senders []*member) {
	window := r.srv.cfg.DeleteOwnWindow
	if window <= 0 {
		return
	}
	now := r.srv.cfg.Clock.Now()
	for i, msg := range msgs {
		if m := senders[i]; m.account == "" && msg.ID != 0 {
			m.own.add(msg.ID, now, now, window)
		}
	}
}

// DeleteMessage deletes message id of room for everyone on behalf of the
// member of session sessionID (Host.DeleteMessage): any message when they
// moderate room (the room rules' moderate roles, or admin), else only
// their own (see above) sent within Config.DeleteOwnWindow. room must be
// the member's room ("" = it). The room gets the redaction event and the
// audit log an entry naming the member. Errors: ErrNoSuchUser,
// ErrNotAllowed (another room), ErrNoHistory, ErrNoSuchMessage,
// ErrNotYours, ErrTooLate, or a wrapped store error.
func (s *Server) DeleteMessage(sessionID uint64, room string, id uint64) error {
	m := s.session(sessionID)
	if m == nil {
		return s.noSession(sessionID)
	}
	if room == "" {
		room = m.roomName
	}
	if room != m.roomName {
		return fmt.Errorf("delete %s/%d: %w: a member deletes in their own room", room, id, ErrNotAllowed)
	}
	if s.history == nil {
		return ErrNoHistory
	}
	by := m.currentName()
	if m.account != "" {
		by += " (" + m.account + ")"
	}
	if !s.isModerator(room, m.currentRoles()) {
		if err := s.checkOwn(m, room, id); err != nil {
			if errors.Is(err, ErrNotYours) || errors.Is(err, ErrTooLate) {
				s.metrics.mod.refusedDelete.Add(1)
			}
			return err
		}
	}
	return s.RedactBy(room, id, by)
}

// checkOwn reports why member m may not delete message id of room as
// their own, or nil.
func (s *Server) checkOwn(m *member, room string, id uint64) error {
	var sent time.Time
	if m.account == "" {
		at, ok := m.own.find(id)
		if !ok {
			if err := s.messageExists(room, id); err != nil {
				return err
			}
			return ErrNotYours
		}
		sent = at
	} else {
		msgs, err := s.history.Before(room, id+1, 1)
		if err != nil {
			return fmt.Errorf("delete %s/%d: %w", room, id, err)
		}
		if len(msgs) == 0 || msgs[0].ID != id {
			return fmt.Errorf("message %d: %w", id, ErrNoSuchMessage)
		}
		if msgs[0].Account == nil || msgs[0].Account.ID != m.account {
			return ErrNotYours
		}
		sent = msgs[0].Time
	}
	if w := s.cfg.DeleteOwnWindow; w <= 0 || s.cfg.Clock.Now().Sub(sent) > w {
		return ErrTooLate
	}
	return nil
}

// messageExists is nil when room holds message id, else why not.
func (s *Server) messageExists(room string, id uint64) error {
	msgs, err := s.history.Before(room, id+1, 1)
	if err != nil {
		return fmt.Errorf("delete %s/%d: %w", room, id, err)
	}
	if len(msgs) == 0 || msgs[0].ID != id {
		return fmt.Errorf("message %d: %w", id, ErrNoSuchMessage)
	}
	return nil
}

// Error codes of a refused moonchat.v1 "delete" (docs/protocol.md).
const (
	codeNotYours  = "not_yours"
	codeTooLate   = "too_late"
	codeNoMessage = "no_such_message"
)

// deleteRequest answers a moonchat.v1 {"type":"delete","id":N} from m
// (OnMessage): done, the room sees the redaction event; refused, m gets an
// error event saying why. A deletion costs a history read and a write and
// sends an event to the whole room, so it spends a token of m's flood
// buckets like a message (a "/delete" command does as one): one beyond
// the limits is dropped with the usual "flood" error and is a strike
// (allowFlood).
func (s *Server) deleteRequest(m *member, id uint64) {
	if !s.allowFlood(m, s.floodNow(time.Now()), false) {
		return
	}
	err := s.DeleteMessage(m.id, m.roomName, id)
	n := strconv.FormatUint(id, 10)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotYours):
		m.sendError(codeNotYours, "message "+n+" not deleted: it is not yours, and only moderators may delete others' messages")
	case errors.Is(err, ErrTooLate):
		if s.cfg.DeleteOwnWindow <= 0 {
			m.sendError(codeTooLate, "message "+n+" not deleted: members may not delete their messages here, only moderators")
		} else {
			m.sendError(codeTooLate, "message "+n+" not deleted: it is older than "+formatDuration(s.cfg.DeleteOwnWindow)+", only moderators may delete it now")
		}
	case errors.Is(err, ErrNoSuchMessage):
		m.sendError(codeNoMessage, "message "+n+" not deleted: there is no such message in "+m.roomName)
	case errors.Is(err, ErrNoHistory):
		m.sendError(codeNoHistory, "message "+n+" not deleted: this server keeps no history")
	case errors.Is(err, ErrUnavailable):
		m.sendError(codeUnavailable, "message "+n+" not deleted: "+ErrUnavailable.Error())
	default:
		// Fail closed: the message stays, the member is told, the
		// cause logged (and counted by the store's error metrics).
		s.log.Error("chat: deleting a message failed", "room", m.roomName, "id", id, "session", m.id, "err", err)
		m.sendError(codeDropped, "message "+n+" not deleted: the server could not delete it")
	}
}
