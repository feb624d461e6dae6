package chat

import "errors"

// Named errors returned by the Host methods and by New.
var (
	// ErrNoSuchUser is returned by Host methods for a session that has left
	// (or has not finished joining).
	ErrNoSuchUser = errors.New("chat: no such user")
	// ErrNoSuchRoom is returned by Host.Broadcast for a room without members.
	ErrNoSuchRoom = errors.New("chat: no such room")
	// ErrNoHistory is returned when the server runs without a History.
	ErrNoHistory = errors.New("chat: no history (server runs without a store)")
	// ErrNoSuchMessage is returned by Host.Redact for an id that is not
	// stored.
	ErrNoSuchMessage = errors.New("chat: no such message")
	// ErrInvalidName is returned (wrapped with the reason) for a nickname
	// that breaks the rules in docs/protocol.md.
	ErrInvalidName = errors.New("chat: invalid name")
	// ErrInvalidRoom is returned (wrapped with the reason) for a bad room name.
	ErrInvalidRoom = errors.New("chat: invalid room name")
	// ErrServerClosed is returned by Host methods after Shutdown.
	ErrServerClosed = errors.New("chat: server closed")
)
