package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Ignore lists: chat.IgnoreStore (issue 14). An account's list of ignored
// account ids is read whole once (IgnoreLists, from chat.New) and replaced
// whole on every change (SetIgnoreList) through the group committer, so a
// change is durable when the call returns.

// bucketIgnores is the top-level "ignores" bucket: one entry per account
// whose list is not empty.
//
//	key    account id (chat.Account.ID), raw bytes
//	value  offset  size  field
//	       0       1     entry version = 1
//	       1       v     number of ignored ids, uvarint (1 to MaxIgnoreList)
//	       ...           each id: its length, uvarint (1 to MaxAccountIDLen),
//	                     then its bytes
//	       end-4   4     CRC-32C (Castagnoli) of the key, then of every
//	                     value byte before it
//
// Invariants (Verify checks them; SetIgnoreList keeps them): every key is
// 1 to MaxAccountIDLen bytes; every entry decodes with a matching
// checksum and holds 1 to MaxIgnoreList ids of 1 to MaxAccountIDLen
// bytes, nothing after them; an empty list has no entry.
//
// The bucket needs no new file format: it is only added. Open creates it
// in every file it opens for writing (a format 4 file written before it
// existed included); a file without it (opened read-only) has no lists.
// A moonchat that does not know it leaves it alone. A corrupt entry is
// left out (that account ignores nobody until its next change rewrites
// it), logged and counted like a corrupt moderation entry.
var bucketIgnores = []byte("ignores")

// ignoreEntryV1 is the first (and current) version of an ignore entry.
const ignoreEntryV1 = 1

// MaxIgnoreList is the most account ids one ignore list may hold.
const MaxIgnoreList = 1000

// encodeIgnores returns the entry of ids ignored by account k.
func encodeIgnores(k string, ids []string) []byte {
	v := []byte{ignoreEntryV1}
	v = binary.AppendUvarint(v, uint64(len(ids)))
	for _, id := range ids {
		v = binary.AppendUvarint(v, uint64(len(id)))
		v = append(v, id...)
	}
	sum := crc32.Update(crc32.Checksum([]byte(k), castagnoli), castagnoli, v)
	return binary.BigEndian.AppendUint32(v, sum)
}

// decodeIgnores verifies the entry v stored under account k and returns
// its ids (copies). Every failure wraps ErrCorrupt.
func decodeIgnores(k, v []byte) ([]string, error) {
	if len(k) == 0 || len(k) > MaxAccountIDLen {
		return nil, fmt.Errorf("%w: account id of %d bytes", ErrCorrupt, len(k))
	}
	if len(v) < 1+1+recordV2CRC {
		return nil, fmt.Errorf("%w: ignore entry of %d bytes", ErrCorrupt, len(v))
	}
	body := v[:len(v)-recordV2CRC]
	stored := binary.BigEndian.Uint32(v[len(body):])
	if sum := crc32.Update(crc32.Checksum(k, castagnoli), castagnoli, body); sum != stored {
		return nil, fmt.Errorf("%w: %w: stored CRC-32C %08x, computed %08x", ErrCorrupt, ErrChecksum, stored, sum)
	}
	if body[0] != ignoreEntryV1 {
		return nil, fmt.Errorf("%w: unknown ignore entry version %d", ErrCorrupt, body[0])
	}
	rest := body[1:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n == 0 || n > MaxIgnoreList {
		return nil, fmt.Errorf("%w: ignore entry with a bad count", ErrCorrupt)
	}
	rest = rest[w:]
	ids := make([]string, 0, n)
	for range n {
		l, w := binary.Uvarint(rest)
		if w <= 0 || l == 0 || l > MaxAccountIDLen || uint64(len(rest)-w) < l {
			return nil, fmt.Errorf("%w: ignore entry with a bad id length", ErrCorrupt)
		}
		ids = append(ids, string(rest[w:w+int(l)]))
		rest = rest[w+int(l):]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after an ignore entry's ids", ErrCorrupt, len(rest))
	}
	return ids, nil
}

// checkIgnoreList checks SetIgnoreList's arguments against the
// invariants.
func checkIgnoreList(account string, ids []string) error {
	if account == "" || len(account) > MaxAccountIDLen {
		return fmt.Errorf("%w: account id of %d bytes (1 to %d)", ErrInvalidAccount, len(account), MaxAccountIDLen)
	}
	if len(ids) > MaxIgnoreList {
		return fmt.Errorf("%w: ignore list of %d ids (at most %d)", ErrInvalidAccount, len(ids), MaxIgnoreList)
	}
	for _, id := range ids {
		if id == "" || len(id) > MaxAccountIDLen {
			return fmt.Errorf("%w: ignored account id of %d bytes (1 to %d)", ErrInvalidAccount, len(id), MaxAccountIDLen)
		}
	}
	return nil
}

// IgnoreLists returns every stored ignore list, by account id
// (chat.IgnoreStore). A corrupt entry is left out, logged and counted.
func (db *DB) IgnoreLists() (map[string][]string, error) {
	out := make(map[string][]string)
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIgnores)
		if b == nil { // a file opened read-only that has none
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			ids, err := decodeIgnores(k, v)
			if err != nil {
				db.skipEntry(bucketIgnores, k, err)
				return nil
			}
			out[string(k)] = ids
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read ignore lists in history %s: %w", db.path, err)
	}
	return out, nil
}

// SetIgnoreList replaces account's ignore list with ids (none: deletes
// it) and returns once it is on disk (chat.IgnoreStore). Errors wrap
// ErrInvalidAccount for arguments out of bounds, ErrReadOnly and
// ErrClosed.
func (db *DB) SetIgnoreList(account string, ids []string) error {
	if err := checkIgnoreList(account, ids); err != nil {
		return fmt.Errorf("set ignore list in history %s: %w", db.path, err)
	}
	op := &modOp{bucket: bucketIgnores, key: []byte(account)}
	if len(ids) > 0 {
		op.value = encodeIgnores(account, ids)
	}
	return db.modWrite(fmt.Sprintf("set ignore list of account %q", account), op)
}

// ensureIgnores adds the ignores bucket to a writable file that lacks it.
func (db *DB) ensureIgnores() error {
	missing := false
	if err := db.view(func(tx *bolt.Tx) error {
		missing = tx.Bucket(bucketIgnores) == nil
		return nil
	}); err != nil || !missing {
		return err
	}
	return db.update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketIgnores)
		return err
	})
}
