package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

func TestAppendConcurrentIDsGapFree(t *testing.T) {
	db := openTemp(t, Options{})
	const workers, perWorker = 20, 30
	rooms := []string{"lobby", "dev", "ops"}
	type ack struct {
		room string
		id   uint64
	}
	acks := make([][]ack, workers)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				m := &chat.Message{Room: rooms[(w+i)%len(rooms)], User: fmt.Sprint("u", w), Text: fmt.Sprint(i)}
				if err := db.Append(context.Background(), []*chat.Message{m}); err != nil {
					errc <- err
					return
				}
				acks[w] = append(acks[w], ack{m.Room, m.ID})
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	perRoom := map[string][]uint64{}
	for w := range acks {
		last := map[string]uint64{}
		for _, a := range acks[w] {
			if a.id <= last[a.room] {
				t.Errorf("worker %d room %s: id %d after %d; one caller's ids must increase", w, a.room, a.id, last[a.room])
			}
			last[a.room] = a.id
			perRoom[a.room] = append(perRoom[a.room], a.id)
		}
	}
	total := 0
	for _, room := range rooms {
		got := perRoom[room]
		slices.Sort(got)
		if want := seq(1, uint64(len(got))); !slices.Equal(got, want) {
			t.Errorf("room %s ids = %v, want 1..%d unique and gap-free", room, got, len(got))
		}
		total += len(got)
		stored, err := db.Recent(room, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(stored), got) {
			t.Errorf("room %s stored ids %v, acknowledged %v", room, ids(stored), got)
		}
	}
	if total != workers*perWorker {
		t.Errorf("acknowledged %d messages, want %d", total, workers*perWorker)
	}
	if s := db.Stats(); s.Appended != uint64(total) {
		t.Errorf("Stats().Appended = %d, want %d", s.Appended, total)
	}
}

