package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// TestHistoryVerify: `history -verify` on an intact file says so (exit 0);
// after a bit of one stored message is flipped in the file on disk, it
// names that record (room and id), prints a summary and exits 1; it takes
// no other flags (exit 2); and it refuses to run while a server holds the
// file.
func TestHistoryVerify(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	path := filepath.Join(dir, "moonchat.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*chat.Message{
		{Room: "lobby", User: "ann", Text: "hello there"},
		{Room: "lobby", User: "bob", Text: "a message to damage"},
		{Room: "lobby", User: "ann", Text: "bye now"},
		{Room: "side", User: "cat", Text: "elsewhere"},
	}
	// One commit, so that each record's bytes are in the file once.
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-verify")
	if code != 0 || !strings.Contains(stdout, "2 room(s), 4 record(s): 0 corrupt record(s), 0 other problem(s)") {
		t.Fatalf("intact file: code %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	needle := []byte("a message to damage")
	if bytes.Count(data, needle) != 1 {
		t.Fatalf("the text occurs %d times in the file", bytes.Count(data, needle))
	}
	data[bytes.Index(data, needle)+len(needle)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, "history", "-config", cfg, "-verify")
	if code != 1 {
		t.Errorf("damaged file: code %d, want 1", code)
	}
	for _, want := range []string{
		"corrupt record: room lobby id 2: message record checksum mismatch",
		"2 room(s), 4 record(s): 1 corrupt record(s), 0 other problem(s)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Count(stdout, "corrupt record:") != 1 || !strings.Contains(stderr, "failed verification") {
		t.Errorf("want exactly one bad record and a failure on stderr:\nstdout %s\nstderr %s", stdout, stderr)
	}

	// The damaged record is not served by reading either.
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-room", "lobby")
	if code != 0 || strings.Contains(stdout, "damage") || !strings.Contains(stdout, "hello there") || !strings.Contains(stdout, "bye now") {
		t.Errorf("history -room lobby: code %d\n%s", code, stdout)
	}

	if code, _, stderr := runCmd(t, "history", "-config", cfg, "-verify", "-room", "lobby"); code != 2 || !strings.Contains(stderr, "-verify checks the whole file") {
		t.Errorf("-verify -room: code %d, stderr %s", code, stderr)
	}

	held, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if code, _, stderr := runCmd(t, "history", "-config", cfg, "-verify"); code != 1 || !strings.Contains(stderr, "in use by a running server") {
		t.Errorf("-verify while held: code %d, stderr %s", code, stderr)
	}
}

// TestHistoryVerifyInterrupted: -verify runs under the command's signal
// context, so a SIGINT (here: the context cancelled before it starts)
// stops the scan before it has read the file, says "interrupted" and
// exits 1, rather than reading everything first.
func TestHistoryVerifyInterrupted(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*chat.Message, 5000)
	for i := range msgs {
		msgs[i] = &chat.Message{Room: "lobby", User: "ann", Text: "hello"}
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"history", "-config", cfg, "-verify"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "verification did not finish: interrupted") ||
		strings.Contains(stdout.String(), "5000 record(s)") {
		t.Errorf("interrupted -verify: code %d\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
	}
}
