package store

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// maxCheckErrors bounds the problems Check lists.
const maxCheckErrors = 20

// verifyCheckEvery is how many records Verify reads between looks at its
// context: often enough to stop at once on SIGINT, rarely enough to cost
// nothing.
const verifyCheckEvery = 1024

// VerifyStats summarises a Verify scan.
type VerifyStats struct {
	// Rooms and Records count what was read; Names counts the owned-name
	// entries read; Restrictions, RoomSettings and Audit the moderation
	// entries read.
	Rooms, Records, Names             int
	Restrictions, RoomSettings, Audit int
	// Ignores counts the ignore lists read (ignores.go).
	Ignores int
	// Corrupt counts the message records that failed verification
	// (reported as *CorruptRecord).
	Corrupt int
	// Problems counts everything else found wrong: bbolt's page checks,
	// meta records, IDs outside a room's range, wrong counts, corrupt
	// owned-name and moderation entries.
	Problems int
}

// OK reports whether the scan found nothing wrong.
func (s VerifyStats) OK() bool { return s.Corrupt == 0 && s.Problems == 0 }

// Verify reads the whole file and calls report for every problem it finds,
// in file order: first bbolt's own page consistency check (when that fails,
// the tree is not walked: walking it may panic), then the invariants of the
// package documentation for every record: its CRC-32C (versions 2 and 3),
// that it decodes, that its ID and room match its key and bucket, that IDs
// lie in (Pruned, LastID], each room's Count, and the owned-name entries
// (nameOwners' invariant 1) and the moderation entries (the invariants
// at the "restrictions" bucket, moderation.go). A bad record is reported
// as a *CorruptRecord (errors.As), anything else as an error wrapping
// ErrCorrupt. Verify neither logs nor counts what it finds (the read paths
// do), and reads in one transaction: on a big file, do it with the server
// stopped. The error is non-nil when the scan could not be completed (then
// the stats cover what was read); cancelling ctx stops the scan within
// verifyCheckEvery records with ctx's error. For `moonchat history -verify`.
func (db *DB) Verify(ctx context.Context, report func(error)) (VerifyStats, error) {
	var st VerifyStats
	problem := func(err error) {
		st.Problems++
		report(err)
	}
	err := db.view(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		broken := false
		for err := range tx.Check() {
			broken = true
			problem(fmt.Errorf("%w: bbolt: %w", ErrCorrupt, err))
		}
		if broken {
			return nil
		}
		// bbolt's page check has no way to be stopped; it is the cheap
		// part (pages, not records), so the signal is looked at after it.
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if _, err := db.verify(tx, func(error) error { return nil }); err != nil {
			problem(err)
			return nil
		}
		err := namesOf(tx).forEach(func(id, _ string, err error) error {
			st.Names++
			if err != nil {
				problem(fmt.Errorf("owned name of account %q: %w", id, err))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := verifyModeration(ctx, tx, &st, problem); err != nil {
			return err
		}
		rooms, metas := tx.Bucket(bucketRooms), tx.Bucket(bucketRoomMeta)
		if rooms == nil {
			return nil
		}
		return rooms.ForEachBucket(func(name []byte) error {
			st.Rooms++
			room := string(name)
			mv := metas.Get(name)
			if mv == nil {
				problem(fmt.Errorf("%w: room %q: no meta record", ErrCorrupt, room))
				return nil
			}
			meta, err := decodeMeta(mv)
			if err != nil {
				problem(fmt.Errorf("room %q: %w", room, err))
				return nil
			}
			var count uint64
			c := rooms.Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if st.Records%verifyCheckEvery == 0 {
					if err := ctx.Err(); err != nil {
						return context.Cause(ctx)
					}
				}
				count++
				st.Records++
				switch err := checkRecord(room, meta, k, v); {
				case err == nil:
				case isCorruptRecord(err):
					st.Corrupt++
					report(err)
				default:
					problem(err)
				}
			}
			if count != meta.Count {
				problem(fmt.Errorf("%w: room %q: meta counts %d messages, the bucket holds %d", ErrCorrupt, room, meta.Count, count))
			}
			return nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("verify history %s: %w", db.path, err)
	}
	return st, nil
}

// verifyModeration checks every moderation entry for Verify.
func verifyModeration(ctx context.Context, tx *bolt.Tx, st *VerifyStats, problem func(error)) error {
	checks := []struct {
		bucket []byte
		count  *int
		check  func(k, v []byte) error
	}{
		{bucketRestrictions, &st.Restrictions, func(k, v []byte) error { _, err := decodeRestriction(k, v); return err }},
		{bucketSettings, &st.RoomSettings, func(k, v []byte) error { _, err := decodeSettings(k, v); return err }},
		{bucketAudit, &st.Audit, func(k, v []byte) error { _, err := decodeAudit(k, v); return err }},
		{bucketIgnores, &st.Ignores, func(k, v []byte) error { _, err := decodeIgnores(k, v); return err }},
	}
	for _, c := range checks {
		b := tx.Bucket(c.bucket)
		if b == nil { // a format 1 to 3 file opened read-only
			continue
		}
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if *c.count%verifyCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return context.Cause(ctx)
				}
			}
			*c.count++
			if v == nil {
				problem(fmt.Errorf("%w: %s: nested bucket %q", ErrCorrupt, c.bucket, k))
				continue
			}
			if err := c.check(k, v); err != nil {
				problem(fmt.Errorf("%s entry %q: %w", c.bucket, k, err))
			}
		}
	}
	return nil
}

// Check is Verify as one error: nil, or an error wrapping ErrCorrupt that
// lists up to 20 problems (and how many more there are). It is slow on big
// files; Open only runs a cheap subset.
func (db *DB) Check() error {
	var problems []error
	more := 0
	st, err := db.Verify(context.Background(), func(err error) {
		if len(problems) < maxCheckErrors {
			problems = append(problems, err)
		} else {
			more++
		}
	})
	if err != nil {
		if len(problems) == maxCheckErrors {
			more++
		} else {
			problems = append(problems, err)
		}
	}
	if st.OK() && err == nil {
		return nil
	}
	if more > 0 {
		problems = append(problems, fmt.Errorf("and %d more problem(s)", more))
	}
	return fmt.Errorf("check history %s: %w: %w", db.path, ErrCorrupt, errors.Join(problems...))
}
