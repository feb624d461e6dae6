package main

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestConsoleTerminal (issue 16): the real binary's console on a terminal
// (tmux), typed at as a person would, against a running server with a
// member in lobby: expressions print their values, globals last from line
// to line, chat.* reaches the room, an error is shown and the prompt goes
// on, Up recalls the history, reload resets the globals, Ctrl-D quits
// with status 0; the history file keeps the lines (mode 0600), and
// after the server stops `moonchat audit` shows every line, by the user
// who typed it.
func TestConsoleTerminal(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	srv := startChild(t, cfg)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })

	hist := filepath.Join(dir, "console_history")
	con := startTUI(t, "console", 100, 30, "console", "-config", cfg, "-history", hist)
	con.waitText(`moonchat console: Lua inside the server`)
	con.waitText(`(?m)^lua>\s*$`) // capture-pane drops the trailing space

	con.typeLine(`#chat.rooms()`)
	con.waitText(`(?m)^lua> #chat.rooms\(\)\n1\n`)
	con.typeLine(`chat.users("lobby")[1].name`)
	con.waitText(`(?m)^alice$`)
	con.typeLine(`x = 41`)
	con.typeLine(`x + 1`)
	con.waitText(`(?m)^42$`)
	con.typeLine(`chat.broadcast("lobby", "hello from the console")`)
	alice.waitFor("the console's broadcast", func(e event) bool { return e.Text == "hello from the console" })
	con.typeLine(`error("boom")`)
	con.waitText(`(?m)^console:1: boom$`)
	con.typeLine(`{n = 1, "a"}`)
	con.waitText(`(?m)^\{"a", n = 1\}$`)
	con.typeLine(`function sq(n)`)
	con.waitText(`(?m)^>>\s*$`) // the chunk goes on
	con.typeLine(`return n * n end`)
	con.typeLine(`sq(7)`)
	con.waitText(`(?m)^49$`)

	con.keys("Up", "Up", "Up", "Up", "Up")
	con.waitText(`(?m)^lua> error\("boom"\)$`)
	con.keys("C-c") // drops the recalled line
	con.typeLine(`reload`)
	con.waitText(`(?m)^scripts reloaded$`)
	con.typeLine(`x`)
	con.waitText(`the console's globals start afresh\)\nnil\n`)
	con.keys("C-d")
	con.waitText(`EXITED 0`)

	fi, err := os.Stat(hist)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("history file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(hist)
	if want := "#chat.rooms()\n" + `chat.users("lobby")[1].name` + "\nx = 41\nx + 1\n"; !strings.HasPrefix(string(b), want) || !strings.HasSuffix(string(b), "reload\nx\n") {
		t.Errorf("history file:\n%s", b)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	code, stdout, stderr := runCmd(t, "audit", "-config", cfg)
	u, _ := user.Current()
	by := regexp.QuoteMeta("console:" + u.Username)
	for _, line := range []string{`#chat.rooms()`, `x = 41`, `error("boom")`, `reload`} {
		if !regexp.MustCompile(`(?m)^\S+ \* ` + by + ` console -: ` + regexp.QuoteMeta(line) + `$`).MatchString(stdout) {
			t.Errorf("audit has no entry for %q: code %d\n%s%s", line, code, stdout, stderr)
		}
	}
}

// consoleBinary runs the real binary's console with stdin (not a
// terminal: line mode) and returns its exit code, stdout and stderr.
func consoleBinary(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(moonchatBinary(t), append([]string{"console"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestConsoleLines: piped in (echo '…' | moonchat console), each line
// runs in turn and prints its values, an error goes to stderr and makes
// the exit status 1; `[scripting] console = false` refuses the console;
// with the server stopped the console says no server runs.
func TestConsoleLines(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	srv := startChild(t, cfg)
	bob := dial(t, srv.addr, "dev", "bob", nil)
	bob.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })

	code, stdout, stderr := consoleBinary(t, "return #chat.rooms()\n", "-config", cfg)
	if code != 0 || stdout != "1\n" || stderr != "" {
		t.Errorf("one line: code %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = consoleBinary(t, "n = #chat.users('dev')\nnil + n\nreturn n, chat.users('dev')[1].name\n", "-config", cfg)
	if code != 1 || stdout != "1\tbob\n" || !strings.Contains(stderr, "console:1: ") || !strings.Contains(stderr, "1 line(s) failed") {
		t.Errorf("a failing line: code %d stdout %q stderr %q", code, stdout, stderr)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.wait(t)
	code, _, stderr = consoleBinary(t, "1\n", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "no server is running with this config") {
		t.Errorf("server stopped: code %d stderr %q", code, stderr)
	}

	offDir := t.TempDir()
	off := testConfig(t, offDir, map[string]string{"scripting": "console = false\n"})
	startChild(t, off)
	code, stdout, stderr = consoleBinary(t, "return 1\n", "-config", off)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "the console is off ([scripting] console = false)") {
		t.Errorf("console = false: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}
