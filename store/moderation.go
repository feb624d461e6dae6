package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// Moderation: chat.ModerationStore (issue 14). Bans and mutes, room
// settings (topic, slow mode) and the audit log live in three top-level
// buckets of their own, beside the rooms, so that the chat server's one
// load in chat.New costs O(restrictions + rooms with settings) whatever
// the history's size. Every write goes through the group committer (it
// shares the fsync of the messages committed with it and is durable when
// the call returns). Every entry carries a version byte and a CRC-32C
// covering its key and its bytes, as owned names do (names.go): a damaged
// entry is never served, it is left out, logged and counted once in
// moonchat_store_corrupt_records_total, and Verify reports it.
//
// Leaving a corrupt restriction out lifts that ban or mute until it is
// made again: the alternative, refusing to start, would let one flipped
// bit take the whole chat down. The error log line names the entry, so an
// operator can re-issue it; Verify lists them all.
//
// Expired restrictions are removed by a writable Open (pruneExpired); while
// the server runs, it filters them itself (chat.Restriction.Expires). The
// audit log is kept forever: it is the record of what moderators did, and
// retention (MaxPerRoom, MaxAge) applies to messages only.

// Bounds of what moderation leaves in the file. They are far above any
// real value (a reason or topic is a line of chat) and keep every entry a
// few KiB; the writes refuse more (ErrInvalidRestriction,
// ErrInvalidRoomSettings, ErrInvalidAudit), and an entry claiming more is
// corrupt. A restriction's account target is bounded by MaxAccountIDLen
// and its guest-name target by MaxOwnedNameLen; rooms by 255 bytes.
const (
	// MaxAddrLen bounds an address target ("2001:db8::/48"): the longest
	// IPv6 address with a zone and a prefix length fits with room to spare.
	MaxAddrLen = 128
	// MaxByLen bounds who made a restriction, set a topic or acted in the
	// audit log (a member's name and account id, "admin", a script).
	MaxByLen = 2048
	// MaxReasonLen bounds a restriction's or audit entry's reason.
	MaxReasonLen = 4096
	// MaxTopicLen bounds a room's topic.
	MaxTopicLen = 4096
	// MaxActionLen bounds an audit entry's action ("ban", "topic", ...).
	MaxActionLen = 64
	// MaxAuditTargetLen bounds an audit entry's target (a name, account
	// id, address or message id).
	MaxAuditTargetLen = 2048
	// MaxSlow bounds slow mode: one message a week per member is the
	// longest interval stored.
	MaxSlow = 7 * 24 * time.Hour
)

const (
	// restrictionV1, settingsV1 and auditV1 are the first (and current)
	// versions of the moderation entries.
	restrictionV1 = 1
	settingsV1    = 1
	auditV1       = 1

	// Target kinds, the byte after the room in a restriction key.
	targetAccount = 'a'
	targetName    = 'n'
	targetAddr    = 'c'

	// auditKeyLen is an audit key: 8-byte time, 8-byte sequence.
	auditKeyLen = 16
)

