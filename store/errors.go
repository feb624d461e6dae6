package store

import (
	"errors"
	"fmt"
)

// Errors returned (wrapped, with the file name and cause) by this package.
// Test for them with errors.Is.
var (
	// ErrLocked means another process holds the database file, normally a
	// running moonchat server. bbolt allows one writer process, or any
	// number of read-only ones.
	ErrLocked = errors.New("history database is locked by another process")
	// ErrCorrupt means the file is not a readable moonchat database: not a
	// bbolt file, truncated, damaged pages, or records that do not decode.
	ErrCorrupt = errors.New("history database is corrupt")
	// ErrChecksum means a message record's stored CRC-32C does not match
	// its bytes: the record was altered on disk (a flipped bit, a damaged
	// sector). Errors wrapping it also wrap ErrCorrupt.
	ErrChecksum = errors.New("message record checksum mismatch")
	// ErrFormat means the file was written by a newer moonchat whose layout
	// this build does not know.
	ErrFormat = errors.New("history database has an unknown format version")
	// ErrUnwritable means the file or its directory cannot be created or
	// written (permissions, read-only file system, a path under a file).
	ErrUnwritable = errors.New("history database is not writable")
	// ErrNotExist means OpenReadOnly found no database file.
	ErrNotExist = errors.New("history database does not exist")
	// ErrReadOnly is returned by writes to a database opened read-only.
	ErrReadOnly = errors.New("history database is open read-only")
	// ErrReplica is returned by Append on a replica of the cluster's log
	// (ids come from the log: Apply), by Apply on a DB that is not one,
	// and by a writable Open of a replica file without Options.Replica or
	// Options.Detach (replica.go).
	ErrReplica = errors.New("history database is a replica of the cluster's log")
	// ErrDiverged is returned by Apply for a record whose ids do not
	// follow the replica's room (an id at or below the room's LastID):
	// the log and the replica disagree, and nothing was applied.
	ErrDiverged = errors.New("cluster log record does not follow the replica")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("history database is closed")
	// ErrInvalid is returned for arguments the database cannot store or
	// answer (an empty room name, an empty KV key, a negative limit, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrInvalidAccount is returned by Append for a message whose
	// chat.Account cannot be stored (an over-long id, too many roles, an
	// empty or over-long role) and by SetNameOwner for an empty or
	// over-long account id. It wraps ErrInvalid.
	ErrInvalidAccount = fmt.Errorf("%w: account", ErrInvalid)
	// ErrInvalidName is returned by SetNameOwner for an empty or over-long
	// name. It wraps ErrInvalid.
	ErrInvalidName = fmt.Errorf("%w: owned name", ErrInvalid)
	// ErrInvalidRestriction is returned by PutRestriction and
	// DeleteRestriction for a restriction the store cannot keep (an
	// unknown kind, not exactly one target, a field out of bounds, an
	// address that is not one, Expires not after Created). It wraps
	// ErrInvalid.
	ErrInvalidRestriction = fmt.Errorf("%w: restriction", ErrInvalid)
	// ErrInvalidRoomSettings is returned by PutRoomSettings for an empty
	// or over-long room or settings out of bounds. It wraps ErrInvalid.
	ErrInvalidRoomSettings = fmt.Errorf("%w: room settings", ErrInvalid)
	// ErrInvalidAudit is returned by AppendAudit for an entry without an
	// action or with a field out of bounds. It wraps ErrInvalid.
	ErrInvalidAudit = fmt.Errorf("%w: audit entry", ErrInvalid)
)
