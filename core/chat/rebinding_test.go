package chat_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestHostCheck: DNS rebinding. A page on evil.example whose name now
// points at the server sends "Host: evil.example" and
// "Origin: http://evil.example"; before the Host check, the upgrade and
// /api/* answered it (the origin check compared Origin with that same
// Host). Now every path but /healthz answers 421, while loopback names,
// the address the request came to and configured names keep working.
func TestHostCheck(t *testing.T) {
	hist := chattest.NewListingHistory()
	add(hist.History, "lobby", "alice", "secret")
	var cfg chat.Config
	cfg.WS.Hosts = []string{"chat.example.com"}
	ts := chattest.Start(t, cfg, nil, hist)
	addr := strings.TrimPrefix(ts.HTTP, "http://")
	_, port, _ := net.SplitHostPort(addr)

	// do sends one request to the test server with the given Host and
	// Origin; upgrade makes it a WebSocket handshake.
	do := func(t *testing.T, path, host, origin string, upgrade bool) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest("GET", ts.HTTP+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Version", "13")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s Host %s: %v", path, host, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return resp.StatusCode, "", resp.Header
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}

	type target struct {
		name    string
		path    string
		upgrade bool
		ok      int // status when the Host is allowed
	}
	targets := []target{
		{"history", "/api/history?room=lobby", false, 200},
		{"rooms", "/api/rooms", false, 200},
		{"upgrade /chat/lobby", "/chat/lobby", true, 101},
		{"upgrade /", "/", true, 101},
		{"page", "/", false, 200},
		{"metrics", "/metrics", false, 200},
	}
	refused := 0
	for _, tc := range []struct {
		name, host, origin string
		allowed            bool
	}{
		{"rebinding", "evil.example", "http://evil.example", false},
		{"rebinding with port", "evil.example:" + port, "http://evil.example:" + port, false},
		{"rebinding, no Origin", "evil.example:" + port, "", false},
		{"lookalike", "localhost.evil.example:" + port, "http://localhost.evil.example:" + port, false},
		{"unlisted subdomain", "a.chat.example.com", "http://a.chat.example.com", false},
		{"localhost", "localhost:" + port, "http://localhost:" + port, true},
		{"127.0.0.1", "127.0.0.1:" + port, "http://127.0.0.1:" + port, true},
		{"IPv6 loopback literal", "[::1]:" + port, "http://[::1]:" + port, true},
		{"no Origin (a tool)", "localhost:" + port, "", true},
		{"configured name", "chat.example.com", "http://chat.example.com", true},
		{"configured name with port", "chat.example.com:" + port, "http://chat.example.com:" + port, true},
	} {
		for _, tg := range targets {
			t.Run(tc.name+" "+tg.name, func(t *testing.T) {
				status, body, h := do(t, tg.path, tc.host, tc.origin, tg.upgrade)
				if tc.allowed {
					if status != tg.ok {
						t.Fatalf("status %d %q, want %d", status, body, tg.ok)
					}
					return
				}
				refused++
				if status != http.StatusMisdirectedRequest {
					t.Fatalf("status %d %q, want 421", status, body)
				}
				want := "host " + strconv.Quote(tc.host) + " is not a name this server answers to (see [server] hosts)"
				if strings.HasPrefix(tg.path, "/api/") {
					var e struct{ Error string }
					if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != want {
						t.Fatalf("body %q, want JSON error %q", body, want)
					}
				} else if body != want+"\n" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
					t.Fatalf("body %q (%s), want %q", body, h.Get("Content-Type"), want)
				}
				if strings.Contains(body, "secret") {
					t.Fatal("history leaked")
				}
			})
		}
	}

	// /healthz answers whatever the Host (probes), and says nothing.
	if status, body, _ := do(t, "/healthz", "evil.example", "", false); status != 200 || body != "ok" {
		t.Fatalf("/healthz with a foreign Host: %d %q", status, body)
	}

	// Origin is compared in full once the Host is allowed: another site,
	// or the same site by another scheme, is refused.
	for _, tc := range []struct{ host, origin string }{
		{"localhost:" + port, "http://evil.example"},
		{"localhost:" + port, "https://localhost:" + port},
		{"chat.example.com", "https://chat.example.com"},
		{"localhost:" + port, "http://localhost:1"},
	} {
		if status, body, _ := do(t, "/chat/lobby", tc.host, tc.origin, true); status != http.StatusForbidden {
			t.Errorf("Host %s, Origin %s: status %d %q, want 403", tc.host, tc.origin, status, body)
		}
	}
	// Behind a TLS-terminating proxy, the https page is the same origin.
	req, _ := http.NewRequest("GET", ts.HTTP+"/chat/lobby", nil)
	req.Host = "chat.example.com"
	req.Header.Set("Origin", "https://chat.example.com")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("https page behind a proxy: status %d", resp.StatusCode)
	}

	// Every refusal is counted.
	_, metrics, _ := do(t, "/metrics", "localhost:"+port, "", false)
	if want := "moonchat_host_refused_total " + strconv.Itoa(refused) + "\n"; !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %q", want)
	}
}
