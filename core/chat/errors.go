package chat

import "errors"

// Named errors returned by the Host methods and by New. Their texts are
// written for the people who read them: scripts pass them on to users
// (chat.rename's error becomes "/nick"'s answer) and the server sends the
// validation errors as refusal reasons, so they carry no Go package prefix.
var (
	// ErrNoSuchUser is returned by Host methods for a session that has left
	// (or has not finished joining).
	ErrNoSuchUser = errors.New("no such user")
	// ErrNoSuchRoom is returned by Host.Broadcast for a room without members.
	ErrNoSuchRoom = errors.New("no such room")
	// ErrNoHistory is returned when the server runs without a History.
	ErrNoHistory = errors.New("no history: the server runs without a store")
	// ErrNoSuchMessage is returned by Host.Redact for an id that is not
	// stored.
	ErrNoSuchMessage = errors.New("no such message")
	// ErrInvalidName is returned (wrapped with the reason) for a nickname
	// that breaks the rules in docs/protocol.md.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidRoom is returned (wrapped with the reason) for a bad room name.
	ErrInvalidRoom = errors.New("invalid room name")
	// ErrInvalidText is returned (wrapped with the reason) for a message
	// text the server does not accept (control characters).
	ErrInvalidText = errors.New("invalid text")
	// ErrBuiltinRole is returned by Host.Grant and Host.Revoke for the
	// built-in roles "guest" and "user", which only credentials decide.
	ErrBuiltinRole = errors.New("guest and user are built-in roles: credentials decide them")
	// ErrInvalidRole is returned (wrapped with the reason) for a role name
	// that is empty, too long or holds spaces or control characters.
	ErrInvalidRole = errors.New("invalid role")
	// ErrNameNotRecorded is returned (wrapped with the name) by
	// Host.Rename, and is a join's refusal reason, when the name an
	// account was given could not be recorded as its own (NameOwners):
	// the server fails closed rather than give a name it cannot keep.
	ErrNameNotRecorded = errors.New("name not recorded")
	// ErrNotAllowed is returned (wrapped with the reason) by
	// Host.HistoryFor when the member may not read the room.
	ErrNotAllowed = errors.New("not allowed")
	// ErrInvalidLimits is returned (wrapped with the reason) by
	// Host.SetLimits, and by New for flood settings, for limits that
	// cannot work (see Limits).
	ErrInvalidLimits = errors.New("invalid limits")
	// ErrServerClosed is returned by Host methods after Shutdown.
	ErrServerClosed = errors.New("the server is shutting down")
)
