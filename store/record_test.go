package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
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

// appendRecordV1 is the version 1 encoder as moonchat shipped it before
// version 2 (checksums, Action), kept to write old records in tests.
func appendRecordV1(b []byte, id uint64, m *chat.Message) []byte {
	b = append(b, recordV1)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(m.Room)))
	b = append(b, m.Room...)
	b = binary.AppendUvarint(b, uint64(len(m.User)))
	b = append(b, m.User...)
	b = binary.AppendUvarint(b, uint64(len(m.Text)))
	b = append(b, m.Text...)
	return b
}

// v2Record is a version 2 record written by hand from the layout in
// doc.go, independent of appendRecord.
func v2Record(id uint64, ns int64, flags byte, room, user, text string) []byte {
	b := []byte{2}
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	b = append(b, flags)
	for _, s := range []string{room, user, text} {
		b = append(b, byte(len(s))) // < 128: a one-byte uvarint
		b = append(b, s...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestRecordV1Decodes(t *testing.T) {
	ns := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC).UnixNano()
	raw := v1Record(42, ns, "lobby", "bob", "hi")
	want := chat.Message{ID: 42, Room: "lobby", User: "bob", Text: "hi", Time: time.Unix(0, ns).UTC()}
	got, err := decodeRecord(raw)
	if err != nil || got != want {
		t.Fatalf("decodeRecord(hand-written v1) = %+v, %v; want %+v", got, err, want)
	}
	if enc := appendRecordV1(nil, 42, &want); !slices.Equal(enc, raw) {
		t.Errorf("appendRecordV1 = %x, want %x", enc, raw)
	}
	r, err := openRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := r.user(); string(u) != "bob" || err != nil {
		t.Errorf("user = %q, %v", u, err)
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{3}, raw[1:]...)},
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

// TestRecordV2 checks the version 2 layout against a hand-written record,
// the Action flag, and that every single-bit flip anywhere in a record is
// caught by its checksum.
func TestRecordV2(t *testing.T) {
	ns := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC).UnixNano()
	for _, action := range []bool{false, true} {
		want := chat.Message{ID: 42, Room: "lobby", User: "bob", Text: "waves", Time: time.Unix(0, ns).UTC(), Action: action}
		var flags byte
		if action {
			flags = 1
		}
		raw := v2Record(42, ns, flags, "lobby", "bob", "waves")
		if enc := appendRecord(nil, 42, &want); !slices.Equal(enc, raw) {
			t.Errorf("appendRecord(action=%v) = %x, want %x", action, enc, raw)
		}
		if n := recordSize(&want); n != len(raw) {
			t.Errorf("recordSize = %d, want %d", n, len(raw))
		}
		got, err := decodeRecord(raw)
		if err != nil || got != want {
			t.Errorf("decodeRecord(hand-written v2) = %+v, %v; want %+v", got, err, want)
		}
		for bit := range len(raw) * 8 {
			bad := slices.Clone(raw)
			bad[bit/8] ^= 1 << (bit % 8)
			if m, err := decodeRecord(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d flipped: decodeRecord = %+v, %v; want ErrCorrupt", bit, m, err)
			} else if bit/8 != 0 && !errors.Is(err, ErrChecksum) {
				t.Fatalf("bit %d flipped: %v, want ErrChecksum", bit, err)
			}
		}
	}
	// A record whose checksum matches but uses a flag version 2 does not
	// define is not guessed at.
	if _, err := decodeRecord(v2Record(1, ns, 0x80, "r", "u", "t")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown flag: %v, want ErrCorrupt", err)
	}
	if _, err := decodeRecord(v2Record(1, ns, 0, "r", "u", "t")[:recordV2Header+2]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated v2: %v, want ErrCorrupt", err)
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
