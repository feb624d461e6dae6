package store

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// DefaultQueryLimit is the page size of a Query with Limit 0.
const DefaultQueryLimit = 100

// Query selects messages for the `moonchat history` CLI and the HTTP API.
// Zero fields do not filter. Results are oldest first.
type Query struct {
	// Room limits the query to one room (or one direct conversation: its
	// chat.ConversationKey). Empty means every room — never a
	// conversation; Before and After then must be 0 (IDs are per room)
	// and the result is ordered by Time (then room, then ID).
	Room string
	// User keeps only messages whose sender is exactly User.
	User string
	// Grep keeps only messages whose Text contains Grep (case-sensitive).
	Grep string
	// Since keeps only messages with Time >= Since.
	Since time.Time
	// Before keeps only IDs < Before; After keeps only IDs > After.
	Before, After uint64
	// Limit caps the result (0 → DefaultQueryLimit). Without After the
	// newest Limit matches are returned (paging backwards with Before);
	// with After the oldest Limit matches after it (paging forwards).
	Limit int
}

func (q *Query) match(m *chat.Message) bool {
	return (q.User == "" || m.User == q.User) &&
		(q.Grep == "" || strings.Contains(m.Text, q.Grep)) &&
		(q.Since.IsZero() || !m.Time.Before(q.Since))
}

