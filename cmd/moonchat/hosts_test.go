package main

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestServeHosts: [server] hosts reaches the chat server and the pprof
// listener. A DNS-rebinding request (a foreign Host) gets 421 on every path
// but /healthz; loopback names, the address the server listens on and the
// configured names are answered; the log says what is accepted.
func TestServeHosts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"server": "hosts = [\"chat.example.com\"]\npprof = \"127.0.0.1:0\"\n"})
	srv := startInProcess(t, cfg)
	_, port, _ := strings.Cut(srv.addr, ":")
	m := regexp.MustCompile(`pprof listening.* addr=(\S+)`).FindStringSubmatch(srv.log.String())
	if m == nil {
		t.Fatalf("no pprof address logged:\n%s", srv.log)
	}
	pprofAddr := m[1]

	get := func(addr, path, host string, upgrade bool) int {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Origin", "http://"+host)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s Host %s: %v", path, host, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		addr, path, host string
		upgrade          bool
		want             int
	}{
		{srv.addr, "/api/history", "evil.example", false, 421},
		{srv.addr, "/api/rooms", "evil.example:" + port, false, 421},
		{srv.addr, "/", "evil.example", false, 421},
		{srv.addr, "/chat/lobby", "evil.example:" + port, true, 421},
		{srv.addr, "/metrics", "evil.example", false, 421},
		{srv.addr, "/healthz", "evil.example", false, 200},
		{srv.addr, "/api/rooms", "chat.example.com", false, 200},
		{srv.addr, "/chat/lobby", "chat.example.com", true, 101},
		{srv.addr, "/api/rooms", "localhost:" + port, false, 200},
		{srv.addr, "/api/rooms", srv.addr, false, 200},
		{srv.addr, "/api/rooms", "[::1]:" + port, false, 200},
		{pprofAddr, "/debug/pprof/cmdline", "evil.example", false, 421},
		{pprofAddr, "/debug/pprof/cmdline", pprofAddr, false, 200},
	} {
		if got := get(tc.addr, tc.path, tc.host, tc.upgrade); got != tc.want {
			t.Errorf("GET %s%s Host %s (upgrade %v): %d, want %d", tc.addr, tc.path, tc.host, tc.upgrade, got, tc.want)
		}
	}
	want := `msg="answering to Host" hosts="localhost, 127.0.0.1, [::1], the IP address a request arrived on, chat.example.com"`
	if !strings.Contains(srv.log.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, srv.log)
	}
}

// TestAnswerHosts: the name in [server] listen is answered to as well.
func TestAnswerHosts(t *testing.T) {
	for _, tc := range []struct {
		listen string
		hosts  []string
		want   []string
	}{
		{"127.0.0.1:8080", nil, nil},
		{"[::1]:8080", nil, nil},
		{":8080", nil, nil},
		{"0.0.0.0:8080", []string{"chat.example.com"}, []string{"chat.example.com"}},
		{"chat.lan:8080", nil, []string{"chat.lan"}},
		{"chat.lan:8080", []string{"chat.example.com"}, []string{"chat.example.com", "chat.lan"}},
		{"chat.lan:8080", []string{"*"}, []string{"*"}},
	} {
		got := answerHosts(&ServerConfig{Listen: tc.listen, Hosts: tc.hosts})
		if !slices.Equal(got, tc.want) {
			t.Errorf("listen %q hosts %q: %q, want %q", tc.listen, tc.hosts, got, tc.want)
		}
	}
}
