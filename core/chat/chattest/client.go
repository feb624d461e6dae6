package chattest

import (
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
	d := websocket.Dialer{HandshakeTimeout: Wait}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	c, resp, err := d.Dial(url, nil)
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

// ExpectClose reads until the connection ends and checks that it ended
// with a close frame carrying code. Data frames before it are skipped.
func (c *Client) ExpectClose(code int) {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(Wait))
	for {
		if _, _, err := c.Conn.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, code) {
				c.t.Fatalf("connection ended with %v, want close %d", err, code)
			}
			return
		}
	}
}
