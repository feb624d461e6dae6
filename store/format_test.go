package store

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// formatOf reads the file's format marker.
func formatOf(t *testing.T, db *DB) uint32 {
	t.Helper()
	var f uint32
	if err := db.view(func(tx *bolt.Tx) error {
		f = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFormat1FileUpgrades writes a format 1 file as moonchat did before
// record version 2 — the old encoder, the old marker — and opens it: the
// old records still read everywhere (as non-actions) and verify; a
// read-only open changes nothing; a writable open marks the file format 2
// and new messages are version 2 records beside the old ones.
func TestFormat1FileUpgrades(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var old []chat.Message
	err = bdb.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keyFormat, []byte{0, 0, 0, 1}); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketRooms).CreateBucket([]byte("lobby"))
		if err != nil {
			return err
		}
		for id := uint64(1); id <= 3; id++ {
			m := chat.Message{ID: id, Room: "lobby", User: "ann", Text: "old text", Time: t0.Add(time.Duration(id) * time.Second)}
			old = append(old, m)
			if err := b.Put(idKey(id), appendRecordV1(nil, id, &m)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRoomMeta).Put([]byte("lobby"), roomMeta{LastID: 3, Count: 3}.encode())
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f := formatOf(t, ro); f != 1 {
		t.Errorf("read-only open: format %d, want 1 (unchanged)", f)
	}
	if got, err := ro.Recent("lobby", 10); err != nil || len(got) != 3 || got[2] != old[2] {
		t.Errorf("read-only Recent = %+v, %v", got, err)
	}
	ro.Close()

	db = openAt(t, path, Options{})
	if f := formatOf(t, db); f != formatVersion {
		t.Errorf("writable open: format %d, want %d", f, formatVersion)
	}
	act := &chat.Message{Room: "lobby", User: "bob", Text: "waves", Action: true}
	if err := db.Append(t.Context(), []*chat.Message{act}); err != nil {
		t.Fatal(err)
	}
	if err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRooms).Bucket([]byte("lobby"))
		if v := b.Get(idKey(1)); v[0] != recordV1 {
			t.Errorf("old record rewritten: version %d", v[0])
		}
		if v := b.Get(idKey(4)); v[0] != recordV3 {
			t.Errorf("new record version %d, want %d", v[0], recordV3)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Recent("lobby", 10)
	if err != nil || len(got) != 4 {
		t.Fatalf("Recent = %+v, %v", got, err)
	}
	for i, m := range old {
		if got[i] != m {
			t.Errorf("old record %d = %+v, want %+v", m.ID, got[i], m)
		}
	}
	if got[3] != *act {
		t.Errorf("new record = %+v, want %+v", got[3], *act)
	}
	if q, _, err := db.Query(Query{Room: "lobby", User: "ann", Grep: "old", Since: t0}); err != nil || len(q) != 3 {
		t.Errorf("Query over old records = %d, %v", len(q), err)
	}
	if st, err := db.Verify(context.Background(), func(err error) { t.Error(err) }); err != nil || !st.OK() || st.Records != 4 {
		t.Errorf("Verify = %+v, %v", st, err)
	}
}

// TestActionRoundTrip: chat.Message.Action is stored and comes back from
// every read (Recent, Before, After, Query in one room and across rooms),
// also after a restart.
func TestActionRoundTrip(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	msgs := []*chat.Message{
		{Room: "r", User: "ann", Text: "hello"},
		{Room: "r", User: "ann", Text: "waves", Action: true},
		{Room: "r", User: "bob", Text: "bye"},
	}
	if err := db.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	want := []bool{false, true, false}
	check := func(what string, got []chat.Message, from int) {
		t.Helper()
		if len(got) == 0 {
			t.Errorf("%s: nothing", what)
		}
		for i, m := range got {
			if m.Action != want[from+i] || m.Text != msgs[from+i].Text {
				t.Errorf("%s: message %d = %+v, want Action %v", what, m.ID, m, want[from+i])
			}
		}
	}
	for round := range 2 {
		got, err := db.Recent("r", 10)
		if err != nil {
			t.Fatal(err)
		}
		check("Recent", got, 0)
		got, _ = db.Before("r", 3, 10)
		check("Before", got, 0)
		got, _, _, _ = db.After("r", 1, 10)
		check("After", got, 1)
		got, _, _ = db.Query(Query{Room: "r", Grep: "waves"})
		check("Query grep", got, 1)
		got, _, _ = db.Query(Query{Room: "r", User: "ann"})
		check("Query user", got, 0)
		got, _, _ = db.Query(Query{User: "ann"})
		check("Query every room", got, 0)
		got, _, _ = db.Query(Query{Room: "r", After: 1, Limit: 1})
		check("Query after", got, 1)
		if round == 0 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openAt(t, path, Options{})
		}
	}
}

// TestFormat3FileBecomesReplica: an older file (format 3: no moderation
// buckets) opened as a replica is upgraded and marked in one go — format 5,
// every bucket of format 4, its messages and ids kept — and the log's
// records follow its ids.
func TestFormat3FileBecomesReplica(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	fill(t, db, "lobby", "ann", 3)
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range moderationBuckets {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte{0, 0, 0, formatV3})
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{Replica: true})
	if f := formatOf(t, db); f != formatReplica || !db.Replica() || db.Applied() != 0 || db.LastID("lobby") != 3 {
		t.Fatalf("format %d, Replica %v, Applied %d, LastID %d", f, db.Replica(), db.Applied(), db.LastID("lobby"))
	}
	if err := db.Apply(1, "lobby", []chat.Message{{ID: 4, Room: "lobby", User: "bob", Text: "from the log"}}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Recent("lobby", 10); err != nil || len(got) != 4 || got[3].Text != "from the log" {
		t.Fatalf("Recent = %+v, %v", got, err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}