// The moderation buckets and their entries.
//
// bucketRestrictions is the top-level "restrictions" bucket: one entry
// per ban or mute (chat.Restriction).
//
//	key    uvarint len(Kind), Kind ("ban" or "mute")
//	       uvarint len(Room), Room ("" = every room)
//	       1 byte target kind: 'a' Account, 'n' Name, 'c' Addr
//	       the target's value (the rest of the key)
//	value  offset  size  field
//	       0       1     entry version = 1
//	       1       8     Created: Unix nanoseconds (int64, > 0), UTC
//	       9       8     Expires: Unix nanoseconds, 0 = never
//	       17      ...   uvarint len(By), By; uvarint len(Reason), Reason
//	       end-4   4     CRC-32C of the key, then of every value byte
//	                     before it
//
// Invariants (Verify checks them; PutRestriction keeps them):
//
//  1. The key decodes: Kind is chat.KindBan or chat.KindMute, Room is at
//     most 255 bytes, the target kind is one of the three and its value is
//     1 to MaxAccountIDLen (account), MaxOwnedNameLen (name) or MaxAddrLen
//     bytes (an address or CIDR prefix that net/netip parses).
//  2. The value decodes to exactly its length, By and Reason are within
//     MaxByLen and MaxReasonLen, Expires is 0 or after Created, and the
//     checksum matches.
//  3. One entry per (Kind, Room, Target): the key is that triple, so
//     PutRestriction replaces and DeleteRestriction finds it.
//
// bucketSettings is the top-level "roomsettings" bucket
// (chat.RoomSettings):
//
//	key    the room (1 to 255 bytes)
//	value  0       1     entry version = 1
//	       1       8     Slow: nanoseconds (int64, 0 to MaxSlow)
//	       9       8     TopicSince: Unix nanoseconds, 0 = none
//	       17      ...   uvarint len(Topic), Topic; uvarint len(TopicBy),
//	                     TopicBy
//	       end-4   4     CRC-32C of the key, then of the value before it
//
// Invariants: the value decodes to exactly its length within the bounds,
// the checksum matches, and it is not the zero RoomSettings (storing the
// zero value deletes the entry).
//
// bucketAudit is the top-level "audit" bucket (chat.AuditEntry):
//
//	key    8 bytes  Time: Unix nanoseconds (> 0), big-endian
//	       8 bytes  the bucket's sequence (NextSequence), big-endian
//	value  0       1     entry version = 1
//	       1       8     Time (equals the key's)
//	       9       ...   uvarint len + bytes of Room, By, Action, Target,
//	                     Reason, in that order
//	       end-4   4     CRC-32C of the key, then of the value before it
//
// Keys sort by time, then by the order of appending, so Audit seeks to
// its since bound and walks back from the newest entry. Invariants: the
// key is 16 bytes, the value decodes to exactly its length within the
// bounds (Action 1 to MaxActionLen bytes), its Time equals the key's, and
// the checksum matches.
//
// The three buckets exist in every format 4 file (Open creates them, and
// adds them when it upgrades a format 1 to 3 file); an older file opened
// read-only has none, and holds no moderation data.
var (
	bucketRestrictions = []byte("restrictions")
	bucketSettings     = []byte("roomsettings")
	bucketAudit        = []byte("audit")
)

// moderationBuckets are the buckets format 4 added.
var moderationBuckets = [][]byte{bucketRestrictions, bucketSettings, bucketAudit}

// modOp is one moderation write waiting for the committer.
type modOp struct {
	bucket []byte
	// key and value: Put value under key, or delete key when value is nil.
	key, value []byte
	// audit, when set, is appended to the audit log: its key (needing the
	// bucket's sequence) and value are made in the transaction.
	audit *chat.AuditEntry
	// existed is set by the committer: key held an entry before.
	existed bool
}

// applyMod performs op inside the committer's transaction. It may run
// twice (a failed group is retried request by request), so it sets every
// result afresh.
func applyMod(tx *bolt.Tx, op *modOp) error {
	b := tx.Bucket(op.bucket)
	if b == nil { // Open creates them in every writable file
		return fmt.Errorf("%w: no %q bucket", ErrCorrupt, op.bucket)
	}
	if e := op.audit; e != nil {
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		k := binary.BigEndian.AppendUint64(make([]byte, 0, auditKeyLen), uint64(e.Time.UnixNano()))
		k = binary.BigEndian.AppendUint64(k, seq)
		if err := b.Put(k, encodeAudit(k, e)); err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		return nil
	}
	op.existed = b.Get(op.key) != nil
	var err error
	if op.value == nil {
		err = b.Delete(op.key)
	} else {
		err = b.Put(op.key, op.value)
	}
	if err != nil {
		return fmt.Errorf("%s entry %q: %w", op.bucket, op.key, err)
	}
	return nil
}

// modWrite submits op and returns once it is on disk.
func (db *DB) modWrite(what string, op *modOp) error {
	if db.readOnly {
		return fmt.Errorf("%s in history %s: %w", what, db.path, ErrReadOnly)
	}
	if err := db.submit(context.Background(), &request{mod: op}); err != nil {
		return fmt.Errorf("%s in history %s: %w", what, db.path, err)
	}
	return nil
}

// --- times ---

// maxTime is the latest time a Unix-nanosecond int64 holds (in 2262).
var maxTime = time.Unix(0, math.MaxInt64)

// nanos returns t as stored: 0 for the zero time, else Unix nanoseconds,
// which must be positive (after 1970) and fit an int64 (before 2262).
func nanos(t time.Time) (int64, bool) {
	if t.IsZero() {
		return 0, true
	}
	if !t.After(time.Unix(0, 0)) || t.After(maxTime) {
		return 0, false
	}
	return t.UnixNano(), true
}

