package main

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// countingConn counts the bytes read from the network.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestServeCompression: [server] compression = "on" (the default)
// negotiates permessage-deflate with a client that offers it, and a long
// chat message reaches another member compressed on the wire; "off"
// declines the offer and the same message travels as it is.
func TestServeCompression(t *testing.T) {
	text := strings.Repeat("the deploy of moonchat went well, ", 60) // ~2 KB, compresses well
	for _, mode := range []string{"on", "off"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, map[string]string{"server": "compression = \"" + mode + "\"\n"})
			srv := startInProcess(t, cfg)
			dial := func(name string, read *atomic.Int64) *websocket.Conn {
				t.Helper()
				d := websocket.Dialer{
					EnableCompression: true,
					NetDial: func(network, addr string) (net.Conn, error) {
						c, err := net.Dial(network, addr)
						if err != nil {
							return nil, err
						}
						return countingConn{c, read}, nil
					},
				}
				c, resp, err := d.Dial("ws://"+srv.addr+"/chat/lobby?name="+name, nil)
				if err != nil {
					t.Fatalf("dial %s: %v", name, err)
				}
				t.Cleanup(func() { c.Close() })
				ext := resp.Header.Get("Sec-WebSocket-Extensions")
				if got := strings.HasPrefix(ext, "permessage-deflate"); got != (mode == "on") {
					t.Fatalf("compression = %q: Sec-WebSocket-Extensions %q", mode, ext)
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				return c
			}
			readUntil := func(c *websocket.Conn, want string) {
				t.Helper()
				for {
					_, b, err := c.ReadMessage()
					if err != nil {
						t.Fatalf("reading for %q: %v", want, err)
					}
					if strings.Contains(string(b), want) {
						return
					}
				}
			}
			var aliceRead, bobRead atomic.Int64
			alice := dial("alice", &aliceRead)
			bob := dial("bob", &bobRead)
			readUntil(alice, "bob joined")
			readUntil(bob, "bob joined")
			before := bobRead.Load()
			if err := alice.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
				t.Fatal(err)
			}
			readUntil(bob, "alice: "+text)
			got := bobRead.Load() - before
			if mode == "on" && got > int64(len(text))/4 {
				t.Errorf("compressed: the %d-byte message took %d bytes on the wire", len(text), got)
			}
			if mode == "off" && got < int64(len(text)) {
				t.Errorf("uncompressed: the %d-byte message took only %d bytes on the wire", len(text), got)
			}
			if code := srv.stop(t); code != 0 {
				t.Fatalf("server exit code %d", code)
			}
		})
	}
}
