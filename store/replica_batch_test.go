package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

func mustApplyBatch(t *testing.T, db *DB, recs ...LogRecord) {
	t.Helper()
	if err := db.ApplyBatch(recs); err != nil {
		t.Fatalf("ApplyBatch(%d records): %v", len(recs), err)
	}
}

// fileDump returns every bucket's keys and values of db's file, nested
// buckets included, one line each: what "the file as it was" compares.
func fileDump(t *testing.T, db *DB) string {
	t.Helper()
	var b strings.Builder
	var walk func(prefix string, c *bolt.Cursor, bucket func([]byte) *bolt.Bucket)
	walk = func(prefix string, c *bolt.Cursor, bucket func([]byte) *bolt.Bucket) {
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				nb := bucket(k)
				walk(prefix+string(k)+"/", nb.Cursor(), nb.Bucket)
				continue
			}
			fmt.Fprintf(&b, "%s%x=%x\n", prefix, k, v)
		}
	}
	err := db.view(func(tx *bolt.Tx) error {
		walk("", tx.Cursor(), tx.Bucket)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReplicaApplyBatch (issue 15): ApplyBatch stores records of several
// rooms and a conversation — batches, redactions (one of a message an
// earlier record of the same batch stored), a hole, an empty record — in
// log order, in one commit, as the same records applied one by one
// would; Applied is the last record's.
func TestReplicaApplyBatch(t *testing.T) {
	conv := chat.ConversationKey("acc-a", "acc-b")
	dm := logMsgs(conv, 1, 2)
	for i := range dm {
		dm[i].Account = &chat.Account{ID: "acc-b", Roles: []string{"user"}}
	}
	recs := []LogRecord{
		{Seq: 3, Key: "a", Msgs: logMsgs("a", 1, 2)},
		{Seq: 4, Key: conv, Msgs: dm},
		{Seq: 6, Key: "b", Msgs: logMsgs("b", 1)},
		{Seq: 7, Key: "a", Redact: 1},
		{Seq: 8, Key: "a", Msgs: logMsgs("a", 3)},
		{Seq: 9, Key: conv, Redact: 2},
		{Seq: 10, Key: "b", Msgs: logMsgs("b", 5, 6)}, // 2–4 dropped by the log
		{Seq: 11, Key: "never", Redact: 4},
		{Seq: 12, Key: "a"},
	}
	batched := openTemp(t, Options{Replica: true})
	commits := batched.Stats().Commits
	mustApplyBatch(t, batched, recs...)
	if c := batched.Stats().Commits - commits; c != 1 {
		t.Errorf("%d commits for one batch, want 1", c)
	}
	if batched.Applied() != 12 {
		t.Fatalf("Applied = %d, want 12", batched.Applied())
	}
	for key, want := range map[string][]uint64{"a": {2, 3}, conv: {1}, "b": {1, 5, 6}} {
		if got := roomIDs(t, batched, key); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: ids %v, want %v", key, got, want)
		}
	}
	if convs, err := batched.Conversations("acc-a"); err != nil || len(convs) != 1 || convs[0].LastID != 2 || convs[0].Count != 1 {
		t.Errorf("Conversations(acc-a) = %+v, %v", convs, err)
	}
	if _, complete, _, _ := batched.After("b", 1, 10); complete {
		t.Error("After(b, 1) over the hole 2–4: complete")
	}
	if err := batched.Check(); err != nil {
		t.Fatal(err)
	}

	// The same records one by one make the same rooms.
	single := openTemp(t, Options{Replica: true})
	for _, r := range recs {
		mustApply(t, single, r.Seq, r.Key, r.Msgs, r.Redact)
	}
	for _, key := range []string{"a", "b", conv} {
		want, _ := single.Recent(key, 100)
		got, _ := batched.Recent(key, 100)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q batched %+v\none by one %+v", key, got, want)
		}
		if batched.LastID(key) != single.LastID(key) {
			t.Errorf("%q: LastID %d batched, %d one by one", key, batched.LastID(key), single.LastID(key))
		}
	}
	if err := batched.ApplyBatch(nil); err != nil || batched.Applied() != 12 {
		t.Errorf("empty batch: %v, Applied %d", err, batched.Applied())
	}
}

