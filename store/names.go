package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Owned names: chat.NameOwners. An authenticated account's nick stays its
// own while it is offline and across restarts; the chat server reads the
// whole table once (NameOwners, from chat.New) and records each change
// (SetNameOwner) through the group committer, so a change shares the fsync
// of the messages committed with it and is durable when the call returns.

// nameEntryV1 is the first (and current) version of an owned-name entry.
const nameEntryV1 = 1

// nameEntryMin is the size of an entry with a one-byte name.
const nameEntryMin = 1 + 1 + recordV2CRC

// nameOwners is the top-level "names" bucket: which account owns which
// nick. It is a bucket of its own, beside the rooms, so that reading it
// costs O(accounts) whatever the history's size.
//
//	key    account id (chat.Account.ID), raw bytes
//	value  offset  size  field
//	       0       1     entry version = 1
//	       1       n     the owned name, raw bytes
//	       1+n     4     CRC-32C (Castagnoli) of the key, then of every
//	                     value byte before it: a damaged key does not hand
//	                     the name to another account unnoticed
//
// Invariants (Verify checks them; SetNameOwner keeps them):
//
//  1. Every key is 1 to MaxAccountIDLen bytes; every name 1 to
//     MaxOwnedNameLen bytes; every entry's checksum matches.
//  2. An account owns one name: the one it was last given. SetNameOwner
//     replaces the account's entry in place (one key per account), so the
//     name it owned before is no longer its own in the same transaction.
//  3. The bucket does not make names unique: two accounts may have been
//     given the same name (an application renamed one of them). The chat
//     server decides who holds a name — it compares names by look-alike
//     keys the store does not know — as it does for live accounts.
//  4. The bucket exists in every format 3 file (Open creates it, and adds
//     it when it upgrades a format 1 or 2 file); a format 1 or 2 file
//     opened read-only has none, and owns no names.
//
// An entry that breaks invariant 1 is never served: NameOwners leaves it
// out, logs it and counts it in moonchat_store_corrupt_records_total, so
// that the server still starts (the account's next SetNameOwner rewrites
// it), and Verify reports it.
type nameOwners struct{ b *bolt.Bucket }

// nameOp is one SetNameOwner waiting for the committer.
type nameOp struct{ id, name string }

// namesOf returns tx's names bucket; b is nil in a format 1 or 2 file
// opened read-only.
func namesOf(tx *bolt.Tx) nameOwners { return nameOwners{tx.Bucket(bucketNames)} }

// encodeName returns the entry of name owned by id.
func encodeName(id, name string) []byte {
	v := make([]byte, 0, 1+len(name)+recordV2CRC)
	v = append(v, nameEntryV1)
	v = append(v, name...)
	sum := crc32.Update(crc32.Checksum([]byte(id), castagnoli), castagnoli, v)
	return binary.BigEndian.AppendUint32(v, sum)
}

// decodeName verifies the entry v stored under account id k and returns
// the name (a copy). Every failure wraps ErrCorrupt.
func decodeName(k, v []byte) (string, error) {
	if len(k) == 0 || len(k) > MaxAccountIDLen {
		return "", fmt.Errorf("%w: account id of %d bytes", ErrCorrupt, len(k))
	}
	if len(v) < nameEntryMin || len(v) > 1+MaxOwnedNameLen+recordV2CRC {
		return "", fmt.Errorf("%w: owned-name entry of %d bytes", ErrCorrupt, len(v))
	}
	body := v[:len(v)-recordV2CRC]
	stored := binary.BigEndian.Uint32(v[len(body):])
	if sum := crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, body); sum != stored {
		return "", fmt.Errorf("%w: %w: stored CRC-32C %08x, computed %08x", ErrCorrupt, ErrChecksum, stored, sum)
	}
	if body[0] != nameEntryV1 {
		return "", fmt.Errorf("%w: unknown owned-name entry version %d", ErrCorrupt, body[0])
	}
	return string(body[1:]), nil
}

