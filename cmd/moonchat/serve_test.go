package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeChat: two clients chat through the wired server with the
// built-in default scripts; /healthz answers; the log says what runs.
func TestServeChat(t *testing.T) {
	dir := t.TempDir()
	// dir has no scripts/ directory: the embedded defaults must run.
	cfg := testConfig(t, dir, nil)
	srv := startInProcess(t, cfg)

	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == "alice" })
	bob := dial(t, srv.addr, "lobby", "bob", nil)
	bob.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == "bob" })

	alice.send("hello bob")
	for _, c := range []*client{alice, bob} {
		e := c.waitFor("alice's message", func(e event) bool { return e.Type == "message" })
		if e.User != "alice" || e.Text != "hello bob" || e.Room != "lobby" || e.ID != 1 {
			t.Errorf("%s got %+v", c.name, e)
		}
	}

	// A default script answers /who with the members.
	bob.send("/who")
	e := bob.waitFor("/who answer", func(e event) bool { return e.Type == "system" && strings.Contains(e.Text, "alice") })
	if !strings.Contains(e.Text, "bob") {
		t.Errorf("/who answer %q does not name bob", e.Text)
	}

	if code, body := httpGet(t, "http://"+srv.addr+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+srv.addr+"/"); code != 200 || !strings.Contains(strings.ToLower(body), "<html") {
		t.Errorf("chat page: %d %.100q", code, body)
	}

	if code := srv.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
	log := srv.log.String()
	for _, want := range []string{
		"source=" + cfg,
		"listening addr=" + srv.addr,
		"built-in default scripts",
		"scripts loaded",
		"path=" + filepath.Join(dir, "moonchat.db"),
		"history closed",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}
}

// TestServeRestart (issue 5): messages survive a restart on the same
// store, a newcomer gets them replayed, `moonchat history` lists them and
// ids continue.
func TestServeRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)

	srv := startInProcess(t, cfg)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		alice.send(text)
	}
	last := alice.waitFor("third message", func(e event) bool { return e.Type == "message" && e.Text == "three" })
	if last.ID != 3 {
		t.Fatalf("third message has id %d", last.ID)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Stopped: the CLI reads the file directly.
	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-room", "lobby")
	if code != 0 {
		t.Fatalf("history: code %d stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("history printed %d lines:\n%s", len(lines), stdout)
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, " lobby alice: "+texts[i]) {
			t.Errorf("line %d = %q", i, l)
		}
	}

	srv = startInProcess(t, cfg)
	bob := dial(t, srv.addr, "lobby", "bob", nil)
	h := bob.waitFor("join replay", func(e event) bool { return e.Type == "history" })
	if h.Reason != "join" || len(h.Messages) != 3 {
		t.Fatalf("replay %+v", h)
	}
	for i, m := range h.Messages {
		if m.Text != texts[i] || m.User != "alice" || m.ID != uint64(i+1) {
			t.Errorf("replayed %d: %+v", i, m)
		}
	}
	bob.send("four")
	e := bob.waitFor("bob's message", func(e event) bool { return e.Type == "message" })
	if e.ID != 4 {
		t.Errorf("after restart the next id is %d, want 4", e.ID)
	}
}

