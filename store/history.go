package store

import (
	"fmt"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// roomBuckets returns room's message bucket and meta inside tx, or a nil
// bucket when the room has never stored a message.
func roomBuckets(tx *bolt.Tx, room string) (*bolt.Bucket, roomMeta, error) {
	rooms := tx.Bucket(bucketRooms)
	if rooms == nil { // a new file opened read-only before its first write
		return nil, roomMeta{}, nil
	}
	b := rooms.Bucket([]byte(room))
	if b == nil {
		return nil, roomMeta{}, nil
	}
	meta, err := decodeMeta(tx.Bucket(bucketRoomMeta).Get([]byte(room)))
	if err != nil {
		return nil, roomMeta{}, fmt.Errorf("room %q: %w", room, err)
	}
	return b, meta, nil
}

// backward collects up to n messages walking c backwards from (k, v),
// returned oldest first. Corrupt records are skipped (and reported).
func (db *DB) backward(room string, c *bolt.Cursor, k, v []byte, n int) ([]chat.Message, error) {
	var out []chat.Message
	for ; k != nil && len(out) < n; k, v = c.Prev() {
		m, err := decodeAt(room, k, v)
		if err != nil {
			if err := db.skip(err); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, m)
	}
	slices.Reverse(out)
	return out, nil
}

// Recent returns up to n of room's newest messages, oldest first. It reads
// only the pages it returns (a cursor from the end), whatever the room's size.
func (db *DB) Recent(room string, n int) ([]chat.Message, error) {
	return db.Before(room, 0, n)
}

// Before returns up to n messages of room with ID < before (the n newest
// of them), oldest first. Corrupt records are skipped (and reported), so a
// damaged record costs its room one message, not its history. before == 0 means no bound, as in Recent. To learn
// whether older messages exist beyond the page, ask for n+1.
func (db *DB) Before(room string, before uint64, n int) ([]chat.Message, error) {
	if n <= 0 {
		return nil, nil
	}
	var out []chat.Message
	err := db.view(func(tx *bolt.Tx) error {
		b, _, err := roomBuckets(tx, room)
		if b == nil || err != nil {
			return err
		}
		c := b.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(idKey(before)); k == nil {
			k, v = c.Last() // every ID is < before
		} else {
			k, v = c.Prev()
		}
		out, err = db.backward(room, c, k, v, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read history %s: %w", db.path, err)
	}
	return out, nil
}

// After returns up to n messages of room with ID > after, oldest first.
// Corrupt records are skipped (and reported); see "Corrupt records".
//
// complete is false when some of the messages right after `after` are gone
// (pruned by retention or redacted): message after+1 was stored once (its
// ID is <= the room's last ID) but the first message returned is not it.
// The chat server then sends a gap event from after to msgs[0].ID.
// more is true when messages beyond the n returned exist.
func (db *DB) After(room string, after uint64, n int) (msgs []chat.Message, complete, more bool, err error) {
	complete = true
	if after == math.MaxUint64 {
		return nil, true, false, nil
	}
	n = max(n, 0)
	err = db.view(func(tx *bolt.Tx) error {
		b, meta, err := roomBuckets(tx, room)
		if b == nil || err != nil {
			return err
		}
		c := b.Cursor()
		k, v := c.Seek(idKey(after + 1))
		if after+1 <= meta.LastID {
			if id, _ := keyID(k); k == nil || id != after+1 {
				complete = false
			}
		}
		for ; k != nil && len(msgs) < n; k, v = c.Next() {
			m, err := decodeAt(room, k, v)
			if err != nil {
				if err := db.skip(err); err != nil {
					return err
				}
				if id, _ := keyID(k); id == after+1 {
					complete = false // not served: report it as a gap
				}
				continue
			}
			msgs = append(msgs, m)
		}
		more = k != nil
		return nil
	})
	if err != nil {
		return nil, false, false, fmt.Errorf("read history %s: %w", db.path, err)
	}
	return msgs, complete, more, nil
}

// Redact deletes one message for good and reports whether it existed. The
// room's last ID is kept, so IDs are never reused.
func (db *DB) Redact(room string, id uint64) (bool, error) {
	if db.readOnly {
		return false, fmt.Errorf("redact %s/%d in history %s: %w", room, id, db.path, ErrReadOnly)
	}
	n, err := db.deleteKeys(room, [][]byte{idKey(id)})
	if err != nil {
		return false, fmt.Errorf("redact %s/%d in history %s: %w", room, id, db.path, err)
	}
	return n == 1, nil
}