// fromNanos is the inverse of nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// --- encoding helpers ---

// appendString appends uvarint len(s), then s.
func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// entryReader reads the fields of a moderation entry; the first error
// sticks, and every error wraps ErrCorrupt.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (r *entryReader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("entry truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// time reads a time stored by nanos.
func (r *entryReader) time(field string) time.Time {
	n := int64(r.uint64())
	if n < 0 {
		r.fail("%s of %d ns", field, n)
		return time.Time{}
	}
	return fromNanos(n)
}

// string reads a string of min to max bytes.
func (r *entryReader) string(field string, min, max int) string {
	if r.err != nil {
		return ""
	}
	n, l := binary.Uvarint(r.b)
	if l <= 0 || n > uint64(len(r.b)-l) {
		r.fail("%s: bad length", field)
		return ""
	}
	if n < uint64(min) || n > uint64(max) {
		r.fail("%s of %d bytes (%d to %d)", field, n, min, max)
		return ""
	}
	s := string(r.b[l : l+int(n)])
	r.b = r.b[l+int(n):]
	return s
}

// sealed appends the CRC-32C of key, then of v, to v.
func sealed(key, v []byte) []byte {
	sum := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, v)
	return binary.BigEndian.AppendUint32(v, sum)
}

// openSealed checks v's version byte and its checksum over key and v,
// and returns a reader over the fields after the version byte.
func openSealed(what string, key, v []byte, version byte) (*entryReader, error) {
	if len(v) < 1+recordV2CRC {
		return nil, fmt.Errorf("%w: %s entry of %d bytes", ErrCorrupt, what, len(v))
	}
	body := v[:len(v)-recordV2CRC]
	stored := binary.BigEndian.Uint32(v[len(body):])
	if sum := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body); sum != stored {
		return nil, fmt.Errorf("%w: %w: %s entry: stored CRC-32C %08x, computed %08x", ErrCorrupt, ErrChecksum, what, stored, sum)
	}
	if body[0] != version {
		return nil, fmt.Errorf("%w: unknown %s entry version %d", ErrCorrupt, what, body[0])
	}
	return &entryReader{b: body[1:]}, nil
}

// done reports the reader's error, or that bytes are left over.
func (r *entryReader) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%s entry: %d bytes left over", what, len(r.b))
	}
	return r.err
}

// --- restrictions ---

// targetOf returns t's kind byte and value, or false unless exactly one
// field is set.
func targetOf(t chat.Target) (byte, string, bool) {
	set := 0
	var kind byte
	var val string
	for _, f := range []struct {
		kind byte
		val  string
	}{{targetAccount, t.Account}, {targetName, t.Name}, {targetAddr, t.Addr}} {
		if f.val != "" {
			set++
			kind, val = f.kind, f.val
		}
	}
	return kind, val, set == 1
}

// checkTarget checks a target's kind and value against invariant 1.
func checkTarget(kind byte, val string) error {
	max := 0
	switch kind {
	case targetAccount:
		max = MaxAccountIDLen
	case targetName:
		max = MaxOwnedNameLen
	case targetAddr:
		max = MaxAddrLen
	default:
		return fmt.Errorf("unknown target kind %q", kind)
	}
	if val == "" || len(val) > max {
		return fmt.Errorf("target of %d bytes (1 to %d)", len(val), max)
	}
	if kind == targetAddr {
		if _, err := netip.ParsePrefix(val); err != nil {
			if _, err := netip.ParseAddr(val); err != nil {
				return fmt.Errorf("target address %q is neither an address nor a CIDR prefix", val)
			}
		}
	}
	return nil
}

// checkKind reports whether k is a kind this store keeps.
func checkKind(k chat.RestrictionKind) bool {
	return k == chat.KindBan || k == chat.KindMute
}

// restrictionKey returns the key of (kind, room, t), checking them
// against invariant 1; errors wrap ErrInvalidRestriction.
func restrictionKey(kind chat.RestrictionKind, room string, t chat.Target) ([]byte, error) {
	if !checkKind(kind) {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidRestriction, kind)
	}
	if len(room) > maxRoomLen {
		return nil, fmt.Errorf("%w: room name of %d bytes (at most %d)", ErrInvalidRestriction, len(room), maxRoomLen)
	}
	tk, tv, ok := targetOf(t)
	if !ok {
		return nil, fmt.Errorf("%w: a target needs exactly one of Account, Name and Addr", ErrInvalidRestriction)
	}
	if err := checkTarget(tk, tv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRestriction, err)
	}
	k := appendString(nil, string(kind))
	k = appendString(k, room)
	k = append(k, tk)
	return append(k, tv...), nil
}