// get returns the name id owns, and whether it has a valid entry.
func (n nameOwners) get(id string) (string, bool) {
	if n.b == nil {
		return "", false
	}
	v := n.b.Get([]byte(id))
	if v == nil {
		return "", false
	}
	name, err := decodeName([]byte(id), v)
	return name, err == nil
}

// forEach calls fn for every entry, with the entry's error when it is
// corrupt (then name is "").
func (n nameOwners) forEach(fn func(id, name string, err error) error) error {
	if n.b == nil {
		return nil
	}
	return n.b.ForEach(func(k, v []byte) error {
		name, err := decodeName(k, v)
		return fn(string(k), name, err)
	})
}

// applyName performs op inside the committer's transaction.
func applyName(tx *bolt.Tx, op *nameOp) error {
	b := tx.Bucket(bucketNames)
	if b == nil { // Open creates it in every writable file
		return fmt.Errorf("%w: no %q bucket", ErrCorrupt, bucketNames)
	}
	// bbolt keeps key and value until the commit: fresh slices.
	if err := b.Put([]byte(op.id), encodeName(op.id, op.name)); err != nil {
		return fmt.Errorf("owned name of account %q: %w", op.id, err)
	}
	return nil
}

// checkNameOwner checks SetNameOwner's arguments against invariant 1.
func checkNameOwner(id, name string) error {
	switch {
	case id == "" || len(id) > MaxAccountIDLen:
		return fmt.Errorf("%w: account id of %d bytes (1 to %d)", ErrInvalidAccount, len(id), MaxAccountIDLen)
	case name == "" || len(name) > MaxOwnedNameLen:
		return fmt.Errorf("%w: name of %d bytes (1 to %d)", ErrInvalidName, len(name), MaxOwnedNameLen)
	}
	return nil
}

// NameOwners returns every owned name: account id → the name it owns
// (chat.NameOwners). A corrupt entry is left out, logged and counted (see
// nameOwners); a file without the names bucket (format 1 or 2, read-only)
// owns none.
func (db *DB) NameOwners() (map[string]string, error) {
	out := make(map[string]string)
	err := db.view(func(tx *bolt.Tx) error {
		return namesOf(tx).forEach(func(id, name string, err error) error {
			if err != nil {
				db.skipName(id, err)
				return nil
			}
			out[id] = name
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read owned names in history %s: %w", db.path, err)
	}
	return out, nil
}

// SetNameOwner records that account id now owns name, replacing the name
// it owned before (chat.NameOwners). It returns once the change is on disk
// (the group committer's fsync). When id already owns exactly name nothing
// is written: an account reconnecting under its name costs no fsync. (That
// check reads committed data, which bbolt shows to readers from the
// moment the commit's meta page is written, just before its last fsync
// returns: a call racing the very commit that stored the same name may
// return a moment before that fsync does.)
// Errors wrap ErrInvalidAccount or ErrInvalidName for arguments out of
// bounds, ErrReadOnly and ErrClosed.
func (db *DB) SetNameOwner(id, name string) error {
	if err := checkNameOwner(id, name); err != nil {
		return fmt.Errorf("set owned name in history %s: %w", db.path, err)
	}
	if db.readOnly {
		return fmt.Errorf("set owned name of account %q in history %s: %w", id, db.path, ErrReadOnly)
	}
	same := false
	if err := db.view(func(tx *bolt.Tx) error {
		old, ok := namesOf(tx).get(id)
		same = ok && old == name
		return nil
	}); err != nil {
		return fmt.Errorf("set owned name of account %q in history %s: %w", id, db.path, err)
	}
	if same {
		return nil
	}
	if err := db.submit(context.Background(), &request{name: &nameOp{id: id, name: name}}); err != nil {
		return fmt.Errorf("set owned name of account %q in history %s: %w", id, db.path, err)
	}
	return nil
}
