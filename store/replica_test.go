package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

var replicaT0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// logMsgs builds a log batch of room with the given ids, as the cluster's
// consumer hands it over (Room = key, ids set, times set).
func logMsgs(room string, ids ...uint64) []chat.Message {
	out := make([]chat.Message, len(ids))
	for i, id := range ids {
		out[i] = chat.Message{ID: id, Room: room, User: "u", Text: fmt.Sprintf("%s #%d", room, id), Time: replicaT0.Add(time.Duration(id) * time.Second)}
	}
	return out
}

func mustApply(t *testing.T, db *DB, seq uint64, key string, msgs []chat.Message, redact uint64) {
	t.Helper()
	if err := db.Apply(seq, key, msgs, redact); err != nil {
		t.Fatalf("Apply(%d, %q, %d msgs, redact %d): %v", seq, key, len(msgs), redact, err)
	}
}

// roomIDs returns every id stored in room, oldest first.
func roomIDs(t *testing.T, db *DB, room string) []uint64 {
	t.Helper()
	msgs, err := db.Recent(room, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return ids(msgs)
}

func roomInfo(t *testing.T, db *DB, room string) RoomInfo {
	t.Helper()
	rooms, err := db.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rooms {
		if r.Name == room {
			return r
		}
	}
	t.Fatalf("room %q not listed in %+v", room, rooms)
	return RoomInfo{}
}

// TestReplicaApply: Apply stores a batch with the ids it carries and every
// field (account, action, time) as given, advances Applied, and a record
// at or below Applied changes nothing, even when its content differs.
// Append is refused with ErrReplica.
func TestReplicaApply(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	if !db.Replica() || db.Applied() != 0 || formatOf(t, db) != formatReplica {
		t.Fatalf("new replica: Replica %v, Applied %d, format %d", db.Replica(), db.Applied(), formatOf(t, db))
	}
	err := db.Append(t.Context(), msgsOf("lobby", "hi"))
	if !errors.Is(err, ErrReplica) {
		t.Fatalf("Append on a replica = %v, want ErrReplica", err)
	}
	batch := logMsgs("lobby", 1, 2)
	batch[1].Action = true
	batch[1].Account = &chat.Account{ID: "acc-7", Roles: []string{"user", "mod"}}
	batch[1].Time = time.Date(2026, 12, 1, 10, 0, 0, 5, time.FixedZone("X", 3600))
	mustApply(t, db, 10, "lobby", batch, 0)
	mustApply(t, db, 12, "lobby", logMsgs("lobby", 3), 0)
	if db.Applied() != 12 || db.LastID("lobby") != 3 || db.LastID("nowhere") != 0 {
		t.Fatalf("Applied %d, LastID %d, LastID(nowhere) %d", db.Applied(), db.LastID("lobby"), db.LastID("nowhere"))
	}
	got, err := db.Recent("lobby", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := append(batch, logMsgs("lobby", 3)...)
	want[1].Time = want[1].Time.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %+v\nwant %+v", got, want)
	}
	// Repeats (a consumer going over records again after a crash).
	mustApply(t, db, 12, "lobby", logMsgs("lobby", 3, 4), 0)
	mustApply(t, db, 10, "lobby", nil, 2)
	mustApply(t, db, 1, "other", logMsgs("other", 1), 0)
	if got2, _ := db.Recent("lobby", 10); !reflect.DeepEqual(got2, want) || db.Applied() != 12 {
		t.Fatalf("after repeats: %+v, Applied %d", got2, db.Applied())
	}
	if rooms, _ := db.Rooms(); len(rooms) != 1 {
		t.Errorf("a repeated record created a room: %+v", rooms)
	}
	if st := db.Stats(); st.Appended != 0 {
		t.Errorf("Stats.Appended = %d after Apply only", st.Appended)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaRestart: Applied, the records and each room's LastID survive
// a Close and Open; records up to Applied are no-ops after it, later ones
// go on.
func TestReplicaRestart(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{Replica: true})
	mustApply(t, db, 1, "a", logMsgs("a", 1, 2, 3), 0)
	mustApply(t, db, 2, "b", logMsgs("b", 1), 0)
	mustApply(t, db, 3, "a", nil, 3)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{Replica: true})
	if db.Applied() != 3 || db.LastID("a") != 3 || db.LastID("b") != 1 {
		t.Fatalf("after reopen: Applied %d, LastID a %d b %d", db.Applied(), db.LastID("a"), db.LastID("b"))
	}
	for seq := uint64(1); seq <= 3; seq++ { // the whole log again: nothing changes
		mustApply(t, db, seq, "a", logMsgs("a", 1, 2, 3), 0)
	}
	if got := roomIDs(t, db, "a"); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("room a after repeats: %v", got)
	}
	mustApply(t, db, 4, "a", logMsgs("a", 4), 0)
	if got := roomIDs(t, db, "a"); !reflect.DeepEqual(got, []uint64{1, 2, 4}) || db.Applied() != 4 {
		t.Fatalf("room a: %v, Applied %d", got, db.Applied())
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaGaps: ids past LastID+1 (records the log dropped before the
// node read them) leave a hole that After reports as a gap; in a room with
// no record the hole is recorded as pruned. Verify is happy with both.
func TestReplicaGaps(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	mustApply(t, db, 7, "r", logMsgs("r", 101, 102), 0)
	info := roomInfo(t, db, "r")
	if info.Pruned != 100 || info.FirstID != 101 || info.LastID != 102 || info.Count != 2 {
		t.Fatalf("after a first record at 101: %+v", info)
	}
	msgs, complete, more, err := db.After("r", 0, 10)
	if err != nil || complete || more || !reflect.DeepEqual(ids(msgs), []uint64{101, 102}) {
		t.Fatalf("After(0) = %v, complete %v, more %v, %v; want 101 102 with a gap", ids(msgs), complete, more, err)
	}
	mustApply(t, db, 9, "r", logMsgs("r", 105, 106), 0) // 103, 104 dropped by the log
	if info := roomInfo(t, db, "r"); info.Pruned != 100 || info.LastID != 106 || info.Count != 4 {
		t.Fatalf("after a jump over stored records: %+v (Pruned must stay below the stored ids)", info)
	}
	msgs, complete, _, err = db.After("r", 102, 10)
	if err != nil || complete || !reflect.DeepEqual(ids(msgs), []uint64{105, 106}) {
		t.Fatalf("After(102) = %v, complete %v, %v; want 105 106 with a gap", ids(msgs), complete, err)
	}
	msgs, complete, _, err = db.After("r", 101, 1)
	if err != nil || !complete || !reflect.DeepEqual(ids(msgs), []uint64{102}) {
		t.Fatalf("After(101) = %v, complete %v, %v; want 102, complete", ids(msgs), complete, err)
	}
	msgs, complete, _, err = db.After("r", 105, 10)
	if err != nil || !complete || !reflect.DeepEqual(ids(msgs), []uint64{106}) {
		t.Fatalf("After(105) = %v, complete %v, %v", ids(msgs), complete, err)
	}
	// A hole inside one batch.
	mustApply(t, db, 10, "r", logMsgs("r", 107, 109), 0)
	if _, complete, _, _ := db.After("r", 107, 10); complete {
		t.Error("After(107) over a hole inside a batch: complete")
	}
	st, err := db.Verify(context.Background(), func(err error) { t.Error(err) })
	if err != nil || !st.OK() || st.Records != 6 {
		t.Fatalf("Verify = %+v, %v", st, err)
	}
}

// TestReplicaRedact: a redaction removes the message (Count follows,
// LastID stays); one of an id that is not stored — never received, gone
// already, in a room never seen — changes nothing but Applied.
func TestReplicaRedact(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	mustApply(t, db, 1, "r", logMsgs("r", 1, 2, 3), 0)
	mustApply(t, db, 2, "r", nil, 2)
	if got := roomIDs(t, db, "r"); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("after redacting 2: %v", got)
	}
	for i, red := range []struct {
		key string
		id  uint64
	}{{"r", 2}, {"r", 50}, {"never", 1}} {
		seq := uint64(3 + i)
		mustApply(t, db, seq, red.key, nil, red.id)
		if db.Applied() != seq {
			t.Errorf("redaction of absent %s/%d: Applied %d, want %d", red.key, red.id, db.Applied(), seq)
		}
	}
	if info := roomInfo(t, db, "r"); info.Count != 2 || info.LastID != 3 {
		t.Fatalf("room after redactions: %+v", info)
	}
	if rooms, _ := db.Rooms(); len(rooms) != 1 {
		t.Errorf("a redaction created a room: %+v", rooms)
	}
	if _, complete, _, _ := db.After("r", 1, 10); complete {
		t.Error("After(1) over the redacted 2: complete")
	}
	mustApply(t, db, 9, "r", nil, 0) // an empty record: only Applied moves
	if db.Applied() != 9 {
		t.Errorf("empty record: Applied %d", db.Applied())
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaConversation: a direct conversation's records apply like a
// room's and the conversation is listed for both accounts.
func TestReplicaConversation(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	key := chat.ConversationKey("acc-a", "acc-b")
	batch := logMsgs(key, 1, 2)
	for i := range batch {
		batch[i].Account = &chat.Account{ID: "acc-a", Roles: []string{"user"}}
	}
	mustApply(t, db, 1, key, batch, 0)
	mustApply(t, db, 2, key, nil, 1)
	for _, acc := range []string{"acc-a", "acc-b"} {
		convs, err := db.Conversations(acc)
		if err != nil || len(convs) != 1 || convs[0].Count != 1 || convs[0].LastID != 2 {
			t.Errorf("Conversations(%s) = %+v, %v", acc, convs, err)
		}
	}
	if db.LastID(key) != 2 {
		t.Errorf("LastID = %d", db.LastID(key))
	}
	err := db.Apply(3, "@dm:broken", logMsgs("@dm:broken", 1), 0)
	if !errors.Is(err, ErrInvalid) || db.Applied() != 2 {
		t.Errorf("malformed conversation key: %v, Applied %d", err, db.Applied())
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaDiverged: a record whose ids do not follow the room's LastID
// is refused with ErrDiverged and applies nothing (not even Applied, nor
// a redaction or message elsewhere in the same group commit).
func TestReplicaDiverged(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	mustApply(t, db, 1, "r", logMsgs("r", 1, 2, 3), 0)
	for _, first := range []uint64{1, 3} {
		err := db.Apply(2, "r", logMsgs("r", first, 4), 0)
		if !errors.Is(err, ErrDiverged) {
			t.Fatalf("record starting at %d after LastID 3: %v, want ErrDiverged", first, err)
		}
	}
	if db.Applied() != 1 || db.LastID("r") != 3 || !reflect.DeepEqual(roomIDs(t, db, "r"), []uint64{1, 2, 3}) {
		t.Fatalf("after refusals: Applied %d, LastID %d, ids %v", db.Applied(), db.LastID("r"), roomIDs(t, db, "r"))
	}
	var stored uint64
	if err := db.view(func(tx *bolt.Tx) error {
		stored, _ = readApplied(tx, formatReplica)
		return nil
	}); err != nil || stored != 1 {
		t.Fatalf("applied in the file = %d, %v", stored, err)
	}
	mustApply(t, db, 2, "r", logMsgs("r", 4), 0)
	if db.Applied() != 2 || db.LastID("r") != 4 {
		t.Fatalf("the next good record: Applied %d, LastID %d", db.Applied(), db.LastID("r"))
	}
}

// TestReplicaInvalid: what Apply refuses before touching the file.
func TestReplicaInvalid(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	bad := func(m ...chat.Message) []chat.Message { return m }
	mixed := logMsgs("r", 1)
	mixed[0].Room = "s"
	big := logMsgs("r", 1)
	big[0].Account = &chat.Account{ID: string(make([]byte, MaxAccountIDLen+1))}
	for _, c := range []struct {
		name   string
		seq    uint64
		key    string
		msgs   []chat.Message
		redact uint64
	}{
		{"seq 0", 0, "r", logMsgs("r", 1), 0},
		{"empty key", 1, "", nil, 1},
		{"messages and a redaction", 1, "r", logMsgs("r", 1), 1},
		{"message of another room", 1, "r", mixed, 0},
		{"id 0", 1, "r", logMsgs("r", 0), 0},
		{"ids not increasing", 1, "r", bad(logMsgs("r", 2)[0], logMsgs("r", 2)[0]), 0},
		{"ids decreasing", 1, "r", logMsgs("r", 3, 2), 0},
		{"account too long", 1, "r", big, 0},
	} {
		if err := db.Apply(c.seq, c.key, c.msgs, c.redact); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
	}
	if db.Applied() != 0 {
		t.Errorf("Applied = %d after refusals", db.Applied())
	}
	if rooms, _ := db.Rooms(); len(rooms) != 0 {
		t.Errorf("rooms after refusals: %+v", rooms)
	}
	single := openTemp(t, Options{})
	if err := single.Apply(1, "r", logMsgs("r", 1), 0); !errors.Is(err, ErrReplica) {
		t.Errorf("Apply on a single-node DB: %v, want ErrReplica", err)
	}
	if single.Replica() || single.Applied() != 0 {
		t.Errorf("single node: Replica %v, Applied %d", single.Replica(), single.Applied())
	}
}

// TestReplicaOpenModes: a replica file opened writable as a single node is
// refused (ErrReplica) and left as it was; read-only it reads; Detach makes
// it a single-node history whose ids go on; a single-node file with
// history opened as a replica keeps its ids and takes the log's next.
func TestReplicaOpenModes(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{Replica: true})
	mustApply(t, db, 5, "r", logMsgs("r", 1, 2), 0)
	db.Close()

	if _, err := Open(path, Options{}); !errors.Is(err, ErrReplica) {
		t.Fatalf("single-node Open of a replica file: %v, want ErrReplica", err)
	}
	if _, err := Open(path, Options{Replica: true, Detach: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Replica and Detach: %v, want ErrInvalid", err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !ro.Replica() || ro.Applied() != 5 || ro.LastID("r") != 2 || formatOf(t, ro) != formatReplica {
		t.Fatalf("read-only: Replica %v, Applied %d, LastID %d, format %d (the refused Open changed the file?)", ro.Replica(), ro.Applied(), ro.LastID("r"), formatOf(t, ro))
	}
	if err := ro.Apply(6, "r", logMsgs("r", 3), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Apply read-only: %v", err)
	}
	if err := ro.Check(); err != nil {
		t.Error(err)
	}
	ro.Close()

	det := openAt(t, path, Options{Detach: true})
	if det.Replica() || det.Applied() != 0 || formatOf(t, det) != formatVersion {
		t.Fatalf("detached: Replica %v, Applied %d, format %d", det.Replica(), det.Applied(), formatOf(t, det))
	}
	if m := appendText(t, det, "r", "u", "after"); m.ID != 3 {
		t.Errorf("first Append after Detach: id %d, want 3", m.ID)
	}
	if err := det.Check(); err != nil {
		t.Error(err)
	}
	det.Close()
	single := openAt(t, path, Options{}) // a detached file is a single-node file
	single.Close()

	// Single node → replica: the history stays, the log numbers after it.
	rep := openAt(t, path, Options{Replica: true})
	if !rep.Replica() || rep.Applied() != 0 || rep.LastID("r") != 3 || formatOf(t, rep) != formatReplica {
		t.Fatalf("became a replica: Replica %v, Applied %d, LastID %d, format %d", rep.Replica(), rep.Applied(), rep.LastID("r"), formatOf(t, rep))
	}
	mustApply(t, rep, 1, "r", logMsgs("r", 4), 0)
	if got := roomIDs(t, rep, "r"); !reflect.DeepEqual(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("ids = %v", got)
	}
	if err := rep.Check(); err != nil {
		t.Error(err)
	}
}

// TestReplicaFormatMarker: the applied position and the format marker go
// together; a file with one and not the other is corrupt (Open refuses it,
// Verify reports it).
func TestReplicaFormatMarker(t *testing.T) {
	for _, c := range []struct {
		name   string
		format uint32
		put    []byte // meta/applied; nil: none
	}{
		{"replica without applied", formatReplica, nil},
		{"replica with a short applied", formatReplica, []byte{1, 2, 3}},
		{"single node with applied", formatVersion, make([]byte, 8)},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := tempPath(t)
			openAt(t, path, Options{}).Close()
			bdb, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = bdb.Update(func(tx *bolt.Tx) error {
				mb := tx.Bucket(bucketMeta)
				if err := mb.Put(keyFormat, []byte{0, 0, 0, byte(c.format)}); err != nil {
					return err
				}
				if c.put == nil {
					return mb.Delete(keyApplied)
				}
				return mb.Put(keyApplied, c.put)
			})
			bdb.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, opts := range []Options{{Replica: true}, {ReadOnly: true}} {
				if db, err := Open(path, opts); !errors.Is(err, ErrCorrupt) {
					if err == nil {
						db.Close()
					}
					t.Errorf("Open(%+v) = %v, want ErrCorrupt", opts, err)
				}
			}
		})
	}
}

// TestReplicaWithConcurrentWrites: Apply shares the committer with the
// other durable writes (KV, moderation); applied records and those writes
// all land, under the race detector.
func TestReplicaWithConcurrentWrites(t *testing.T) {
	db := openTemp(t, Options{Replica: true})
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := db.Set("s.lua", fmt.Sprint("k", i), "v"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := uint64(1); i <= n; i++ {
		mustApply(t, db, 2*i, "r", logMsgs("r", i), 0)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if db.Applied() != 2*n || db.LastID("r") != n {
		t.Fatalf("Applied %d, LastID %d", db.Applied(), db.LastID("r"))
	}
	for i := range n {
		if v, ok, err := db.Get("s.lua", fmt.Sprint("k", i)); err != nil || !ok || v != "v" {
			t.Fatalf("KV k%d = %q %v %v", i, v, ok, err)
		}
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaRetention: retention prunes a replica like any history; the
// log's records go on after the pruned ids, and Verify is happy.
func TestReplicaRetention(t *testing.T) {
	db := openTemp(t, Options{Replica: true, MaxPerRoom: 3, PruneInterval: -1})
	mustApply(t, db, 1, "r", logMsgs("r", 1, 2, 3, 4, 5), 0)
	if n, err := db.Prune(time.Now()); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	mustApply(t, db, 2, "r", logMsgs("r", 6), 0)
	if got := roomIDs(t, db, "r"); !reflect.DeepEqual(got, []uint64{3, 4, 5, 6}) {
		t.Fatalf("ids = %v", got)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}
