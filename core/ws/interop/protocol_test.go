package interop

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// TestProtocolViolations: what a real client sees when it breaks the rules
// (RFC 6455 sections 5.2, 7.4.1, 8.1) or the configured limits.
func TestProtocolViolations(t *testing.T) {
	srv := newTestServer(t, ws.Config{MaxMessageBytes: 1000}, nil)
	cases := []struct {
		name string
		send func(c *websocket.Conn) error
		want int
	}{
		{"invalid-utf8-text", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte{'o', 'k', 0xc3, 0x28})
		}, websocket.CloseInvalidFramePayloadData},
		{"invalid-utf8-across-fragments", func(c *websocket.Conn) error {
			w, err := c.NextWriter(websocket.TextMessage)
			if err != nil {
				return err
			}
			_, _ = w.Write([]byte{0xe2, 0x82}) // € is e2 82 ac; end it with 0x28
			_, _ = w.Write([]byte{0x28})
			return w.Close()
		}, websocket.CloseInvalidFramePayloadData},
		{"message-too-big", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.BinaryMessage, make([]byte, 1001))
		}, websocket.CloseMessageTooBig},
		{"fragmented-too-big", func(c *websocket.Conn) error {
			w, err := c.NextWriter(websocket.BinaryMessage)
			if err != nil {
				return err
			}
			for range 3 {
				_, _ = w.Write(make([]byte, 400))
			}
			return w.Close()
		}, websocket.CloseMessageTooBig},
		{"close-code-1005-on-wire", func(c *websocket.Conn) error {
			return c.WriteControl(websocket.CloseMessage, []byte{0x03, 0xed}, time.Now().Add(eventually))
		}, websocket.CloseProtocolError},
		{"ping-too-long", func(c *websocket.Conn) error {
			// gorilla refuses to build it, so write the frame by hand.
			nc := c.NetConn()
			frame := append([]byte{0x89, 0x80 | 126, 0, 126, 0, 0, 0, 0}, make([]byte, 126)...)
			_, err := nc.Write(frame)
			return err
		}, websocket.CloseProtocolError},
		{"reserved-opcode", func(c *websocket.Conn) error {
			_, err := c.NetConn().Write([]byte{0x83, 0x80, 0, 0, 0, 0})
			return err
		}, websocket.CloseProtocolError},
		{"rsv1-without-extension", func(c *websocket.Conn) error {
			_, err := c.NetConn().Write([]byte{0xc1, 0x80, 0, 0, 0, 0})
			return err
		}, websocket.CloseProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "violation-" + tc.name
			c, _, err := websocket.DefaultDialer.Dial(srv.wsURL(id), nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if err := tc.send(c); err != nil {
				t.Fatalf("send: %v", err)
			}
			_ = c.SetReadDeadline(time.Now().Add(eventually))
			_, _, err = c.ReadMessage()
			c.Close()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.want {
				t.Errorf("client saw %v, want close %d", err, tc.want)
			}
			if sc := srv.rec.waitClose(t, id); int(sc.Code) != tc.want {
				t.Errorf("server OnClose code = %d, want %d", sc.Code, tc.want)
			}
		})
	}
}

// TestKeepalive: with PingInterval set the engine pings a silent client
// (gorilla answers automatically and stays connected); a peer that never
// answers is closed after PingTimeout and OnClose is called.
func TestKeepalive(t *testing.T) {
	t.Run("answering-client-stays", func(t *testing.T) {
		// A generous PingTimeout: a loaded machine must not fail this.
		srv := newTestServer(t, ws.Config{PingInterval: 50 * time.Millisecond, PingTimeout: eventually}, nil)
		c, _, err := websocket.DefaultDialer.Dial(srv.wsURL("keepalive-ok"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pings := make(chan string, 100)
		c.SetPingHandler(func(s string) error {
			select {
			case pings <- s:
			default:
			}
			return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(eventually))
		})
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for i := range 3 {
			select {
			case <-pings:
			case <-time.After(eventually):
				t.Fatalf("ping %d never came", i)
			}
		}
		// Three pings answered: the connection is still usable.
		if err := srv.rec.waitConn(t, "keepalive-ok").WriteMessage(ws.OpText, []byte("still here")); err != nil {
			t.Errorf("server write after pings: %v", err)
		}
	})

	t.Run("silent-peer-closed", func(t *testing.T) {
		srv := newTestServer(t, ws.Config{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, nil)
		// A raw connection that never reads or answers pings.
		_, _, _ = rawHandshake(t, srv.addr, "GET /ws?id=keepalive-dead HTTP/1.1\r\nHost: "+srv.addr+
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		srv.rec.waitConn(t, "keepalive-dead")
		ce := srv.rec.waitClose(t, "keepalive-dead")
		t.Logf("silent peer closed with %d %q", ce.Code, ce.Reason)
	})

	t.Run("idle-timeout", func(t *testing.T) {
		// No pings: a client that sends nothing for IdleTimeout is closed
		// even though it would answer pings; its read then ends.
		srv := newTestServer(t, ws.Config{IdleTimeout: 200 * time.Millisecond}, nil)
		c, _, err := websocket.DefaultDialer.Dial(srv.wsURL("idle"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Reading lets gorilla answer the server's close at once.
		_ = c.SetReadDeadline(time.Now().Add(eventually))
		_, _, err = c.ReadMessage()
		if err == nil {
			t.Fatal("client read a message, want the connection closed")
		}
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() {
			t.Fatalf("client still connected after %v with IdleTimeout 200ms", eventually)
		}
		c.Close()
		ce := srv.rec.waitClose(t, "idle")
		t.Logf("idle client: server OnClose %d %q; client saw %v", ce.Code, ce.Reason, err)
	})
}
