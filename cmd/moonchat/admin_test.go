package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// testAdminToken is the [admin] token of these tests (32 characters).
const testAdminToken = "admin-token-0123456789abcdefghij"

// adminGet sends a GET to u, with the admin token when withToken, and
// returns the status and the body.
func adminGet(t *testing.T, u string, withToken bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
	}
	resp, err := (&http.Client{Timeout: waitLong}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminListen (issue 12): with [admin] listen set, the admin API,
// /metrics and /debug/pprof/ (behind the admin token) are served on that
// address, and the main port serves neither the admin API nor /metrics.
// Shutdown stops both listeners.
func TestAdminListen(t *testing.T) {
	srv, _, _ := authServer(t, "guests = true\n[admin]\ntoken = \""+testAdminToken+"\"\nlisten = \"127.0.0.1:0\"\n")
	m := regexp.MustCompile(`msg="admin listening[^"]*" addr=(\S+)`).FindStringSubmatch(srv.log.String())
	if m == nil {
		t.Fatalf("no admin address in the log:\n%s", srv.log)
	}
	admin, main := "http://"+m[1], "http://"+srv.addr
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })

	tests := []struct {
		name      string
		url       string
		withToken bool
		status    int
		body      string
	}{
		{"admin: members", admin + "/api/members?room=lobby", true, 200, `"alice"`},
		{"admin: members without the token", admin + "/api/members?room=lobby", false, 401, ""},
		{"admin: metrics", admin + "/metrics", false, 200, "moonchat_connections"},
		{"admin: pprof", admin + "/debug/pprof/", true, 200, "goroutine"},
		{"admin: pprof without the token", admin + "/debug/pprof/", false, 401, ""},
		{"admin: no chat page", admin + "/", false, 404, ""},
		{"main: no members", main + "/api/members?room=lobby", true, 404, ""},
		{"main: no metrics", main + "/metrics", false, 404, ""},
		{"main: no pprof", main + "/debug/pprof/", true, 404, ""},
		{"main: the page", main + "/healthz", false, 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := adminGet(t, tt.url, tt.withToken)
			if code != tt.status || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s: %d %.200q, want %d with %q", tt.url, code, body, tt.status, tt.body)
			}
		})
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if _, err := (&http.Client{Timeout: waitLong}).Get(admin + "/metrics"); err == nil {
		t.Errorf("the admin listener still answers after shutdown")
	}
	if strings.Contains(srv.log.String(), testAdminToken) {
		t.Errorf("the log holds the admin token")
	}
}

// TestAdminOnMainPort (issue 12): without [admin] listen the admin API is
// on the main port behind the token; protect_metrics puts /metrics behind
// it too.
func TestAdminOnMainPort(t *testing.T) {
	srv, _, _ := authServer(t, "guests = true\n[admin]\ntoken = \""+testAdminToken+"\"\nprotect_metrics = true\n")
	main := "http://" + srv.addr
	for _, tt := range []struct {
		url       string
		withToken bool
		status    int
	}{
		{main + "/api/members?room=lobby", true, 200},
		{main + "/api/members?room=lobby", false, 401},
		{main + "/metrics", true, 200},
		{main + "/metrics", false, 401},
	} {
		if code, body := adminGet(t, tt.url, tt.withToken); code != tt.status {
			t.Errorf("GET %s (token %v): %d %.200q, want %d", tt.url, tt.withToken, code, body, tt.status)
		}
	}
}
