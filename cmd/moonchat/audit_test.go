package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// seedAudit writes moderation audit entries into the store file at path,
// one second apart from t0, one of them with a hostile reason.
func seedAudit(t *testing.T, path string, t0 time.Time) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s)*time.Second + 123456789) }
	for _, e := range []chat.AuditEntry{
		{Time: at(0), Room: "lobby", By: "mod [acc-1]", Action: "ban", Target: "name:mallory", Reason: "spam"},
		{Time: at(1), Room: "", By: "admin", Action: "ban", Target: "addr:203.0.113.0/24"},
		{Time: at(2), Room: "dev", By: "mod [acc-1]", Action: "slow", Target: "", Reason: "30s"},
		{Time: at(3), Room: "lobby", By: "mod [acc-1]", Action: "delete", Target: "17", Reason: hostileText},
		{Time: at(4), Room: "lobby", By: "alice [acc-2]", Action: "delete", Target: "18"},
	} {
		if err := db.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAuditSameAnswerUpOrDown (issue 14): `moonchat audit` prints the same
// lines (text and -json, with every filter) whether it reads the store
// file (server stopped) or asks the running server's GET /api/audit with
// the [admin] token; user-given fields stay inert escapes.
func TestAuditSameAnswerUpOrDown(t *testing.T) {
	dir := t.TempDir()
	const token = "audit-token-0123456789abcdefghijkl"
	cfg := testConfig(t, dir, map[string]string{"scripting": "[admin]\ntoken = \"" + token + "\"\n"})
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	seedAudit(t, filepath.Join(dir, "moonchat.db"), t0)

	cases := [][]string{
		{},
		{"-json"},
		{"-room", "lobby"},
		{"-room", "lobby", "-json"},
		{"-since", "2026-11-22T10:00:02Z"},
		{"-since", "2026-11-22T10:00:02.123456789Z"},
		{"-limit", "2"},
		{"-room", "nowhere"},
	}
	type answer struct {
		code           int
		stdout, stderr string
	}
	ask := func(extra ...string) []answer {
		var out []answer
		for _, c := range cases {
			args := append([]string{"audit", "-config", cfg}, extra...)
			code, stdout, stderr := runCmd(t, append(args, c...)...)
			out = append(out, answer{code, stdout, stderr})
		}
		return out
	}
	stopped := ask()
	wantAll := "2026-11-22T10:00:00.123Z lobby mod [acc-1] ban name:mallory: spam\n" +
		"2026-11-22T10:00:01.123Z * admin ban addr:203.0.113.0/24\n" +
		"2026-11-22T10:00:02.123Z dev mod [acc-1] slow -: 30s\n" +
		"2026-11-22T10:00:03.123Z lobby mod [acc-1] delete 17: " + hostileEscaped + "\n" +
		"2026-11-22T10:00:04.123Z lobby alice [acc-2] delete 18\n"
	if s := stopped[0]; s.code != 0 || s.stdout != wantAll || s.stderr != "" {
		t.Errorf("from the file: code %d stderr %q\n got %q\nwant %q", s.code, s.stderr, s.stdout, wantAll)
	}
	if u := termUnsafeIn(stopped[1].stdout); u != "" || !strings.Contains(stopped[1].stdout, `{"time":"2026-11-22T10:00:01.123Z","room":"","by":"admin","action":"ban","target":"addr:203.0.113.0/24"}`) {
		t.Errorf("-json from the file (unsafe %s):\n%s", u, stopped[1].stdout)
	}
	if got := strings.Count(stopped[2].stdout, "\n"); got != 3 {
		t.Errorf("-room lobby: %d lines\n%s", got, stopped[2].stdout)
	}
	if got := strings.Count(stopped[4].stdout, "\n"); got != 3 {
		t.Errorf("-since: %d lines\n%s", got, stopped[4].stdout)
	}
	if got := strings.Count(stopped[5].stdout, "\n"); got != 3 {
		t.Errorf("-since to the nanosecond: %d lines\n%s", got, stopped[5].stdout)
	}
	if s := stopped[6]; !strings.HasSuffix(wantAll, s.stdout) || strings.Count(s.stdout, "\n") != 2 || !strings.Contains(s.stderr, "older ones may exist") {
		t.Errorf("-limit 2: the 2 newest, and a note: %q stderr %q", s.stdout, s.stderr)
	}
	if s := stopped[7]; s.code != 0 || s.stdout != "" {
		t.Errorf("-room nowhere: code %d %q", s.code, s.stdout)
	}

	srv := startInProcess(t, cfg)
	running := ask("-server", srv.addr)
	for i, r := range running {
		if !strings.Contains(r.stderr, "is in use by a running server; reading through its admin API at http://"+srv.addr) {
			t.Errorf("%v: stderr does not say it asked the server: %q", cases[i], r.stderr)
		}
		var kept []string
		for _, l := range strings.SplitAfter(r.stderr, "\n") {
			if !strings.Contains(l, "reading through its admin API") {
				kept = append(kept, l)
			}
		}
		r.stderr = strings.Join(kept, "")
		if r != stopped[i] {
			t.Errorf("%v: the running server's answer differs\nrunning: %+v\nstopped: %+v", cases[i], r, stopped[i])
		}
	}

	// The wrong token is refused, and said so.
	_, err := fetchAudit(context.Background(), http.DefaultClient, "http://"+srv.addr, "wrong-token-0123456789abcdefghijkl", "", time.Time{}, 10)
	if err == nil || !strings.Contains(err.Error(), "refused the [admin] token") {
		t.Errorf("wrong token: %v", err)
	}
}

// TestAuditAdminAPIOff: with the server running and no [admin] token, the
// CLI cannot read the log and says why instead of printing nothing.
func TestAuditAdminAPIOff(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	seedAudit(t, filepath.Join(dir, "moonchat.db"), time.Now().Add(-time.Hour))
	srv := startInProcess(t, cfg)
	code, stdout, stderr := runCmd(t, "audit", "-config", cfg, "-server", srv.addr)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "the admin API, which is off ([admin] token is empty)") {
		t.Errorf("code %d stdout %q stderr %q", code, stdout, stderr)
	}
}
