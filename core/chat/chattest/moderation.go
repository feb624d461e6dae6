package chattest

import (
	"fmt"
	"slices"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// moderationStore is the History double's chat.ModerationStore state,
// guarded by History.mu.
type moderationStore struct {
	restrictions map[modKey]chat.Restriction
	settings     map[string]chat.RoomSettings
	audit        []chat.AuditEntry

	writeErr, readErr, auditErr error
}

type modKey struct {
	kind chat.RestrictionKind
	room string
	t    chat.Target
}

// FailModeration makes the ModerationStore's writes (PutRestriction,
// DeleteRestriction, PutRoomSettings) fail with write and its reads
// (Restrictions, RoomSettings, Audit) with read from now on (nil: succeed
// again), as a store whose disk fails.
func (h *History) FailModeration(write, read error) {
	h.mu.Lock()
	h.mod.writeErr, h.mod.readErr = write, read
	h.mu.Unlock()
}

// FailAudit makes AppendAudit fail with err from now on (nil: succeed
// again).
func (h *History) FailAudit(err error) {
	h.mu.Lock()
	h.mod.auditErr = err
	h.mu.Unlock()
}

// Restrictions implements chat.ModerationStore.
func (h *History) Restrictions() ([]chat.Restriction, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.readErr != nil {
		return nil, fmt.Errorf("restrictions: %w", h.mod.readErr)
	}
	out := make([]chat.Restriction, 0, len(h.mod.restrictions))
	for _, r := range h.mod.restrictions {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b chat.Restriction) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// PutRestriction implements chat.ModerationStore.
func (h *History) PutRestriction(r chat.Restriction) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.writeErr != nil {
		return fmt.Errorf("put restriction: %w", h.mod.writeErr)
	}
	if h.mod.restrictions == nil {
		h.mod.restrictions = map[modKey]chat.Restriction{}
	}
	h.mod.restrictions[modKey{r.Kind, r.Room, r.Target}] = r
	return nil
}

// DeleteRestriction implements chat.ModerationStore.
func (h *History) DeleteRestriction(kind chat.RestrictionKind, room string, t chat.Target) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.writeErr != nil {
		return false, fmt.Errorf("delete restriction: %w", h.mod.writeErr)
	}
	k := modKey{kind, room, t}
	_, ok := h.mod.restrictions[k]
	delete(h.mod.restrictions, k)
	return ok, nil
}

// RoomSettings implements chat.ModerationStore.
func (h *History) RoomSettings() (map[string]chat.RoomSettings, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.readErr != nil {
		return nil, fmt.Errorf("room settings: %w", h.mod.readErr)
	}
	out := make(map[string]chat.RoomSettings, len(h.mod.settings))
	for room, s := range h.mod.settings {
		out[room] = s
	}
	return out, nil
}

// PutRoomSettings implements chat.ModerationStore.
func (h *History) PutRoomSettings(room string, s chat.RoomSettings) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.writeErr != nil {
		return fmt.Errorf("put room settings: %w", h.mod.writeErr)
	}
	if h.mod.settings == nil {
		h.mod.settings = map[string]chat.RoomSettings{}
	}
	if s == (chat.RoomSettings{}) {
		delete(h.mod.settings, room)
	} else {
		h.mod.settings[room] = s
	}
	return nil
}

// AppendAudit implements chat.ModerationStore.
func (h *History) AppendAudit(e chat.AuditEntry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.auditErr != nil {
		return fmt.Errorf("append audit: %w", h.mod.auditErr)
	}
	h.mod.audit = append(h.mod.audit, e)
	return nil
}

// Audit implements chat.ModerationStore.
func (h *History) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mod.readErr != nil {
		return nil, fmt.Errorf("audit: %w", h.mod.readErr)
	}
	var out []chat.AuditEntry
	for _, e := range h.mod.audit {
		if (room == "" || e.Room == room) && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return slices.Clone(out), nil
}