// decodeRestrictionKey is the inverse of restrictionKey.
func decodeRestrictionKey(k []byte) (chat.Restriction, error) {
	var r chat.Restriction
	rd := &entryReader{b: k}
	r.Kind = chat.RestrictionKind(rd.string("kind", 1, 16))
	r.Room = rd.string("room", 0, maxRoomLen)
	if rd.err != nil {
		return r, rd.err
	}
	if !checkKind(r.Kind) {
		return r, fmt.Errorf("%w: restriction key: unknown kind %q", ErrCorrupt, r.Kind)
	}
	if len(rd.b) < 1 {
		return r, fmt.Errorf("%w: restriction key: no target", ErrCorrupt)
	}
	kind, val := rd.b[0], string(rd.b[1:])
	if err := checkTarget(kind, val); err != nil {
		return r, fmt.Errorf("%w: restriction key: %w", ErrCorrupt, err)
	}
	switch kind {
	case targetAccount:
		r.Target.Account = val
	case targetName:
		r.Target.Name = val
	default:
		r.Target.Addr = val
	}
	return r, nil
}

// encodeRestriction returns the value of r stored under key.
func encodeRestriction(key []byte, r *chat.Restriction, created, expires int64) []byte {
	v := make([]byte, 0, 1+16+len(r.By)+len(r.Reason)+8+recordV2CRC)
	v = append(v, restrictionV1)
	v = binary.BigEndian.AppendUint64(v, uint64(created))
	v = binary.BigEndian.AppendUint64(v, uint64(expires))
	v = appendString(v, r.By)
	v = appendString(v, r.Reason)
	return sealed(key, v)
}

// decodeRestriction verifies the entry (k, v) against invariants 1 and 2
// and returns it. Every failure wraps ErrCorrupt.
func decodeRestriction(k, v []byte) (chat.Restriction, error) {
	r, err := decodeRestrictionKey(k)
	if err != nil {
		return chat.Restriction{}, err
	}
	rd, err := openSealed("restriction", k, v, restrictionV1)
	if err != nil {
		return chat.Restriction{}, err
	}
	r.Created = rd.time("created")
	r.Expires = rd.time("expires")
	r.By = rd.string("by", 0, MaxByLen)
	r.Reason = rd.string("reason", 0, MaxReasonLen)
	if err := rd.done("restriction"); err != nil {
		return chat.Restriction{}, err
	}
	if r.Created.IsZero() || !(r.Expires.IsZero() || r.Expires.After(r.Created)) {
		return chat.Restriction{}, fmt.Errorf("%w: restriction created %v expires %v", ErrCorrupt, r.Created, r.Expires)
	}
	return r, nil
}

// Restrictions returns every stored restriction (chat.ModerationStore),
// expired ones included until a writable Open removes them: the chat
// server filters by Expires. A corrupt entry is left out, logged and
// counted (see the type comment of the "restrictions" bucket); a file of
// format 1 to 3 opened read-only holds none.
func (db *DB) Restrictions() ([]chat.Restriction, error) {
	var out []chat.Restriction
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRestrictions)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r, err := decodeRestriction(k, v)
			if err != nil {
				db.skipEntry(bucketRestrictions, k, err)
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read restrictions in history %s: %w", db.path, err)
	}
	return out, nil
}

