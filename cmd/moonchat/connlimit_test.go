package main

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialFrom opens a TCP connection to addr from the local address ip.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitLong}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// healthz sends GET /healthz on c and reports whether "ok" came back (false
// when the server closed the connection instead).
func healthz(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitLong))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return false
	}
	b := make([]byte, 512)
	n, err := io.ReadAtLeast(c, b, 1)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close within %v", waitLong)
		}
		return false
	}
	return strings.HasPrefix(string(b[:n]), "HTTP/1.1 200")
}

// TestHTTPConnectionsPerAddress: an address holds at most
// max_connections_per_address plain HTTP connections on the main port; one
// more is closed on accept (counted, logged), another address and an exempt
// one are not affected, a closed connection frees its slot, and WebSockets
// are not counted by this cap (core/chat counts them).
func TestHTTPConnectionsPerAddress(t *testing.T) {
	dir := t.TempDir()
	p := startInProcess(t, testConfig(t, dir, map[string]string{"server": "max_connections_per_address = 3\n"}))
	held := make([]net.Conn, 3)
	for i := range held {
		held[i] = dialFrom(t, "127.0.0.2", p.addr)
		if !healthz(t, held[i]) { // served, and kept alive
			t.Fatalf("connection %d refused", i+1)
		}
	}
	if healthz(t, dialFrom(t, "127.0.0.2", p.addr)) {
		t.Fatal("a fourth HTTP connection from one address was served")
	}
	if !healthz(t, dialFrom(t, "127.0.0.3", p.addr)) {
		t.Fatal("another address was refused")
	}
	for range 5 { // 127.0.0.1: limits_exempt
		if !healthz(t, dialFrom(t, "127.0.0.1", p.addr)) {
			t.Fatal("an exempt address was refused")
		}
	}
	base := "http://" + p.addr
	if v := metric(t, base, "moonchat_http_connections_refused_total"); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	if !strings.Contains(p.log.String(), "connection closed: too many HTTP connections from its address") {
		t.Fatalf("no log line:\n%s", p.log)
	}

	// A closed connection frees its slot (once the server has seen it
	// close: poll).
	held[0].Close()
	deadline := time.Now().Add(waitLong)
	for !healthz(t, dialFrom(t, "127.0.0.2", p.addr)) {
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed connection was not freed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// WebSockets: upgraded connections leave this count.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).Dial(network, addr)
	}, HandshakeTimeout: waitLong}
	for i := range 3 {
		ws, resp, err := d.Dial("ws://"+p.addr+"/chat/r", nil)
		if err != nil {
			t.Fatalf("WebSocket %d: %v (%v)", i+1, err, resp)
		}
		t.Cleanup(func() { ws.Close() })
	}
	if !healthz(t, dialFrom(t, "127.0.0.4", p.addr)) {
		t.Fatal("an address holding WebSockets was refused an HTTP connection")
	}
}
