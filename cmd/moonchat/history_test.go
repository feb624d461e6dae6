package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
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

// hostileText holds what a chat user could put in a message to act on the
// terminal of whoever browses history: a screen clear, a bell, NUL, DEL,
// the C1 CSI, a right-to-left override, a line break, and a literal
// backslash sequence that must not pass for an escape.
const hostileText = "a\x1b[2Jb\x07c\x00d\x7fe\u009b31mf\u202eg\nh\\x1b"

// hostileEscaped is hostileText as the text output prints it.
const hostileEscaped = `a\x1b[2Jb\x07c\x00d\x7fe\u009b31mf\u202eg\nh\\x1b`

// seedHistory writes messages straight into the store file at path (the
// server stopped), with chosen times, so that the test controls their
// order to the nanosecond and their text byte for byte.
func seedHistory(t *testing.T, path string, t0 time.Time) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	msgs := []*chat.Message{
		{Room: "lobby", User: "alice", Text: "hello world", Time: at(0)},
		{Room: "lobby", User: "bob", Text: "deploy started", Time: at(time.Second)},
		{Room: "dev", User: "bob", Text: "deploying now", Time: at(1500 * time.Millisecond)},
		{Room: "lobby", User: "mallory\x1b]0;pwned\x07", Text: hostileText, Time: at(2 * time.Second)},
		{Room: "dev", User: "carol", Text: "deploy done", Time: at(3 * time.Second)},
		// The same millisecond in two rooms, in the opposite order to
		// their names: ordered the same way from the file and the API.
		{Room: "z-room", User: "alice", Text: "first by ns", Time: at(4*time.Second + 100*time.Microsecond)},
		{Room: "a-room", User: "alice", Text: "second by ns", Time: at(4*time.Second + 600*time.Microsecond)},
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHistorySameAnswerUpOrDown (issue 10.5): every flag combination gives
// the same stdout, stderr (but for the line saying it asks the server)
// and exit code whether the server is stopped (the CLI reads the file) or
// running (the CLI asks its HTTP API), including searches over every room
// and a room that does not exist. Control characters stay escapes
// (issue 10.16) in both.
func TestHistorySameAnswerUpOrDown(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	seedHistory(t, filepath.Join(dir, "moonchat.db"), t0)
	since := t0.Add(1200 * time.Millisecond).UTC().Format(time.RFC3339Nano)

	cases := []struct {
		args []string
		code int
	}{
		{nil, 0},
		{[]string{"-grep", "deploy"}, 0},
		{[]string{"-user", "alice"}, 0},
		{[]string{"-user", "bob", "-grep", "deploy"}, 0},
		{[]string{"-since", since}, 0},
		{[]string{"-since", "1h", "-grep", "ns"}, 0},
		{[]string{"-limit", "2"}, 0},
		{[]string{"-limit", "3", "-ids"}, 0},
		{[]string{"-grep", "deploy", "-limit", "1"}, 0},
		{[]string{"-room", "dev"}, 0},
		{[]string{"-room", "lobby", "-before", "3", "-ids"}, 0},
		{[]string{"-room", "lobby", "-user", "alice"}, 0},
		{[]string{"-json"}, 0},
		{[]string{"-json", "-room", "lobby", "-grep", "\x1b"}, 0},
		{[]string{"-rooms"}, 0},
		{[]string{"-rooms", "-json"}, 0},
		{[]string{"-user", "nobody"}, 0},
		{[]string{"-room", "nosuch"}, 1},
		{[]string{"-room", "nosuch", "-json"}, 1},
		{[]string{"-before", "2"}, 0}, // the default room
	}
	type answer struct {
		code           int
		stdout, stderr string
	}
	ask := func(t *testing.T, extra []string, args []string) answer {
		t.Helper()
		code, stdout, stderr := runCmd(t, append(append([]string{"history", "-config", cfg}, extra...), args...)...)
		// The one difference allowed: the line saying where it reads.
		var kept []string
		for _, l := range strings.SplitAfter(stderr, "\n") {
			if !strings.Contains(l, "is in use by a running server;") {
				kept = append(kept, l)
			}
		}
		return answer{code, stdout, strings.Join(kept, "")}
	}

	stopped := map[int]answer{}
	for i, c := range cases {
		a := ask(t, nil, c.args)
		if a.code != c.code {
			t.Errorf("stopped %v: code %d, want %d (stderr %q)", c.args, a.code, c.code, a.stderr)
		}
		stopped[i] = a
	}

	srv := startInProcess(t, cfg)
	for i, c := range cases {
		a := ask(t, []string{"-server", srv.addr}, c.args)
		if a != stopped[i] {
			t.Errorf("%v: the running server's answer differs\nrunning: %+v\nstopped: %+v", c.args, a, stopped[i])
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit code %d", code)
	}

	// What the answers are, checked once (they are the same both ways).
	lines := func(i int) []string {
		var out []string
		for _, l := range nonEmptyLines(stopped[i].stdout) {
			_, rest, _ := strings.Cut(l, " ") // drop the time
			out = append(out, rest)
		}
		return out
	}
	want := map[int][]string{
		0: {"lobby alice: hello world", "lobby bob: deploy started", "dev bob: deploying now",
			`lobby mallory\x1b]0;pwned\x07: ` + hostileEscaped, "dev carol: deploy done",
			"a-room alice: second by ns", "z-room alice: first by ns"},
		1: {"lobby bob: deploy started", "dev bob: deploying now", "dev carol: deploy done"},
		6: {"a-room alice: second by ns", "z-room alice: first by ns"},
		8: {"dev carol: deploy done"},
		4: {"dev bob: deploying now", `lobby mallory\x1b]0;pwned\x07: ` + hostileEscaped, "dev carol: deploy done",
			"a-room alice: second by ns", "z-room alice: first by ns"},
	}
	for i, w := range want {
		if got := lines(i); !slices.Equal(got, w) {
			t.Errorf("%v:\n got %q\nwant %q", cases[i].args, got, w)
		}
	}
	if !strings.Contains(stopped[8].stderr, "older matches exist") {
		t.Errorf("-limit 1 of 3 matches: no hint on stderr: %q", stopped[8].stderr)
	}
	for _, i := range []int{17, 18} {
		if a := stopped[i]; a.stdout != "" || !strings.Contains(a.stderr, `no room "nosuch" in the history`) {
			t.Errorf("%v: %+v", cases[i].args, a)
		}
	}
	if got := stopped[14].stdout; got != "a-room 1\ndev 2\nlobby 3\nz-room 1\n" {
		t.Errorf("-rooms: %q", got)
	}
	// -json: the exact text survives, and no raw control reaches the
	// terminal.
	var found bool
	for _, l := range nonEmptyLines(stopped[13].stdout) {
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("-json line %q: %v", l, err)
		}
		found = found || (e.Text == hostileText && e.User == "mallory\x1b]0;pwned\x07")
	}
	if !found {
		t.Errorf("-json lost the exact text: %q", stopped[13].stdout)
	}
	for i, a := range stopped {
		if bad := termUnsafeIn(a.stdout + a.stderr); bad != "" {
			t.Errorf("%v: output holds raw %s", cases[i].args, bad)
		}
	}
}

// termUnsafeIn names the first character of s (newlines aside) that a
// terminal would act on, or returns "".
func termUnsafeIn(s string) string {
	for _, r := range s {
		if r != '\n' && termUnsafe(r) {
			return fmt.Sprintf("%U", r)
		}
	}
	return ""
}

// TestHistoryActions: a stored /me action prints as "ROOM * NICK TEXT" (as
// chat clients show it), not as something NICK said, and -json marks it
// with "action": true as moonchat.v1 does (plain messages carry no
// "action"); both with the server stopped (the file) and running (the
// HTTP API).
func TestHistoryActions(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Append(context.Background(), []*chat.Message{
		{Room: "lobby", User: "alice", Text: "hi", Time: t0},
		{Room: "lobby", User: "alice", Text: "waves\x1b", Time: t0.Add(time.Second), Action: true},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, extra ...string) {
		t.Helper()
		base := append([]string{"history", "-config", cfg, "-room", "lobby"}, extra...)
		code, stdout, stderr := runCmd(t, base...)
		ts1 := t0.Add(time.Second).UTC().Format(timeLayout)
		want := t0.UTC().Format(timeLayout) + " lobby alice: hi\n" + ts1 + ` lobby * alice waves\x1b` + "\n"
		if code != 0 || stdout != want {
			t.Errorf("%v: code %d\n got %q\nwant %q\nstderr %s", extra, code, stdout, want, stderr)
		}
		code, stdout, _ = runCmd(t, append(base, "-ids")...)
		if code != 0 || !strings.Contains(stdout, ` lobby #2 * alice waves\x1b`) {
			t.Errorf("%v -ids: code %d: %q", extra, code, stdout)
		}
		code, stdout, _ = runCmd(t, append(base, "-json")...)
		lines := nonEmptyLines(stdout)
		if code != 0 || len(lines) != 2 || strings.Contains(lines[0], `"action"`) ||
			!strings.Contains(lines[1], `"action":true`) {
			t.Errorf("%v -json: code %d: %q", extra, code, stdout)
		}
	}
	check(t)
	srv := startInProcess(t, cfg)
	check(t, "-server", srv.addr)
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit code %d", code)
	}
}

// TestHistoryAccounts: a stored message of a sender with an account
// prints its account id after the nick ("alice [u-alice]: …", also in a
// /me action), escaped like the rest; a guest's message, and one of a
// guest granted roles (an account without id), prints as before; -json
// carries "user_id" and "roles" as moonchat.v1 does. Read from the file
// (server stopped).
func TestHistoryAccounts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	db, err := store.Open(filepath.Join(dir, "moonchat.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice := &chat.Account{ID: "u-alice\x1b", Roles: []string{"user", "mod"}}
	if err := db.Append(context.Background(), []*chat.Message{
		{Room: "lobby", User: "alice", Text: "hi", Time: t0, Account: alice},
		{Room: "lobby", User: "alice", Text: "waves", Time: t0.Add(time.Second), Action: true, Account: alice},
		{Room: "lobby", User: "guest-1", Text: "hello", Time: t0.Add(2 * time.Second)},
		{Room: "lobby", User: "guest-2", Text: "granted", Time: t0.Add(3 * time.Second), Account: &chat.Account{Roles: []string{"guest", "mod"}}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ts := func(i int) string { return t0.Add(time.Duration(i) * time.Second).UTC().Format(timeLayout) }
	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-room", "lobby")
	want := ts(0) + ` lobby alice [u-alice\x1b]: hi` + "\n" +
		ts(1) + ` lobby * alice [u-alice\x1b] waves` + "\n" +
		ts(2) + " lobby guest-1: hello\n" +
		ts(3) + " lobby guest-2: granted\n"
	if code != 0 || stdout != want {
		t.Errorf("code %d\n got %q\nwant %q\nstderr %s", code, stdout, want, stderr)
	}
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-room", "lobby", "-json")
	lines := nonEmptyLines(stdout)
	if code != 0 || len(lines) != 4 {
		t.Fatalf("-json: code %d: %q", code, stdout)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["user_id"] != "u-alice\x1b" || fmt.Sprint(first["roles"]) != "[user mod]" {
		t.Errorf("-json alice: %s", lines[0])
	}
	if strings.Contains(lines[2], `"user_id"`) || strings.Contains(lines[2], `"roles"`) ||
		strings.Contains(lines[3], `"user_id"`) || !strings.Contains(lines[3], `"roles":["guest","mod"]`) {
		t.Errorf("-json guests: %s\n%s", lines[2], lines[3])
	}

	// Through a running server's HTTP API the answer is the same.
	jsonOut := stdout
	srv := startInProcess(t, cfg)
	code, stdout, stderr = runCmd(t, "history", "-config", cfg, "-server", srv.addr, "-room", "lobby")
	if code != 0 || stdout != want {
		t.Errorf("running: code %d\n got %q\nwant %q\nstderr %s", code, stdout, want, stderr)
	}
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-server", srv.addr, "-room", "lobby", "-json")
	if code != 0 || stdout != jsonOut {
		t.Errorf("running -json: code %d\n got %q\nwant %q", code, stdout, jsonOut)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit code %d", code)
	}
}
