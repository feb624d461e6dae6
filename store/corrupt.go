package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/moonchat/moonchat/core/chat"
)

// Corrupt records.
//
// A message record that fails verification — its CRC-32C does not match
// (versions 2 and 3), it does not decode, or its ID or room disagree with the key
// and bucket it is stored under — is never served: serving altered history
// is never acceptable. Nor does it take its room down: the read paths
// (Recent, Before, After, Query, the retention and DeleteUser scans, and
// Open's spot check) skip it and go on with its neighbours, so a room with
// one bad record still replays, pages and resumes. Skipping is reported,
// not silent: a log line at error level naming the file, room and ID, and
// moonchat_store_corrupt_records_total in /metrics (metrics.go), each
// once per record for the life of the DB. After treats a skipped record
// right after `after` as missing (complete = false, so the chat server
// sends a gap event). DeleteUser finishes its work and then fails, because
// an unreadable record may be one of the user's.
//
// Damage to bbolt's own pages (branch pages, page headers, the freelist)
// is different: the tree cannot be walked past it, and reads fail with
// ErrCorrupt as before. Verify (`moonchat history -verify`) reads
// everything and lists every bad record.

// CorruptRecord describes one message record that failed verification. It
// is the error the read paths skip and Verify reports; Err wraps ErrCorrupt,
// and ErrChecksum when the checksum did not match.
type CorruptRecord struct {
	Room string
	// ID is the record's key as an ID (0 when the key is not 8 bytes long).
	ID  uint64
	Err error
}

func (c *CorruptRecord) Error() string {
	return fmt.Sprintf("room %q id %d: %v", c.Room, c.ID, c.Err)
}

func (c *CorruptRecord) Unwrap() error { return c.Err }

// readRecord verifies the record v stored under key k of room and returns
// it for in-place reads. Every failure is a *CorruptRecord.
func readRecord(room string, k, v []byte) (rawRecord, error) {
	id, ok := keyID(k)
	if !ok {
		return rawRecord{}, &CorruptRecord{Room: room, Err: fmt.Errorf("%w: key %x is not an ID", ErrCorrupt, k)}
	}
	r, err := openRecord(v)
	if err != nil {
		return rawRecord{}, &CorruptRecord{Room: room, ID: id, Err: err}
	}
	if r.id() != id {
		return rawRecord{}, &CorruptRecord{Room: room, ID: id, Err: fmt.Errorf("%w: record under key %d has id %d", ErrCorrupt, id, r.id())}
	}
	return r, nil
}

// decodeAt verifies and decodes the record under key k of room: the result
// is the message exactly as it was stored, or a *CorruptRecord.
func decodeAt(room string, k, v []byte) (chat.Message, error) {
	r, err := readRecord(room, k, v)
	if err != nil {
		return chat.Message{}, err
	}
	m, err := r.decode()
	if err == nil && m.Room != room {
		err = fmt.Errorf("%w: record names room %q", ErrCorrupt, m.Room)
	}
	if err != nil {
		return chat.Message{}, &CorruptRecord{Room: room, ID: r.id(), Err: err}
	}
	return m, nil
}

// isCorruptRecord reports whether err is about one record (which a read
// may skip) rather than the file.
func isCorruptRecord(err error) bool {
	var c *CorruptRecord
	return errors.As(err, &c)
}

// maxReported bounds the set of records already logged: beyond it, every
// sighting of a further bad record is logged and counted again.
const maxReported = 1 << 16

// corruption counts and remembers the bad records the read paths skipped.
type corruption struct {
	count    atomic.Uint64
	mu       sync.Mutex
	reported map[recordRef]struct{}
}

type recordRef struct {
	room string
	id   uint64
	// account is set (and room, id are zero) for an owned-name entry.
	account string
	// bucket and key are set (and the rest zero) for a moderation entry.
	bucket, key string
}

// skip reports a corrupt record met by a read path and tells it to go on:
// it returns nil for a *CorruptRecord (logged and counted once per record)
// and err itself for anything else.
func (db *DB) skip(err error) error {
	var c *CorruptRecord
	if !errors.As(err, &c) {
		return err
	}
	if db.bad.first(recordRef{room: c.Room, id: c.ID}) {
		db.log.Error("history record is corrupt: not served (run moonchat history -verify with the server stopped)",
			"path", db.path, "room", c.Room, "id", c.ID, "err", c.Err)
	}
	return nil
}

// skipName reports a corrupt owned-name entry that NameOwners leaves out,
// as skip does a record: logged and counted once per entry.
func (db *DB) skipName(account string, err error) {
	if db.bad.first(recordRef{account: account}) {
		db.log.Error("owned-name entry is corrupt: the account does not own a name until it is given one again (run moonchat history -verify with the server stopped)",
			"path", db.path, "account", account, "err", err)
	}
}

// skipEntry reports a corrupt moderation entry (moderation.go) that a
// read leaves out, as skip does a record: logged and counted once per
// entry.
func (db *DB) skipEntry(bucket, key []byte, err error) {
	if db.bad.first(recordRef{bucket: string(bucket), key: string(key)}) {
		db.log.Error("moderation entry is corrupt: left out (a ban or mute is not enforced, room settings are the defaults, an audit entry is not shown) until it is written again (run moonchat history -verify with the server stopped)",
			"path", db.path, "bucket", string(bucket), "key", fmt.Sprintf("%q", key), "err", err)
	}
}

// first counts ref and reports whether it is the first sighting of it
// (to be logged). Beyond maxReported remembered entries, every sighting
// counts as a first.
func (c *corruption) first(ref recordRef) bool {
	c.mu.Lock()
	_, seen := c.reported[ref]
	if !seen && len(c.reported) < maxReported {
		if c.reported == nil {
			c.reported = make(map[recordRef]struct{})
		}
		c.reported[ref] = struct{}{}
	}
	c.mu.Unlock()
	if !seen {
		c.count.Add(1)
	}
	return !seen
}

// CorruptRecords returns how many distinct corrupt message records the
// read paths have met (and skipped) since Open, and corrupt owned-name
// and moderation entries the reads left out.
func (db *DB) CorruptRecords() uint64 { return db.bad.count.Load() }