func TestAppendSliceOrderAndFields(t *testing.T) {
	clock := newClock()
	db := openTemp(t, Options{Now: clock.Now})
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	msgs := []*chat.Message{
		{Room: "a", User: "ann", Text: "one", Time: local},
		{Room: "b", User: "bob", Text: "two"},
		{Room: "a", User: "ann", Text: "three ünïcode\n\x00"},
		{Room: "a", User: "", Text: ""},
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if got := []uint64{msgs[0].ID, msgs[1].ID, msgs[2].ID, msgs[3].ID}; !slices.Equal(got, []uint64{1, 1, 2, 3}) {
		t.Fatalf("ids = %v, want [1 1 2 3]", got)
	}
	if !msgs[0].Time.Equal(local) || msgs[0].Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", msgs[0].Time, local)
	}
	if !msgs[1].Time.Equal(clock.Now()) {
		t.Errorf("zero Time became %v, want the clock's %v", msgs[1].Time, clock.Now())
	}
	got, err := db.Recent("a", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []chat.Message{*msgs[0], *msgs[2], *msgs[3]}
	if !slices.Equal(got, want) {
		t.Errorf("Recent(a) =\n%v\nwant\n%v", got, want)
	}
}

func TestAppendInvalid(t *testing.T) {
	db := openTemp(t, Options{})
	for _, m := range []*chat.Message{
		{Room: "", Text: "x"},
		{Room: string(make([]byte, 256)), Text: "x"},
	} {
		if err := db.Append(context.Background(), []*chat.Message{m}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(room of %d bytes) = %v, want ErrInvalid", len(m.Room), err)
		}
		if m.ID != 0 {
			t.Errorf("failed Append set ID %d", m.ID)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.Append(ctx, []*chat.Message{{Room: "r", Text: "x"}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestIDsContinueAfterReopenAndRedaction(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	fill(t, db, "lobby", "ann", 5)
	if ok, err := db.Redact("lobby", 5); !ok || err != nil {
		t.Fatalf("Redact newest = %v, %v", ok, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	db = openAt(t, path, Options{})
	if m := appendText(t, db, "lobby", "ann", "after reopen"); m.ID != 6 {
		t.Errorf("id after reopen and redaction of the newest = %d, want 6", m.ID)
	}
	if m := appendText(t, db, "new", "ann", "x"); m.ID != 1 {
		t.Errorf("first id of a new room = %d, want 1", m.ID)
	}
	got, err := db.Recent("lobby", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []uint64{1, 2, 3, 4, 6}) {
		t.Errorf("ids = %v", ids(got))
	}
}

func TestRecentBefore(t *testing.T) {
	db := openTemp(t, Options{})
	fill(t, db, "r", "ann", 10)
	for _, tc := range []struct {
		name   string
		before uint64
		n      int
		want   []uint64
	}{
		{"recent 3", 0, 3, seq(8, 10)},
		{"recent all", 0, 100, seq(1, 10)},
		{"recent 0", 0, 0, nil},
		{"before 5", 5, 2, seq(3, 4)},
		{"before 5 many", 5, 100, seq(1, 4)},
		{"before 1", 1, 10, nil},
		{"before beyond end", 1000, 3, seq(8, 10)},
		{"before 11", 11, 1, seq(10, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Before("r", tc.before, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("Before(%d, %d) = %v, want %v", tc.before, tc.n, ids(got), tc.want)
			}
		})
	}
	if got, err := db.Recent("r", 2); err != nil || !slices.Equal(ids(got), seq(9, 10)) || got[1].Text != "msg 10" {
		t.Errorf("Recent(2) = %v, %v", got, err)
	}
	if got, err := db.Recent("nobody-here", 5); err != nil || got != nil {
		t.Errorf("Recent(unknown room) = %v, %v; want nothing", got, err)
	}
}

func TestAfterCompleteMore(t *testing.T) {
	clock := newClock()
	db := openTemp(t, Options{MaxPerRoom: 6, PruneInterval: -1, Now: clock.Now})
	fill(t, db, "r", "ann", 10)
	if n, err := db.Prune(clock.Now()); err != nil || n != 4 {
		t.Fatalf("Prune = %d, %v; want 4", n, err) // 1..4 gone, 5..10 kept
	}
	if ok, err := db.Redact("r", 7); !ok || err != nil {
		t.Fatalf("Redact(7) = %v, %v", ok, err)
	}
	// Stored now: 5 6 8 9 10; last id 10, pruned watermark 4.
	for _, tc := range []struct {
		name           string
		after          uint64
		n              int
		want           []uint64
		complete, more bool
	}{
		{"from start, pruned", 0, 10, []uint64{5, 6, 8, 9, 10}, false, false},
		{"inside pruned range", 2, 2, []uint64{5, 6}, false, true},
		{"right at watermark", 4, 2, []uint64{5, 6}, true, true},
		{"before redacted", 6, 10, []uint64{8, 9, 10}, false, false},
		{"contiguous", 8, 1, []uint64{9}, true, true},
		{"up to date", 10, 5, nil, true, false},
		{"future id", 99, 5, nil, true, false},
		{"zero n still reports", 9, 0, nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, complete, more, err := db.After("r", tc.after, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) || complete != tc.complete || more != tc.more {
				t.Errorf("After(%d, %d) = %v complete=%v more=%v; want %v complete=%v more=%v",
					tc.after, tc.n, ids(got), complete, more, tc.want, tc.complete, tc.more)
			}
		})
	}
	// Redacting the newest message: a client that saw 9 has missed 10.
	if ok, _ := db.Redact("r", 10); !ok {
		t.Fatal("Redact(10) found nothing")
	}
	if got, complete, more, _ := db.After("r", 9, 5); len(got) != 0 || complete || more {
		t.Errorf("After(9) with 10 redacted = %v complete=%v more=%v; want none, incomplete", ids(got), complete, more)
	}
	if got, complete, _, _ := db.After("empty", 0, 5); got != nil || !complete {
		t.Errorf("After on an unknown room = %v complete=%v", got, complete)
	}
}

func TestRedactAndDeleteUser(t *testing.T) {
	db := openTemp(t, Options{})
	for i := range 30 {
		user := []string{"ann", "bob", "cat"}[i%3]
		appendText(t, db, []string{"r1", "r2"}[i%2], user, fmt.Sprint(i))
	}
	if ok, err := db.Redact("r1", 1); !ok || err != nil {
		t.Errorf("Redact(r1, 1) = %v, %v; want true", ok, err)
	}
	for _, tc := range []struct {
		room string
		id   uint64
	}{{"r1", 1}, {"r1", 999}, {"nope", 1}} {
		if ok, err := db.Redact(tc.room, tc.id); ok || err != nil {
			t.Errorf("Redact(%s, %d) = %v, %v; want false, nil", tc.room, tc.id, ok, err)
		}
	}
	n, err := db.DeleteUser("bob")
	if err != nil || n != 10 {
		t.Fatalf("DeleteUser(bob) = %d, %v; want 10", n, err)
	}
	if n, err := db.DeleteUser("bob"); err != nil || n != 0 {
		t.Errorf("second DeleteUser(bob) = %d, %v; want 0", n, err)
	}
	rooms, err := db.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, r := range rooms {
		msgs, _ := db.Recent(r.Name, 100)
		for _, m := range msgs {
			if m.User == "bob" {
				t.Errorf("bob's message %v survived", m)
			}
		}
		if r.Count != len(msgs) || r.LastID != 15 {
			t.Errorf("room %+v: stored %d", r, len(msgs))
		}
		count += len(msgs)
	}
	if count != 30-1-10 {
		t.Errorf("%d messages left, want 19", count)
	}
	if err := db.Check(); err != nil {
		t.Errorf("Check after redaction: %v", err)
	}
}

func TestDeleteUserManyChunks(t *testing.T) {
	db := openTemp(t, Options{NoSync: true})
	var msgs []*chat.Message
	for i := range 3*scanChunk + 7 {
		msgs = append(msgs, &chat.Message{Room: "big", User: []string{"ann", "bob"}[i%2], Text: "x"})
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteUser("ann")
	if want := (3*scanChunk + 8) / 2; err != nil || n != want {
		t.Fatalf("DeleteUser = %d, %v; want %d", n, err, want)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

func TestRetentionByCount(t *testing.T) {
	db := openTemp(t, Options{MaxPerRoom: 3, PruneInterval: -1})
	var batch []*chat.Message
	for range 3*scanChunk + 5 {
		batch = append(batch, &chat.Message{Room: "a", User: "ann", Text: "x"})
	}
	if err := db.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	fill(t, db, "b", "bob", 2)
	n, err := db.Prune(time.Now())
	if want := 3*scanChunk + 2; err != nil || n != want {
		t.Fatalf("Prune = %d, %v; want %d", n, err, want)
	}
	rooms, _ := db.Rooms()
	want := []RoomInfo{
		{Name: "a", Count: 3, FirstID: 3*scanChunk + 3, LastID: 3*scanChunk + 5, Pruned: 3*scanChunk + 2},
		{Name: "b", Count: 2, FirstID: 1, LastID: 2},
	}
	if !slices.Equal(rooms, want) {
		t.Errorf("Rooms = %+v\nwant %+v", rooms, want)
	}
	if n, _ := db.Prune(time.Now()); n != 0 {
		t.Errorf("second Prune removed %d", n)
	}
	if m := appendText(t, db, "a", "ann", "next"); m.ID != 3*scanChunk+6 {
		t.Errorf("id after pruning = %d", m.ID)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

func TestRetentionByAge(t *testing.T) {
	clock := newClock()
	db := openTemp(t, Options{MaxAge: time.Hour, PruneInterval: -1, Now: clock.Now})
	fill(t, db, "r", "ann", 3) // t0
	clock.Advance(30 * time.Minute)
	fill(t, db, "r", "ann", 2) // t0+30m
	clock.Advance(45 * time.Minute)
	if n, err := db.Prune(clock.Now()); err != nil || n != 3 {
		t.Fatalf("Prune at t0+75m = %d, %v; want the 3 oldest", n, err)
	}
	got, _ := db.Recent("r", 10)
	if !slices.Equal(ids(got), []uint64{4, 5}) {
		t.Errorf("left %v, want [4 5]", ids(got))
	}
	clock.Advance(time.Hour)
	if n, _ := db.Prune(clock.Now()); n != 2 {
		t.Errorf("Prune later = %d, want 2", n)
	}
	rooms, _ := db.Rooms()
	if len(rooms) != 1 || rooms[0].Count != 0 || rooms[0].Pruned != 5 || rooms[0].LastID != 5 {
		t.Errorf("Rooms = %+v", rooms)
	}
	if m := appendText(t, db, "r", "ann", "x"); m.ID != 6 {
		t.Errorf("id after pruning everything = %d, want 6", m.ID)
	}
}

func TestBackgroundPruner(t *testing.T) {
	db := openTemp(t, Options{MaxPerRoom: 2, PruneInterval: 10 * time.Millisecond})
	fill(t, db, "r", "ann", 5)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rooms, err := db.Rooms()
		if err != nil {
			t.Fatal(err)
		}
		if rooms[0].Count == 2 && rooms[0].Pruned == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pruner did not run within 10s: %+v", rooms)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestQuery(t *testing.T) {
	clock := newClock()
	db := openTemp(t, Options{Now: clock.Now})
	t0 := clock.Now()
	for i := 1; i <= 20; i++ {
		user := []string{"ann", "bob"}[i%2]
		appendText(t, db, "r", user, fmt.Sprintf("line %d deploy=%v", i, i%5 == 0))
		appendText(t, db, "s", user, fmt.Sprintf("other %d", i))
		clock.Advance(time.Minute)
	}
	texts := func(ms []chat.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Room+":"+m.Text)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
		room string // for all-room queries, checked via texts
		more bool
	}{
		{"limit newest", Query{Room: "r", Limit: 3}, seq(18, 20), "", true},
		{"user", Query{Room: "r", User: "ann", Limit: 3}, []uint64{16, 18, 20}, "", true},
		{"grep", Query{Room: "r", Grep: "deploy=true"}, []uint64{5, 10, 15, 20}, "", false},
		{"grep+user", Query{Room: "r", User: "bob", Grep: "deploy=true"}, []uint64{5, 15}, "", false},
		{"before", Query{Room: "r", Before: 10, Limit: 2}, []uint64{8, 9}, "", true},
		{"after", Query{Room: "r", After: 10, Limit: 2}, []uint64{11, 12}, "", true},
		{"after+before", Query{Room: "r", After: 10, Before: 13, Limit: 5}, []uint64{11, 12}, "", false},
		{"since", Query{Room: "r", Since: t0.Add(17 * time.Minute)}, seq(18, 20), "", false},
		{"since+user", Query{Room: "r", User: "bob", Since: t0.Add(15 * time.Minute)}, []uint64{17, 19}, "", false},
		{"no match", Query{Room: "r", User: "zed"}, nil, "", false},
		{"unknown room", Query{Room: "zzz"}, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, more, err := db.Query(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) || more != tc.more {
				t.Errorf("Query(%+v) = %v more=%v; want %v more=%v", tc.q, ids(got), more, tc.want, tc.more)
			}
			for _, m := range got {
				if !tc.q.match(&m) || m.Room != tc.q.Room {
					t.Errorf("result %+v does not match", m)
				}
			}
		})
	}
	got, more, err := db.Query(Query{User: "bob", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"s:other 17", "r:line 19 deploy=false", "s:other 19"}
	if !more || !slices.Equal(texts(got), want) {
		t.Errorf("all rooms, newest 3 by time = %v more=%v; want %v more=true", texts(got), more, want)
	}
	for _, q := range []Query{{Limit: -1}, {Before: 3}, {After: 3}} {
		if _, _, err := db.Query(q); !errors.Is(err, ErrInvalid) {
			t.Errorf("Query(%+v) = %v, want ErrInvalid", q, err)
		}
	}
}

func TestCloseFlushesAndRefuses(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []uint64
	for w := range 10 {
		wg.Go(func() {
			for i := range 20 {
				m := &chat.Message{Room: "r", User: fmt.Sprint(w), Text: fmt.Sprint(i)}
				err := db.Append(context.Background(), []*chat.Message{m})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, m.ID)
				mu.Unlock()
			}
		})
	}
	time.Sleep(5 * time.Millisecond) // let some appends start; the test holds either way
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := db.Append(context.Background(), []*chat.Message{{Room: "r"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := db.Recent("r", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Recent after Close = %v, want ErrClosed", err)
	}
	if err := db.Set("s", "k", "v"); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	db = openAt(t, path, Options{})
	stored, err := db.Recent("r", 1000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, m := range stored {
		have[m.ID] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Errorf("acknowledged id %d lost by Close", id)
		}
	}
}

// txID returns the id of the newest committed bbolt transaction.
func txID(t *testing.T, db *DB) int {
	t.Helper()
	id := -1
	if err := db.view(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPruneIdleWritesNothing: a prune pass over rooms within their limits
// must not run write transactions (each would cost an fsync and stall the
// committer), and neither must DeleteUser of an absent user.
func TestPruneIdleWritesNothing(t *testing.T) {
	clock := newClock()
	db := openTemp(t, Options{MaxPerRoom: 10, MaxAge: time.Hour, PruneInterval: -1, Now: clock.Now})
	for i := range 20 {
		fill(t, db, fmt.Sprint("room", i), "ann", 3)
	}
	before := txID(t, db)
	if n, err := db.Prune(clock.Now()); n != 0 || err != nil {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if n, err := db.DeleteUser("nobody"); n != 0 || err != nil {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	if after := txID(t, db); after != before {
		t.Errorf("idle Prune/DeleteUser committed %d write transactions", after-before)
	}
}