// TestReplicaApplyBatchRestart (issue 15): after a Close and Open, a
// batch that repeats records up to Applied (a consumer going over them
// again after a crash) changes nothing for those and applies the rest;
// the whole batch again changes nothing.
func TestReplicaApplyBatchRestart(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{Replica: true})
	first := []LogRecord{
		{Seq: 1, Key: "a", Msgs: logMsgs("a", 1, 2)},
		{Seq: 2, Key: "b", Msgs: logMsgs("b", 1)},
		{Seq: 3, Key: "a", Redact: 2},
	}
	mustApplyBatch(t, db, first...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{Replica: true})
	if db.Applied() != 3 {
		t.Fatalf("Applied after reopen = %d", db.Applied())
	}
	before := fileDump(t, db)
	mustApplyBatch(t, db, first...)
	if after := fileDump(t, db); after != before {
		t.Fatalf("a batch applied already changed the file:\n%s\nwas\n%s", after, before)
	}
	// Overlapping: 2 and 3 again (their content differs: ignored), 4 new.
	mustApplyBatch(t, db,
		LogRecord{Seq: 2, Key: "b", Msgs: logMsgs("b", 1, 2)},
		LogRecord{Seq: 3, Key: "a", Msgs: logMsgs("a", 3)},
		LogRecord{Seq: 4, Key: "a", Msgs: logMsgs("a", 3)},
	)
	if db.Applied() != 4 || !reflect.DeepEqual(roomIDs(t, db, "a"), []uint64{1, 3}) || !reflect.DeepEqual(roomIDs(t, db, "b"), []uint64{1}) {
		t.Fatalf("after the overlapping batch: Applied %d, a %v, b %v", db.Applied(), roomIDs(t, db, "a"), roomIDs(t, db, "b"))
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaApplyBatchDiverged (issue 15): a record in the middle of a
// batch whose ids do not follow its room (as the batch's earlier records
// left it) rejects the whole batch with ErrDiverged naming that record;
// the file is as it was (not the records before it, nor a room they
// created, nor Applied), and the good records apply afterwards.
func TestReplicaApplyBatchDiverged(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	mustApply(t, db, 1, "r", logMsgs("r", 1, 2), 0)
	before := fileDump(t, db)
	commits := db.Stats().Commits
	for _, c := range []struct {
		name string
		recs []LogRecord
	}{
		{"below the file's LastID", []LogRecord{
			{Seq: 2, Key: "new", Msgs: logMsgs("new", 1)},
			{Seq: 3, Key: "r", Redact: 1},
			{Seq: 4, Key: "r", Msgs: logMsgs("r", 2, 3)},
			{Seq: 5, Key: "new", Msgs: logMsgs("new", 2)},
		}},
		{"below an earlier record of the batch", []LogRecord{
			{Seq: 2, Key: "new", Msgs: logMsgs("new", 1)},
			{Seq: 3, Key: "r", Msgs: logMsgs("r", 3, 4)},
			{Seq: 4, Key: "r", Msgs: logMsgs("r", 4)},
			{Seq: 5, Key: "new", Msgs: logMsgs("new", 2)},
		}},
	} {
		err := db.ApplyBatch(c.recs)
		if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), `log record 4 ("r")`) {
			t.Fatalf("%s: %v, want ErrDiverged naming record 4", c.name, err)
		}
		if after := fileDump(t, db); after != before {
			t.Fatalf("%s: the refused batch changed the file:\n%s\nwas\n%s", c.name, after, before)
		}
		if db.Applied() != 1 || db.LastID("new") != 0 || db.LastID("r") != 2 {
			t.Fatalf("%s: Applied %d, LastID new %d r %d", c.name, db.Applied(), db.LastID("new"), db.LastID("r"))
		}
	}
	if c := db.Stats().Commits - commits; c != 0 {
		t.Errorf("%d commits for refused batches", c)
	}
	mustApplyBatch(t, db,
		LogRecord{Seq: 2, Key: "new", Msgs: logMsgs("new", 1)},
		LogRecord{Seq: 3, Key: "r", Msgs: logMsgs("r", 3)},
	)
	if db.Applied() != 3 || db.LastID("r") != 3 || db.LastID("new") != 1 {
		t.Fatalf("the good records: Applied %d, LastID r %d new %d", db.Applied(), db.LastID("r"), db.LastID("new"))
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaApplyBatchInvalid (issue 15): a record breaking LogRecord's
// invariants anywhere in a batch (log positions not increasing included)
// fails the batch with ErrInvalid naming it, before anything is written.
func TestReplicaApplyBatchInvalid(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	mustApply(t, db, 1, "r", logMsgs("r", 1), 0)
	before := fileDump(t, db)
	good := LogRecord{Seq: 2, Key: "r", Msgs: logMsgs("r", 2)}
	for _, c := range []struct {
		name string
		bad  LogRecord
		want string
	}{
		{"same position", LogRecord{Seq: 2, Key: "r", Msgs: logMsgs("r", 3)}, `log record 2 ("r")`},
		{"lower position", LogRecord{Seq: 1, Key: "s", Msgs: logMsgs("s", 1)}, `log record 1 ("s")`},
		{"position 0", LogRecord{Seq: 0, Key: "s", Msgs: logMsgs("s", 1)}, `log record 0 ("s")`},
		{"messages and a redaction", LogRecord{Seq: 3, Key: "s", Msgs: logMsgs("s", 1), Redact: 1}, `log record 3 ("s")`},
		{"message of another room", LogRecord{Seq: 3, Key: "s", Msgs: logMsgs("r", 3)}, `log record 3 ("s")`},
		{"malformed conversation", LogRecord{Seq: 3, Key: "@dm:broken", Msgs: logMsgs("@dm:broken", 1)}, `log record 3 ("@dm:broken")`},
	} {
		err := db.ApplyBatch([]LogRecord{good, c.bad, {Seq: 9, Key: "t", Msgs: logMsgs("t", 1)}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid naming %s", c.name, err, c.want)
		}
	}
	if after := fileDump(t, db); after != before || db.Applied() != 1 {
		t.Fatalf("refused batches changed the file (Applied %d):\n%s\nwas\n%s", db.Applied(), after, before)
	}
	single := openTemp(t, Options{})
	if err := single.ApplyBatch([]LogRecord{good}); !errors.Is(err, ErrReplica) {
		t.Errorf("ApplyBatch on a single-node DB: %v, want ErrReplica", err)
	}
}

// TestReplicaApplyBatchKeepsInput (issue 15): ApplyBatch neither keeps
// nor changes the caller's messages (it stores copies, times
// normalised), so a consumer may hand the same slices on to delivery.
func TestReplicaApplyBatchKeepsInput(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	msgs := logMsgs("r", 1, 2)
	msgs[1].Time = msgs[1].Time.In(time.FixedZone("X", 3600))
	orig := append([]chat.Message(nil), msgs...)
	mustApplyBatch(t, db, LogRecord{Seq: 1, Key: "r", Msgs: msgs})
	if !reflect.DeepEqual(msgs, orig) {
		t.Fatalf("ApplyBatch changed its input: %+v", msgs)
	}
	msgs[0].Text = "changed afterwards"
	got, _ := db.Recent("r", 10)
	if got[0].Text != "r #1" || got[1].Time.Location() != time.UTC || !got[1].Time.Equal(orig[1].Time) {
		t.Fatalf("stored %+v", got)
	}
}