// TestHistoryCLI covers the output formats, filters, -rooms and deletes on
// a stopped server's file.
func TestHistoryCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	srv := startInProcess(t, cfg)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	bob := dial(t, srv.addr, "dev", "bob", nil)
	// One after the other, so that the all-rooms listing (ordered by
	// time) is deterministic.
	alice.send("hello world")
	alice.send("line one\nline two")
	alice.waitFor("2nd", func(e event) bool { return e.Type == "message" && e.ID == 2 })
	bob.send("deploying now")
	bob.send("deploy done")
	bob.waitFor("2nd", func(e event) bool { return e.Type == "message" && e.ID == 2 })
	start := time.Now()
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	tests := []struct {
		name string
		args []string
		want []string // exact lines, after the timestamp for text output
	}{
		{"all rooms", nil, []string{"lobby alice: hello world", `lobby alice: line one\nline two`, "dev bob: deploying now", "dev bob: deploy done"}},
		{"one room", []string{"-room", "dev"}, []string{"dev bob: deploying now", "dev bob: deploy done"}},
		{"limit", []string{"-room", "dev", "-limit", "1"}, []string{"dev bob: deploy done"}},
		{"before", []string{"-room", "dev", "-before", "2"}, []string{"dev bob: deploying now"}},
		{"user", []string{"-user", "alice"}, []string{"lobby alice: hello world", `lobby alice: line one\nline two`}},
		{"grep", []string{"-grep", "deploy"}, []string{"dev bob: deploying now", "dev bob: deploy done"}},
		{"ids", []string{"-room", "lobby", "-ids"}, []string{"lobby #1 alice: hello world", `lobby #2 alice: line one\nline two`}},
		{"since future", []string{"-since", "2100-01-01"}, nil},
		{"since duration", []string{"-since", "1h", "-room", "lobby"}, []string{"lobby alice: hello world", `lobby alice: line one\nline two`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, append([]string{"history", "-config", cfg}, tt.args...)...)
			if code != 0 {
				t.Fatalf("code %d stderr %s", code, stderr)
			}
			got := nonEmptyLines(stdout)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tt.want), stdout)
			}
			for i, l := range got {
				ts, rest, _ := strings.Cut(l, " ")
				tm, err := time.Parse(time.RFC3339Nano, ts)
				if err != nil || tm.After(start) || time.Since(tm) > time.Hour {
					t.Errorf("line %q: bad time %q (%v)", l, ts, err)
				}
				if rest != tt.want[i] {
					t.Errorf("line %d = %q, want %q", i, rest, tt.want[i])
				}
			}
		})
	}

	// -json: one protocol message object per line.
	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-room", "lobby", "-json")
	if code != 0 {
		t.Fatalf("-json: code %d stderr %s", code, stderr)
	}
	var msgs []event
	for _, l := range nonEmptyLines(stdout) {
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("-json line %q: %v", l, err)
		}
		msgs = append(msgs, e)
	}
	if len(msgs) != 2 || msgs[1].ID != 2 || msgs[1].Text != "line one\nline two" || msgs[1].User != "alice" || msgs[1].Room != "lobby" || msgs[1].TS.IsZero() {
		t.Fatalf("-json: %+v", msgs)
	}

	// -rooms, text and JSON.
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-rooms")
	if code != 0 || stdout != "dev 2\nlobby 2\n" {
		t.Fatalf("-rooms: code %d %q", code, stdout)
	}
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-rooms", "-json")
	if code != 0 || !strings.Contains(stdout, `{"room":"dev","count":2,"first_id":1,"last_id":2}`) {
		t.Fatalf("-rooms -json: code %d %q", code, stdout)
	}

	// -delete (default room from config is lobby) and -delete-user.
	code, stdout, stderr = runCmd(t, "history", "-config", cfg, "-delete", "1")
	if code != 0 || stdout != "deleted message 1 from lobby\n" {
		t.Fatalf("-delete: code %d stdout %q stderr %q", code, stdout, stderr)
	}

	code, _, stderr = runCmd(t, "history", "-config", cfg, "-delete", "1")
	if code != 1 || !strings.Contains(stderr, "no message 1 in room lobby") {
		t.Fatalf("-delete again: code %d stderr %q", code, stderr)
	}
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-delete-user", "bob")
	if code != 0 || stdout != "deleted 2 message(s) of bob\n" {
		t.Fatalf("-delete-user: code %d stdout %q", code, stdout)
	}
	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-ids")
	if got := nonEmptyLines(stdout); code != 0 || len(got) != 1 || !strings.HasSuffix(got[0], `lobby #2 alice: line one\nline two`) {
		t.Fatalf("after deletes: code %d\n%s", code, stdout)
	}

	// Bad usage.
	for _, args := range [][]string{
		{"-rooms", "-delete", "3"},
		{"-limit", "0"},
		{"-since", "yesterday"},
		{"-room", "no spaces"},
		{"-rooms", "-user", "x"},
	} {
		code, _, stderr := runCmd(t, append([]string{"history", "-config", cfg}, args...)...)
		if code == 0 {
			t.Errorf("%v: exit 0 (stderr %q)", args, stderr)
		}
	}
}

