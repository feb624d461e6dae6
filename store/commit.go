package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// Group commit.
//
// Every durable write (Append, Set, Delete, SetNameOwner, and the
// moderation writes of moderation.go) becomes a request on db.reqs and
// waits for its done channel. One goroutine, the committer, takes the first
// queued request, then everything else already queued (up to
// maxBatchMessages), and writes them all in one bbolt transaction: one fsync
// for the whole group. While that fsync runs, new requests queue up and form
// the next group, so under load each commit carries every message that
// arrived during the previous one, and a lone message is committed at once
// with no added delay.
//
// A request's result is sent only after bolt's Commit returned, i.e. after
// fdatasync: whoever waits on done may then broadcast. If a group's
// transaction fails, each request is retried in a transaction of its own so
// that one bad request cannot fail its neighbours.

// request is one durable write waiting for the committer.
type request struct {
	msgs  []chat.Message // Append: copies of the caller's messages
	ids   []uint64       // Append: IDs assigned, written by the committer
	kv    *kvOp          // Set/Delete
	name  *nameOp        // SetNameOwner
	mod   *modOp         // moderation writes (moderation.go)
	apply []applyOp      // ApplyBatch (replica.go): log records, in order
	done  chan error     // buffered(1): the committer never blocks on it
}

// kvOp is a Set (del == false) or Delete in a script's namespace.
type kvOp struct {
	script, key, value string
	del                bool
}

func (r *request) size() int {
	if r.kv != nil || r.name != nil || r.mod != nil {
		return 1
	}
	if r.apply != nil {
		n := 0
		for i := range r.apply {
			n += max(len(r.apply[i].msgs), 1)
		}
		return n
	}
	return len(r.msgs)
}

// submit hands r to the committer and waits for its result. When ctx ends
// first it returns ctx's error; r may then still be committed later.
func (db *DB) submit(ctx context.Context, r *request) error {
	if db.readOnly {
		return ErrReadOnly
	}
	r.done = make(chan error, 1)
	if err := db.send(ctx, r); err != nil {
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (the write may still be committed)", ctx.Err())
	}
}

func (db *DB) send(ctx context.Context, r *request) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	select {
	case db.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the committer goroutine. It exits when Close has closed
// reqs and every queued request has been committed.
func (db *DB) commitLoop() {
	defer db.wg.Done()
	batch := make([]*request, 0, 64)
	for r := range db.reqs {
		batch = append(batch[:0], r)
		n := r.size()
		// Senders woken by the previous commit are runnable but may not
		// have queued their next request yet; yielding once lets them, so
		// they join this group instead of waiting a whole fsync for the
		// next one. With nothing else runnable this returns at once.
		runtime.Gosched()
	drain:
		for n < maxBatchMessages {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				n += r.size()
			default:
				break drain
			}
		}
		db.commitBatch(batch)
		clear(batch) // drop references to finished requests
	}
}

func (db *DB) commitBatch(batch []*request) {
	err := db.commit(batch)
	if err != nil && len(batch) > 1 {
		db.log.Warn("history group commit failed; retrying its requests one by one",
			"path", db.path, "requests", len(batch), "err", err)
		for _, r := range batch {
			r.done <- db.commit([]*request{r})
		}
		return
	}
	for _, r := range batch {
		r.done <- err
	}
}

// roomTx is one room's state inside a commit transaction.
type roomTx struct {
	b    *bolt.Bucket
	meta roomMeta
}

