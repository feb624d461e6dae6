package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
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

// TestRecordV2 checks that version 2 records (written before version 3)
// still read exactly as before, against hand-written records: the Action
// flag, and every single-bit flip anywhere in a record caught by its
// checksum. A version 2 record never has an account.
func TestRecordV2(t *testing.T) {
	ns := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC).UnixNano()
	for _, action := range []bool{false, true} {
		want := chat.Message{ID: 42, Room: "lobby", User: "bob", Text: "waves", Time: time.Unix(0, ns).UTC(), Action: action}
		var flags byte
		if action {
			flags = 1
		}
		raw := v2Record(42, ns, flags, "lobby", "bob", "waves")
		got, err := decodeRecord(raw)
		if err != nil || got != want {
			t.Errorf("decodeRecord(hand-written v2) = %+v, %v; want %+v", got, err, want)
		}
		flipEveryBit(t, raw)
	}
	// A record whose checksum matches but uses a flag version 2 does not
	// define is not guessed at: bit 1 (an account) is version 3's.
	for _, flags := range []byte{0x80, flagAccount} {
		if _, err := decodeRecord(v2Record(1, ns, flags, "r", "u", "t")); !errors.Is(err, ErrCorrupt) {
			t.Errorf("v2 flags %#x: %v, want ErrCorrupt", flags, err)
		}
	}
	if _, err := decodeRecord(v2Record(1, ns, 0, "r", "u", "t")[:recordV2Header+2]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated v2: %v, want ErrCorrupt", err)
	}
}

// flipEveryBit checks that every single-bit flip in raw makes it corrupt,
// caught by the checksum unless the flip is in the version byte.
func flipEveryBit(t *testing.T, raw []byte) {
	t.Helper()
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

// v3Record is a version 3 record written by hand from the layout in
// doc.go, independent of appendRecord: version 2's layout with version 3,
// and after Text, when flags has bit 1, the account id and roles.
func v3Record(id uint64, ns int64, flags byte, room, user, text string, acct ...string) []byte {
	b := []byte{3}
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	b = append(b, flags)
	for _, s := range []string{room, user, text} {
		b = append(b, byte(len(s))) // < 128: a one-byte uvarint
		b = append(b, s...)
	}
	if len(acct) > 0 { // acct[0] is the id, the rest the roles
		b = append(b, byte(len(acct[0])))
		b = append(b, acct[0]...)
		b = append(b, byte(len(acct)-1))
		for _, r := range acct[1:] {
			b = append(b, byte(len(r)))
			b = append(b, r...)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// sameMessage compares two messages including the account they point to
// (Message compares Account by pointer).
func sameMessage(a, b chat.Message) bool {
	aa, ba := a.Account, b.Account
	a.Account, b.Account = nil, nil
	if a != b || (aa == nil) != (ba == nil) {
		return false
	}
	return aa == nil || aa.ID == ba.ID && slices.Equal(aa.Roles, ba.Roles)
}

// TestRecordV3 checks the version 3 layout (the one written) against
// hand-written records: a guest's message (no account: version 2's bytes
// but for the version), an account's with roles and with none, with and
// without Action; every bit flip is caught by the checksum; flags and
// account fields outside what Append stores are corrupt.
func TestRecordV3(t *testing.T) {
	ns := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC).UnixNano()
	for _, tc := range []struct {
		name   string
		action bool
		acct   []string
	}{
		{"guest", false, nil},
		{"guest action", true, nil},
		{"account", false, []string{"u-42", "user", "mod"}},
		{"account action", true, []string{"u-42", "user"}},
		{"account without roles", false, []string{"u-42"}},
		{"guest granted roles (no id)", false, []string{"", "guest", "mod"}},
	} {
		want := chat.Message{ID: 42, Room: "lobby", User: "bob", Text: "waves", Time: time.Unix(0, ns).UTC(), Action: tc.action}
		var flags byte
		if tc.action {
			flags |= flagAction
		}
		if tc.acct != nil {
			flags |= flagAccount
			want.Account = &chat.Account{ID: tc.acct[0]}
			if len(tc.acct) > 1 {
				want.Account.Roles = tc.acct[1:]
			}
		}
		raw := v3Record(42, ns, flags, "lobby", "bob", "waves", tc.acct...)
		if enc := appendRecord(nil, 42, &want); !slices.Equal(enc, raw) {
			t.Errorf("%s: appendRecord = %x, want %x", tc.name, enc, raw)
		}
		if n := recordSize(&want); n != len(raw) {
			t.Errorf("%s: recordSize = %d, want %d", tc.name, n, len(raw))
		}
		got, err := decodeRecord(raw)
		if err != nil || !sameMessage(got, want) {
			t.Errorf("%s: decodeRecord = %+v (%+v), %v; want %+v", tc.name, got, got.Account, err, want)
		}
		if tc.acct == nil {
			if v2 := v2Record(42, ns, flags, "lobby", "bob", "waves"); !slices.Equal(raw[1:len(raw)-4], v2[1:len(v2)-4]) {
				t.Errorf("%s: a guest's v3 record differs from v2 beyond its version byte", tc.name)
			}
		}
		r, err := openRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := r.user(); string(u) != "bob" || err != nil {
			t.Errorf("%s: user = %q, %v", tc.name, u, err)
		}
		flipEveryBit(t, raw)
	}
	long := strings.Repeat("x", MaxRoleLen+1)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"unknown flag", v3Record(1, ns, 0x04, "r", "u", "t")},
		{"account flag without account", v3Record(1, ns, flagAccount, "r", "u", "t")},
		{"account without flag", v3Record(1, ns, 0, "r", "u", "t", "id", "user")},
		{"empty role", v3Record(1, ns, flagAccount, "r", "u", "t", "id", "")},
		{"truncated", v3Record(1, ns, flagAccount, "r", "u", "t", "id", "user")[:recordV2Header+10]},
		{"role too long", func() []byte {
			m := &chat.Message{Room: "r", User: "u", Text: "t", Account: &chat.Account{ID: "id", Roles: []string{long}}}
			return appendRecord(nil, 1, m) // the encoder does not check: Append does
		}()},
		{"too many roles", func() []byte {
			m := &chat.Message{Room: "r", User: "u", Text: "t", Account: &chat.Account{ID: "id", Roles: make([]string, MaxRoles+1)}}
			for i := range m.Account.Roles {
				m.Account.Roles[i] = "r"
			}
			return appendRecord(nil, 1, m)
		}()},
	} {
		if m, err := decodeRecord(tc.raw); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodeRecord = %+v, %v; want ErrCorrupt", tc.name, m, err)
		}
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