// PutRestriction stores r, replacing the one with the same Kind, Room and
// Target (chat.ModerationStore), and returns once it is on disk. A zero
// Created is set to the DB clock's now; times are stored to the
// nanosecond in UTC, as they read back. Errors wrap ErrInvalidRestriction
// (an unknown kind, not exactly one target, a field out of bounds, an
// address that is not one, Expires not after Created, a time before 1970
// or after 2262), ErrReadOnly and ErrClosed.
func (db *DB) PutRestriction(r chat.Restriction) error {
	key, err := restrictionKey(r.Kind, r.Room, r.Target)
	if err != nil {
		return fmt.Errorf("put restriction in history %s: %w", db.path, err)
	}
	if r.Created.IsZero() {
		r.Created = db.now()
	}
	created, ok1 := nanos(r.Created)
	expires, ok2 := nanos(r.Expires)
	switch {
	case !ok1 || !ok2:
		err = fmt.Errorf("%w: a time outside 1970 to 2262", ErrInvalidRestriction)
	case expires != 0 && expires <= created:
		err = fmt.Errorf("%w: expires %v is not after created %v", ErrInvalidRestriction, r.Expires, r.Created)
	case len(r.By) > MaxByLen:
		err = fmt.Errorf("%w: by of %d bytes (at most %d)", ErrInvalidRestriction, len(r.By), MaxByLen)
	case len(r.Reason) > MaxReasonLen:
		err = fmt.Errorf("%w: reason of %d bytes (at most %d)", ErrInvalidRestriction, len(r.Reason), MaxReasonLen)
	}
	if err != nil {
		return fmt.Errorf("put restriction in history %s: %w", db.path, err)
	}
	return db.modWrite(fmt.Sprintf("put %s restriction", r.Kind), &modOp{
		bucket: bucketRestrictions, key: key, value: encodeRestriction(key, &r, created, expires),
	})
}

// DeleteRestriction removes the restriction of kind in room on t and
// reports whether there was one (chat.ModerationStore); it returns once
// the removal is on disk. A corrupt entry under that key counts as one,
// and is removed. Errors wrap ErrInvalidRestriction, ErrReadOnly and
// ErrClosed.
func (db *DB) DeleteRestriction(kind chat.RestrictionKind, room string, t chat.Target) (bool, error) {
	key, err := restrictionKey(kind, room, t)
	if err != nil {
		return false, fmt.Errorf("delete restriction in history %s: %w", db.path, err)
	}
	op := &modOp{bucket: bucketRestrictions, key: key}
	if err := db.modWrite(fmt.Sprintf("delete %s restriction", kind), op); err != nil {
		return false, err
	}
	return op.existed, nil
}

// pruneExpired removes the restrictions that expired before now, in one
// transaction, and returns how many. A corrupt entry is left in place
// (its expiry cannot be trusted; Verify reports it). Open calls it on a
// writable file, before the committer starts.
func (db *DB) pruneExpired(now time.Time) (int, error) {
	var expired [][]byte
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRestrictions)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r, err := decodeRestriction(k, v)
			if err != nil {
				db.skipEntry(bucketRestrictions, k, err)
				return nil
			}
			if !r.Expires.IsZero() && !r.Expires.After(now) {
				expired = append(expired, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil || len(expired) == 0 {
		return 0, err
	}
	err = db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRestrictions)
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("remove expired restrictions: %w", err)
	}
	return len(expired), nil
}

// --- room settings ---

// encodeSettings returns the value of s stored under room.
func encodeSettings(room string, s *chat.RoomSettings, since int64) []byte {
	v := make([]byte, 0, 1+16+len(s.Topic)+len(s.TopicBy)+8+recordV2CRC)
	v = append(v, settingsV1)
	v = binary.BigEndian.AppendUint64(v, uint64(s.Slow))
	v = binary.BigEndian.AppendUint64(v, uint64(since))
	v = appendString(v, s.Topic)
	v = appendString(v, s.TopicBy)
	return sealed([]byte(room), v)
}

// decodeSettings verifies the entry v of room k and returns it. Every
// failure wraps ErrCorrupt.
func decodeSettings(k, v []byte) (chat.RoomSettings, error) {
	if len(k) == 0 || len(k) > maxRoomLen {
		return chat.RoomSettings{}, fmt.Errorf("%w: room settings key of %d bytes", ErrCorrupt, len(k))
	}
	rd, err := openSealed("room settings", k, v, settingsV1)
	if err != nil {
		return chat.RoomSettings{}, err
	}
	var s chat.RoomSettings
	slow := int64(rd.uint64())
	s.TopicSince = rd.time("topic since")
	s.Topic = rd.string("topic", 0, MaxTopicLen)
	s.TopicBy = rd.string("topic by", 0, MaxByLen)
	if err := rd.done("room settings"); err != nil {
		return chat.RoomSettings{}, err
	}
	if slow < 0 || time.Duration(slow) > MaxSlow {
		return chat.RoomSettings{}, fmt.Errorf("%w: slow mode of %d ns", ErrCorrupt, slow)
	}
	s.Slow = time.Duration(slow)
	if s == (chat.RoomSettings{}) {
		return s, fmt.Errorf("%w: zero room settings stored", ErrCorrupt)
	}
	return s, nil
}

