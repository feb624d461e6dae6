package interop

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// TestPrepared: messages encoded once with NewPrepared and written to many
// connections (the broadcast path) arrive intact and in order at every
// client, whatever the client library.
func TestPrepared(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	msgs := [][]byte{[]byte("a"), {}, payload(125, true, 1), payload(126, true, 2), payload(70_000, true, 3)}
	const perLib = 3
	type peer struct {
		id string
		c  client
		sc *ws.Conn
	}
	var peers []peer
	for _, cl := range clients {
		for i := range perLib {
			id := fmt.Sprintf("prep-%s-%d", cl.name, i)
			c, _, err := cl.dial(t, srv.wsURL(id), nil, nil)
			if err != nil {
				t.Fatalf("dial %s: %v", id, err)
			}
			peers = append(peers, peer{id, c, srv.rec.waitConn(t, id)})
		}
	}
	for _, op := range []ws.Opcode{ws.OpText, ws.OpBinary} {
		p := ws.NewPrepared(op, msgs...)
		if p.Len() != len(msgs) {
			t.Fatalf("Prepared.Len() = %d, want %d", p.Len(), len(msgs))
		}
		for _, pe := range peers {
			if err := pe.sc.WritePrepared(p); err != nil {
				t.Fatalf("WritePrepared to %s: %v", pe.id, err)
			}
		}
		for _, pe := range peers {
			for i, want := range msgs {
				gotOp, got, err := pe.c.read()
				if err != nil {
					t.Fatalf("%s %v message %d: %v", pe.id, op, i, err)
				}
				if gotOp != op || !bytes.Equal(got, want) {
					t.Errorf("%s %v message %d = %v %s, want %s", pe.id, op, i, gotOp, describe(got), describe(want))
				}
			}
		}
	}
}

// TestExtensionsDeclined: clients offering permessage-deflate get no
// Sec-WebSocket-Extensions back (the engine implements no extension) and
// fall back to plain frames (RFC 6455 section 9.1).
func TestExtensionsDeclined(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	msg := bytes.Repeat([]byte("compressible "), 1000)

	t.Run("gorilla", func(t *testing.T) {
		d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: eventually}
		c, resp, err := d.Dial(srv.wsURL("ext-gorilla"), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Errorf("server accepted extensions %q", ext)
		}
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.ReadMessage(); err != nil || !bytes.Equal(p, msg) {
			t.Errorf("echo: %s, %v", describe(p), err)
		}
	})
	t.Run("coder", func(t *testing.T) {
		ctx := ctxT(t)
		c, resp, err := coder.Dial(ctx, srv.wsURL("ext-coder"), &coder.DialOptions{CompressionMode: coder.CompressionContextTakeover})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Errorf("server accepted extensions %q", ext)
		}
		if err := c.Write(ctx, coder.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.Read(ctx); err != nil || !bytes.Equal(p, msg) {
			t.Errorf("echo: %s, %v", describe(p), err)
		}
	})
}

// TestHixie76 speaks the legacy draft-hixie-thewebsocketprotocol-76 by hand
// (no maintained client implements it), using the draft's own worked
// example (section 1.3/5.2): keys, 8-byte body and the 16-byte answer.
func TestHixie76(t *testing.T) {
	srv := newTestServer(t, ws.Config{Hixie76: true}, nil)
	req := "GET /ws?id=hixie HTTP/1.1\r\n" +
		"Host: " + srv.addr + "\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n" +
		"Upgrade: WebSocket\r\n" +
		"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n" +
		"Origin: http://" + srv.addr + "\r\n" +
		"\r\n" +
		"^n:ds[4U"
	resp, br, nc := rawHandshake(t, srv.addr, req)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Location"), "ws://"+srv.addr+"/ws?id=hixie"; got != want {
		t.Errorf("Sec-WebSocket-Location = %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Origin"), "http://"+srv.addr; got != want {
		t.Errorf("Sec-WebSocket-Origin = %q, want %q", got, want)
	}
	answer := make([]byte, 16)
	if _, err := io.ReadFull(br, answer); err != nil {
		t.Fatalf("read challenge answer: %v", err)
	}
	if string(answer) != "8jKS'y:G*Co,Wxa-" {
		t.Fatalf("challenge answer %q, want %q", answer, "8jKS'y:G*Co,Wxa-")
	}
	sc := srv.rec.waitConn(t, "hixie")
	if !sc.Hixie76() {
		t.Errorf("Conn.Hixie76() = false")
	}
	// A text frame is 0x00 <UTF-8> 0xFF.
	if _, err := nc.Write([]byte("\x00héllo\xff")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len("\x00héllo\xff"))
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "\x00héllo\xff" {
		t.Fatalf("echo %q, %v", echo, err)
	}
	// The closing handshake is 0xFF 0x00 each way.
	if _, err := nc.Write([]byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 2)
	if _, err := io.ReadFull(br, reply); err != nil || !bytes.Equal(reply, []byte{0xff, 0x00}) {
		t.Errorf("close reply %x, %v; want ff00", reply, err)
	}
	nc.Close()
	srv.rec.waitClose(t, "hixie")
}
