package ws

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAcceptKey checks the example of RFC 6455 section 1.3.
func TestAcceptKey(t *testing.T) {
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("acceptKey = %q", got)
	}
}

// TestHandshakeRefused sends bad handshakes over TCP and asserts the status
// line, the one-line reason and the 426 version header.
func TestHandshakeRefused(t *testing.T) {
	ts := newTestServer(t, Config{}, false, nil)
	std := func(drop string, extra ...string) string {
		lines := []string{"Host: " + ts.addr, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + testKey, "Sec-WebSocket-Version: 13"}
		var out []string
		for _, l := range lines {
			if drop == "" || !strings.HasPrefix(l, drop+":") {
				out = append(out, l)
			}
		}
		return strings.Join(append(out, extra...), "\r\n") + "\r\n\r\n"
	}
	tests := []struct {
		name    string
		req     string
		status  int
		reason  string
		version bool // expect Sec-WebSocket-Version: 13
	}{
		{"POST", "POST / HTTP/1.1\r\nContent-Length: 0\r\n" + std(""), 400, "method must be GET", false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + std(""), 400, "HTTP/1.1 required", false},
		{"no Upgrade", "GET / HTTP/1.1\r\n" + std("Upgrade"), 400, "Upgrade header must include websocket", false},
		{"Upgrade h2c", "GET / HTTP/1.1\r\n" + std("Upgrade", "Upgrade: h2c"), 400, "Upgrade header must include websocket", false},
		{"no Connection", "GET / HTTP/1.1\r\n" + std("Connection"), 400, "Connection header must include upgrade", false},
		{"Connection close", "GET / HTTP/1.1\r\n" + std("Connection", "Connection: close"), 400, "Connection header must include upgrade", false},
		{"no key", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Key"), 400, "exactly one Sec-WebSocket-Key header required", false},
		{"two keys", "GET / HTTP/1.1\r\n" + std("", "Sec-WebSocket-Key: "+testKey), 400, "exactly one Sec-WebSocket-Key header required", false},
		{"key not base64", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Key", "Sec-WebSocket-Key: not base64!"), 400, "Sec-WebSocket-Key must be 16 bytes in base64", false},
		{"key 15 bytes", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"), 400, "Sec-WebSocket-Key must be 16 bytes in base64", false},
		{"key 17 bytes", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="), 400, "Sec-WebSocket-Key must be 16 bytes in base64", false},
		{"version 8", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), 426, "unsupported Sec-WebSocket-Version (13 required)", true},
		{"no version", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Version"), 426, "unsupported Sec-WebSocket-Version (13 required)", true},
		{"foreign origin", "GET / HTTP/1.1\r\n" + std("", "Origin: http://evil.example"), 403, "origin not allowed", false},
		{"hixie-76 when off", "GET / HTTP/1.1\r\n" + std("Sec-WebSocket-Key", "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5", "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00", "Sec-WebSocket-Version: 13"), 400, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialTCP(t, ts.addr)
			rc.write([]byte(tt.req))
			resp := rc.response()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.reason != "" && string(body) != tt.reason+"\n" {
				t.Fatalf("body %q, want %q", body, tt.reason+"\n")
			}
			if got := resp.Header.Get("Sec-WebSocket-Version"); (got == "13") != tt.version {
				t.Fatalf("Sec-WebSocket-Version header %q", got)
			}
		})
	}
	if n := ts.srv.Len(); n != 0 {
		t.Fatalf("Len = %d after refused handshakes", n)
	}
}

// TestHandshakeDirect covers checks that net/http would answer before our
// handler (a missing Host) and that a panic-free refusal works through a
// ResponseRecorder (which cannot be hijacked).
func TestHandshakeDirect(t *testing.T) {
	srv, err := NewServer(newRecHandler(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Key", testKey)
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Host = ""
	w := httptest.NewRecorder()
	_, err = srv.Upgrade(w, r, nil)
	if he, ok := err.(*HandshakeError); !ok || he.Status != 400 || w.Code != 400 || w.Body.String() != "missing Host header\n" {
		t.Fatalf("missing Host: %v, %d %q", err, w.Code, w.Body.String())
	}
	r.Host = "localhost"
	w = httptest.NewRecorder()
	_, err = srv.Upgrade(w, r, nil)
	if he, ok := err.(*HandshakeError); !ok || he.Status != 500 || w.Code != 500 {
		t.Fatalf("unhijackable writer: %v, %d", err, w.Code)
	}
}

// TestHandshakeAccepted checks token lists, same-origin, custom origin
// checks and subprotocol selection.
func TestHandshakeAccepted(t *testing.T) {
	cfg := Config{Subprotocols: []string{"moonchat.v1", "chat"}}
	ts := newTestServer(t, cfg, false, nil)
	tests := []struct {
		name  string
		extra []string
		proto string
	}{
		{"plain", nil, ""},
		{"token lists", []string{"Connection: keep-alive, Upgrade", "Upgrade: foo, WebSocket"}, ""},
		{"same origin", []string{"Origin: http://" + ts.addr}, ""},
		{"first of client's list", []string{"Sec-WebSocket-Protocol: unknown, chat, moonchat.v1"}, "chat"},
		{"split headers", []string{"Sec-WebSocket-Protocol: unknown", "Sec-WebSocket-Protocol: moonchat.v1"}, "moonchat.v1"},
		{"none supported", []string{"Sec-WebSocket-Protocol: mqtt"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The request uses "Connection: Upgrade" already; replace it
			// when the test gives its own.
			rc := dialTCP(t, ts.addr)
			req := handshakeRequest(ts.addr, "/", tt.extra...)
			for _, e := range tt.extra {
				if strings.HasPrefix(e, "Connection:") {
					req = strings.Replace(req, "Connection: Upgrade\r\n", "", 1)
				}
				if strings.HasPrefix(e, "Upgrade:") {
					req = strings.Replace(req, "Upgrade: websocket\r\n", "", 1)
				}
			}
			rc.write([]byte(req))
			resp := rc.response()
			if resp.StatusCode != 101 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.proto {
				t.Fatalf("subprotocol %q, want %q", got, tt.proto)
			}
			ev := ts.h.next(t, "open")
			if ev.c.Subprotocol() != tt.proto {
				t.Fatalf("Conn.Subprotocol %q", ev.c.Subprotocol())
			}
			if ev.c.RemoteAddr() != rc.nc.LocalAddr().String() {
				t.Fatalf("RemoteAddr %q, want %q", ev.c.RemoteAddr(), rc.nc.LocalAddr())
			}
		})
	}
}

func TestCheckOriginCallback(t *testing.T) {
	cfg := Config{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://chat.example" }}
	ts := newTestServer(t, cfg, false, nil)
	dial(t, ts.addr, nil, "Origin: https://chat.example")
	rc := dialTCP(t, ts.addr)
	rc.write([]byte(handshakeRequest(ts.addr, "/", "Origin: http://"+ts.addr)))
	if resp := rc.response(); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
}

func TestIsUpgradeRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if IsUpgradeRequest(r) {
		t.Fatal("plain GET reported as upgrade")
	}
	r.Header.Set("Connection", "keep-alive, upgrade")
	r.Header.Set("Upgrade", "WebSocket")
	if !IsUpgradeRequest(r) {
		t.Fatal("upgrade not recognised")
	}
}

// TestUpgradeAfterShutdown: 503 once the server is shutting down.
func TestUpgradeAfterShutdown(t *testing.T) {
	ts := newTestServer(t, Config{}, false, nil)
	if err := ts.srv.Shutdown(context.Background(), StatusGoingAway, ""); err != nil {
		t.Fatal(err)
	}
	rc := dialTCP(t, ts.addr)
	rc.write([]byte(handshakeRequest(ts.addr, "/")))
	resp := rc.response()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || string(body) != "server shutting down\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}