// RoomSettings returns every room's stored settings (chat.ModerationStore).
// A corrupt entry is left out (that room has default settings), logged
// and counted; a file of format 1 to 3 opened read-only has none.
func (db *DB) RoomSettings() (map[string]chat.RoomSettings, error) {
	out := make(map[string]chat.RoomSettings)
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			s, err := decodeSettings(k, v)
			if err != nil {
				db.skipEntry(bucketSettings, k, err)
				return nil
			}
			out[string(k)] = s
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read room settings in history %s: %w", db.path, err)
	}
	return out, nil
}

// PutRoomSettings stores room's settings, or deletes them when s is the
// zero value (chat.ModerationStore), and returns once that is on disk.
// TopicSince is stored to the nanosecond in UTC. Errors wrap
// ErrInvalidRoomSettings (an empty or over-long room, a field out of
// bounds, a negative Slow or one above MaxSlow, a TopicSince before 1970
// or after 2262), ErrReadOnly and ErrClosed.
func (db *DB) PutRoomSettings(room string, s chat.RoomSettings) error {
	since, ok := nanos(s.TopicSince)
	var err error
	switch {
	case room == "" || len(room) > maxRoomLen:
		err = fmt.Errorf("%w: room name of %d bytes (1 to %d)", ErrInvalidRoomSettings, len(room), maxRoomLen)
	case s.Slow < 0 || s.Slow > MaxSlow:
		err = fmt.Errorf("%w: slow mode %v (0 to %v)", ErrInvalidRoomSettings, s.Slow, MaxSlow)
	case len(s.Topic) > MaxTopicLen:
		err = fmt.Errorf("%w: topic of %d bytes (at most %d)", ErrInvalidRoomSettings, len(s.Topic), MaxTopicLen)
	case len(s.TopicBy) > MaxByLen:
		err = fmt.Errorf("%w: topic by of %d bytes (at most %d)", ErrInvalidRoomSettings, len(s.TopicBy), MaxByLen)
	case !ok:
		err = fmt.Errorf("%w: topic time outside 1970 to 2262", ErrInvalidRoomSettings)
	}
	if err != nil {
		return fmt.Errorf("put room settings in history %s: %w", db.path, err)
	}
	op := &modOp{bucket: bucketSettings, key: []byte(room)}
	if s != (chat.RoomSettings{}) {
		op.value = encodeSettings(room, &s, since)
	}
	return db.modWrite(fmt.Sprintf("put settings of room %q", room), op)
}

// --- audit log ---

// auditRoomIs reports whether the raw audit value v names room, without
// verifying or decoding it: Audit rejects most entries of other rooms
// this way (a few times faster than decoding each). It only filters: an
// entry it accepts is then verified in full before it is served, and an
// entry damaged so that it seems to name another room is not served
// anyway (Verify reports it).
func auditRoomIs(v []byte, room string) bool {
	if len(v) < 1+8+1 {
		return true // too short to tell: let decodeAudit report it
	}
	n, l := binary.Uvarint(v[9:])
	return l > 0 && n == uint64(len(room)) && uint64(len(v)-9-l) >= n && string(v[9+l:9+l+int(n)]) == room
}

// encodeAudit returns the value of e stored under key k.
func encodeAudit(k []byte, e *chat.AuditEntry) []byte {
	v := make([]byte, 0, 1+8+len(e.Room)+len(e.By)+len(e.Action)+len(e.Target)+len(e.Reason)+20+recordV2CRC)
	v = append(v, auditV1)
	v = binary.BigEndian.AppendUint64(v, uint64(e.Time.UnixNano()))
	for _, s := range []string{e.Room, e.By, e.Action, e.Target, e.Reason} {
		v = appendString(v, s)
	}
	return sealed(k, v)
}

