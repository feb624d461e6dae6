package cluster

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

func TestRecordRoundTrip(t *testing.T) {
	in := []*chat.Message{
		{User: "alice", Text: "hi", Time: time.Date(2026, 12, 3, 1, 2, 3, 456789, time.UTC)},
		{User: "bob", Text: "waves", Action: true, Time: time.Unix(0, -5).UTC(),
			Account: &chat.Account{ID: "acct:7", Roles: []string{"user", "moderator"}}},
		{User: "", Text: "", Account: &chat.Account{}}, // zero time, empty strings, no roles
		{User: "ünï", Text: strings.Repeat("€", 300), Time: time.Unix(1<<40, 0).UTC(), To: "not carried"},
	}
	var bodies []byte
	for _, m := range in {
		bodies = appendMsg(bodies, m)
	}
	r, err := decodeRecord("a.b", encodeBatch(41, len(in), bodies))
	if err != nil {
		t.Fatal(err)
	}
	if r.kind != kindBatch || r.first != 41 || r.lastID() != 44 || len(r.msgs) != len(in) {
		t.Fatalf("record %+v", r)
	}
	for i, m := range r.msgs {
		want := *in[i]
		want.ID, want.Room, want.To = 41+uint64(i), "a.b", ""
		if !reflect.DeepEqual(m, want) {
			t.Errorf("message %d:\n got %+v %+v\nwant %+v %+v", i, m, m.Account, want, want.Account)
		}
	}
	r, err = decodeRecord("a.b", encodeRedact(9, 3))
	if err != nil || r.kind != kindRedact || r.target != 3 || r.lastID() != 9 {
		t.Fatalf("redaction %+v, %v", r, err)
	}
}

// TestRecordCorrupt: any flipped bit, any truncation and any unknown
// version is refused, never decoded into something else.
func TestRecordCorrupt(t *testing.T) {
	good := encodeBatch(1, 1, appendMsg(nil, &chat.Message{User: "u", Text: "hello", Time: time.Now()}))
	for i := range good {
		for bit := range 8 {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			if _, err := decodeRecord("r", b); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
		}
	}
	for n := range len(good) {
		if _, err := decodeRecord("r", good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	// A well-formed record of a later version (its CRC right) is refused
	// as such: the node must be upgraded, not skip it.
	v2 := append([]byte(nil), good[:len(good)-4]...)
	v2[0] = 2
	v2 = encodeWithCRC(v2)
	if _, err := decodeRecord("r", v2); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 2: %v", err)
	}
	// Well-formed CRC around nonsense: refused by the decoder.
	for _, body := range [][]byte{
		{1, 3},                      // unknown kind
		{1, kindBatch, 0, 1},        // id 0
		{1, kindBatch, 1, 0},        // no message
		{1, kindBatch, 1, 200, 1},   // more messages than bytes
		{1, kindRedact, 2, 3},       // redacts past the room's end
		{1, kindRedact, 2, 1, 0},    // trailing byte
		{1, kindBatch, 1, 1, 8, 0},  // unknown flag
		{1, kindBatch, 1, 1, 4, 50}, // string past the end
	} {
		if _, err := decodeRecord("r", encodeWithCRC(append([]byte(nil), body...))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("% x: %v", body, err)
		}
	}
}

// encodeWithCRC appends b's CRC-32C trailer, as the encoders do.
func encodeWithCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func TestSubjects(t *testing.T) {
	for _, key := range []string{"a", "lobby.eu", "*", ">", "a b\tc", "日本語", strings.Repeat("r", 200), strings.Repeat("k", maxKeyBytes),
		chat.ConversationKey("a:b", "c.d"), chat.ConversationKey("x", "x")} {
		subj, err := subjectFor("moonchat", key)
		if err != nil {
			t.Fatal(err)
		}
		rest := strings.TrimPrefix(subj, "moonchat.")
		kind, token, _ := strings.Cut(rest, ".")
		if strings.ContainsAny(token, ".*> \t") || token == "" {
			t.Fatalf("%q: token %q is not one subject token", key, token)
		}
		if want := map[bool]string{true: "dm", false: "room"}[chat.IsConversation(key)]; kind != want {
			t.Fatalf("%q: kind %q", key, kind)
		}
		back, err := keyOf("moonchat", subj)
		if err != nil || back != key {
			t.Fatalf("%q → %q → %q, %v", key, subj, back, err)
		}
	}
	for _, key := range []string{"", strings.Repeat("k", maxKeyBytes+1)} {
		if _, err := subjectFor("moonchat", key); !errors.Is(err, ErrBadKey) {
			t.Fatalf("key of %d bytes: %v", len(key), err)
		}
	}
	for _, subj := range []string{"other.room.YQ", "moonchat.room", "moonchat.x.YQ", "moonchat.room.YQ=",
		"moonchat.room.!!", "moonchat.dm.YQ", "moonchat.room." + strings.TrimPrefix(mustSubject(t, chat.ConversationKey("a", "b")), "moonchat.dm.")} {
		if _, err := keyOf("moonchat", subj); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: %v", subj, err)
		}
	}
}

func mustSubject(t *testing.T, key string) string {
	s, err := subjectFor("moonchat", key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
