package store

import (
	"fmt"
	"testing"
)

// RoomStats reports what is on disk, room by room and sorted by name, in
// the chat server's terms: counts, the oldest stored and newest assigned
// ids (which survive redacting the newest message), and nothing for a
// store that never stored anything.
func TestRoomStats(t *testing.T) {
	db := openTemp(t, Options{NoSync: true})
	if got, err := db.RoomStats(); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v; want no rooms", got, err)
	}
	fill(t, db, "zeta", "u", 3)
	fill(t, db, "alpha", "u", 5)
	fill(t, db, "mid", "u", 2)
	for _, redact := range []struct {
		room string
		id   uint64
	}{{"alpha", 1}, {"zeta", 3}, {"mid", 1}, {"mid", 2}} {
		if ok, err := db.Redact(redact.room, redact.id); !ok || err != nil {
			t.Fatalf("Redact(%s, %d) = %v, %v", redact.room, redact.id, ok, err)
		}
	}
	got, err := db.RoomStats()
	if err != nil {
		t.Fatal(err)
	}
	want := "[{alpha 4 2 5} {mid 0 0 2} {zeta 2 1 3}]"
	if fmt.Sprint(got) != want {
		t.Errorf("RoomStats = %v, want %s", got, want)
	}

	// A read-only handle (the CLI on a stopped server's file) answers too.
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, err := ro.RoomStats(); err != nil || fmt.Sprint(got) != want {
		t.Errorf("read-only RoomStats = %v, %v, want %s", got, err, want)
	}
}
