package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// logBuffer collects a DB's log lines (the committer and pruner log from
// their goroutines).
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// storeTexts appends one message per text to room in ONE commit, so that
// each record's bytes exist once in the file (bbolt copies pages on write:
// a record committed earlier may also linger in freed pages).
func storeTexts(t *testing.T, path, room string, texts ...string) []chat.Message {
	t.Helper()
	db := openAt(t, path, Options{})
	msgs := msgsOf(room, texts...)
	if err := db.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		out[i] = *m
	}
	return out
}

// flipOnDisk flips one bit of the byte at the middle of needle, which must
// occur exactly once in the file: a real change inside a record's value on
// a bbolt data page, as a failing disk would make it, not a crafted value.
// It returns the altered text.
func flipOnDisk(t *testing.T, path, needle string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte(needle)); n != 1 {
		t.Fatalf("%q occurs %d times in the file, want once", needle, n)
	}
	at := bytes.Index(data, []byte(needle))
	data[at+len(needle)/2] ^= 0x04 // a letter stays a letter: still valid text
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return string(data[at : at+len(needle)])
}

// TestFlippedBitDetected flips a bit inside one stored message's text in
// the file on disk. The server-side reads must not serve the altered text,
// must still serve the room's other messages, and must say so: a log line
// naming room and id, the corrupt-records counter; After reports the gap;
// Verify and Check name the record.
func TestFlippedBitDetected(t *testing.T) {
	path := tempPath(t)
	texts := []string{"first message", "second message", "third message here", "fourth message", "fifth message"}
	stored := storeTexts(t, path, "r", texts...)
	bad := stored[2] // id 3, in the middle: Open's spot check reads only the first and last
	altered := flipOnDisk(t, path, "third message here")

	var logs logBuffer
	db := openAt(t, path, Options{Logger: logs.logger()})
	got, err := db.Recent("r", 10)
	if err != nil {
		t.Fatalf("Recent = %v: one bad record must not take the room down", err)
	}
	if want := []uint64{1, 2, 4, 5}; !equalIDs(got, want) {
		t.Errorf("Recent ids = %v, want %v", ids(got), want)
	}
	for _, m := range got {
		if m.Text == altered {
			t.Errorf("altered text served: %+v", m)
		}
	}
	if got, _ := db.Before("r", 5, 2); !equalIDs(got, []uint64{2, 4}) {
		t.Errorf("Before(5, 2) ids = %v, want [2 4] (filled past the bad record)", ids(got))
	}
	msgs, complete, _, err := db.After("r", bad.ID-1, 10)
	if err != nil || complete || !equalIDs(msgs, []uint64{4, 5}) {
		t.Errorf("After(%d) = %v complete=%v %v; want [4 5], incomplete (a gap where %d was)", bad.ID-1, ids(msgs), complete, err, bad.ID)
	}
	for _, q := range []Query{{Room: "r"}, {Room: "r", Grep: altered}, {Room: "r", Grep: "third"}, {Room: "r", User: "u"}, {}} {
		got, _, err := db.Query(q)
		if err != nil {
			t.Errorf("Query(%+v) = %v", q, err)
		}
		for _, m := range got {
			if m.ID == bad.ID {
				t.Errorf("Query(%+v) served the bad record: %+v", q, m)
			}
		}
	}
	if n := db.CorruptRecords(); n != 1 {
		t.Errorf("CorruptRecords = %d, want 1 (one record, counted once however often it is read)", n)
	}
	if got := gatherStore(t, db)["moonchat_store_corrupt_records_total"]; got != 1 {
		t.Errorf("moonchat_store_corrupt_records_total = %v, want 1", got)
	}
	log := logs.String()
	if strings.Count(log, "history record is corrupt") != 1 || !strings.Contains(log, "room=r id=3") || !strings.Contains(log, "checksum mismatch") {
		t.Errorf("want one log line naming room r, id 3 and the checksum; got:\n%s", log)
	}

	var found []*CorruptRecord
	st, err := db.Verify(context.Background(), func(err error) {
		var c *CorruptRecord
		if !errors.As(err, &c) {
			t.Errorf("Verify reported %v, want only the corrupt record", err)
			return
		}
		found = append(found, c)
	})
	if err != nil || st.OK() || st.Corrupt != 1 || st.Records != 5 || st.Rooms != 1 {
		t.Errorf("Verify = %+v, %v", st, err)
	}
	if len(found) != 1 || found[0].Room != "r" || found[0].ID != bad.ID || !errors.Is(found[0], ErrChecksum) || !errors.Is(found[0], ErrCorrupt) {
		t.Errorf("Verify found %v, want room r id %d with ErrChecksum", found, bad.ID)
	}
	if err := db.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `room "r" id 3`) {
		t.Errorf("Check = %v, want ErrCorrupt naming room r id 3", err)
	}
}

// TestFlippedBitInLastRecordOpens: Open's spot check reads each room's
// first and last record; a bad one is reported there, not fatal, and the
// server's next ID still follows the room's last ID (not the bad record).
func TestFlippedBitInLastRecordOpens(t *testing.T) {
	path := tempPath(t)
	storeTexts(t, path, "r", "one message", "two message", "three message")
	flipOnDisk(t, path, "three message")
	var logs logBuffer
	db := openAt(t, path, Options{Logger: logs.logger()})
	if n := db.CorruptRecords(); n != 1 || !strings.Contains(logs.String(), "room=r id=3") {
		t.Errorf("after Open: CorruptRecords = %d, log:\n%s", n, logs.String())
	}
	if got, err := db.Recent("r", 10); err != nil || !equalIDs(got, []uint64{1, 2}) {
		t.Errorf("Recent = %v, %v", ids(got), err)
	}
	if m := appendText(t, db, "r", "u", "after"); m.ID != 4 {
		t.Errorf("next id = %d, want 4", m.ID)
	}
	if n := db.CorruptRecords(); n != 1 {
		t.Errorf("CorruptRecords = %d after more reads, want 1", n)
	}
}