// decodeAudit verifies the entry (k, v) and returns it. Every failure
// wraps ErrCorrupt.
func decodeAudit(k, v []byte) (chat.AuditEntry, error) {
	if len(k) != auditKeyLen {
		return chat.AuditEntry{}, fmt.Errorf("%w: audit key of %d bytes", ErrCorrupt, len(k))
	}
	rd, err := openSealed("audit", k, v, auditV1)
	if err != nil {
		return chat.AuditEntry{}, err
	}
	var e chat.AuditEntry
	t := int64(rd.uint64())
	e.Room = rd.string("room", 0, maxRoomLen)
	e.By = rd.string("by", 0, MaxByLen)
	e.Action = rd.string("action", 1, MaxActionLen)
	e.Target = rd.string("target", 0, MaxAuditTargetLen)
	e.Reason = rd.string("reason", 0, MaxReasonLen)
	if err := rd.done("audit"); err != nil {
		return chat.AuditEntry{}, err
	}
	if t <= 0 || uint64(t) != binary.BigEndian.Uint64(k) {
		return chat.AuditEntry{}, fmt.Errorf("%w: audit entry time %d under key time %d", ErrCorrupt, t, binary.BigEndian.Uint64(k))
	}
	e.Time = fromNanos(t)
	return e, nil
}

// AppendAudit adds e to the audit log (chat.ModerationStore) and returns
// once it is on disk. A zero Time is set to the DB clock's now; Time is
// stored to the nanosecond in UTC. Errors wrap ErrInvalidAudit (an empty
// Action, a field out of bounds, a time before 1970 or after 2262),
// ErrReadOnly and ErrClosed.
func (db *DB) AppendAudit(e chat.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	e.Time = e.Time.Round(0).UTC()
	_, ok := nanos(e.Time)
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("%w: time %v outside 1970 to 2262", ErrInvalidAudit, e.Time)
	case len(e.Room) > maxRoomLen:
		err = fmt.Errorf("%w: room name of %d bytes (at most %d)", ErrInvalidAudit, len(e.Room), maxRoomLen)
	case len(e.By) > MaxByLen:
		err = fmt.Errorf("%w: by of %d bytes (at most %d)", ErrInvalidAudit, len(e.By), MaxByLen)
	case e.Action == "" || len(e.Action) > MaxActionLen:
		err = fmt.Errorf("%w: action of %d bytes (1 to %d)", ErrInvalidAudit, len(e.Action), MaxActionLen)
	case len(e.Target) > MaxAuditTargetLen:
		err = fmt.Errorf("%w: target of %d bytes (at most %d)", ErrInvalidAudit, len(e.Target), MaxAuditTargetLen)
	case len(e.Reason) > MaxReasonLen:
		err = fmt.Errorf("%w: reason of %d bytes (at most %d)", ErrInvalidAudit, len(e.Reason), MaxReasonLen)
	}
	if err != nil {
		return fmt.Errorf("append audit entry in history %s: %w", db.path, err)
	}
	return db.modWrite("append audit entry", &modOp{bucket: bucketAudit, audit: &e})
}

// Audit returns up to n entries of room ("" = every room) at or after
// since (zero = no bound), oldest first: the n newest of them
// (chat.ModerationStore). It walks the log back from the newest entry and
// stops at n matches or at the first entry older than since, so a page of
// recent entries costs O(n) (about 14 µs for 50) and a room with few
// entries in a long log costs a scan of the entries newer than since,
// rejecting other rooms' entries on their raw bytes (about 2 ms per
// 100,000; BenchmarkAudit). There is no index by room: it would cost
// every AppendAudit a second key and Verify a consistency check, for an
// admin query that is fast enough without. Corrupt entries are skipped,
// logged and counted.
// Errors wrap ErrInvalid (a negative n, an over-long room).
func (db *DB) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	if n < 0 || len(room) > maxRoomLen {
		return nil, fmt.Errorf("audit in history %s: %w: n %d, room name of %d bytes", db.path, ErrInvalid, n, len(room))
	}
	if n == 0 || since.After(maxTime) {
		return nil, nil
	}
	var bound uint64 // keys below it are older than since
	if since.After(time.Unix(0, 0)) {
		bound = uint64(since.UnixNano())
	}
	var out []chat.AuditEntry
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			if len(k) >= 8 && binary.BigEndian.Uint64(k) < bound {
				break
			}
			if room != "" && !auditRoomIs(v, room) {
				continue
			}
			e, err := decodeAudit(k, v)
			if err != nil {
				db.skipEntry(bucketAudit, k, err)
				continue
			}
			if room == "" || e.Room == room {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit in history %s: %w", db.path, err)
	}
	slices.Reverse(out)
	return out, nil
}