// TestHistoryWhileRunning: the file is locked by the server, so the CLI
// reads through the HTTP API and refuses deletions with advice.
func TestHistoryWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	srv := startInProcess(t, cfg)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	for i := range 3 {
		alice.send(fmt.Sprintf("msg %d", i))
	}
	alice.waitFor("3rd", func(e event) bool { return e.Type == "message" && e.ID == 3 })

	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-server", srv.addr, "-room", "lobby", "-limit", "2")
	if code != 0 {
		t.Fatalf("code %d stderr %s", code, stderr)
	}
	if !strings.Contains(stderr, "in use by a running server; reading through its HTTP API at http://"+srv.addr) {
		t.Errorf("stderr does not say how it reached the history: %q", stderr)
	}
	got := nonEmptyLines(stdout)
	if len(got) != 2 || !strings.HasSuffix(got[0], " lobby alice: msg 1") || !strings.HasSuffix(got[1], " lobby alice: msg 2") {
		t.Errorf("via API:\n%s", stdout)
	}

	code, stdout, _ = runCmd(t, "history", "-config", cfg, "-server", srv.addr, "-room", "lobby", "-json", "-user", "alice", "-grep", "msg 0")
	if code != 0 || !strings.Contains(stdout, `"text":"msg 0"`) || len(nonEmptyLines(stdout)) != 1 {
		t.Errorf("via API -json: code %d\n%s", code, stdout)
	}

	// Without -server the listen address has port 0: the CLI says so.
	code, _, stderr = runCmd(t, "history", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "in use by a running server, but [server] listen") || !strings.Contains(stderr, "-server") {
		t.Errorf("port 0 without -server: code %d stderr %q", code, stderr)
	}

	// -rooms while running: TestHistoryRoomsWhileRunning (history_test.go).

	code, _, stderr = runCmd(t, "history", "-config", cfg, "-delete", "1")
	if code != 1 || !strings.Contains(stderr, "stop it") || !strings.Contains(stderr, "chat.redact") {
		t.Errorf("delete while running: code %d stderr %q", code, stderr)
	}
}

// TestHistoryNoStore: without a store file the CLI says so and creates
// nothing.
func TestHistoryNoStore(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	for _, args := range [][]string{{}, {"-rooms"}, {"-delete", "1"}, {"-delete-user", "bob"}} {
		code, _, stderr := runCmd(t, append([]string{"history", "-config", cfg}, args...)...)
		if code != 1 || !strings.Contains(stderr, filepath.Join(dir, "moonchat.db")) {
			t.Errorf("%v: code %d stderr %q", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "moonchat.db")); !os.IsNotExist(err) {
		t.Errorf("the CLI created the store file: %v", err)
	}
}

// TestServeStoreLocked: a second server on the same file fails clearly.
func TestServeStoreLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	startInProcess(t, cfg)
	code, _, stderr := runCmd(t, "serve", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "is another moonchat running?") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}

// TestServeStoreCorrupt: garbage in the store file is an error, not a panic.
func TestServeStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	if err := os.WriteFile(filepath.Join(dir, "moonchat.db"), []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "serve", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "corrupt") || !strings.Contains(stderr, "move it away") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}

// TestServeNoHistory: store.path = "" runs without a store.
func TestServeNoHistory(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	content := "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"\"\n[scripting]\nenabled = false\n"
	if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startInProcess(t, cfg)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.send("ephemeral")
	alice.waitFor("own message", func(e event) bool { return e.Type == "message" && e.Text == "ephemeral" })
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "moonchat.db")); !os.IsNotExist(err) {
		t.Errorf("a store file was created: %v", err)
	}
	log := srv.log.String()
	for _, want := range []string{"history off", "scripting off"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestServePprof: [server] pprof serves net/http/pprof on its own
// listener only; the chat port does not expose it.
func TestServePprof(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"server": "pprof = \"127.0.0.1:0\"\n"})
	srv := startInProcess(t, cfg)
	m := regexp.MustCompile(`pprof listening.* addr=(\S+)`).FindStringSubmatch(srv.log.String())
	if m == nil {
		t.Fatalf("no pprof address logged:\n%s", srv.log)
	}
	if code, body := httpGet(t, "http://"+m[1]+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index: %d %.200q", code, body)
	}
	if code, body := httpGet(t, "http://"+m[1]+"/debug/pprof/cmdline"); code != 200 || body == "" {
		t.Errorf("pprof cmdline: %d %q", code, body)
	}
	if _, body := httpGet(t, "http://"+srv.addr+"/debug/pprof/"); strings.Contains(body, "goroutine?debug") {
		t.Errorf("the chat port serves pprof")
	}
}

// TestServeListenError: a busy port is a clear error naming the key.
func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	content := fmt.Sprintf("[server]\nlisten = %q\n[store]\npath = \"h.db\"\n", ln.Addr().String())
	if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "serve", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "listen on "+ln.Addr().String()+" ([server] listen)") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	// Everything opened before the failure was closed again: the store
	// is not left locked.
	code, _, stderr = runCmd(t, "history", "-config", cfg, "-rooms")
	if code != 0 {
		t.Fatalf("store left locked? code %d stderr %q", code, stderr)
	}
}
