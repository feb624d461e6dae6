package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention.
//
// Prune removes messages from the oldest end of each room while the room
// holds more than MaxPerRoom messages or its oldest message is older than
// MaxAge. It works in transactions of at most scanChunk records, so the
// committer waits a few milliseconds at most for bbolt's writer lock, and
// it raises the room's Pruned watermark to the highest ID it removed (After
// uses the watermark's effect to report gaps). Messages are ordered by ID,
// and IDs follow arrival order, so age pruning stops at the first message
// young enough to keep.

// Prune applies the retention options now and returns how many messages it
// removed. The background pruner calls it every PruneInterval; the CLI may
// call it directly. It does nothing when neither MaxPerRoom nor MaxAge is set.
func (db *DB) Prune(now time.Time) (int, error) {
	if db.opts.MaxPerRoom <= 0 && db.opts.MaxAge <= 0 {
		return 0, nil
	}
	if db.readOnly {
		return 0, fmt.Errorf("prune history %s: %w", db.path, ErrReadOnly)
	}
	var cutoff time.Time
	if db.opts.MaxAge > 0 {
		cutoff = now.Add(-db.opts.MaxAge)
	}
	rooms, err := db.Rooms()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, r := range rooms {
		if !db.needsPrune(r, cutoff) {
			continue // no write transaction (and fsync) for a room within limits
		}
		for {
			if db.isClosing() {
				return total, fmt.Errorf("prune history %s: %w", db.path, ErrClosed)
			}
			n, done, err := db.pruneChunk(r.Name, cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("prune room %q in history %s: %w", r.Name, db.path, err)
			}
			if done {
				break
			}
		}
	}
	return total, nil
}

// pruneChunk removes up to scanChunk of room's oldest messages that
// retention no longer keeps, in one transaction. done reports that nothing
// more needs removing.
func (db *DB) pruneChunk(room string, cutoff time.Time) (n int, done bool, err error) {
	err = db.update(func(tx *bolt.Tx) error {
		n, done = 0, true
		b, meta, err := roomBuckets(tx, room)
		if b == nil || err != nil {
			return err
		}
		// unknown holds corrupt records met by the age check: their time
		// cannot be trusted, so they go (with the next readable record)
		// only when a younger readable neighbour is itself too old (IDs
		// follow arrival order) and are kept otherwise.
		var del, unknown [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(del)+len(unknown) >= scanChunk {
				done = false
				break
			}
			if db.opts.MaxPerRoom > 0 && meta.Count-uint64(len(del)) > uint64(db.opts.MaxPerRoom) {
				del = append(del, bytes.Clone(k)) // over the count: readable or not
				continue
			}
			if cutoff.IsZero() {
				break
			}
			r, err := readRecord(room, k, v)
			if err != nil {
				if err := db.skip(err); err != nil {
					return err
				}
				unknown = append(unknown, bytes.Clone(k))
				continue
			}
			if !r.time().Before(cutoff) {
				break
			}
			del = append(append(del, unknown...), bytes.Clone(k))
			unknown = unknown[:0]
		}
		if len(del) == 0 {
			done = true // nothing to do, or only unreadable records so far
			return nil
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		last, _ := keyID(del[len(del)-1])
		meta.Count -= uint64(len(del))
		meta.Pruned = max(meta.Pruned, last)
		n = len(del)
		return tx.Bucket(bucketRoomMeta).Put([]byte(room), meta.encode())
	})
	if err != nil {
		return 0, true, err
	}
	return n, done, nil
}

// pruneLoop is the background pruner goroutine: Prune at start and every
// PruneInterval until Close.
func (db *DB) pruneLoop() {
	defer db.wg.Done()
	t := time.NewTicker(db.opts.PruneInterval)
	defer t.Stop()
	for {
		n, err := db.Prune(db.now())
		switch {
		case err != nil && !db.isClosing():
			db.log.Error("history retention failed", "path", db.path, "err", err)
		case n > 0:
			db.log.Info("history retention removed old messages", "path", db.path, "removed", n)
		}
		select {
		case <-db.closing:
			return
		case <-t.C:
		}
	}
}

// needsPrune reports whether retention would remove anything from room,
// reading only its oldest record. On a read error it answers true and lets
// pruneChunk report the error.
func (db *DB) needsPrune(r RoomInfo, cutoff time.Time) bool {
	if db.opts.MaxPerRoom > 0 && r.Count > db.opts.MaxPerRoom {
		return true
	}
	if cutoff.IsZero() || r.Count == 0 {
		return false
	}
	old := true
	_ = db.view(func(tx *bolt.Tx) error {
		b, _, err := roomBuckets(tx, r.Name)
		if b == nil || err != nil {
			return err
		}
		if _, v := b.Cursor().First(); v != nil {
			if t, err := recordTime(v); err == nil {
				old = t.Before(cutoff)
			}
		}
		return nil
	})
	return old
}
