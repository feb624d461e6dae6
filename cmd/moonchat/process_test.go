package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// These tests run the built binary as a child process, as an operator
// would: signals, exit codes and kill -9.

// TestProcessSIGTERM: clients see close code 1001 and the process exits 0
// with the history flushed.
func TestProcessSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	c := startChild(t, cfg)
	alice := dial(t, c.addr, "lobby", "alice", nil)
	alice.send("before the end")
	alice.waitFor("own message", func(e event) bool { return e.Type == "message" })

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var closeErr *websocket.CloseError
	for i := 0; i < 1000; i++ {
		_, err := alice.next()
		if err == nil {
			continue
		}
		if !errors.As(err, &closeErr) {
			t.Fatalf("connection ended with %v, want a close frame", err)
		}
		break
	}
	if closeErr == nil || closeErr.Code != websocket.CloseGoingAway {
		t.Fatalf("close %+v, want 1001", closeErr)
	}
	if code := c.wait(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, c.log)
	}
	if log := c.log.String(); !strings.Contains(log, "shutting down") || !strings.Contains(log, "history closed") {
		t.Errorf("log:\n%s", log)
	}
	// The file is closed cleanly: a read-only open succeeds at once.
	db, err := store.OpenReadOnly(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msgs, err := db.Recent("lobby", 10)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "before the end" {
		t.Fatalf("stored %+v, %v", msgs, err)
	}
}

// TestProcessSIGHUP: a changed script's behaviour appears after SIGHUP.
// The new version has the same size and modification time as the old one,
// so the directory watcher cannot see the change: only SIGHUP reloads it.
func TestProcessSIGHUP(t *testing.T) {
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	if err := os.Mkdir(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(scripts, "ping.lua")
	write := func(version string) {
		t.Helper()
		src := fmt.Sprintf("chat.command(\"ping\", function(user) return \"pong %s\" end, \"/ping\")\n", version)
		if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		stamp := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(script, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	write("v1")
	cfg := testConfig(t, dir, nil)
	c := startChild(t, cfg)
	alice := dial(t, c.addr, "lobby", "alice", nil)
	ping := func() string {
		alice.send("/ping")
		return alice.waitFor("/ping answer", func(e event) bool {
			return e.Type == "system" && strings.HasPrefix(e.Text, "pong")
		}).Text
	}
	if got := ping(); got != "pong v1" {
		t.Fatalf("before reload: %q", got)
	}
	write("v2")
	if got := ping(); got != "pong v1" {
		t.Fatalf("changed without SIGHUP: %q", got)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for !strings.Contains(c.log.String(), `msg="lua scripts loaded" cause=SIGHUP`) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ping(); got != "pong v2" {
		t.Fatalf("after SIGHUP: %q", got)
	}

	// A broken script keeps the old ones running and says so.
	if err := os.WriteFile(script, []byte("chat.command(\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(waitLong)
	for !strings.Contains(c.log.String(), "previous scripts keep running") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged:\n%s", c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ping(); got != "pong v2" {
		t.Fatalf("after a broken reload: %q", got)
	}
}

// received is what one client saw: live chat messages by room and id.
type received struct {
	mu   sync.Mutex
	msgs []chat.Message
}

func (r *received) add(e event) {
	r.mu.Lock()
	r.msgs = append(r.msgs, chat.Message{ID: e.ID, Room: e.Room, User: e.User, Text: e.Text})
	r.mu.Unlock()
}

// TestProcessCrash (issue 5): kill -9 under load loses no message that any
// client received. Three rounds; each starts the server on the same file,
// loads it from a few clients, kills it after a growing number of
// deliveries, then checks every received message is on disk and the file
// opens cleanly.
func TestProcessCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	dbPath := filepath.Join(dir, "moonchat.db")
	const clients = 3
	const maxSends = 5000 // per client and round: bounds the loop
	var all []*received
	var lastID uint64
	for round, killAfter := range []int64{100, 500, 1500} {
		c := startChild(t, cfg)
		var deliveries atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i := range clients {
			rec := &received{}
			all = append(all, rec)
			cl := dial(t, c.addr, "lobby", fmt.Sprintf("c%d", i), nil)
			// Reader: records every message until the connection dies.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					e, err := cl.next()
					if err != nil {
						return
					}
					if e.Type == "message" {
						rec.add(e)
						deliveries.Add(1)
					}
				}
			}()
			// Writer: steady load until the kill (or the bound).
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < maxSends; n++ {
					select {
					case <-stop:
						return
					default:
					}
					msg := fmt.Sprintf(`{"type":"message","text":"r%d c%d n%d"}`, round, i, n)
					_ = cl.conn.SetWriteDeadline(time.Now().Add(waitLong))
					if cl.conn.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
						return
					}
					if n%20 == 19 {
						time.Sleep(2 * time.Millisecond) // steady, not a flood
					}
				}
			}()
		}
		deadline := time.Now().Add(2 * waitLong)
		for deliveries.Load() < killAfter && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if deliveries.Load() < killAfter {
			t.Fatalf("round %d: only %d deliveries within %v", round, deliveries.Load(), 2*waitLong)
		}
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.wait(t)
		close(stop)
		wg.Wait()
		t.Logf("round %d: killed after %d deliveries", round, deliveries.Load())

		// Every message any client received (this round and before) is
		// stored, with the same id, sender and text.
		db, err := store.OpenReadOnly(dbPath, store.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		if err := db.Check(); err != nil {
			t.Errorf("round %d: consistency check: %v", round, err)
		}
		stored, _, err := db.Query(store.Query{Room: "lobby", Limit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		byID := make(map[uint64]chat.Message, len(stored))
		for _, m := range stored {
			byID[m.ID] = m
		}
		checked := 0
		for _, rec := range all {
			rec.mu.Lock()
			for _, m := range rec.msgs {
				s, ok := byID[m.ID]
				if !ok || s.User != m.User || s.Text != m.Text {
					t.Errorf("round %d: received %+v, stored %+v (found %v)", round, m, s, ok)
				}
				checked++
			}
			rec.mu.Unlock()
		}
		// Ids continue across the crash: this round's first id follows the
		// previous round's last stored one.
		var first, last uint64
		for _, m := range stored {
			if strings.HasPrefix(m.Text, fmt.Sprintf("r%d ", round)) {
				if first == 0 {
					first = m.ID
				}
				last = m.ID
			}
		}
		if first != lastID+1 {
			t.Errorf("round %d: first id %d, previous round ended at %d", round, first, lastID)
		}
		lastID = last
		t.Logf("round %d: %d received messages checked, %d stored", round, checked, len(stored))
	}
}
