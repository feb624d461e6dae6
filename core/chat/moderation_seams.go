package chat

import "time"

// This file holds the moderation seam (issue 14): the types of bans,
// mutes, room settings and the audit log, and ModerationStore, which
// package store implements. The chat server enforces them on every path
// (moderation.go); scripts reach them through Host.

// RestrictionKind says what a Restriction does.
type RestrictionKind string

// The kinds of restriction.
const (
	// KindBan keeps the target out: refused at the handshake (403) and at
	// join, and members it matches are kicked when it is made.
	KindBan RestrictionKind = "ban"
	// KindMute lets the target stay and read but not post (nor rename).
	KindMute RestrictionKind = "mute"
)

// Target is whom a restriction matches: exactly one field is set.
type Target struct {
	// Account is an account id: every connection of that account.
	Account string
	// Name is a guest's name, matched like names are (look-alikes
	// included, nameKeys); it never matches an account.
	Name string
	// Addr is a client address or prefix in CIDR notation
	// ("203.0.113.7", "2001:db8::/48"), matched against the client
	// address the per-address limits use (core/addrlimit).
	Addr string
}

// Restriction is one ban or mute. Room "" means every room.
// Invariant: Kind is a RestrictionKind above, exactly one Target field is
// set, and Expires is zero (never) or after Created.
type Restriction struct {
	Kind    RestrictionKind
	Room    string
	Target  Target
	Created time.Time
	Expires time.Time
	// By is who made it (a member's name and account id, "admin" for the
	// admin API, or the script); Reason is shown to the target.
	By, Reason string
}

// RoomSettings are a room's stored settings.
type RoomSettings struct {
	// Topic is sent to newcomers and in presence; "" = none.
	Topic      string
	TopicBy    string
	TopicSince time.Time
	// Slow is slow mode: at most one message per Slow per member
	// (moderators exempt); 0 = off.
	Slow time.Duration
}

// AuditEntry is one moderation action in the audit log.
type AuditEntry struct {
	Time time.Time
	// Room is where it happened ("" for every room).
	Room string
	// By is who acted; Action what ("ban", "unban", "mute", "unmute",
	// "kick", "slow", "topic", "delete", ...); Target whom or what (a
	// name, account id, address or message id); Reason why. An expiry
	// is an "unban" or "unmute" by "server", Reason "expired at TIME".
	By, Action, Target, Reason string
}

// ModerationStore is an optional interface of a History: one that
// implements it keeps restrictions, room settings and the audit log
// durably (package store), so that bans, mutes and their expiries, topics
// and slow mode survive restarts. Without it the chat server keeps them
// in memory for the life of the process. The chat server loads
// everything once, in New, and writes through on every change; each
// write returns once it is on disk. Implementations must be safe for
// concurrent use.
type ModerationStore interface {
	// Restrictions returns every stored restriction.
	Restrictions() ([]Restriction, error)
	// PutRestriction stores r, replacing the one with the same Kind,
	// Room and Target.
	PutRestriction(r Restriction) error
	// DeleteRestriction removes the restriction of kind in room on t; it
	// reports whether there was one.
	DeleteRestriction(kind RestrictionKind, room string, t Target) (bool, error)
	// RoomSettings returns every room's stored settings.
	RoomSettings() (map[string]RoomSettings, error)
	// PutRoomSettings stores room's settings (the zero value deletes them).
	PutRoomSettings(room string, s RoomSettings) error
	// AppendAudit adds e to the audit log.
	AppendAudit(e AuditEntry) error
	// Audit returns up to n entries of room ("" = every room) at or after
	// since, oldest first (the n newest of them).
	Audit(room string, since time.Time, n int) ([]AuditEntry, error)
}

// IgnoreTarget is whom an ignore list names: an account (every session of
// it) or a guest by session (for the life of that session). Name is only
// informative (Host.Ignored fills it).
type IgnoreTarget struct {
	Account string
	Session uint64
	Name    string
}

// Ignorer is the part of Host that keeps members' ignore lists (issue 14;
// *Server implements it): an ignoring member does not get the ignored
// user's chat messages, live or in replay and history pages. Presence and
// notices are not filtered.
type Ignorer interface {
	// Ignore adds target to sessionID's list (an account's list is shared
	// by its connections and stored; a guest's lasts for its session).
	Ignore(sessionID uint64, target IgnoreTarget) error
	// Unignore removes target; false when it was not on the list.
	Unignore(sessionID uint64, target IgnoreTarget) (bool, error)
	// Ignored returns sessionID's list.
	Ignored(sessionID uint64) ([]IgnoreTarget, error)
}

// IgnoreStore is an optional interface of a History: one that implements
// it keeps accounts' ignore lists (the ignored account ids) durably
// (package store). The chat server loads them once, in New, and writes a
// list through on every change; SetIgnoreList returns once it is on disk
// (an empty list deletes it). Implementations must be safe for concurrent
// use.
type IgnoreStore interface {
	// IgnoreLists returns every stored list, by account id.
	IgnoreLists() (map[string][]string, error)
	// SetIgnoreList replaces account's list.
	SetIgnoreList(account string, ignored []string) error
}
