package interop

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// TestEchoMessages sends messages of every length-encoding boundary (7-bit,
// 16-bit, 64-bit; RFC 6455 section 5.2) and checks the echo byte for byte.
func TestEchoMessages(t *testing.T) {
	sizes := []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"small", 5},
		{"125", 125},
		{"126", 126},
		{"65535", 65535},
		{"65536", 65536},
		{"16MiB", 16 << 20},
	}
	// Default Config: the echo of a 16 MiB message is mostly queued (the
	// socket takes a few MiB at once), far over the 4 MiB MaxQueueBytes; the
	// engine admits one message over the bound when nothing is queued before
	// it, so a reading client gets it (Autobahn 9.1.6/9.2.6 likewise).
	srv := newTestServer(t, ws.Config{}, nil)
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			c, _, err := cl.dial(t, srv.wsURL("echo-"+cl.name), nil, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			for _, sz := range sizes {
				for _, op := range []ws.Opcode{ws.OpText, ws.OpBinary} {
					t.Run(fmt.Sprintf("%s/%s", sz.name, op), func(t *testing.T) {
						if testing.Short() && sz.n > 1<<20 {
							t.Skip("large message in -short mode")
						}
						want := payload(sz.n, op == ws.OpText, 1)
						if err := c.write(op, want); err != nil {
							t.Fatalf("write: %v", err)
						}
						gotOp, got, err := c.read()
						if err != nil {
							t.Fatalf("read echo: %v", err)
						}
						if gotOp != op {
							t.Errorf("echo opcode = %v, want %v", gotOp, op)
						}
						if !bytes.Equal(got, want) {
							t.Errorf("echo = %s, want %s", describe(got), describe(want))
						}
					})
				}
			}
		})
	}
}

// TestFragmentedMessages has the clients send one message as several frames
// (RFC 6455 section 5.4): gorilla flushes a frame each time its small write
// buffer fills and a ping is interleaved between fragments (section 5.5:
// control frames may be injected in the middle of a fragmented message);
// coder writes one frame per Write call.
func TestFragmentedMessages(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	msg := payload(10_000, true, 7)
	parts := [][]byte{msg[:1], msg[1:3000], msg[3000:3001], msg[3001:9000], msg[9000:]}
	if !bytes.Equal(bytes.Join(parts, nil), msg) {
		t.Fatal("bad test split")
	}

	t.Run("gorilla", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: eventually, WriteBufferSize: 512}
		c, _, err := d.Dial(srv.wsURL("frag-gorilla"), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		pongs := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		for _, op := range []int{websocket.TextMessage, websocket.BinaryMessage} {
			w, err := c.NextWriter(op)
			if err != nil {
				t.Fatalf("NextWriter: %v", err)
			}
			for i, p := range parts {
				if _, err := w.Write(p); err != nil {
					t.Fatalf("write part %d: %v", i, err)
				}
				if i == 1 {
					if err := c.WriteControl(websocket.PingMessage, []byte("mid"), time.Now().Add(eventually)); err != nil {
						t.Fatalf("ping between fragments: %v", err)
					}
				}
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close writer: %v", err)
			}
			_ = c.SetReadDeadline(time.Now().Add(eventually))
			gotOp, got, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if gotOp != op || !bytes.Equal(got, msg) {
				t.Errorf("echo = op %d %s, want op %d %s", gotOp, describe(got), op, describe(msg))
			}
			select {
			case p := <-pongs:
				if p != "mid" {
					t.Errorf("pong payload = %q, want %q", p, "mid")
				}
			default:
				// The pong for a ping sent before the message's last frame
				// must precede the echo of that message on the wire.
				t.Errorf("no pong for the ping sent between fragments")
			}
		}
	})

	t.Run("coder", func(t *testing.T) {
		ctx := ctxT(t)
		c, _, err := coder.Dial(ctx, srv.wsURL("frag-coder"), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		for _, typ := range []coder.MessageType{coder.MessageText, coder.MessageBinary} {
			w, err := c.Writer(ctx, typ)
			if err != nil {
				t.Fatalf("Writer: %v", err)
			}
			for i, p := range parts {
				if _, err := w.Write(p); err != nil {
					t.Fatalf("write part %d: %v", i, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close writer: %v", err)
			}
			gotTyp, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if gotTyp != typ || !bytes.Equal(got, msg) {
				t.Errorf("echo = %v %s, want %v %s", gotTyp, describe(got), typ, describe(msg))
			}
		}
	})
}

// TestPings checks that a client's ping is answered with a pong carrying the
// same payload (RFC 6455 section 5.5.3) and that Conn.Ping reaches the client.
func TestPings(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	payloads := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"short", []byte("hello")},
		{"binary", []byte{0, 0xff, 0x80, 0x7f}},
		{"125", payload(125, false, 3)},
	}

	t.Run("gorilla", func(t *testing.T) {
		c, _, err := websocket.DefaultDialer.Dial(srv.wsURL("ping-gorilla"), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		pongs := make(chan string, 8)
		pings := make(chan string, 8)
		c.SetPongHandler(func(s string) error { pongs <- s; return nil })
		c.SetPingHandler(func(s string) error {
			pings <- s
			return c.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(eventually))
		})
		readErr := make(chan error, 1)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					readErr <- err
					return
				}
			}
		}()
		for _, tc := range payloads {
			t.Run(tc.name, func(t *testing.T) {
				if err := c.WriteControl(websocket.PingMessage, tc.p, time.Now().Add(eventually)); err != nil {
					t.Fatalf("ping: %v", err)
				}
				select {
				case got := <-pongs:
					if got != string(tc.p) {
						t.Errorf("pong payload = %x, want %x", got, tc.p)
					}
				case err := <-readErr:
					t.Fatalf("connection ended: %v", err)
				case <-time.After(eventually):
					t.Fatal("no pong")
				}
			})
		}
		t.Run("server-ping", func(t *testing.T) {
			sc := srv.rec.waitConn(t, "ping-gorilla")
			if err := sc.Ping([]byte("from-server")); err != nil {
				t.Fatalf("Conn.Ping: %v", err)
			}
			select {
			case got := <-pings:
				if got != "from-server" {
					t.Errorf("client saw ping %q, want %q", got, "from-server")
				}
			case <-time.After(eventually):
				t.Fatal("client saw no ping")
			}
		})
	})

	t.Run("coder", func(t *testing.T) {
		ctx := ctxT(t)
		c, _, err := coder.Dial(ctx, srv.wsURL("ping-coder"), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		readCtx := c.CloseRead(ctx) // someone must read for pongs to be seen
		for i := range 3 {
			// coder sends a random payload and returns only once a pong
			// with exactly that payload arrives.
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("ping %d: %v (read side: %v)", i, err, context.Cause(readCtx))
			}
		}
	})
}