// Query returns the messages q selects, oldest first, and whether further
// matches exist beyond q.Limit (in the paging direction).
//
// One room is scanned from its newest message (or from Before) backwards,
// or from After forwards, stopping after Limit+1 matches. A backward scan
// with Since also stops at the first message older than Since: IDs follow
// arrival order, so older messages can only have older times (unless the
// server's clock was set back).
func (db *DB) Query(q Query) (msgs []chat.Message, more bool, err error) {
	if q.Limit < 0 {
		return nil, false, fmt.Errorf("query history: %w: negative limit", ErrInvalid)
	}
	if q.Limit == 0 {
		q.Limit = DefaultQueryLimit
	}
	if q.Room == "" && (q.Before != 0 || q.After != 0) {
		return nil, false, fmt.Errorf("query history: %w: Before/After need a Room", ErrInvalid)
	}
	err = db.view(func(tx *bolt.Tx) error {
		if q.Room != "" {
			msgs, err = db.queryRoom(tx, q.Room, &q)
			return err
		}
		// Every room: the newest Limit+1 matches of each, merged by time.
		rooms := tx.Bucket(bucketRooms)
		if rooms == nil {
			return nil
		}
		return rooms.ForEachBucket(func(name []byte) error {
			if bytes.HasPrefix(name, conversationPrefix) {
				return nil // every room: never a direct conversation
			}
			part, err := db.queryRoom(tx, string(name), &q)
			msgs = append(msgs, part...)
			return err
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("query history %s: %w", db.path, err)
	}
	if q.Room == "" {
		slices.SortFunc(msgs, func(a, b chat.Message) int {
			return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Room, b.Room), cmp.Compare(a.ID, b.ID))
		})
	}
	if len(msgs) > q.Limit {
		more = true
		if q.After != 0 {
			msgs = msgs[:q.Limit]
		} else {
			msgs = msgs[len(msgs)-q.Limit:]
		}
	}
	return msgs, more, nil
}

// queryRoom returns up to q.Limit+1 matches in room, oldest first.
//
// Most records of a filtered scan are rejected on their raw bytes, before
// their checksum is computed (it would double the cost of a full scan).
// Rejecting never serves anything; whatever is kept, and the record that
// ends a backward scan at Since, is verified first, so that neither a
// result nor the cut-off rests on altered bytes. Corrupt records are
// skipped and reported.
func (db *DB) queryRoom(tx *bolt.Tx, room string, q *Query) ([]chat.Message, error) {
	b, _, err := roomBuckets(tx, room)
	if b == nil || err != nil {
		return nil, err
	}
	want := q.Limit + 1
	grepB := []byte(q.Grep)
	userB := []byte(q.User)
	var out []chat.Message
	// visit checks one record; stop reports that the scan is over.
	visit := func(k, v []byte) (stop bool, err error) {
		if id, _ := keyID(k); q.Before != 0 && q.After != 0 && id >= q.Before {
			return true, nil // scanning forwards: past the upper bound
		}
		if r, ok := peekRecord(v); ok {
			if !q.Since.IsZero() && r.time().Before(q.Since) {
				if q.After != 0 {
					return false, nil
				}
				// Scanning backwards, only older ones follow: stop, unless
				// the time read is not the one stored.
				if _, err := readRecord(room, k, v); err != nil {
					return false, db.skip(err)
				}
				return true, nil
			}
			if q.Grep != "" && !bytes.Contains(r.strings(), grepB) {
				return false, nil // the text cannot contain it if the record does not
			}
			if u, err := r.user(); q.User != "" && err == nil && !bytes.Equal(u, userB) {
				return false, nil
			}
		}
		m, err := decodeAt(room, k, v)
		if err != nil {
			return false, db.skip(err)
		}
		if q.match(&m) {
			out = append(out, m)
		}
		return false, nil
	}
	c := b.Cursor()
	if q.After == math.MaxUint64 {
		return nil, nil
	}
	if q.After != 0 {
		for k, v := c.Seek(idKey(q.After + 1)); k != nil && len(out) < want; k, v = c.Next() {
			if stop, err := visit(k, v); stop || err != nil {
				return out, err
			}
		}
		return out, nil
	}
	var k, v []byte
	if q.Before == 0 {
		k, v = c.Last()
	} else if k, _ = c.Seek(idKey(q.Before)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && len(out) < want; k, v = c.Prev() {
		stop, err := visit(k, v)
		if err != nil {
			return nil, err
		}
		if stop {
			break
		}
	}
	slices.Reverse(out)
	return out, nil
}

// RoomInfo describes one room's stored history.
type RoomInfo struct {
	Name string
	// Count is the number of messages stored.
	Count int
	// FirstID and LastID are the oldest stored and the newest ever
	// assigned ID (LastID stays when the newest message is redacted).
	// FirstID is 0 when Count is 0.
	FirstID, LastID uint64
	// Pruned is the highest ID removed by retention (0 = none).
	Pruned uint64
}

// Rooms lists every room that has ever stored a message, sorted by name,
// and the direct conversations too (chat.IsConversation tells them
// apart): retention, DeleteUser and Verify cover
// them through it. Whoever lists rooms for people leaves them out
// (RoomStats does). It reads each room's meta record and first key only.
func (db *DB) Rooms() ([]RoomInfo, error) {
	var out []RoomInfo
	err := db.view(func(tx *bolt.Tx) error {
		metas := tx.Bucket(bucketRoomMeta)
		if metas == nil {
			return nil
		}
		return metas.ForEach(func(name, _ []byte) error {
			room := string(name)
			b, meta, err := roomBuckets(tx, room)
			if err != nil {
				return err
			}
			if b == nil {
				return fmt.Errorf("%w: room %q has meta but no bucket", ErrCorrupt, room)
			}
			info := RoomInfo{Name: room, Count: int(meta.Count), LastID: meta.LastID, Pruned: meta.Pruned}
			if k, _ := b.Cursor().First(); k != nil {
				info.FirstID, _ = keyID(k)
			}
			out = append(out, info)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list rooms in history %s: %w", db.path, err)
	}
	return out, nil
}

// RoomStats is Rooms in the chat server's terms, without the direct
// conversations: it implements chat.RoomLister, so that GET /api/rooms
// (and `moonchat history -rooms` while the server holds the file) can list
// the stored rooms, and only rooms.
func (db *DB) RoomStats() ([]chat.RoomStat, error) {
	rooms, err := db.Rooms()
	if err != nil {
		return nil, err
	}
	out := make([]chat.RoomStat, 0, len(rooms))
	for _, r := range rooms {
		if chat.IsConversation(r.Name) {
			continue
		}
		out = append(out, chat.RoomStat{Name: r.Name, Count: r.Count, FirstID: r.FirstID, LastID: r.LastID})
	}
	return out, nil
}

// scanChunk bounds the records one maintenance transaction (DeleteUser,
// Prune) deletes or visits, so that it holds bbolt's writer lock — and
// delays the committer's next group — for a few milliseconds at most.
const scanChunk = 2000

// DeleteUser deletes every message sent by name in every room and returns
// how many it deleted (for `moonchat history -delete-user NAME`). It scans
// everything in read transactions and deletes in small write transactions
// (only where it found something); messages appended meanwhile may survive.
// Room IDs are not reused. Corrupt records cannot tell whose they are: it
// skips them, deletes everything else, and then returns the count with an
// error wrapping ErrCorrupt.
func (db *DB) DeleteUser(name string) (int, error) {
	if db.readOnly {
		return 0, fmt.Errorf("delete user %q in history %s: %w", name, db.path, ErrReadOnly)
	}
	rooms, err := db.Rooms()
	if err != nil {
		return 0, err
	}
	user := []byte(name)
	total, unreadable := 0, 0
	for _, r := range rooms {
		for next := uint64(1); next != 0; {
			if db.isClosing() {
				return total, fmt.Errorf("delete user %q in history %s: %w", name, db.path, ErrClosed)
			}
			var found [][]byte
			err := db.view(func(tx *bolt.Tx) error {
				b, _, err := roomBuckets(tx, r.Name)
				if b == nil || err != nil {
					next = 0
					return err
				}
				c := b.Cursor()
				k, v := c.Seek(idKey(next))
				for visited := 0; k != nil && len(found) < scanChunk && visited < 10*scanChunk; k, v = c.Next() {
					visited++
					rec, err := readRecord(r.Name, k, v)
					var u []byte
					if err == nil {
						if u, err = rec.user(); err != nil {
							err = &CorruptRecord{Room: r.Name, ID: rec.id(), Err: err}
						}
					}
					if err != nil {
						unreadable++
						if err := db.skip(err); err != nil {
							return err
						}
						continue
					}
					if bytes.Equal(u, user) {
						found = append(found, bytes.Clone(k))
					}
				}
				next, _ = keyID(k) // 0 when k == nil: the room is done
				return nil
			})
			if err == nil && len(found) > 0 {
				var n int
				n, err = db.deleteKeys(r.Name, found)
				total += n
			}
			if err != nil {
				return total, fmt.Errorf("delete user %q in history %s: %w", name, db.path, err)
			}
		}
	}
	if unreadable > 0 {
		// Fail closed: the caller must not believe the user is gone.
		return total, fmt.Errorf("delete user %q in history %s: deleted %d message(s), but %d corrupt record(s) could not be read and may be theirs (see the log; moonchat history -verify lists them): %w",
			name, db.path, total, unreadable, ErrCorrupt)
	}
	return total, nil
}

// deleteKeys deletes the records under keys (those still there) from room
// in one transaction, keeping the meta Count right. Redaction and
// DeleteUser use it; it never touches LastID or Pruned.
func (db *DB) deleteKeys(room string, keys [][]byte) (int, error) {
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		b, meta, err := roomBuckets(tx, room)
		if b == nil || err != nil {
			return err
		}
		for _, k := range keys {
			if b.Get(k) == nil {
				continue
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		meta.Count -= uint64(n)
		return tx.Bucket(bucketRoomMeta).Put([]byte(room), meta.encode())
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