// commit writes batch in one transaction.
func (db *DB) commit(batch []*request) error {
	applied := db.applied.Load()
	err := db.update(func(tx *bolt.Tx) error {
		rooms, metas, kvb := tx.Bucket(bucketRooms), tx.Bucket(bucketRoomMeta), tx.Bucket(bucketKV)
		touched := make(map[string]*roomTx)
		applied = db.applied.Load()
		for _, r := range batch {
			if r.apply != nil {
				for i := range r.apply {
					op := &r.apply[i]
					if err := applyRecord(rooms, metas, touched, &applied, op); err != nil {
						return fmt.Errorf("log record %d (%q): %w", op.seq, op.key, err)
					}
				}
				continue
			}
			if r.kv != nil {
				if err := applyKV(kvb, r.kv); err != nil {
					return err
				}
				continue
			}
			if r.name != nil {
				if err := applyName(tx, r.name); err != nil {
					return err
				}
				continue
			}
			if r.mod != nil {
				if err := applyMod(tx, r.mod); err != nil {
					return err
				}
				continue
			}
			r.ids = r.ids[:0]
			for i := range r.msgs {
				m := &r.msgs[i]
				rt := touched[m.Room]
				if rt == nil {
					var err error
					if rt, err = openRoomTx(rooms, metas, m.Room); err != nil {
						return err
					}
					touched[m.Room] = rt
				}
				rt.meta.LastID++
				rt.meta.Count++
				id := rt.meta.LastID
				// bbolt keeps key and value until the commit: fresh slices.
				if err := rt.b.Put(idKey(id), appendRecord(make([]byte, 0, recordSize(m)), id, m)); err != nil {
					return fmt.Errorf("room %q: %w", m.Room, err)
				}
				r.ids = append(r.ids, id)
			}
		}
		for room, rt := range touched {
			if err := metas.Put([]byte(room), rt.meta.encode()); err != nil {
				return fmt.Errorf("room %q meta: %w", room, err)
			}
		}
		if applied != db.applied.Load() {
			return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, applied))
		}
		return nil
	})
	if err == nil {
		db.commits.Add(1)
		db.applied.Store(applied) // only the committer writes it
	}
	return err
}

// openRoomTx returns room's bucket (created on its first message) and meta.
func openRoomTx(rooms, metas *bolt.Bucket, room string) (*roomTx, error) {
	b, err := rooms.CreateBucketIfNotExists([]byte(room))
	if err != nil {
		return nil, fmt.Errorf("room %q: %w", room, err)
	}
	// IDs only grow, so every Put lands at the end of the bucket: fill
	// pages fully instead of bbolt's default half-split.
	b.FillPercent = 0.95
	rt := &roomTx{b: b}
	if v := metas.Get([]byte(room)); v != nil {
		if rt.meta, err = decodeMeta(v); err != nil {
			return nil, fmt.Errorf("room %q: %w", room, err)
		}
	}
	return rt, nil
}

// Append stores msgs durably, assigning each its room's next ID in slice
// order, and returns once they are fsynced (grouped with concurrent calls
// into one commit). A zero Time is set to the DB clock's now; every Time is
// normalised to UTC with nanosecond precision, exactly as it will read back.
//
// On success every msgs[i].ID is set. On error no ID is set; if the error
// came from ctx the messages may nevertheless be stored (never broadcast
// them: they were not acknowledged). A replica (Options.Replica) refuses
// Append with ErrReplica: its ids come from the cluster's log (Apply).
func (db *DB) Append(ctx context.Context, msgs []*chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if db.replica {
		return fmt.Errorf("append to history %s: %w: its ids come from the cluster's log (Apply)", db.path, ErrReplica)
	}
	r := &request{msgs: make([]chat.Message, len(msgs)), ids: make([]uint64, 0, len(msgs))}
	now := db.now()
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("append to history %s: %w: nil message", db.path, ErrInvalid)
		}
		if err := checkRoomKey(m.Room); err != nil {
			return fmt.Errorf("append to history %s: %w", db.path, err)
		}
		if err := checkAccount(m.Account); err != nil {
			return fmt.Errorf("append to history %s: %w", db.path, err)
		}
		if recordSize(m) > maxValueLen {
			return fmt.Errorf("append to history %s: %w: message of %d bytes", db.path, ErrInvalid, recordSize(m))
		}
		if m.Time.IsZero() {
			m.Time = now
		}
		m.Time = m.Time.Round(0).UTC()
		r.msgs[i] = *m
		r.msgs[i].ID = 0
	}
	if err := db.submit(ctx, r); err != nil {
		return fmt.Errorf("append to history %s: %w", db.path, err)
	}
	for i, m := range msgs {
		m.ID = r.ids[i]
	}
	db.appended.Add(uint64(len(msgs)))
	return nil
}
