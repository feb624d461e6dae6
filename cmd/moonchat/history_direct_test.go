package main

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// seedDirect writes into the store file at path: owned names (acc-a
// alice, acc-b bob, acc-c carol; acc-z owns none), four conversations
// (alice–bob with an action and hostile text, alice–carol the newest,
// alice's note to self, bob–acc-z) and two room messages, all "secret"
// only in the conversations.
func seedDirect(t *testing.T, path string, t0 time.Time) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, name := range map[string]string{"acc-a": "alice", "acc-b": "bob", "acc-c": "carol"} {
		if err := db.SetNameOwner(id, name); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d time.Duration) time.Time { return t0.Add(d + 123456789) }
	acct := func(id string) *chat.Account { return &chat.Account{ID: id, Roles: []string{"user"}} }
	ab, ac, aa, bz := chat.ConversationKey("acc-a", "acc-b"), chat.ConversationKey("acc-c", "acc-a"),
		chat.ConversationKey("acc-a", "acc-a"), chat.ConversationKey("acc-z", "acc-b")
	msgs := []*chat.Message{
		{Room: ab, User: "alice", Text: "secret plan one", Time: at(0), Account: acct("acc-a")},
		{Room: ab, User: "bob", Text: "secret reply", Time: at(time.Second), Account: acct("acc-b")},
		{Room: ab, User: "alice", Text: "waves secretly", Time: at(2 * time.Second), Action: true, Account: acct("acc-a")},
		{Room: ab, User: "bob", Text: hostileText, Time: at(3 * time.Second), Account: acct("acc-b")},
		{Room: bz, User: "zed", Text: "secret zed", Time: at(4 * time.Second), Account: acct("acc-z")},
		{Room: aa, User: "alice", Text: "secret note to self", Time: at(5 * time.Second), Account: acct("acc-a")},
		{Room: ac, User: "carol", Text: "secret hello alice", Time: at(10 * time.Second), Account: acct("acc-c")},
		{Room: "lobby", User: "alice", Text: "public plan", Time: at(6 * time.Second), Account: acct("acc-a")},
		{Room: "lobby", User: "bob", Text: "public reply", Time: at(7 * time.Second)},
	}
	if err := db.Append(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHistoryDirectSameAnswerUpOrDown (issue 14): `moonchat history
// -direct` lists an account's conversations and prints one, by account id
// or owned name, with -json, -ids, -limit, -before and -since, and says
// clearly what it cannot find; it prints the same (terminal-safe) whether
// it reads the store file (server stopped) or the running server's local
// socket (mode 0600, beside the store file, gone once the server stops).
func TestHistoryDirectSameAnswerUpOrDown(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	seedDirect(t, filepath.Join(dir, "moonchat.db"), t0)

	cases := [][]string{
		{"-direct", "alice"},
		{"-direct", "acc-a", "-json"},
		{"-direct", "alice", "-with", "bob"},
		{"-direct", "bob", "-with", "acc-a", "-json"},
		{"-direct", "alice", "-with", "bob", "-ids", "-limit", "2"},
		{"-direct", "alice", "-with", "bob", "-before", "3"},
		{"-direct", "alice", "-with", "bob", "-since", "2026-11-22T10:00:01.2Z"},
		{"-direct", "bob", "-with", "acc-z"},
		{"-direct", "acc-z"},
		{"-direct", "ALICE", "-with", "alice"},
		{"-direct", "nobody"},
		{"-direct", "carol", "-with", "bob"},
	}
	type answer struct {
		code           int
		stdout, stderr string
	}
	ask := func() []answer {
		var out []answer
		for _, c := range cases {
			code, stdout, stderr := runCmd(t, append([]string{"history", "-config", cfg}, c...)...)
			out = append(out, answer{code, stdout, stderr})
		}
		return out
	}
	stopped := ask()
	want := map[int]string{
		0: "acc-c carol 1 2026-11-22T10:00:10.123Z\n" +
			"acc-a alice 1 2026-11-22T10:00:05.123Z\n" +
			"acc-b bob 4 2026-11-22T10:00:03.123Z\n",
		1: `{"with_id":"acc-c","with":"carol","count":1,"last_id":1,"last_ts":"2026-11-22T10:00:10.123Z"}` + "\n" +
			`{"with_id":"acc-a","with":"alice","count":1,"last_id":1,"last_ts":"2026-11-22T10:00:05.123Z"}` + "\n" +
			`{"with_id":"acc-b","with":"bob","count":4,"last_id":4,"last_ts":"2026-11-22T10:00:03.123Z"}` + "\n",
		2: "2026-11-22T10:00:00.123Z @dm:acc-a:acc-b alice [acc-a]: secret plan one\n" +
			"2026-11-22T10:00:01.123Z @dm:acc-a:acc-b bob [acc-b]: secret reply\n" +
			"2026-11-22T10:00:02.123Z @dm:acc-a:acc-b * alice [acc-a] waves secretly\n" +
			"2026-11-22T10:00:03.123Z @dm:acc-a:acc-b bob [acc-b]: " + hostileEscaped + "\n",
		4: "2026-11-22T10:00:02.123Z @dm:acc-a:acc-b #3 * alice [acc-a] waves secretly\n" +
			"2026-11-22T10:00:03.123Z @dm:acc-a:acc-b #4 bob [acc-b]: " + hostileEscaped + "\n",
		5: "2026-11-22T10:00:00.123Z @dm:acc-a:acc-b alice [acc-a]: secret plan one\n" +
			"2026-11-22T10:00:01.123Z @dm:acc-a:acc-b bob [acc-b]: secret reply\n",
		7: "2026-11-22T10:00:04.123Z @dm:acc-b:acc-z zed [acc-z]: secret zed\n",
		8: "acc-b bob 1 2026-11-22T10:00:04.123Z\n",
		9: "2026-11-22T10:00:05.123Z @dm:acc-a:acc-a alice [acc-a]: secret note to self\n",
	}
	for i, w := range want {
		if s := stopped[i]; s.code != 0 || s.stdout != w {
			t.Errorf("%v from the file: code %d stderr %q\n got %q\nwant %q", cases[i], s.code, s.stderr, s.stdout, w)
		}
	}
	if s := stopped[3]; s.code != 0 || strings.Count(s.stdout, "\n") != 4 || termUnsafeIn(s.stdout) != "" ||
		!strings.Contains(s.stdout, `{"id":3,"room":"@dm:acc-a:acc-b","user":"alice","text":"waves secretly","ts":"2026-11-22T10:00:02.123Z","action":true,"user_id":"acc-a","roles":["user"]}`) {
		t.Errorf("-json conversation: code %d stderr %q\n%s", s.code, s.stderr, s.stdout)
	}
	if s := stopped[4]; !strings.Contains(s.stderr, "older matches exist") {
		t.Errorf("-limit 2 of 4: no note about older ones: %q", s.stderr)
	}
	if s := stopped[6]; s.code != 0 || strings.Count(s.stdout, "\n") != 2 || !strings.HasPrefix(s.stdout, "2026-11-22T10:00:02.123Z") {
		t.Errorf("-since: code %d %q", s.code, s.stdout)
	}
	if s := stopped[10]; s.code != 1 || s.stdout != "" || !strings.Contains(s.stderr, `"nobody" is neither an account id with direct messages nor a name an account owns`) {
		t.Errorf("unknown account: %+v", s)
	}
	if s := stopped[11]; s.code != 1 || s.stdout != "" || !strings.Contains(s.stderr, `no direct conversation between "acc-c" and "acc-b"`) {
		t.Errorf("no conversation: %+v", s)
	}
	for i, s := range stopped {
		if strings.Contains(s.stderr, "local socket") {
			t.Errorf("%v: the server is stopped, yet: %q", cases[i], s.stderr)
		}
	}

	srv := startInProcess(t, cfg)
	sock := filepath.Join(dir, "moonchat.sock")
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("local socket %s: %v, %v; want a socket of mode 0600", sock, fi, err)
	}
	running := ask()
	for i, r := range running {
		note := "is in use by a running server; reading direct messages through its local socket " + sock + "\n"
		if !strings.Contains(r.stderr, note) {
			t.Errorf("%v: stderr does not say it asked the socket: %q", cases[i], r.stderr)
		}
		r.stderr = strings.Replace(r.stderr, "history: "+filepath.Join(dir, "moonchat.db")+" "+note, "", 1)
		if r != stopped[i] {
			t.Errorf("%v: the running server's answer differs\nrunning: %+v\nstopped: %+v", cases[i], r, stopped[i])
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit code %d", code)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after shutdown: %v; want it removed", err)
	}
}