// TestServerClose: Conn.Close(code, reason) on the server; the client sees
// that code and reason, answers, and the server's OnClose reports the code.
func TestServerClose(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	cases := []struct {
		code   ws.StatusCode
		reason string
	}{
		{ws.StatusNormalClosure, ""},
		{ws.StatusGoingAway, "going away"},
		{ws.StatusPolicyViolation, "policy"},
		{ws.StatusTryAgainLater, "later"},
		{4000, "bye"},
		{3001, strings.Repeat("r", 123)}, // the longest reason that fits a control frame
		{ws.StatusNormalClosure, "ünïcödé ✓"},
	}
	for _, cl := range clients {
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%s/%d-%d", cl.name, tc.code, i), func(t *testing.T) {
				id := fmt.Sprintf("sclose-%s-%d", cl.name, i)
				c, _, err := cl.dial(t, srv.wsURL(id), nil, nil)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				sc := srv.rec.waitConn(t, id)
				if err := sc.Close(tc.code, tc.reason); err != nil {
					t.Fatalf("Conn.Close: %v", err)
				}
				code, reason := readUntilClose(t, c)
				if code != int(tc.code) || reason != tc.reason {
					t.Errorf("client saw close %d %q, want %d %q", code, reason, tc.code, tc.reason)
				}
				ce := srv.rec.waitClose(t, id)
				if ce.Code != tc.code {
					t.Errorf("server OnClose code = %d, want %d", ce.Code, tc.code)
				}
				if err := sc.WriteMessage(ws.OpText, []byte("late")); err == nil {
					t.Errorf("WriteMessage after close = nil, want an error")
				}
			})
		}
	}
}

// TestClientClose: the client starts the closing handshake; the server's
// OnClose sees the client's code and reason (1005 for an empty close frame,
// 1006 when TCP drops without one — RFC 6455 section 7.1.5).
func TestClientClose(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	cases := []struct {
		name   string
		code   ws.StatusCode
		reason string
		drop   bool
	}{
		{"normal", ws.StatusNormalClosure, "done", false},
		{"going-away", ws.StatusGoingAway, "", false},
		{"app-4123", 4123, "app reason ✓", false},
		{"no-status", ws.StatusNoStatusRcvd, "", false},
		{"tcp-drop", ws.StatusAbnormalClosure, "", true},
	}
	for _, cl := range clients {
		for _, tc := range cases {
			if cl.name == "coder" && tc.code == ws.StatusNoStatusRcvd {
				continue // coder cannot send an empty close frame
			}
			t.Run(cl.name+"/"+tc.name, func(t *testing.T) {
				id := "cclose-" + cl.name + "-" + tc.name
				c, _, err := cl.dial(t, srv.wsURL(id), nil, nil)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				srv.rec.waitConn(t, id)
				if tc.drop {
					c.closeNow()
				} else if err := c.sendClose(tc.code, tc.reason); err != nil {
					t.Fatalf("client close: %v", err)
				}
				if cl.name == "gorilla" && !tc.drop {
					// The server must echo the close (section 5.5.1).
					code, _ := readUntilClose(t, c)
					want := int(tc.code)
					if tc.code == ws.StatusNoStatusRcvd {
						want = websocket.CloseNoStatusReceived
					}
					if code != want {
						t.Errorf("server answered close with %d, want %d", code, want)
					}
				}
				ce := srv.rec.waitClose(t, id)
				// After a TCP drop there is no peer reason; the engine may
				// describe the failure, so only the code is compared.
				if ce.Code != tc.code || (!tc.drop && ce.Reason != tc.reason) {
					t.Errorf("server OnClose = %d %q, want %d %q", ce.Code, ce.Reason, tc.code, tc.reason)
				}
			})
		}
	}
}
