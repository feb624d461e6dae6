package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHistoryRoomsWhileRunning: while the server holds the store file,
// `history -rooms` lists the rooms through GET /api/rooms, says so on
// stderr, and prints exactly what it prints from the file once the server
// has stopped (rooms with members but no stored message are not listed).
func TestHistoryRoomsWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	srv := startInProcess(t, cfg)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	for i := range 3 {
		alice.send(fmt.Sprintf("msg %d", i))
	}
	alice.waitFor("3rd", func(e event) bool { return e.Type == "message" && e.ID == 3 })
	bob := dial(t, srv.addr, "side", "bob", nil)
	bob.send("hi")
	bob.waitFor("bob's message", func(e event) bool { return e.Type == "message" && e.ID == 1 })
	quiet := dial(t, srv.addr, "quiet", "carol", nil) // a member, no history
	quiet.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })

	type listing struct{ stdout, stderr string }
	running := map[bool]listing{}
	for _, asJSON := range []bool{false, true} {
		args := []string{"history", "-config", cfg, "-server", srv.addr, "-rooms"}
		if asJSON {
			args = append(args, "-json")
		}
		code, stdout, stderr := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("%v: code %d stderr %s", args, code, stderr)
		}
		if !strings.Contains(stderr, "in use by a running server; listing rooms through its HTTP API at http://"+srv.addr) {
			t.Errorf("%v: stderr does not say how it reached the rooms: %q", args, stderr)
		}
		running[asJSON] = listing{stdout, stderr}
	}
	if got, want := running[false].stdout, "lobby 3\nside 1\n"; got != want {
		t.Errorf("-rooms via API:\n%s\nwant\n%s", got, want)
	}
	if got, want := running[true].stdout, `{"room":"lobby","count":3,"first_id":1,"last_id":3}`+"\n"+
		`{"room":"side","count":1,"first_id":1,"last_id":1}`+"\n"; got != want {
		t.Errorf("-rooms -json via API:\n%s\nwant\n%s", got, want)
	}

	// Without -server the listen address has port 0: the CLI says so.
	code, _, stderr := runCmd(t, "history", "-config", cfg, "-rooms")
	if code != 1 || !strings.Contains(stderr, "in use by a running server, but [server] listen") {
		t.Errorf("-rooms, port 0 without -server: code %d stderr %q", code, stderr)
	}

	// From the file, with the server stopped: the same bytes.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit code %d", code)
	}
	for _, asJSON := range []bool{false, true} {
		args := []string{"history", "-config", cfg, "-rooms"}
		if asJSON {
			args = append(args, "-json")
		}
		code, stdout, stderr := runCmd(t, args...)
		if code != 0 || stdout != running[asJSON].stdout || strings.Contains(stderr, "HTTP API") {
			t.Errorf("%v from the file: code %d stderr %q stdout\n%s\nwant the API's\n%s", args, code, stderr, stdout, running[asJSON].stdout)
		}
	}
}

// fetchRooms turns a server's error answers into errors that say what
// happened: its JSON error, or a missing endpoint (an older server).
func TestFetchRoomsErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"json error", 503, `{"error":"this server's history store cannot list rooms"}`, "503 Service Unavailable: this server's history store cannot list rooms"},
		{"no endpoint", 404, "404 page not found\n", "this server has no room list endpoint (an older moonchat?)"},
		{"not moonchat", 200, "<html>", "not a moonchat room list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/rooms" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer hs.Close()
			rooms, err := fetchRooms(t.Context(), hs.Client(), hs.URL)
			if err == nil || !strings.Contains(err.Error(), tc.want) || rooms != nil {
				t.Errorf("got %v, %v; want an error containing %q", rooms, err, tc.want)
			}
		})
	}
}
