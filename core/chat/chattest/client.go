package chattest

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Client is a third-party WebSocket client (gorilla/websocket) for tests
// that talk to a chat server as users do; every call fails the test on
// error and every read is bounded by Wait.
type Client struct {
	t testing.TB
	// Conn is the connection, for what the helpers do not cover.
	Conn *websocket.Conn
}

// Dial connects to url (ws://…/chat/ROOM?name=NAME) offering the
// subprotocol proto ("" offers none). The connection is closed when the
// test ends.
func Dial(t testing.TB, url, proto string) *Client {
	t.Helper()
	return DialFrom(t, "", url, proto)
}

// DialFrom is Dial from the local address ip ("127.0.0.2": any 127.0.0.0/8
// address is loopback on Linux), so that a test can show what a
// per-address limit does to two clients; "" lets the system choose.
func DialFrom(t testing.TB, ip, url, proto string) *Client {
	t.Helper()
	return DialHeader(t, ip, url, proto, nil)
}

// DialHeader is DialFrom with extra request headers (a test playing a
// reverse proxy sends X-Forwarded-For).
func DialHeader(t testing.TB, ip, url, proto string, h http.Header) *Client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: Wait}
	if ip != "" {
		local := &net.TCPAddr{IP: net.ParseIP(ip)}
		if local.IP == nil {
			t.Fatalf("dial from %q: not an IP address", ip)
		}
		nd := &net.Dialer{LocalAddr: local}
		d.NetDialContext = nd.DialContext
	}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &Client{t: t, Conn: c}
}

// Send sends text as one text frame.
func (c *Client) Send(text string) {
	c.t.Helper()
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		c.t.Fatalf("send %q: %v", text, err)
	}
}

// Read returns the next text frame.
func (c *Client) Read() string {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(Wait))
	op, data, err := c.Conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if op != websocket.TextMessage {
		c.t.Fatalf("read: opcode %d, want text", op)
	}
	return string(data)
}

// Expect reads len(lines) frames and checks them byte for byte, in order.
func (c *Client) Expect(lines ...string) {
	c.t.Helper()
	for i, want := range lines {
		if got := c.Read(); got != want {
			c.t.Fatalf("frame %d: got %q, want %q", i, got, want)
		}
	}
}

// SkipUntil reads frames until one is want.
func (c *Client) SkipUntil(want string) {
	c.t.Helper()
	for c.Read() != want {
	}
}

// SendJSON sends v encoded as JSON in one text frame (a moonchat.v1
// client event).
func (c *Client) SendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", v, err)
	}
	c.Send(string(b))
}

// Event is a decoded moonchat.v1 (JSON) frame.
type Event map[string]any

// Str returns the string field k ("" when absent or not a string).
func (e Event) Str(k string) string { s, _ := e[k].(string); return s }

// Num returns the number field k as an id or count (0 when absent).
func (e Event) Num(k string) uint64 { f, _ := e[k].(float64); return uint64(f) }

// ReadEvent reads the next frame and decodes it as JSON.
func (c *Client) ReadEvent() Event {
	c.t.Helper()
	raw := c.Read()
	var e Event
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		c.t.Fatalf("frame is not JSON: %q: %v", raw, err)
	}
	return e
}

// ExpectEvent reads the next frame and checks that it is an event of type
// typ.
func (c *Client) ExpectEvent(typ string) Event {
	c.t.Helper()
	e := c.ReadEvent()
	if e.Str("type") != typ {
		c.t.Fatalf("got %v, want a %q event", e, typ)
	}
	return e
}

// SkipTo reads frames until one satisfies match and returns it.
func (c *Client) SkipTo(match func(string) bool) string {
	c.t.Helper()
	for {
		if s := c.Read(); match(s) {
			return s
		}
	}
}

// ExpectClose reads until the connection ends and checks that it ended
// with a close frame carrying code. Data frames before it are skipped.
func (c *Client) ExpectClose(code int) {
	c.t.Helper()
	c.ExpectCloseReason(code, "")
}

// ExpectCloseReason is ExpectClose that also checks the close reason
// (when reason is not empty). gorilla answers the close frame; the
// connection is then closed, as the server waits for that (up to its
// CloseTimeout) before it counts the user gone.
func (c *Client) ExpectCloseReason(code int, reason string) {
	c.t.Helper()
	defer c.Conn.Close()
	_ = c.Conn.SetReadDeadline(time.Now().Add(Wait))
	for {
		_, _, err := c.Conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close %d", err, code)
		}
		if ce.Code != code || (reason != "" && ce.Text != reason) {
			c.t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}
