package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// Replica mode (issue 15, cluster mode).
//
// In a cluster, ids are assigned by whoever publishes to the cluster's log
// (package cluster), and every node's store is a replica of that log: the
// node's consumer hands the records to ApplyBatch (those it found queued
// up, in one transaction) or Apply, in the log's order, with the ids the
// log gave. A replica never assigns ids itself, so Append is
// refused (ErrReplica): a wiring mistake that appended locally would give
// the node's members ids that the cluster later gives to other messages.
//
// A replica file is format 5 (see formatReplica): format 4 plus the key
// "applied" in the "meta" bucket, the log position (stream sequence) of
// the last record applied, 8 bytes big-endian (0: none yet). It is written
// in the same transaction as what the record changed, so after a crash the
// file holds exactly the records up to Applied and the consumer resumes
// after it: nothing applied is lost, nothing is applied twice.
//
// Opening a replica file writable without Options.Replica fails with
// ErrReplica (a node whose [cluster] section was lost by mistake must not
// start taking posts on its own, forking the ids); Options.Detach turns
// it back into a single-node file on purpose. A single-node file opened
// with Options.Replica becomes a replica, its rooms keeping their ids
// (the first node of a new cluster keeps its history: the log numbers a
// room after the replica's LastID through cluster.Config.Floor).

// keyApplied is the meta key of a replica's applied log position.
var keyApplied = []byte("applied")

// LogRecord is one record of the cluster's log for ApplyBatch: the
// batch of messages Msgs of room (or conversation) Key with the ids they
// carry, or (Redact != 0) the deletion of message Redact of Key, at log
// position Seq.
//
// Invariants ApplyBatch checks before it touches the file (ErrInvalid
// otherwise): Seq > 0 and above the previous record's Seq in the same
// batch; Key a valid room or conversation key; not both Msgs and Redact;
// every message's Room is Key, its ids increasing and non-zero, within
// the bounds Append enforces. Neither ApplyBatch nor Apply keeps or
// changes the caller's slices.
type LogRecord struct {
	Seq    uint64
	Key    string
	Msgs   []chat.Message
	Redact uint64
}

// applyOp is one log record for the committer (ApplyBatch).
type applyOp struct {
	seq    uint64
	key    string
	msgs   []chat.Message // copies, ids as given
	redact uint64
}

// Apply stores one record of the cluster's log in a replica: the batch of
// messages msgs of room (or conversation) key with the ids they carry, or
// (redact != 0) the deletion of message redact of key, together with seq,
// the record's log position, in one transaction through the group
// committer, fsynced before Apply returns. Afterwards Applied() == seq.
// It is ApplyBatch of one record; see there for what it refuses.
func (db *DB) Apply(seq uint64, key string, msgs []chat.Message, redact uint64) error {
	return db.ApplyBatch([]LogRecord{{Seq: seq, Key: key, Msgs: msgs, Redact: redact}})
}

