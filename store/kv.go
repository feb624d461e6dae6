package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// KV: the Lua chat.kv table. Each script has a nested bucket under "kv"
// named after it; keys and values are stored as raw bytes. Set and Delete
// go through the group committer, so a script's writes share the fsync of
// the messages committed with them and are durable when the call returns.

func checkKV(script, key string) error {
	switch {
	case script == "" || len(script) > maxRoomLen:
		return fmt.Errorf("%w: script name of %d bytes", ErrInvalid, len(script))
	case key == "" || len(key) > maxKeyLen:
		return fmt.Errorf("%w: key of %d bytes", ErrInvalid, len(key))
	}
	return nil
}

// Get returns the value of key in script's namespace and whether it exists.
func (db *DB) Get(script, key string) (string, bool, error) {
	if err := checkKV(script, key); err != nil {
		return "", false, fmt.Errorf("kv get %s: %w", script, err)
	}
	var (
		val string
		ok  bool
	)
	err := db.view(func(tx *bolt.Tx) error {
		if b := kvBucket(tx, script); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				val, ok = string(v), true
			}
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("kv get %s in history %s: %w", script, db.path, err)
	}
	return val, ok, nil
}

// Set stores value under key in script's namespace and returns once it is
// on disk.
func (db *DB) Set(script, key, value string) error {
	return db.kvWrite(&kvOp{script: script, key: key, value: value})
}

// Delete removes key from script's namespace; a missing key is not an error.
func (db *DB) Delete(script, key string) error {
	return db.kvWrite(&kvOp{script: script, key: key, del: true})
}

func (db *DB) kvWrite(op *kvOp) error {
	if err := checkKV(op.script, op.key); err == nil && len(op.value) > maxValueLen {
		return fmt.Errorf("kv set %s: %w: value of %d bytes", op.script, ErrInvalid, len(op.value))
	} else if err != nil {
		return fmt.Errorf("kv %s: %w", op.script, err)
	}
	if err := db.submit(context.Background(), &request{kv: op}); err != nil {
		return fmt.Errorf("kv write %s in history %s: %w", op.script, db.path, err)
	}
	return nil
}

// applyKV performs op inside the committer's transaction.
func applyKV(kv *bolt.Bucket, op *kvOp) error {
	if op.del {
		b := kv.Bucket([]byte(op.script))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(op.key))
	}
	b, err := kv.CreateBucketIfNotExists([]byte(op.script))
	if err != nil {
		return fmt.Errorf("kv %s: %w", op.script, err)
	}
	return b.Put([]byte(op.key), []byte(op.value))
}

// Keys lists the keys of script's namespace in byte order.
func (db *DB) Keys(script string) ([]string, error) {
	if script == "" || len(script) > maxRoomLen {
		return nil, fmt.Errorf("kv keys: %w: script name of %d bytes", ErrInvalid, len(script))
	}
	var keys []string
	err := db.view(func(tx *bolt.Tx) error {
		b := kvBucket(tx, script)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("kv keys %s in history %s: %w", script, db.path, err)
	}
	return keys, nil
}

// kvBucket returns script's bucket, or nil when it has never stored a key.
func kvBucket(tx *bolt.Tx, script string) *bolt.Bucket {
	kv := tx.Bucket(bucketKV)
	if kv == nil { // a new file opened read-only before its first write
		return nil
	}
	return kv.Bucket([]byte(script))
}