// TestHistoryNeverShowsConversations (issue 14): plain `moonchat history`
// (every room, -rooms, -user, -grep) shows no conversation, from the file
// or through the running server; nor do the network API's history and
// room list, even with the [admin] token; -room refuses a conversation's
// key; and without its socket -direct says why it cannot read instead of
// falling back to the network.
func TestHistoryNeverShowsConversations(t *testing.T) {
	dir := t.TempDir()
	const token = "direct-token-0123456789abcdefghijkl"
	cfg := testConfig(t, dir, map[string]string{"scripting": "[admin]\ntoken = \"" + token + "\"\n"})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	seedDirect(t, filepath.Join(dir, "moonchat.db"), t0)
	key := chat.ConversationKey("acc-a", "acc-b")

	cases := [][]string{{}, {"-json"}, {"-rooms"}, {"-rooms", "-json"}, {"-user", "alice"}, {"-user", "bob", "-json"}, {"-grep", "secret"}, {"-grep", "plan"}, {"-since", "2h"}}
	leak := func(where, s string) {
		t.Helper()
		if strings.Contains(s, "secret") || strings.Contains(s, "@dm") || strings.Contains(s, "%40dm") || strings.Contains(s, "acc-z") {
			t.Errorf("%s shows a conversation:\n%s", where, s)
		}
	}
	check := func(extra ...string) {
		t.Helper()
		for _, c := range cases {
			args := append(append([]string{"history", "-config", cfg}, extra...), c...)
			code, stdout, stderr := runCmd(t, args...)
			if code != 0 {
				t.Errorf("%v: code %d stderr %q", args, code, stderr)
			}
			leak(strings.Join(args[3:], " "), stdout+stderr)
		}
		code, stdout, stderr := runCmd(t, append([]string{"history", "-config", cfg}, "-room", key)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "invalid room name") {
			t.Errorf("-room KEY: code %d stdout %q stderr %q", code, stdout, stderr)
		}
		code, stdout, _ = runCmd(t, append([]string{"history", "-config", cfg}, extra...)...)
		if code != 0 || !strings.Contains(stdout, "public plan") || !strings.Contains(stdout, "public reply") {
			t.Errorf("plain history lost the rooms: code %d %q", code, stdout)
		}
	}
	check()

	srv := startInProcess(t, cfg)
	check("-server", srv.addr)
	base := "http://" + srv.addr
	for _, u := range []string{
		"/api/history?room=" + url.QueryEscape(key),
		"/api/history?room=" + url.QueryEscape(key) + "&limit=10&before=100",
		"/api/history?room=" + url.QueryEscape(key) + "&after=0",
		"/api/rooms",
	} {
		for _, bearer := range []string{"", token} {
			req, _ := http.NewRequest(http.MethodGet, base+u, nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			_, _ = io.Copy(&b, resp.Body)
			_ = resp.Body.Close()
			if strings.HasPrefix(u, "/api/history") && resp.StatusCode == http.StatusOK {
				t.Errorf("GET %s (token %v): 200 %s", u, bearer != "", b.String())
			}
			leak("GET "+u, b.String())
		}
	}

	// The socket gone (an operator removed it): -direct does not fall
	// back to the network API, and says what to do.
	if err := os.Remove(filepath.Join(dir, "moonchat.sock")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-server", srv.addr, "-direct", "alice")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "the running server's local socket does not answer") ||
		!strings.Contains(stderr, "never readable over the network API: stop the server") {
		t.Errorf("-direct without the socket: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}

// TestHistoryDirectUsage: -with needs -direct; -direct does not go with
// the room actions; the message filters need -with.
func TestHistoryDirectUsage(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-with", "bob"}, "-with PEER needs -direct ACCOUNT"},
		{[]string{"-direct", "alice", "-rooms"}, "does not go with -rooms"},
		{[]string{"-direct", "alice", "-room", "lobby"}, "does not go with -rooms, -room"},
		{[]string{"-direct", "alice", "-delete-user", "bob"}, "does not go with"},
		{[]string{"-direct", "alice", "-grep", "x"}, "add -with PEER"},
		{[]string{"-direct", "alice", "-ids"}, "add -with PEER"},
		{[]string{"-direct", "alice", "-verify"}, "-verify checks the whole file"},
	} {
		code, stdout, stderr := runCmd(t, append([]string{"history", "-config", cfg}, tc.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d stdout %q stderr %q; want usage error %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}
