package interop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// client is the little the table-driven tests need from a third-party
// WebSocket client; gorillaClient and coderClient adapt the real libraries.
type client interface {
	write(op ws.Opcode, p []byte) error
	read() (ws.Opcode, []byte, error)
	// sendClose starts a client-initiated closing handshake.
	sendClose(code ws.StatusCode, reason string) error
	subprotocol() string
	// closeNow drops the TCP connection.
	closeNow()
}

// dialer dials url offering protocols with extra request headers.
type dialer func(t testing.TB, url string, protocols []string, h http.Header) (client, *http.Response, error)

// clients lists the third-party clients every table runs against.
var clients = []struct {
	name string
	dial dialer
}{
	{"gorilla", dialGorilla},
	{"coder", dialCoder},
}

type gorillaClient struct{ c *websocket.Conn }

func dialGorilla(t testing.TB, url string, protocols []string, h http.Header) (client, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: eventually, Subprotocols: protocols}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return &gorillaClient{c}, resp, nil
}

func (g *gorillaClient) write(op ws.Opcode, p []byte) error {
	_ = g.c.SetWriteDeadline(time.Now().Add(eventually))
	return g.c.WriteMessage(int(op), p)
}

func (g *gorillaClient) read() (ws.Opcode, []byte, error) {
	_ = g.c.SetReadDeadline(time.Now().Add(eventually))
	op, p, err := g.c.ReadMessage()
	if err != nil {
		// As gorilla applications do: once reading fails (a close frame was
		// received and answered), close the TCP connection.
		_ = g.c.Close()
	}
	return ws.Opcode(op), p, err
}

func (g *gorillaClient) sendClose(code ws.StatusCode, reason string) error {
	msg := websocket.FormatCloseMessage(int(code), reason)
	if code == ws.StatusNoStatusRcvd {
		msg = nil // a close frame with no payload
	}
	return g.c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(eventually))
}

func (g *gorillaClient) subprotocol() string { return g.c.Subprotocol() }
func (g *gorillaClient) closeNow()           { _ = g.c.Close() }

type coderClient struct {
	c   *coder.Conn
	ctx context.Context
}

func dialCoder(t testing.TB, url string, protocols []string, h http.Header) (client, *http.Response, error) {
	ctx := ctxT(t)
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{Subprotocols: protocols, HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(64 << 20) // coder's default is 32 KiB
	t.Cleanup(func() { _ = c.CloseNow() })
	return &coderClient{c, ctx}, resp, nil
}

func (c *coderClient) write(op ws.Opcode, p []byte) error {
	return c.c.Write(c.ctx, coder.MessageType(op), p)
}

func (c *coderClient) read() (ws.Opcode, []byte, error) {
	typ, p, err := c.c.Read(c.ctx)
	return ws.Opcode(typ), p, err
}

func (c *coderClient) sendClose(code ws.StatusCode, reason string) error {
	// coder.Conn.Close performs the whole handshake: it waits for the
	// server's close frame, so a nil error means the server answered.
	return c.c.Close(coder.StatusCode(code), reason)
}

func (c *coderClient) subprotocol() string { return c.c.Subprotocol() }
func (c *coderClient) closeNow()           { _ = c.c.CloseNow() }

// closeOf extracts the close code and reason a client library reported.
func closeOf(err error) (code int, reason string, ok bool) {
	var ge *websocket.CloseError
	if errors.As(err, &ge) {
		return ge.Code, ge.Text, true
	}
	var ce coder.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), ce.Reason, true
	}
	return 0, "", false
}

// readUntilClose reads (discarding data messages) until the client reports
// the connection closed, and returns the close code and reason it saw.
func readUntilClose(t testing.TB, c client) (int, string) {
	t.Helper()
	for range 1000 {
		_, _, err := c.read()
		if err == nil {
			continue
		}
		code, reason, ok := closeOf(err)
		if !ok {
			t.Fatalf("client read ended with %v, want a close frame", err)
		}
		return code, reason
	}
	t.Fatal("no close after 1000 messages")
	return 0, ""
}

func describe(p []byte) string {
	if len(p) > 32 {
		return fmt.Sprintf("%d bytes %x…", len(p), p[:16])
	}
	return fmt.Sprintf("%q", p)
}
