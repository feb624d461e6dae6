package interop

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// TestSubprotocols: the server picks the first protocol of the client's list
// that it supports, and none (no header, no failure) when nothing overlaps.
func TestSubprotocols(t *testing.T) {
	srv := newTestServer(t, ws.Config{Subprotocols: []string{"chat.v2", "chat.v1", "json"}}, nil)
	cases := []struct {
		name  string
		offer []string
		want  string
	}{
		{"client-order-wins", []string{"chat.v1", "chat.v2"}, "chat.v1"},
		{"skip-unsupported", []string{"mqtt", "json", "chat.v2"}, "json"},
		{"single", []string{"chat.v2"}, "chat.v2"},
		{"no-overlap", []string{"mqtt", "xmpp"}, ""},
		{"none-offered", nil, ""},
	}
	for _, cl := range clients {
		for _, tc := range cases {
			t.Run(cl.name+"/"+tc.name, func(t *testing.T) {
				id := "sub-" + cl.name + "-" + tc.name
				c, resp, err := cl.dial(t, srv.wsURL(id), tc.offer, nil)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				if got := c.subprotocol(); got != tc.want {
					t.Errorf("client negotiated %q, want %q", got, tc.want)
				}
				if h, ok := resp.Header["Sec-Websocket-Protocol"]; tc.want == "" && ok {
					t.Errorf("Sec-WebSocket-Protocol sent with no overlap: %q", h)
				}
				if got := srv.rec.waitConn(t, id).Subprotocol(); got != tc.want {
					t.Errorf("server Conn.Subprotocol() = %q, want %q", got, tc.want)
				}
				// The connection works after negotiation.
				if err := c.write(ws.OpText, []byte("x")); err != nil {
					t.Fatalf("write: %v", err)
				}
				if _, p, err := c.read(); err != nil || string(p) != "x" {
					t.Fatalf("echo = %q, %v", p, err)
				}
			})
		}
	}
}

// TestOriginCheck: the default check accepts clients without Origin and
// same-host browsers and refuses other origins with 403; a custom
// CheckOrigin decides alone.
func TestOriginCheck(t *testing.T) {
	servers := []struct {
		name string
		cfg  ws.Config
	}{
		{"default", ws.Config{}},
		{"custom", ws.Config{CheckOrigin: func(r *http.Request) bool {
			return r.Header.Get("Origin") == "https://foo.example"
		}}},
	}
	cases := []struct {
		name   string
		server string
		origin string // "" = no Origin header; "SELF" = http://<server host>
		status int
	}{
		{"no-origin", "default", "", http.StatusSwitchingProtocols},
		{"same-host", "default", "SELF", http.StatusSwitchingProtocols},
		{"other-host", "default", "http://evil.example", http.StatusForbidden},
		{"other-port", "default", "http://127.0.0.1:1", http.StatusForbidden},
		{"allowed", "custom", "https://foo.example", http.StatusSwitchingProtocols},
		{"refused-same-host", "custom", "SELF", http.StatusForbidden},
	}
	for _, sv := range servers {
		t.Run(sv.name, func(t *testing.T) {
			// One server per subtest: its cleanup's goroutine check must not
			// see another live server's event loops.
			srv := newTestServer(t, sv.cfg, nil)
			for _, cl := range clients {
				for _, tc := range cases {
					if tc.server != sv.name {
						continue
					}
					t.Run(cl.name+"/"+tc.name, func(t *testing.T) {
						h := http.Header{}
						switch tc.origin {
						case "":
						case "SELF":
							h.Set("Origin", "http://"+srv.addr)
						default:
							h.Set("Origin", tc.origin)
						}
						_, resp, err := cl.dial(t, srv.wsURL("origin-"+cl.name+"-"+tc.name), nil, h)
						if resp == nil {
							t.Fatalf("no HTTP response: %v", err)
						}
						if resp.StatusCode != tc.status {
							t.Errorf("status = %d, want %d (err %v)", resp.StatusCode, tc.status, err)
						}
						if (err == nil) != (tc.status == http.StatusSwitchingProtocols) {
							t.Errorf("dial err = %v with status %d", err, resp.StatusCode)
						}
					})
				}
			}
		})
	}
}

// rawHandshake sends req verbatim and returns the parsed response and the
// reader positioned after its header.
func rawHandshake(t *testing.T, addr, req string) (*http.Response, *bufio.Reader, net.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, eventually)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(eventually))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp, br, nc
}