// ApplyBatch stores records of the cluster's log in a replica, in the
// order given (the log's), all of them in one transaction through the
// group committer, fsynced before it returns: one fsync for the records
// a consumer found queued up instead of one each. Afterwards Applied()
// is the last record's Seq. It is all or nothing: when any record is
// refused, nothing of the batch is in the file (not even the records
// before it) and the error names the refused record's Seq and Key.
// An empty batch does nothing.
//
// Each record is applied as it would be alone:
//
//   - Seq <= Applied(): the record is already in the file (a consumer
//     repeating records after a crash); it changes nothing, and the
//     batch's later records still apply.
//   - Ids must be above the room's LastID (as left by the records
//     before it, in the file and in the batch) and increasing. An id
//     past LastID+1 leaves the ids in between as a hole (records the
//     log's retention dropped before this node read them): After
//     reports a gap there, as for a redacted message, and in a room
//     holding no record the hole is recorded as pruned (RoomInfo.Pruned).
//   - An id at or below LastID means that the log and this replica
//     disagree about the room (another history under the same file, or a
//     log that restarted the room's ids): the whole batch is refused
//     with an error wrapping ErrDiverged. Applying later records would
//     not help: the caller must stop consuming and say so.
//   - A redaction of an id not stored (never received, already gone, or
//     stored by an earlier record of the batch and so removed) is a
//     no-op that still advances Applied.
//   - No messages and no redaction: only Applied advances.
//
// Messages are stored as given (a zero Time becomes the DB clock's now,
// every Time is normalised as Append does). A record that breaks
// LogRecord's invariants fails the batch with ErrInvalid before anything
// is written. A DB not opened with Options.Replica refuses it with
// ErrReplica.
//
// ApplyBatch and Apply calls are serialised (one batch at a time, in the
// order called): call them from one goroutine in log order, as the
// node's consumer does with cluster.Log.ConsumeBatch.
func (db *DB) ApplyBatch(recs []LogRecord) error {
	fail := func(err error) error {
		if len(recs) == 1 {
			return fmt.Errorf("apply to history %s: %w", db.path, err)
		}
		return fmt.Errorf("apply %d log records (%d to %d) to history %s: %w",
			len(recs), recs[0].Seq, recs[len(recs)-1].Seq, db.path, err)
	}
	if len(recs) == 0 {
		return nil
	}
	if db.readOnly {
		return fail(ErrReadOnly)
	}
	if !db.replica {
		return fail(fmt.Errorf("%w: the database was not opened as a replica (Options.Replica)", ErrReplica))
	}
	ops := make([]applyOp, len(recs))
	now := db.now()
	for i := range recs {
		rec := &recs[i]
		if err := prepareApply(&ops[i], rec, now); err != nil {
			return fail(fmt.Errorf("log record %d (%q): %w", rec.Seq, rec.Key, err))
		}
		if i > 0 && rec.Seq <= recs[i-1].Seq {
			return fail(fmt.Errorf("log record %d (%q): %w: log positions not increasing (%d after %d)",
				rec.Seq, rec.Key, ErrInvalid, rec.Seq, recs[i-1].Seq))
		}
	}
	// One batch at a time: a batch that fails (ErrDiverged) must not be
	// passed by the next one in the same group commit.
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if err := db.submit(context.Background(), &request{apply: ops}); err != nil {
		return fail(err)
	}
	return nil
}

// prepareApply checks rec against LogRecord's invariants (all but the
// order of Seq across records) and fills op with copies of its messages.
func prepareApply(op *applyOp, rec *LogRecord, now time.Time) error {
	if rec.Seq == 0 {
		return fmt.Errorf("%w: log position 0", ErrInvalid)
	}
	if err := checkRoomKey(rec.Key); err != nil {
		return err
	}
	if len(rec.Msgs) > 0 && rec.Redact != 0 {
		return fmt.Errorf("%w: messages and a redaction in one record", ErrInvalid)
	}
	*op = applyOp{seq: rec.Seq, key: rec.Key, redact: rec.Redact, msgs: make([]chat.Message, len(rec.Msgs))}
	for i := range rec.Msgs {
		m := rec.Msgs[i]
		switch {
		case m.Room != rec.Key:
			return fmt.Errorf("%w: message %d of room %q in a record of %q", ErrInvalid, m.ID, m.Room, rec.Key)
		case m.ID == 0 || (i > 0 && m.ID <= rec.Msgs[i-1].ID):
			return fmt.Errorf("%w: message ids not increasing (id %d at position %d)", ErrInvalid, m.ID, i)
		}
		if err := checkAccount(m.Account); err != nil {
			return err
		}
		if recordSize(&m) > maxValueLen {
			return fmt.Errorf("%w: message of %d bytes", ErrInvalid, recordSize(&m))
		}
		if m.Time.IsZero() {
			m.Time = now
		}
		m.Time = m.Time.Round(0).UTC()
		op.msgs[i] = m
	}
	return nil
}

// applyRecord writes op inside a commit transaction. applied is the
// transaction's applied position so far, updated in place; touched is the
// commit's rooms (shared with Append requests so that meta stays right).
func applyRecord(rooms, metas *bolt.Bucket, touched map[string]*roomTx, applied *uint64, op *applyOp) error {
	if op.seq <= *applied {
		return nil // already applied (a repeat after a crash)
	}
	if len(op.msgs) > 0 {
		rt := touched[op.key]
		if rt == nil {
			var err error
			if rt, err = openRoomTx(rooms, metas, op.key); err != nil {
				return err
			}
			touched[op.key] = rt
		}
		if first := op.msgs[0].ID; first <= rt.meta.LastID {
			return fmt.Errorf("%w: room %q: the record starts at id %d, the replica's last id is %d", ErrDiverged, op.key, first, rt.meta.LastID)
		}
		for i := range op.msgs {
			m := &op.msgs[i]
			if m.ID > rt.meta.LastID+1 && rt.meta.Count == 0 {
				// Nothing stored below the hole: it can be recorded as
				// pruned without breaking invariant 2 (Pruned < every key).
				rt.meta.Pruned = m.ID - 1
			}
			if err := rt.b.Put(idKey(m.ID), appendRecord(make([]byte, 0, recordSize(m)), m.ID, m)); err != nil {
				return fmt.Errorf("room %q: %w", op.key, err)
			}
			rt.meta.LastID = m.ID
			rt.meta.Count++
		}
	}
	if op.redact != 0 {
		rt := touched[op.key]
		if rt == nil && rooms.Bucket([]byte(op.key)) != nil {
			var err error
			if rt, err = openRoomTx(rooms, metas, op.key); err != nil {
				return err
			}
			touched[op.key] = rt
		}
		if rt != nil && rt.b.Get(idKey(op.redact)) != nil {
			if err := rt.b.Delete(idKey(op.redact)); err != nil {
				return fmt.Errorf("room %q: %w", op.key, err)
			}
			rt.meta.Count--
		}
	}
	*applied = op.seq
	return nil
}

