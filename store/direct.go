package store

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// Direct conversations (issue 14).
//
// The conversation of two accounts is stored exactly like a room, under its
// chat.ConversationKey ("@dm:" and the two escaped ids): a "rooms" bucket,
// a "roommeta" record, per-conversation ids that keep increasing across
// restarts. So Append, Recent, Before, After, Redact, retention (Prune),
// DeleteUser and Verify cover conversations without knowing about them,
// and no new bucket or format was needed. What must NOT see them is
// everything that lists or searches "rooms" for someone who is not one of
// the two: RoomStats (GET /api/rooms) and Query over every room leave them
// out; Rooms keeps them, for the maintenance above and the CLI (which
// filters them itself).

// maxConversationKeyLen bounds a conversation key: "@dm:", two account ids
// of at most MaxAccountIDLen bytes each, escaped (at most 3 bytes per
// byte), and the ':' between them. Far below bbolt's key limit.
const maxConversationKeyLen = len("@dm:") + 2*3*MaxAccountIDLen + 1

// conversationPrefix is what every chat.ConversationKey starts with: the
// room-meta bucket's keys are sorted, so the conversations are one
// contiguous range starting at it.
var conversationPrefix = []byte("@dm:")

// checkRoomKey tells Append whether a message's Room can be stored: a room
// name of 1 to maxRoomLen bytes, or a well-formed conversation key (a
// malformed "@dm:" key is refused, so that every stored conversation
// parses and is listed).
func checkRoomKey(room string) error {
	if chat.IsConversation(room) {
		if len(room) > maxConversationKeyLen {
			return fmt.Errorf("%w: conversation key of %d bytes", ErrInvalid, len(room))
		}
		if _, _, ok := chat.ParseConversationKey(room); !ok {
			return fmt.Errorf("%w: malformed conversation key %q", ErrInvalid, room)
		}
		return nil
	}
	if room == "" || len(room) > maxRoomLen {
		return fmt.Errorf("%w: room name of %d bytes", ErrInvalid, len(room))
	}
	return nil
}

// Conversations lists the stored conversations account takes part in
// (chat.ConversationLister, for GET /api/direct and `moonchat history
// -direct`), newest first: by the time of each one's newest stored
// message, then by key; a conversation whose messages were all removed
// (retention, deletion) has a zero LastTime and comes last. Count is the
// number of messages stored, LastID the newest id ever assigned.
//
// Cost: the conversations of every account are one key range of the
// room-meta bucket, read from its start (a Seek) to its end: every
// conversation stored on the server costs one small meta read (its key
// names both accounts, so it cannot be narrowed further: account may be
// either of the two), and each of account's own one more page read for its
// newest record's time. Rooms are not read.
func (db *DB) Conversations(account string) ([]chat.ConversationStat, error) {
	var out []chat.ConversationStat
	err := db.view(func(tx *bolt.Tx) error {
		metas := tx.Bucket(bucketRoomMeta)
		if metas == nil { // a new file opened read-only before its first write
			return nil
		}
		c := metas.Cursor()
		for k, v := c.Seek(conversationPrefix); k != nil && bytes.HasPrefix(k, conversationPrefix); k, v = c.Next() {
			key := string(k)
			a, b, ok := chat.ParseConversationKey(key)
			if !ok || (a != account && b != account) {
				continue // Append refuses malformed keys; nothing to list
			}
			meta, err := decodeMeta(v)
			if err != nil {
				return fmt.Errorf("conversation %q: %w", key, err)
			}
			st := chat.ConversationStat{Key: key, Peer: a, Count: int(meta.Count), LastID: meta.LastID}
			if a == account {
				st.Peer = b
			}
			if st.LastTime, err = db.lastTime(tx, key); err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list conversations in history %s: %w", db.path, err)
	}
	slices.SortFunc(out, func(x, y chat.ConversationStat) int {
		return cmp.Or(y.LastTime.Compare(x.LastTime), cmp.Compare(x.Key, y.Key))
	})
	return out, nil
}

// lastTime returns the time of the newest readable record of room (zero
// when it has none). Corrupt records are skipped and reported, as by every
// read.
func (db *DB) lastTime(tx *bolt.Tx, room string) (time.Time, error) {
	b, _, err := roomBuckets(tx, room)
	if b == nil || err != nil {
		return time.Time{}, err
	}
	c := b.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		r, err := readRecord(room, k, v)
		if err != nil {
			if err := db.skip(err); err != nil {
				return time.Time{}, err
			}
			continue
		}
		return r.time().UTC(), nil
	}
	return time.Time{}, nil
}
