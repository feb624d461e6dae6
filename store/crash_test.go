package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// The tests here re-execute the test binary as a child process, selected
// by environment variables that TestMain reads before any test runs (so
// the child runs no test, and no test exists only to be skipped):
//
//	STORE_HELPER=crash    append under load, print "ack ROOM ID TEXT" per acknowledged message
//	STORE_HELPER=hold     Open the file, print "ready", hold it until stdin closes
//	STORE_HELPER=holdro   the same with OpenReadOnly
//	STORE_HELPER=open     Open the file once and print "ok" or the error (see openResult)
//	STORE_HELPER=modcrash PutRestriction and AppendAudit in a loop, print "ack N" after the Nth pair
//	STORE_HELPER=applycrash open as a replica, Apply a generated log, print "ack SEQ" per record
//	                      (replica_crash_test.go)
//
// STORE_HELPER_PATH names the database file.

const (
	helperEnv     = "STORE_HELPER"
	helperPathEnv = "STORE_HELPER_PATH"
	// crashChildLimit bounds a crash child that is never killed.
	crashChildLimit = 60 * time.Second
)

// helperMain runs the child's job when the test binary was started as a
// helper. It reports whether it was; TestMain then exits with the code.
func helperMain() (code int, ok bool) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return 0, false
	}
	if err := runHelper(mode, os.Getenv(helperPathEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2, true
	}
	return 0, true
}

func runHelper(mode, path string) error {
	switch mode {
	case "open":
		db, err := Open(path, Options{})
		if err == nil {
			err = db.Close()
		}
		fmt.Printf("uid %d\n%s\n", os.Geteuid(), openResult(err))
		return nil
	case "hold", "holdro":
		open := Open
		if mode == "holdro" {
			open = OpenReadOnly
		}
		db, err := open(path, Options{})
		if err != nil {
			return err
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
		return db.Close()
	case "crash":
		db, err := Open(path, Options{})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), crashChildLimit)
		defer cancel()
		var mu sync.Mutex // one write(2) per line, lines never interleave
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					m := &chat.Message{Room: fmt.Sprint("r", w%3), User: fmt.Sprint("w", w), Text: fmt.Sprintf("w%d-%d-%d", w, i, time.Now().UnixNano())}
					if err := db.Append(ctx, []*chat.Message{m}); err != nil {
						if ctx.Err() == nil {
							errc <- err
						}
						return
					}
					mu.Lock()
					_, err := fmt.Fprintf(os.Stdout, "ack %s %d %s\n", m.Room, m.ID, m.Text)
					mu.Unlock()
					if err != nil {
						errc <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			return err
		}
		return db.Close()
	case "applycrash":
		return runApplyCrash(path)
	case "modcrash":
		db, err := Open(path, Options{})
		if err != nil {
			return err
		}
		deadline := time.Now().Add(crashChildLimit)
		for i := 0; time.Now().Before(deadline); i++ {
			r := chat.Restriction{Kind: chat.KindBan, Target: chat.Target{Account: fmt.Sprint("u-", i)}, Reason: fmt.Sprint("r", i)}
			if err := db.PutRestriction(r); err != nil {
				return err
			}
			if err := db.AppendAudit(chat.AuditEntry{By: "mod", Action: "ban", Target: fmt.Sprint("u-", i)}); err != nil {
				return err
			}
			if _, err := fmt.Printf("ack %d\n", i); err != nil {
				return err
			}
		}
		return db.Close()
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// startHelper starts the test binary as a helper child. The child is killed
// when the test ends, whatever happened.
func startHelper(t *testing.T, mode, path string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout *bufio.Reader, stderr *strings.Builder) {
	t.Helper()
	cmd = exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	stderr = new(strings.Builder)
	cmd.Stderr = stderr
	var err error
	if stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, stdin, bufio.NewReader(out), stderr
}

// readLine reads one line from r, failing the test after timeout.
func readLine(t *testing.T, r *bufio.Reader, timeout time.Duration, stderr *strings.Builder) string {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := r.ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("child: %v (stderr: %s)", res.err, stderr)
		}
		return strings.TrimSuffix(res.line, "\n")
	case <-time.After(timeout):
		t.Fatalf("no line from the child within %v (stderr: %s)", timeout, stderr)
		return ""
	}
}

type ack struct {
	room string
	id   uint64
	text string
}

