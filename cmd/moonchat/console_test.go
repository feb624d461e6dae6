package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/moonchat/moonchat/scripting"
)

// fakeAuditor records console audit entries; fail makes it refuse them.
type fakeAuditor struct {
	mu      sync.Mutex
	entries []string // "ROOM|BY|ACTION|TARGET|REASON"
	fail    error
}

func (a *fakeAuditor) AuditAction(room, by, action, target, reason string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.entries = append(a.entries, strings.Join([]string{room, by, action, target, reason}, "|"))
	return nil
}

func (a *fakeAuditor) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.entries
	a.entries = nil
	return out
}

// consoleSocket serves the console routes of cs on a local socket in a
// temp dir and returns its path.
func consoleSocket(t *testing.T, cs *consoleServer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.sock")
	ls := newLocalSocket(path, slog.New(slog.DiscardHandler))
	cs.routes(ls.handle)
	if err := ls.listen(); err != nil {
		t.Fatal(err)
	}
	serveSocket(t, ls)
	return path
}

// testConsoleServer is a console on an engine running script a.lua.
func testConsoleServer(t *testing.T, audit consoleAuditor) *consoleServer {
	t.Helper()
	eng, err := scripting.New(context.Background(), scripting.Options{
		FS:          fstest.MapFS{"a.lua": {Data: []byte(`greeting = "hi"`)}},
		HookTimeout: 2 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &consoleServer{eng: eng, audit: audit, log: slog.New(slog.DiscardHandler), now: time.Now, sessions: map[string]*consoleSession{}}
}

// openConsole opens a session on the socket.
func openConsole(t *testing.T, sock string) *consoleClient {
	t.Helper()
	cc := &consoleClient{sock: sock}
	var open consoleOpen
	if err := cc.post(context.Background(), "/console/open", struct{}{}, &open); err != nil {
		t.Fatal(err)
	}
	cc.session = open.Session
	return cc
}

// TestConsoleProtocol: over the socket, a session evaluates lines as the
// REPL prints them (values, print output, errors on their own stream),
// keeps its globals, and audits every line that runs — by the connecting
// user — before running it; a line the audit log cannot record is not
// run; blank lines are neither; a closed session is gone.
func TestConsoleProtocol(t *testing.T) {
	audit := &fakeAuditor{}
	cs := testConsoleServer(t, audit)
	sock := consoleSocket(t, cs)
	cc := openConsole(t, sock)

	var out, errb bytes.Buffer
	in := strings.Join([]string{
		"1 + 1",
		"x = 20",
		"",
		`print("hello", x) return x * 2, "s"`,
		`error("boom")`,
		"#chat.rooms()",
	}, "\n")
	err := cc.lines(context.Background(), strings.NewReader(in), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "1 line(s) failed") {
		t.Errorf("lines: %v, want one failure", err)
	}
	if want := "2\nhello\t20\n40\ts\n0\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if want := "console:1: boom\n"; errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	u, _ := user.Current()
	by := "console:" + u.Username
	got := audit.take()
	if len(got) != 5 || got[0] != "|"+by+"|console||1 + 1" || got[4] != "|"+by+"|console||#chat.rooms()" {
		t.Errorf("audit entries %q (want 5, by %s)", got, by)
	}

	// Fail closed: the audit log refuses, the line does not run.
	audit.fail = errors.New("disk full")
	out.Reset()
	errb.Reset()
	if ok, err := cc.run(context.Background(), "x = 99", &out, &errb); ok || err != nil || !strings.Contains(errb.String(), "line not run: the audit log could not record it: disk full") {
		t.Errorf("audit failing: ok %v err %v stderr %q", ok, err, errb.String())
	}
	audit.fail = nil
	out.Reset()
	if ok, _ := cc.run(context.Background(), "x", &out, &errb); !ok || out.String() != "20\n" {
		t.Errorf("x after the refused line: %q", out.String())
	}

	// A long line is refused, and the console goes on.
	errb.Reset()
	if ok, err := cc.run(context.Background(), strings.Repeat("x", scripting.MaxConsoleLine+1), &out, &errb); ok || err != nil || !strings.Contains(errb.String(), "at most 4096") {
		t.Errorf("long line: ok %v err %v stderr %q", ok, err, errb.String())
	}

	if err := cc.post(context.Background(), "/console/close", consoleRequest{Session: cc.session}, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.run(context.Background(), "1", &out, &errb); err == nil || !strings.Contains(err.Error(), "no such console session") {
		t.Errorf("after close: %v", err)
	}
}

// TestConsoleSessions: at most maxConsoleSessions are open; one idle for
// consoleIdle is closed when another opens; sessions do not share
// globals.
func TestConsoleSessions(t *testing.T) {
	cs := testConsoleServer(t, &fakeAuditor{})
	now := time.Now()
	var mu sync.Mutex
	cs.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sock := consoleSocket(t, cs)
	first := openConsole(t, sock)
	var out, errb bytes.Buffer
	if ok, err := first.run(context.Background(), "mine = 1", &out, &errb); !ok || err != nil {
		t.Fatal(ok, err, errb.String())
	}
	for range maxConsoleSessions - 1 {
		openConsole(t, sock)
	}
	cc := &consoleClient{sock: sock}
	if err := cc.post(context.Background(), "/console/open", struct{}{}, &consoleOpen{}); err == nil || !strings.Contains(err.Error(), "consoles are open already") {
		t.Fatalf("one too many: %v", err)
	}
	mu.Lock()
	now = now.Add(consoleIdle + time.Minute)
	mu.Unlock()
	other := openConsole(t, sock) // the idle ones are closed
	if ok, _ := other.run(context.Background(), "mine", &out, &errb); !ok || !strings.HasSuffix(out.String(), "nil\n") {
		t.Errorf("another session sees %q", out.String())
	}
	if _, err := first.run(context.Background(), "1", &out, &errb); err == nil || !strings.Contains(err.Error(), "no such console session") {
		t.Errorf("an idle session still answers: %v", err)
	}
}

// TestConsoleRefusals: what the user is told when the console cannot
// start — turned off, scripting off, no socket, nobody on it, no store.
func TestConsoleRefusals(t *testing.T) {
	off := &consoleServer{off: "the console is off ([scripting] console = false)", sessions: map[string]*consoleSession{}}
	sock := consoleSocket(t, off)
	cc := &consoleClient{sock: sock}
	if err := cc.post(context.Background(), "/console/open", struct{}{}, &consoleOpen{}); err == nil || err.Error() != off.off {
		t.Errorf("off: %v", err)
	}

	// What serve wires: scripting off, or the console off, each said.
	for _, sc := range []ScriptingConfig{{Enabled: false, Console: true}, {Enabled: true, Console: false}} {
		ls := newLocalSocket(filepath.Join(t.TempDir(), "s.sock"), slog.New(slog.DiscardHandler))
		s := &server{cfg: &Config{Scripting: sc}, log: slog.New(slog.DiscardHandler), local: ls}
		s.consoleRoutes() // s.lua is nil: no engine either way
		if err := ls.listen(); err != nil {
			t.Fatal(err)
		}
		serveSocket(t, ls)
		want := "scripting is off ([scripting] enabled = false)"
		if sc.Enabled {
			want = "the console is off ([scripting] console = false)"
		}
		cc := &consoleClient{sock: ls.path}
		if err := cc.post(context.Background(), "/console/open", struct{}{}, &consoleOpen{}); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", sc, err, want)
		}
	}

	dir := t.TempDir()
	cc = &consoleClient{sock: filepath.Join(dir, "none.sock")}
	if err := cc.post(context.Background(), "/console/open", struct{}{}, &consoleOpen{}); err == nil || !strings.Contains(err.Error(), "no server is running with this config") {
		t.Errorf("no socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	ls := newLocalSocket(stale, slog.New(slog.DiscardHandler))
	if err := ls.listen(); err != nil {
		t.Fatal(err)
	}
	ls.ln.Close() // the file stays (SetUnlinkOnClose false): a killed server's
	cc = &consoleClient{sock: stale}
	if err := cc.post(context.Background(), "/console/open", struct{}{}, &consoleOpen{}); err == nil || !strings.Contains(err.Error(), "the server is not running: nothing answers") {
		t.Errorf("stale socket: %v", err)
	}

	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte("[store]\npath = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"console", "-config", cfg}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "[store] path is empty") {
		t.Errorf("no store: code %d stderr %q", code, stderr.String())
	}
}

// TestConsoleHistoryFile: the history file is created mode 0600, keeps
// the lines, and is cut to the newest consoleHistoryMax once it holds
// twice that.
func TestConsoleHistoryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hist")
	h, err := openConsoleHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	h.add("a = 1")
	h.add("return a")
	h.close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("history file: %v %v", fi.Mode(), err)
	}
	h, err = openConsoleHistory(path)
	if err != nil || strings.Join(h.lines, ";") != "a = 1;return a" {
		t.Fatalf("reloaded %q %v", h.lines, err)
	}
	for i := range 2 * consoleHistoryMax {
		h.add("line " + strings.Repeat("x", i%3))
	}
	h.close()
	h, err = openConsoleHistory(path)
	if err != nil || len(h.lines) != consoleHistoryMax {
		t.Fatalf("after %d lines: %d kept, %v", 2*consoleHistoryMax+2, len(h.lines), err)
	}
	h.close()
	if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") != consoleHistoryMax {
		t.Errorf("the file holds %d lines", strings.Count(string(b), "\n"))
	}
	if h, err := openConsoleHistory(""); err != nil || h.f != nil {
		t.Errorf("no history: %v", err)
	}
}

// TestExplainConsoleDial: each way a connection to the socket fails is
// said in words the user can act on.
func TestExplainConsoleDial(t *testing.T) {
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: &os.SyscallError{Syscall: "connect", Err: err}}
	}
	cases := []struct {
		err  error
		want string
	}{
		{dial(syscall.ENOENT), "no server is running with this config: /x.sock does not exist"},
		{dial(syscall.EACCES), "/x.sock: permission denied: the console is for the user the server runs as"},
		{dial(syscall.ECONNREFUSED), "the server is not running: nothing answers on /x.sock"},
		{dial(syscall.EAGAIN), errNoLocalSocket.Error()},
		{errors.New("other"), "local socket /x.sock: other"},
	}
	for _, tc := range cases {
		if got := explainConsoleDial("/x.sock", tc.err); !strings.Contains(got.Error(), tc.want) {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestIncompleteLua: a line that leaves the Lua open continues on the
// next (as in Lua's own prompt); a finished or wrong one does not.
func TestIncompleteLua(t *testing.T) {
	for src, want := range map[string]bool{
		"function f()": true, "if x then": true, "t = {": true, "f(": true, "x = 1 +": true,
		"for i = 1, 2 do": true, "s = [[abc": true, "function f()\n  return 1": true,
		"function f() end": false, "x": false, "x = 1": false, "x = = 1": false, "end": false,
		`s = "abc`: false, "=1": false, "help": false, "": false,
	} {
		if got := incompleteLua(src); got != want {
			t.Errorf("incompleteLua(%q) = %v", src, got)
		}
	}
}

// TestConsoleLinesChunks: piped in, a function written over several lines
// is sent as one chunk once complete (one audit entry), and an unfinished
// chunk at the end of the input is run for its syntax error.
func TestConsoleLinesChunks(t *testing.T) {
	audit := &fakeAuditor{}
	cc := openConsole(t, consoleSocket(t, testConsoleServer(t, audit)))
	var out, errb bytes.Buffer
	in := "function sq(n)\n  return n * n\nend\nsq(7)\nt = {\n"
	err := cc.lines(context.Background(), strings.NewReader(in), &out, &errb)
	if out.String() != "49\n" || err == nil || !strings.Contains(errb.String(), "console:") {
		t.Errorf("stdout %q stderr %q err %v", out.String(), errb.String(), err)
	}
	got := audit.take()
	if len(got) != 3 || !strings.HasSuffix(got[0], "|function sq(n)\n  return n * n\nend") || !strings.HasSuffix(got[2], "|t = {") {
		t.Errorf("audit %q", got)
	}
}
