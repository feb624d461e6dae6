package store

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Ignore lists are stored whole per account, survive a reopen, an empty
// list deletes the entry, bad arguments are refused, and Verify counts
// them.
func TestIgnoreLists(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if got, err := db.IgnoreLists(); err != nil || len(got) != 0 {
		t.Fatalf("new DB: IgnoreLists = %v, %v", got, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.SetIgnoreList("u-1", []string{"u-2", "u-3"}))
	must(db.SetIgnoreList("u-2", []string{"u-1"}))
	must(db.SetIgnoreList("u-4", []string{"u-1"}))
	must(db.SetIgnoreList("u-4", nil))
	if err := db.SetIgnoreList("", []string{"u-1"}); !errors.Is(err, ErrInvalidAccount) {
		t.Errorf("empty account: %v", err)
	}
	if err := db.SetIgnoreList("u-1", []string{""}); !errors.Is(err, ErrInvalidAccount) {
		t.Errorf("empty ignored id: %v", err)
	}
	if err := db.SetIgnoreList("u-1", make([]string, MaxIgnoreList+1)); !errors.Is(err, ErrInvalidAccount) {
		t.Errorf("too long a list: %v", err)
	}
	want := map[string][]string{"u-1": {"u-2", "u-3"}, "u-2": {"u-1"}}
	db.Close()

	db = openAt(t, path, Options{})
	got, err := db.IgnoreLists()
	if err != nil || !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after reopen: %v, %v; want %v", got, err, want)
	}
	st, err := db.Verify(context.Background(), func(err error) { t.Errorf("verify: %v", err) })
	if err != nil || st.Ignores != 2 || !st.OK() {
		t.Errorf("Verify = %+v, %v", st, err)
	}
}

// A corrupt entry is left out (logged), Verify reports it, and a file
// without the bucket (written before it existed) gets it at Open.
func TestIgnoreListsCorruptAndMissing(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if err := db.SetIgnoreList("u-1", []string{"u-2"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetIgnoreList("u-3", []string{"u-2"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIgnores)
		v := append([]byte(nil), b.Get([]byte("u-1"))...)
		v[3] ^= 0x01 // an id's byte: wrong checksum
		return b.Put([]byte("u-1"), v)
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	db = openAt(t, path, Options{Logger: logs.logger()})
	got, err := db.IgnoreLists()
	if err != nil || len(got) != 1 || !slices.Equal(got["u-3"], []string{"u-2"}) {
		t.Errorf("IgnoreLists = %v, %v; want only u-3's", got, err)
	}
	if !strings.Contains(logs.String(), "ignores") {
		t.Errorf("log: %s", logs.String())
	}
	var problems []error
	st, err := db.Verify(context.Background(), func(err error) { problems = append(problems, err) })
	if err != nil || st.OK() || len(problems) != 1 || !errors.Is(problems[0], ErrChecksum) {
		t.Errorf("Verify = %+v, %v, %v", st, err, problems)
	}
	db.Close()

	bdb, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketIgnores) })
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.IgnoreLists(); err != nil || len(got) != 0 {
		t.Errorf("read-only without the bucket: %v, %v", got, err)
	}
	ro.Close()
	db = openAt(t, path, Options{})
	if err := db.SetIgnoreList("u-1", []string{"u-2"}); err != nil {
		t.Errorf("after Open added the bucket: %v", err)
	}
}
