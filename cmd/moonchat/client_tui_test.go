package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// The full-screen client (`moonchat client` on a terminal) driven in
// tmux, as a person would: keys in with send-keys, the screen read with
// capture-pane (issue 17). CI installs tmux (.ci/run); a machine without
// it fails these tests rather than skipping them.

// term is one tmux session running the client.
type term struct {
	t    *testing.T
	sock string
	name string
}

// startTUI runs "moonchat ARGS" in a new tmux session of w×h cells on a
// tmux server of its own (socket in a temp dir), killed when the test
// ends. When the client exits the pane shows "EXITED CODE".
func startTUI(t *testing.T, name string, w, h int, args ...string) *term {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is needed to drive the terminal client (.ci/run installs it): ", err)
	}
	dir := t.TempDir()
	tm := &term{t: t, sock: filepath.Join(dir, "tmux.sock"), name: name}
	quoted := make([]string, 0, len(args)+1)
	for _, a := range append([]string{moonchatBinary(t)}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	script := strings.Join(quoted, " ") + " 2>" + filepath.Join(dir, "stderr") + "; echo EXITED $?; sleep 600"
	cmd := exec.Command(tmux, "-u", "-S", tm.sock, "-f", "/dev/null", "new-session", "-d", "-s", name,
		"-x", fmt.Sprint(w), "-y", fmt.Sprint(h), "sh", "-c", script)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "MOONCHAT_TOKEN=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's screen at the end:\n%s", name, tm.screen())
			if b, err := os.ReadFile(filepath.Join(dir, "stderr")); err == nil && len(b) > 0 {
				t.Logf("%s's stderr:\n%s", name, b)
			}
		}
		_ = exec.Command(tmux, "-S", tm.sock, "kill-server").Run()
	})
	return tm
}

// tmux runs a tmux command on the session's server.
func (tm *term) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// screen is what the pane shows now, as text.
func (tm *term) screen() string {
	out, _ := exec.Command("tmux", "-S", tm.sock, "capture-pane", "-p", "-t", tm.name).CombinedOutput()
	return string(out)
}

// keys sends key names (Enter, PPage, Tab, C-c, …).
func (tm *term) keys(keys ...string) {
	tm.t.Helper()
	tm.tmux(append([]string{"send-keys", "-t", tm.name}, keys...)...)
}

// typeLine types text literally, then Enter.
func (tm *term) typeLine(text string) {
	tm.t.Helper()
	tm.tmux("send-keys", "-t", tm.name, "-l", text)
	tm.keys("Enter")
}

