package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// maxCheckErrors bounds the problems Check reports.
const maxCheckErrors = 20

// Check reads the whole file: bbolt's own page consistency check, then the
// invariants of the package documentation for every record (each decodes,
// its ID and room match its key and bucket, IDs lie in (Pruned, LastID], the
// room's Count is right). It returns nil or an error wrapping ErrCorrupt
// that lists up to 20 problems. It is slow on big files; Open only runs a
// cheap subset. For `moonchat check` and `moonchat history -check`.
func (db *DB) Check() error {
	var problems []error
	add := func(err error) bool {
		problems = append(problems, err)
		return len(problems) < maxCheckErrors
	}
	err := db.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if !add(fmt.Errorf("bbolt: %w", err)) {
				return nil
			}
		}
		if len(problems) > 0 {
			return nil // the tree itself is broken: walking it may panic
		}
		if err := db.verify(tx); err != nil {
			add(err)
			return nil
		}
		rooms, metas := tx.Bucket(bucketRooms), tx.Bucket(bucketRoomMeta)
		if rooms == nil {
			return nil
		}
		return rooms.ForEachBucket(func(name []byte) error {
			room := string(name)
			mv := metas.Get(name)
			if mv == nil {
				add(fmt.Errorf("room %q: no meta record", room))
				return nil
			}
			meta, err := decodeMeta(mv)
			if err != nil {
				add(fmt.Errorf("room %q: %w", room, err))
				return nil
			}
			var count uint64
			c := rooms.Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				count++
				if err := checkRecord(room, meta, k, v); err != nil && !add(err) {
					return errStop
				}
			}
			if count != meta.Count {
				add(fmt.Errorf("room %q: meta counts %d messages, the bucket holds %d", room, meta.Count, count))
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		add(err)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("check history %s: %w: %w", db.path, ErrCorrupt, errors.Join(problems...))
}

var errStop = errors.New("stop")