func parseAck(t *testing.T, line string) ack {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "ack" {
		t.Fatalf("child printed %q", line)
	}
	id, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		t.Fatalf("child printed %q: %v", line, err)
	}
	return ack{f[1], id, f[3]}
}

// TestCrashLosesNoAcknowledgedMessage SIGKILLs a child appending under load
// after 50, 500 and 2000 acknowledgements, reopening the same file each
// time: every acknowledged message must be there, every room's IDs must be
// gap-free (a commit is all or nothing), and the file must pass Check.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	path := tempPath(t)
	var all []ack
	for _, killAt := range []int{50, 500, 2000} {
		cmd, _, out, stderr := startHelper(t, "crash", path)
		var acks []ack
		for len(acks) < killAt {
			acks = append(acks, parseAck(t, readLine(t, out, 30*time.Second, stderr)))
		}
		// SIGKILL now, then collect the acks the child printed before dying.
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := out.ReadString('\n')
			if err != nil {
				break // EOF: the child is dead
			}
			acks = append(acks, parseAck(t, strings.TrimSuffix(line, "\n")))
		}
		all = append(all, acks...)
		if err := cmd.Wait(); err == nil {
			t.Fatalf("child exited cleanly before the kill (stderr: %s)", stderr)
		}

		db, err := Open(path, Options{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("reopen after kill at %d acks: %v", killAt, err)
		}
		stored := map[string]map[uint64]string{}
		rooms, err := db.Rooms()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rooms {
			msgs, err := db.Recent(r.Name, r.Count+1)
			if err != nil {
				t.Fatal(err)
			}
			stored[r.Name] = map[uint64]string{}
			for i, m := range msgs {
				stored[r.Name][m.ID] = m.Text
				if m.ID != uint64(i+1) {
					t.Errorf("room %s: id %d at position %d: a committed group was torn", r.Name, m.ID, i)
					break
				}
			}
			if r.Count != len(msgs) || r.LastID != uint64(len(msgs)) {
				t.Errorf("room %+v holds %d messages", r, len(msgs))
			}
		}
		lost := 0
		for _, a := range all {
			if stored[a.room][a.id] != a.text {
				lost++
				if lost <= 5 {
					t.Errorf("acknowledged %s/%d %q: stored %q", a.room, a.id, a.text, stored[a.room][a.id])
				}
			}
		}
		if lost > 0 {
			t.Fatalf("kill at %d: %d of %d acknowledged messages lost", killAt, lost, len(all))
		}
		if err := db.Check(); err != nil {
			t.Errorf("Check after kill: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill after %d acks: %d acknowledged so far, all present", killAt, len(all))
	}
}

// TestCrashLosesNoAcknowledgedModeration SIGKILLs a child that stores a
// ban and an audit entry per step, after 200 acknowledged steps: every
// acknowledged ban and audit entry must be there after the reopen (both
// return only once committed), and the file must pass Check.
func TestCrashLosesNoAcknowledgedModeration(t *testing.T) {
	path := tempPath(t)
	cmd, _, out, stderr := startHelper(t, "modcrash", path)
	last := -1
	read := func(line string) {
		if _, err := fmt.Sscanf(line, "ack %d", &last); err != nil {
			t.Fatalf("child printed %q: %v", line, err)
		}
	}
	for last < 199 {
		read(readLine(t, out, 30*time.Second, stderr))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			break // EOF: the child is dead
		}
		read(strings.TrimSuffix(line, "\n"))
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("child exited cleanly before the kill (stderr: %s)", stderr)
	}
	db := openAt(t, path, Options{LockTimeout: 10 * time.Second})
	bans, err := db.Restrictions()
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]string, len(bans))
	for _, r := range bans {
		have[r.Target.Account] = r.Reason
	}
	audit, err := db.Audit("", time.Time{}, last+10)
	if err != nil {
		t.Fatal(err)
	}
	logged := make(map[string]bool, len(audit))
	for _, e := range audit {
		logged[e.Target] = true
	}
	for i := 0; i <= last; i++ {
		if id := fmt.Sprint("u-", i); have[id] != fmt.Sprint("r", i) || !logged[id] {
			t.Fatalf("acknowledged step %d of %d: ban %q, audit entry %v", i, last, have[id], logged[id])
		}
	}
	if err := db.Check(); err != nil {
		t.Errorf("Check after kill: %v", err)
	}
	t.Logf("killed after %d acknowledged steps: all present", last+1)
}