// Applied returns the log position of the last record applied (0: none,
// or not a replica). It is read from the file at Open and kept in step
// by Apply; the consumer resumes after it.
func (db *DB) Applied() uint64 { return db.applied.Load() }

// Replica reports whether the file is a replica of the cluster's log
// (opened with Options.Replica, or a replica file opened read-only).
func (db *DB) Replica() bool { return db.replica }

// LastID returns the highest id ever stored in room (or conversation)
// key, 0 when it has none: what cluster.Config.Floor asks, so that the
// log goes on numbering a room whose records its retention dropped from
// where this replica's ids stopped. It survives pruning and redaction. A
// meta record that cannot be read is logged and counted as corrupt and
// reads as 0.
func (db *DB) LastID(key string) uint64 {
	var last uint64
	err := db.view(func(tx *bolt.Tx) error {
		_, meta, err := roomBuckets(tx, key)
		last = meta.LastID
		return err
	})
	if err != nil {
		db.log.Error("history: cannot read a room's last id", "path", db.path, "room", key, "err", err)
		return 0
	}
	return last
}

// initReplica runs at Open after the format checks: it refuses a replica
// file opened writable as a single node (unless Detach), marks a file
// opened with Options.Replica as a replica, and loads Applied. format is
// the file's format before Open touched it (0: a new file).
func (db *DB) initReplica(format uint32) error {
	was := format == formatReplica
	switch {
	case db.readOnly:
		db.replica = was
	case db.opts.Replica && !was:
		err := db.update(func(tx *bolt.Tx) error {
			mb := tx.Bucket(bucketMeta)
			if err := mb.Put(keyApplied, make([]byte, 8)); err != nil {
				return err
			}
			return mb.Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatReplica))
		})
		if err != nil {
			return err
		}
		if format != 0 {
			db.log.Info("history file is now a replica of the cluster's log; its rooms keep their ids", "path", db.path)
		}
		db.replica = true
	case db.opts.Replica:
		db.replica = true
	case was && db.opts.Detach:
		err := db.update(func(tx *bolt.Tx) error {
			mb := tx.Bucket(bucketMeta)
			if err := mb.Delete(keyApplied); err != nil {
				return err
			}
			return mb.Put(keyFormat, binary.BigEndian.AppendUint32(nil, formatVersion))
		})
		if err != nil {
			return err
		}
		db.log.Warn("history file detached from the cluster: it is a single-node history from now on, its ids go on from its own; do not make it a replica of the same cluster again (its ids would clash with the log's)",
			"path", db.path, "applied", db.applied.Load())
		db.applied.Store(0)
		return nil
	case was:
		return fmt.Errorf("%w: the file is a replica of a cluster's log (applied up to position %d) and the server is not in cluster mode: set [cluster] nats_url as before, or detach the file on purpose to use it as a single-node history",
			ErrReplica, db.applied.Load())
	}
	return nil
}

// readApplied returns meta/applied of a replica file (format 5), or 0.
func readApplied(tx *bolt.Tx, format uint32) (uint64, error) {
	mb := tx.Bucket(bucketMeta)
	if mb == nil {
		return 0, nil
	}
	v := mb.Get(keyApplied)
	switch {
	case format == formatReplica && len(v) != 8:
		return 0, fmt.Errorf("%w: replica file without a valid applied position (%d bytes)", ErrCorrupt, len(v))
	case format != formatReplica && v != nil:
		return 0, fmt.Errorf("%w: format %d file with a replica's applied position", ErrCorrupt, format)
	case v == nil:
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), nil
}
