package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

// TestGroupCommitGroups: many concurrent appenders (with real fsync) must
// share transactions. With 100 senders each waiting on its previous
// message, every commit normally carries dozens of messages; the bound
// below is loose so that a loaded machine cannot make it fail.
func TestGroupCommitGroups(t *testing.T) {
	db := openTemp(t, Options{})
	const senders, each = 100, 20
	before := db.Stats().Commits
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				m := &chat.Message{Room: fmt.Sprint("room", s%4), User: "u", Text: fmt.Sprint(i)}
				if err := db.Append(context.Background(), []*chat.Message{m}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits := db.Stats().Commits - before
	msgs := uint64(senders * each)
	t.Logf("%d messages in %d commits (%.1f per commit)", msgs, commits, float64(msgs)/float64(commits))
	if commits == 0 || commits > msgs/4 {
		t.Errorf("%d commits for %d messages from %d concurrent senders: not grouped", commits, msgs, senders)
	}
	// And a KV write shares the path: it is one more commit at most.
	if err := db.Set("s.lua", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if got := db.Stats().Commits - before - commits; got != 1 {
		t.Errorf("Set took %d commits, want 1", got)
	}
}

// TestGroupCommitFailureIsolated: when a group's transaction fails, each
// request is retried alone, so a good request in the same group succeeds.
func TestGroupCommitFailureIsolated(t *testing.T) {
	db := openTemp(t, Options{Logger: slog.New(slog.DiscardHandler)})
	good := &request{msgs: []chat.Message{{Room: "r", Text: "ok"}}, done: make(chan error, 1)}
	// A room name over bbolt's key limit makes Put fail inside the
	// transaction (Append would refuse it before it got this far).
	bad := &request{msgs: []chat.Message{{Room: string(make([]byte, maxKeyLen+1)), Text: "x"}}, done: make(chan error, 1)}
	db.commitBatch([]*request{good, bad})
	if err := <-good.done; err != nil || len(good.ids) != 1 || good.ids[0] != 1 {
		t.Errorf("good request: %v, ids %v", err, good.ids)
	}
	if err := <-bad.done; err == nil {
		t.Error("bad request succeeded")
	}
	if got, _ := db.Recent("r", 5); len(got) != 1 || got[0].Text != "ok" {
		t.Errorf("stored %v", got)
	}
}
