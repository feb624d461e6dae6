package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// The chat server's side: open once, Append before broadcasting, replay
// on join, resume with After.
func Example() {
	dir, _ := os.MkdirTemp("", "moonchat-example-")
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "data", "moonchat.db"), store.Options{MaxPerRoom: 10000})
	if err != nil {
		log.Fatal(err) // e.g. "open history data/moonchat.db: history database is locked by another process (...)"
	}
	defer db.Close()

	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	msgs := []*chat.Message{
		{Room: "lobby", User: "bob", Text: "hi", Time: t0},
		{Room: "lobby", User: "ann", Text: "hello", Time: t0.Add(time.Second)},
	}
	// Returns once both are fsynced; only then may they be broadcast.
	if err := db.Append(context.Background(), msgs); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ids:", msgs[0].ID, msgs[1].ID)

	replay, _ := db.Recent("lobby", 50)
	for _, m := range replay {
		fmt.Printf("%d %s: %s\n", m.ID, m.User, m.Text)
	}

	missed, complete, more, _ := db.After("lobby", 1, 50) // a client resuming with since=1
	fmt.Println(len(missed), complete, more)
	// Output:
	// ids: 1 2
	// 1 bob: hi
	// 2 ann: hello
	// 1 true false
}

// The `moonchat history` CLI's side: open read-only while the server is
// stopped, list rooms, run a filtered query.
func ExampleDB_Query() {
	dir, _ := os.MkdirTemp("", "moonchat-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "moonchat.db")
	db, _ := store.Open(path, store.Options{})
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, text := range []string{"deploying v1", "lunch?", "deploy done", "bye"} {
		user := []string{"ann", "bob"}[i%2]
		m := &chat.Message{Room: "ops", User: user, Text: text, Time: t0.Add(time.Duration(i) * time.Minute)}
		_ = db.Append(context.Background(), []*chat.Message{m})
	}
	db.Close()

	ro, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		log.Fatal(err) // ErrLocked while the server runs
	}
	defer ro.Close()
	rooms, _ := ro.Rooms()
	for _, r := range rooms {
		fmt.Printf("%s: %d messages, ids %d..%d\n", r.Name, r.Count, r.FirstID, r.LastID)
	}
	found, more, _ := ro.Query(store.Query{Room: "ops", User: "ann", Grep: "deploy", Limit: 10})
	for _, m := range found {
		fmt.Printf("%s #%d %s: %s\n", m.Time.Format(time.TimeOnly), m.ID, m.User, m.Text)
	}
	fmt.Println("more:", more)
	// Output:
	// ops: 4 messages, ids 1..4
	// 10:00:00 #1 ann: deploying v1
	// 10:02:00 #3 ann: deploy done
	// more: false
}
