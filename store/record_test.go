package store

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// v1Record is a version 1 record written by hand from the layout in doc.go,
// independent of appendRecord.
func v1Record(id uint64, ns int64, room, user, text string) []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	for _, s := range []string{room, user, text} {
		b = append(b, byte(len(s))) // < 128: a one-byte uvarint
		b = append(b, s...)
	}
	return b
}

func TestRecordV1Decodes(t *testing.T) {
	ns := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC).UnixNano()
	raw := v1Record(42, ns, "lobby", "bob", "hi")
	want := chat.Message{ID: 42, Room: "lobby", User: "bob", Text: "hi", Time: time.Unix(0, ns).UTC()}
	got, err := decodeRecord(raw)
	if err != nil || got != want {
		t.Fatalf("decodeRecord(hand-written v1) = %+v, %v; want %+v", got, err, want)
	}
	if enc := appendRecord(nil, 42, &want); !slices.Equal(enc, raw) {
		t.Errorf("appendRecord = %x, want %x", enc, raw)
	}
	if n := recordSize(&want); n != len(raw) {
		t.Errorf("recordSize = %d, want %d", n, len(raw))
	}
	if u, err := recordUser(raw); string(u) != "bob" || err != nil {
		t.Errorf("recordUser = %q, %v", u, err)
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, raw[1:]...)},
		{"short header", raw[:10]},
		{"truncated text", raw[:len(raw)-1]},
		{"trailing bytes", append(slices.Clone(raw), 0)},
		{"bad length", append(slices.Clone(raw[:recordV1Header]), 0xff, 0xff, 0xff)},
	} {
		if _, err := decodeRecord(tc.raw); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodeRecord = %v, want ErrCorrupt", tc.name, err)
		}
	}
	if _, err := decodeMeta([]byte{1, 2, 3}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decodeMeta(short) = %v, want ErrCorrupt", err)
	}
}

// TestHandWrittenFileReads builds a whole format-1 file with raw bbolt
// calls, as an old moonchat would have left it, and reads it through the API.
func TestHandWrittenFileReads(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	err = bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket([]byte("rooms")).CreateBucket([]byte("old"))
		if err != nil {
			return err
		}
		for _, id := range []uint64{3, 4} {
			k := binary.BigEndian.AppendUint64(nil, id)
			if err := b.Put(k, v1Record(id, ns, "old", "ann", "from v1")); err != nil {
				return err
			}
		}
		meta := []byte{1}
		meta = binary.BigEndian.AppendUint64(meta, 9) // last id
		meta = binary.BigEndian.AppendUint64(meta, 2) // pruned
		meta = binary.BigEndian.AppendUint64(meta, 2) // count
		return tx.Bucket([]byte("roommeta")).Put([]byte("old"), meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{})
	got, err := db.Recent("old", 10)
	if err != nil || len(got) != 2 || got[1] != (chat.Message{ID: 4, Room: "old", User: "ann", Text: "from v1", Time: time.Unix(0, ns).UTC()}) {
		t.Fatalf("Recent(old) = %+v, %v", got, err)
	}
	if m := appendText(t, db, "old", "bob", "new"); m.ID != 10 {
		t.Errorf("next id = %d, want 10 (meta's last id + 1)", m.ID)
	}
	if _, complete, _, _ := db.After("old", 1, 5); complete {
		t.Error("After(1) complete although 2 was pruned")
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}