// TestCorruptRecordWithoutChecksum: damage to an old (version 1) record
// that breaks its decoding, or a record stored under the wrong key, is
// skipped and reported the same way.
func TestCorruptRecordWithoutChecksum(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	fill(t, db, "r", "ann", 5)
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRooms).Bucket([]byte("r"))
		if err := b.Put(idKey(2), []byte{9, 9, 9}); err != nil { // unknown version
			return err
		}
		// A valid record, but of id 1, under key 4.
		return b.Put(idKey(4), appendRecord(nil, 1, &chat.Message{Room: "r", User: "ann", Text: "moved"}))
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{Logger: slog.New(slog.DiscardHandler)})
	if got, err := db.Recent("r", 10); err != nil || !equalIDs(got, []uint64{1, 3, 5}) {
		t.Errorf("Recent = %v, %v; want [1 3 5]", ids(got), err)
	}
	if got, err := db.Recent("r", 2); err != nil || !equalIDs(got, []uint64{3, 5}) {
		t.Errorf("Recent(2) = %v, %v; want [3 5]", ids(got), err)
	}
	if n := db.CorruptRecords(); n != 2 {
		t.Errorf("CorruptRecords = %d, want 2", n)
	}
	err = db.Check()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `room "r" id 2`) || !strings.Contains(err.Error(), `room "r" id 4`) {
		t.Errorf("Check = %v, want ErrCorrupt naming ids 2 and 4", err)
	}
}

// TestDeleteUserAcrossCorruptRecord: the user's readable messages are
// deleted, and the caller is told that a record could not be checked.
func TestDeleteUserAcrossCorruptRecord(t *testing.T) {
	path := tempPath(t)
	storeTexts(t, path, "r", "mine one", "mine two", "mine three")
	flipOnDisk(t, path, "mine two")
	db := openAt(t, path, Options{Logger: slog.New(slog.DiscardHandler)})
	n, err := db.DeleteUser("u")
	if n != 2 || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "1 corrupt record") {
		t.Errorf("DeleteUser = %d, %v; want 2 and ErrCorrupt naming 1 corrupt record", n, err)
	}
	if got, _ := db.Recent("r", 10); len(got) != 0 {
		t.Errorf("left: %+v", got)
	}
}

// TestAgeRetentionAcrossCorruptRecord: a record whose time cannot be
// trusted is removed with its neighbours when a younger message is itself
// too old, and kept when the next message is young enough.
func TestAgeRetentionAcrossCorruptRecord(t *testing.T) {
	clock := newClock()
	path := tempPath(t)
	db := openAt(t, path, Options{Now: clock.Now, PruneInterval: -1})
	t0 := clock.Now()
	var msgs []*chat.Message
	for i, text := range []string{"old one", "old two", "old three", "new four", "new five", "new six"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i >= 3 {
			at = t0.Add(time.Hour + time.Duration(i)*time.Minute)
		}
		msgs = append(msgs, &chat.Message{Room: "r", User: "u", Text: text, Time: at})
	}
	if err := db.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	db.Close()
	flipOnDisk(t, path, "old two")
	flipOnDisk(t, path, "new five")
	clock.Advance(2 * time.Hour)
	db = openAt(t, path, Options{Now: clock.Now, MaxAge: 90 * time.Minute, PruneInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	n, err := db.Prune(clock.Now())
	if err != nil || n != 3 {
		t.Errorf("Prune = %d, %v; want 3 (ids 1-3, the bad 2 between two old ones)", n, err)
	}
	if got, _ := db.Recent("r", 10); !equalIDs(got, []uint64{4, 6}) {
		t.Errorf("left %v, want [4 6] (bad 5 is kept: 4 is young)", ids(got))
	}
	st, _ := db.Verify(context.Background(), func(error) {})
	if st.Corrupt != 1 || st.Records != 3 {
		t.Errorf("Verify after Prune = %+v, want the one bad record 5 among 3", st)
	}
}

func equalIDs(msgs []chat.Message, want []uint64) bool {
	return fmt.Sprint(ids(msgs)) == fmt.Sprint(want)
}

// TestVerifyStopsOnCancel: a cancelled context stops Verify before it has
// read every record, with the context's error (history -verify on SIGINT).
func TestVerifyStopsOnCancel(t *testing.T) {
	db := openTemp(t, Options{})
	msgs := make([]*chat.Message, 3*verifyCheckEvery)
	for i := range msgs {
		msgs[i] = &chat.Message{Room: "r", User: "ann", Text: "x"}
	}
	if err := db.Append(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	if st, err := db.Verify(t.Context(), func(error) {}); err != nil || st.Records != len(msgs) {
		t.Fatalf("Verify = %+v, %v; want all %d records", st, err, len(msgs))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	st, err := db.Verify(ctx, func(error) {})
	if !errors.Is(err, context.Canceled) || st.Records >= len(msgs) {
		t.Errorf("cancelled Verify = %+v, %v; want context.Canceled before %d records", st, err, len(msgs))
	}
}
