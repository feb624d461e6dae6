package store

import (
	"errors"
	"maps"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestNameOwners: SetNameOwner records an account's name and replaces its
// previous one; NameOwners returns every account's name, after a reopen
// (writable and read-only) too; setting the name an account already owns
// writes nothing; a read-only or closed DB refuses.
func TestNameOwners(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if got, err := db.NameOwners(); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("new DB: NameOwners = %v, %v; want an empty map", got, err)
	}
	for _, set := range [][2]string{{"u-1", "alice"}, {"u-2", "bob"}, {"u-1", "alicia"}, {"u-3", "bob"}} {
		if err := db.SetNameOwner(set[0], set[1]); err != nil {
			t.Fatalf("SetNameOwner(%q, %q): %v", set[0], set[1], err)
		}
	}
	// u-1 owns only the name it was given last; u-2 and u-3 were both
	// given "bob": the store keeps both, the chat server decides.
	want := map[string]string{"u-1": "alicia", "u-2": "bob", "u-3": "bob"}
	if got, err := db.NameOwners(); err != nil || !maps.Equal(got, want) {
		t.Fatalf("NameOwners = %v, %v; want %v", got, err, want)
	}
	commits := db.Stats().Commits
	if err := db.SetNameOwner("u-1", "alicia"); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().Commits; n != commits {
		t.Errorf("setting the name an account owns: %d commits, want none", n-commits)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.SetNameOwner("u-9", "zed"); !errors.Is(err, ErrClosed) {
		t.Errorf("SetNameOwner after Close = %v, want ErrClosed", err)
	}

	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.NameOwners(); err != nil || !maps.Equal(got, want) {
		t.Errorf("read-only reopen: NameOwners = %v, %v; want %v", got, err, want)
	}
	if err := ro.SetNameOwner("u-9", "zed"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only SetNameOwner = %v, want ErrReadOnly", err)
	}
	ro.Close()

	db = openAt(t, path, Options{})
	if got, err := db.NameOwners(); err != nil || !maps.Equal(got, want) {
		t.Errorf("reopen: NameOwners = %v, %v; want %v", got, err, want)
	}
	if err := db.SetNameOwner("u-2", "bobby"); err != nil {
		t.Fatal(err)
	}
	want["u-2"] = "bobby"
	if got, err := db.NameOwners(); err != nil || !maps.Equal(got, want) {
		t.Errorf("after a change: NameOwners = %v, %v; want %v", got, err, want)
	}
	if st, err := db.Verify(t.Context(), func(err error) { t.Error(err) }); err != nil || !st.OK() || st.Names != 3 {
		t.Errorf("Verify = %+v, %v; want OK with 3 names", st, err)
	}
}

// TestSetNameOwnerBounds: empty and over-long ids and names are refused
// with named errors (which are ErrInvalid too) and store nothing.
func TestSetNameOwnerBounds(t *testing.T) {
	db := openTemp(t, Options{})
	for _, tc := range []struct {
		name, id, nick string
		want           error
	}{
		{"empty id", "", "alice", ErrInvalidAccount},
		{"long id", strings.Repeat("i", MaxAccountIDLen+1), "alice", ErrInvalidAccount},
		{"empty name", "u-1", "", ErrInvalidName},
		{"long name", "u-1", strings.Repeat("n", MaxOwnedNameLen+1), ErrInvalidName},
	} {
		err := db.SetNameOwner(tc.id, tc.nick)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: SetNameOwner = %v, want %v (and ErrInvalid)", tc.name, err, tc.want)
		}
	}
	if got, err := db.NameOwners(); err != nil || len(got) != 0 {
		t.Errorf("NameOwners = %v, %v; want none stored", got, err)
	}
	// The longest allowed id and name are stored.
	id, nick := strings.Repeat("i", MaxAccountIDLen), strings.Repeat("n", MaxOwnedNameLen)
	if err := db.SetNameOwner(id, nick); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.NameOwners(); got[id] != nick {
		t.Error("the longest id and name were not stored")
	}
}

// TestNameOwnersCorruptEntry: an entry whose bytes changed, or that sits
// under another account's key, is left out by NameOwners (logged and
// counted once), the others are served, and Verify reports it; the
// account's next SetNameOwner repairs it.
func TestNameOwnersCorruptEntry(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	for _, id := range []string{"u-1", "u-2", "u-3"} {
		if err := db.SetNameOwner(id, "name-of-"+id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNames)
		v := append([]byte(nil), b.Get([]byte("u-1"))...)
		v[3] ^= 0x04 // a letter of the name: still a valid name, wrong checksum
		if err := b.Put([]byte("u-1"), v); err != nil {
			return err
		}
		// u-3's entry copied under another key: its bytes are intact, but
		// it is not that account's name.
		return b.Put([]byte("u-4"), append([]byte(nil), b.Get([]byte("u-3"))...))
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	db = openAt(t, path, Options{Logger: logs.logger()})
	want := map[string]string{"u-2": "name-of-u-2", "u-3": "name-of-u-3"}
	for range 2 {
		if got, err := db.NameOwners(); err != nil || !maps.Equal(got, want) {
			t.Fatalf("NameOwners = %v, %v; want %v", got, err, want)
		}
	}
	if n := db.CorruptRecords(); n != 2 {
		t.Errorf("CorruptRecords = %d, want 2 (each entry once)", n)
	}
	if s := logs.String(); strings.Count(s, "owned-name entry is corrupt") != 2 || !strings.Contains(s, "account=u-1") || !strings.Contains(s, "account=u-4") {
		t.Errorf("log:\n%s", s)
	}
	var problems []error
	st, err := db.Verify(t.Context(), func(err error) { problems = append(problems, err) })
	if err != nil || st.Problems != 2 || st.Names != 4 || len(problems) != 2 {
		t.Fatalf("Verify = %+v, %v, %v", st, err, problems)
	}
	for _, p := range problems {
		if !errors.Is(p, ErrChecksum) || !errors.Is(p, ErrCorrupt) {
			t.Errorf("Verify problem %v: want ErrChecksum and ErrCorrupt", p)
		}
	}
	if err := db.SetNameOwner("u-1", "name-of-u-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.NameOwners(); got["u-1"] != "name-of-u-1" {
		t.Errorf("after SetNameOwner: %v", got)
	}
}

// TestNameOwnersFormat2 opens a format 2 file (before the names bucket):
// read-only, it owns no names and is not changed; a writable open marks it
// format 3 with the bucket, and names can be set.
func TestNameOwnersFormat2(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	appendText(t, db, "lobby", "ann", "before")
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketNames); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte{0, 0, 0, 2})
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ro.NameOwners(); err != nil || len(got) != 0 {
		t.Errorf("format 2, read-only: NameOwners = %v, %v; want none", got, err)
	}
	if f := formatOf(t, ro); f != 2 {
		t.Errorf("read-only open: format %d, want 2 (unchanged)", f)
	}
	ro.Close()
	db = openAt(t, path, Options{})
	if f := formatOf(t, db); f != formatVersion {
		t.Errorf("writable open: format %d, want %d", f, formatVersion)
	}
	if err := db.SetNameOwner("u-1", "ann"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.NameOwners(); err != nil || got["u-1"] != "ann" {
		t.Errorf("NameOwners = %v, %v", got, err)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// TestFormat3WithoutNamesIsCorrupt: a format 3 file must have the names
// bucket (invariant 4).
func TestFormat3WithoutNamesIsCorrupt(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketNames) })
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open = %v, want ErrCorrupt", err)
	}
}