// TestRawHandshake checks the opening handshake byte-level (RFC 6455
// section 4.2): a correct request gets 101 with the right accept key; bad
// ones get the status the ws contract promises.
func TestRawHandshake(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	const key = "dGhlIHNhbXBsZSBub25jZQ==" // the RFC's sample nonce
	req := func(lines ...string) string {
		return "GET /ws?id=raw HTTP/1.1\r\nHost: " + srv.addr + "\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
	}
	cases := []struct {
		name    string
		req     string
		status  int
		headers map[string]string
	}{
		{"valid", req("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: "+key, "Sec-WebSocket-Version: 13"),
			http.StatusSwitchingProtocols, map[string]string{
				"Upgrade":              "websocket",
				"Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", // section 1.3's worked example
			}},
		{"header-case-and-lists", req("upgrade: WebSocket", "connection: keep-alive, Upgrade", "sec-websocket-key: "+key, "sec-websocket-version: 13"),
			http.StatusSwitchingProtocols, nil},
		{"version-8", req("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: "+key, "Sec-WebSocket-Version: 8"),
			http.StatusUpgradeRequired, map[string]string{"Sec-WebSocket-Version": "13"}},
		{"no-key", req("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"),
			http.StatusBadRequest, nil},
		{"short-key", req("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13"),
			http.StatusBadRequest, nil},
		{"no-connection-upgrade", req("Upgrade: websocket", "Connection: keep-alive", "Sec-WebSocket-Key: "+key, "Sec-WebSocket-Version: 13"),
			http.StatusBadRequest, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, _ := rawHandshake(t, srv.addr, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d %q, want %d", resp.StatusCode, resp.Status, tc.status)
			}
			for k, v := range tc.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.status == http.StatusSwitchingProtocols {
				if !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
					t.Errorf("Connection = %q, want Upgrade", resp.Header.Get("Connection"))
				}
			} else if tc.status >= 400 {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				if len(strings.TrimSpace(string(body))) == 0 {
					t.Errorf("refusal has no reason in its body")
				}
			}
		})
	}
}

// TestRawFrames speaks frames by hand after a raw handshake: a masked text
// frame is echoed unmasked (section 5.1: servers must not mask) and an
// unmasked client frame is a protocol error (close 1002).
func TestRawFrames(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	wantAccept := base64.StdEncoding.EncodeToString(sum[:])
	open := func(t *testing.T, id string) (*bufio.Reader, net.Conn) {
		resp, br, nc := rawHandshake(t, srv.addr, "GET /ws?id="+id+" HTTP/1.1\r\nHost: "+srv.addr+
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\n")
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wantAccept {
			t.Fatalf("handshake: %d accept %q want %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"), wantAccept)
		}
		return br, nc
	}
	readFrame := func(t *testing.T, br *bufio.Reader) (byte, []byte) {
		t.Helper()
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("read frame header: %v", err)
		}
		if h[1]&0x80 != 0 {
			t.Errorf("server frame is masked")
		}
		n := int(h[1] & 0x7f)
		if n >= 126 {
			t.Fatalf("unexpected long frame")
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatalf("read payload: %v", err)
		}
		return h[0], p
	}

	t.Run("masked-echo", func(t *testing.T) {
		br, nc := open(t, "rawframe-ok")
		mask := [4]byte{1, 2, 3, 4}
		msg := []byte("Hello")
		frame := []byte{0x81, 0x80 | byte(len(msg)), mask[0], mask[1], mask[2], mask[3]}
		for i, b := range msg {
			frame = append(frame, b^mask[i%4])
		}
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		b0, p := readFrame(t, br)
		if b0 != 0x81 || string(p) != "Hello" {
			t.Errorf("echo frame = %#x %q, want 0x81 \"Hello\"", b0, p)
		}
	})
	t.Run("unmasked-is-1002", func(t *testing.T) {
		br, nc := open(t, "rawframe-unmasked")
		if _, err := nc.Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil {
			t.Fatal(err)
		}
		b0, p := readFrame(t, br)
		if b0 != 0x88 || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1002 {
			t.Errorf("got frame %#x %x, want close 1002", b0, p)
		}
		nc.Close() // hang up instead of answering, as a failing client may
		if ce := srv.rec.waitClose(t, "rawframe-unmasked"); ce.Code != ws.StatusProtocolError {
			t.Errorf("OnClose code = %d, want 1002", ce.Code)
		}
	})
}