// waitFor polls the screen until ok accepts it, and returns it.
func (tm *term) waitFor(what string, ok func(screen string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		s := tm.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s: no %s within %v; screen:\n%s", tm.name, what, waitLong, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until the screen matches the regular expression re.
func (tm *term) waitText(re string) string {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	return tm.waitFor(fmt.Sprintf("%q", re), rx.MatchString)
}

// TestClientTUIChat: two people chat in their terminals. Each sees the
// other's messages with time stamps and the member list; Tab completes a
// /command from the server's /help (whose answer, asked for by the client
// itself, is not shown); a rename reaches the other's member list; Up
// recalls what was sent; Ctrl+C quits with status 0.
func TestClientTUIChat(t *testing.T) {
	c := startChild(t, testConfig(t, t.TempDir(), nil))
	u := "ws://" + c.addr + "/chat/lobby"
	alice := startTUI(t, "alice", 100, 30, "client", "-name", "alice", u)
	alice.waitText(`● connected as alice`)
	bob := startTUI(t, "bob", 100, 30, "client", u, "-name", "bob")
	bob.waitText(`● connected as bob`)
	alice.waitText(`│ *bob`) // the member list

	alice.typeLine("hello bob")
	bob.waitText(`(?m)^\d\d:\d\d alice: hello bob`)

	bob.tmux("send-keys", "-t", "bob", "-l", "/ni")
	bob.keys("Tab")
	bob.waitText(`(?m)^> /nick\s*$`) // capture-pane drops the trailing space
	bob.tmux("send-keys", "-t", "bob", "-l", "bobby")
	bob.keys("Enter")
	bob.waitText(`● connected as bobby`)
	alice.waitText(`│ *bobby`)
	bob.typeLine("hi alice")
	alice.waitText(`(?m)^\d\d:\d\d bobby: hi alice`)
	if s := bob.screen(); strings.Contains(s, "/help: list the commands") {
		t.Errorf("the client's own /help answer is shown:\n%s", s)
	}

	bob.keys("Up")
	bob.waitText(`(?m)^> hi alice`)
	bob.keys("C-c")
	bob.waitText(`EXITED 0`)
	alice.waitText(`\* bobby left`)
}

// TestClientTUIDirect: direct messages in their own conversations. alice
// (in lobby) opens one with /dm; bob (in another room) sees it counted
// unread in the title bar, switches to it with Ctrl+N and answers there;
// the answer lands in alice's conversation, not in the room.
func TestClientTUIDirect(t *testing.T) {
	c := startChild(t, testConfig(t, t.TempDir(), nil))
	alice := startTUI(t, "alice", 100, 20, "client", "-name", "alice", "ws://"+c.addr+"/chat/lobby")
	alice.waitText(`● connected as alice`)
	bob := startTUI(t, "bob", 100, 20, "client", "-name", "bob", "-room", "dev", "ws://"+c.addr+"/chat/lobby")
	bob.waitText(`● connected as bob`)
	bob.waitText(`#dev`)

	alice.typeLine("/dm bob hello there")
	alice.waitText(`(?s)@bob\b.*— conversation with bob —.*\d\d:\d\d alice: hello there`)
	bob.waitText(`@alice \(1\)`)
	if s := bob.screen(); strings.Contains(s, "hello there") {
		t.Fatalf("the direct message is shown in bob's room:\n%s", s)
	}
	bob.keys("C-n")
	bob.waitText(`(?m)^\d\d:\d\d alice: hello there`)
	bob.typeLine("hi alice")
	alice.waitText(`(?m)^\d\d:\d\d bob: hi alice`)
	alice.keys("C-p") // back to the room: the conversation stays out of it
	s := alice.waitText(`— start of the history —`)
	if strings.Contains(s, "hi alice") {
		t.Fatalf("the direct message is shown in alice's room:\n%s", s)
	}
}

// TestClientTUIScrollback: the pane shows the newest messages; PgUp
// scrolls back and, at the top, loads older pages through moonchat.v1
// history requests, until the first message and "start of the history".
func TestClientTUIScrollback(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*chat.Message
	t0 := time.Now().Add(-time.Hour)
	for i := 1; i <= 130; i++ {
		msgs = append(msgs, &chat.Message{Room: "lobby", User: "carol", Text: fmt.Sprintf("old message %03d", i), Time: t0.Add(time.Duration(i) * time.Second)})
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, cfg)
	alice := startTUI(t, "alice", 100, 30, "client", "-name", "alice", "ws://"+c.addr+"/chat/lobby")
	s := alice.waitText(`old message 130`)
	if strings.Contains(s, "old message 080") || strings.Contains(s, "start of the history") {
		t.Fatalf("the first screen shows more than the newest messages:\n%s", s)
	}
	// The replay holds 50 messages: the rest comes page by page.
	deadline := time.Now().Add(waitLong)
	for !strings.Contains(s, "old message 001") {
		if time.Now().After(deadline) {
			t.Fatalf("PgUp did not reach the first message; screen:\n%s", s)
		}
		alice.keys("PPage")
		time.Sleep(100 * time.Millisecond)
		s = alice.screen()
	}
	s = alice.waitText(`— start of the history —`)
	// In order, once each.
	seen := regexp.MustCompile(`old message (\d{3})`).FindAllStringSubmatch(s, -1)
	for i, m := range seen {
		if want := fmt.Sprintf("%03d", i+1); m[1] != want {
			t.Fatalf("line %d of the pane is message %s, want %s:\n%s", i, m[1], want, s)
		}
	}
	if len(seen) < 20 {
		t.Fatalf("only %d messages on the screen:\n%s", len(seen), s)
	}
	alice.keys("C-c")
	alice.waitText(`EXITED 0`)
}

// TestClientTUIReconnect: the server stops; the client says it is
// reconnecting and from where it will resume; messages stored while it
// was away (more than one since batch: api_limit 5) appear once each, in
// order, when the server is back, and sending works again.
func TestClientTUIReconnect(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"chat": "api_limit = 5\nreplay = 5\n"})
	// A fixed port, so that the restarted server is where the client
	// reconnects.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `listen = "127.0.0.1:0"`, `listen = "`+addr+`"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, cfg)
	alice := startTUI(t, "alice", 100, 40, "client", "-name", "alice", "ws://"+addr+"/chat/lobby")
	alice.waitText(`● connected as alice`)
	alice.typeLine("before the restart")
	alice.waitText(`(?m)^\d\d:\d\d alice: before the restart`)
	alice.waitText(`since=1\b`)

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	alice.waitText(`◌ reconnecting in .* · will resume since=1`)
	// Stored while the client cannot connect: only the resume brings them.
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*chat.Message
	for i := 1; i <= 12; i++ {
		msgs = append(msgs, &chat.Message{Room: "lobby", User: "bob", Text: fmt.Sprintf("missed %02d", i)})
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	startChild(t, cfg)
	s := alice.waitText(`(?s)reconnected: resuming since=1.*missed 12.*● connected as alice · since=13`)
	seen := regexp.MustCompile(`missed (\d\d)`).FindAllStringSubmatch(s, -1)
	if len(seen) != 12 {
		t.Fatalf("%d missed messages on the screen, want 12 once each:\n%s", len(seen), s)
	}
	for i, m := range seen {
		if want := fmt.Sprintf("%02d", i+1); m[1] != want {
			t.Fatalf("missed message %d is %s, want %s:\n%s", i, m[1], want, s)
		}
	}
	alice.typeLine("after the restart")
	alice.waitText(`(?m)^\d\d:\d\d alice: after the restart`)
	alice.waitText(`since=14\b`)
}
