package main

import (
	"context"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pingSocket serves GET /ping → {"pong":true} on a new local socket at path.
func pingSocket(path string) *localSocket {
	ls := newLocalSocket(path, slog.New(slog.DiscardHandler))
	ls.handle("GET /ping", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeLocalJSON(w, http.StatusOK, map[string]bool{"pong": true})
	}))
	return ls
}

// serveSocket runs ls until the test ends.
func serveSocket(t *testing.T, ls *localSocket) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ls.serve() }()
	t.Cleanup(func() {
		ls.shutdown(context.Background())
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("serve returned %v", err)
		}
	})
}

// TestLocalSocket: the socket answers its routes (an unknown one is an
// error, not a hang), is mode 0600 in place, replaces a stale socket but
// never a live one nor a file that is not a socket, refuses a path too
// long for a socket, and is removed at shutdown — unless another file has
// taken its place meanwhile.
func TestLocalSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "moonchat.sock")

	// A stale socket: bound, then its listener gone without removing it.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	_ = stale.Close()

	ls := pingSocket(path)
	if err := ls.listen(); err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	serveSocket(t, ls)
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v; want mode 0600", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the data directory holds %d entries, want only the socket (the private bind directory removed)", len(entries))
	}
	var pong map[string]bool
	if err := localGet(t.Context(), path, "/ping", nil, &pong); err != nil || !pong["pong"] {
		t.Errorf("GET /ping = %v, %v", pong, err)
	}
	if err := localGet(t.Context(), path, "/nothing", nil, &pong); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("GET /nothing = %v; want a 404 error", err)
	}

	// A live socket is not taken over.
	if err := pingSocket(path).listen(); err == nil || !strings.Contains(err.Error(), "another process listens on it") {
		t.Errorf("listen over a live socket: %v", err)
	}

	// A regular file in the way stays.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pingSocket(file).listen(); err == nil || !strings.Contains(err.Error(), "a regular file is in the way") {
		t.Errorf("listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file: %q, %v", b, err)
	}

	long := filepath.Join(dir, strings.Repeat("d", 120)+".sock")
	if err := pingSocket(long).listen(); err == nil || !strings.Contains(err.Error(), "sockets take at most") {
		t.Errorf("listen on a long path: %v", err)
	}

	// Nobody answers: the client says so (errNoLocalSocket).
	if err := localGet(t.Context(), filepath.Join(dir, "none.sock"), "/ping", nil, &pong); err == nil || !strings.Contains(err.Error(), errNoLocalSocket.Error()) {
		t.Errorf("GET on no socket: %v", err)
	}

	// Shutdown removes its own socket, not a file put in its place.
	other := filepath.Join(dir, "other.sock")
	ls2 := pingSocket(other)
	if err := ls2.listen(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls2.close()
	if b, err := os.ReadFile(other); err != nil || string(b) != "new" {
		t.Errorf("close removed a file it did not make: %q, %v", b, err)
	}
	ls3 := pingSocket(filepath.Join(dir, "third.sock"))
	if err := ls3.listen(); err != nil {
		t.Fatal(err)
	}
	ls3.close()
	if _, err := os.Lstat(ls3.path); !os.IsNotExist(err) {
		t.Errorf("close left its socket: %v", err)
	}
}

// TestLocalSocketPath: the socket is the store file's name with ".sock"
// for its extension, beside it; none without a store.
func TestLocalSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"data/moonchat.db": "data/moonchat.sock",
		"/var/lib/history": "/var/lib/history.sock",
		"x/odd.sock":       "x/odd.sock.sock",
		"":                 "",
	} {
		if got := localSocketPath(&Config{Store: StoreConfig{Path: in}}); got != want {
			t.Errorf("localSocketPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLocalSocketAcrossKill: the real binary's socket survives a kill -9
// as a stale file, the next start replaces it and answers -direct through
// it, and SIGTERM removes it.
func TestLocalSocketAcrossKill(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	seedDirect(t, filepath.Join(dir, "moonchat.db"), time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	sock := filepath.Join(dir, "moonchat.sock")
	const want = "acc-b bob 1 2026-11-22T10:00:04.123Z\n"
	direct := func(when string) {
		t.Helper()
		code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-direct", "acc-z")
		if code != 0 || stdout != want || !strings.Contains(stderr, "through its local socket "+sock) {
			t.Errorf("%s: -direct acc-z: code %d stdout %q stderr %q", when, code, stdout, stderr)
		}
	}

	c := startChild(t, cfg)
	direct("first start")
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.wait(t)
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("after kill -9: %v, %v; want the stale socket left", fi, err)
	}

	c = startChild(t, cfg)
	direct("after a kill -9")
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("after SIGTERM: %v; want the socket removed", err)
	}
	if strings.Contains(c.log.String(), "local socket off") {
		t.Errorf("the second start did not replace the stale socket:\n%s", c.log)
	}
	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-direct", "acc-z")
	if code != 0 || stdout != want || strings.Contains(stderr, "socket") {
		t.Errorf("stopped: -direct acc-z: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}
