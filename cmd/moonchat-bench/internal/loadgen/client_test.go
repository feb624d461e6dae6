package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/ws"
)

// rawServer accepts one TCP connection and hands it to serve, which
// plays the server side byte by byte.
func rawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c, bufio.NewReader(c))
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "ws://" + ln.Addr().String() + "/chat/x"
}

// readRequest reads the upgrade request and returns its key.
func readRequest(t *testing.T, br *bufio.Reader) *http.Request {
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Errorf("read request: %v", err)
		return nil
	}
	return req
}

func answer(c net.Conn, accept string, extra string) {
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
		accept+"\r\n"+extra+"\r\n")
}

// serverFrame encodes an unmasked server frame.
func serverFrame(fin bool, op ws.Opcode, p []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch {
	case len(p) <= 125:
		b = append(b, byte(len(p)))
	case len(p) <= 0xFFFF:
		b = append(b, 126, byte(len(p)>>8), byte(len(p)))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	}
	return append(b, p...)
}

// readClientFrame reads one frame from the client, checks it is masked
// and returns it unmasked.
func readClientFrame(t *testing.T, br *bufio.Reader) (ws.Opcode, []byte) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Errorf("read client frame: %v", err)
		return 0, nil
	}
	if h[1]&0x80 == 0 {
		t.Errorf("client frame not masked")
	}
	n := int(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	var key [4]byte
	io.ReadFull(br, key[:])
	p := make([]byte, n)
	io.ReadFull(br, p)
	for i := range p {
		p[i] ^= key[i%4]
	}
	return ws.Opcode(h[0] & 0x0F), p
}

func TestDialHandshake(t *testing.T) {
	tests := []struct {
		name    string
		respond func(c net.Conn, key string)
		wantErr error
		wantSub string
	}{
		{"valid", func(c net.Conn, key string) { answer(c, ws.AcceptKey(key), "") }, nil, ""},
		{"subprotocol", func(c net.Conn, key string) {
			answer(c, ws.AcceptKey(key), "Sec-WebSocket-Protocol: moonchat.v1\r\n")
		}, nil, "moonchat.v1"},
		{"wrong accept", func(c net.Conn, key string) { answer(c, ws.AcceptKey(key+"x"), "") }, ErrBadHandshake, ""},
		{"no accept", func(c net.Conn, key string) { answer(c, "", "") }, ErrBadHandshake, ""},
		{"not offered subprotocol", func(c net.Conn, key string) {
			answer(c, ws.AcceptKey(key), "Sec-WebSocket-Protocol: other\r\n")
		}, ErrBadHandshake, ""},
		{"extension", func(c net.Conn, key string) {
			answer(c, ws.AcceptKey(key), "Sec-WebSocket-Extensions: permessage-deflate\r\n")
		}, ErrBadHandshake, ""},
		{"404", func(c net.Conn, key string) {
			io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno room\r\n")
		}, ErrBadHandshake, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				req := readRequest(t, br)
				if req == nil {
					return
				}
				if req.Header.Get("Sec-WebSocket-Version") != "13" || req.Header.Get("Upgrade") != "websocket" || req.URL.Path != "/chat/x" {
					t.Errorf("bad request: %v %v", req.URL, req.Header)
				}
				tt.respond(c, req.Header.Get("Sec-WebSocket-Key"))
				io.Copy(io.Discard, br)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, url, DialOptions{Subprotocols: []string{"moonchat.v1"}})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dial error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if c.Subprotocol() != tt.wantSub {
					t.Errorf("subprotocol %q, want %q", c.Subprotocol(), tt.wantSub)
				}
				c.Close()
			}
		})
	}
}

func TestAcceptKey(t *testing.T) {
	// The example of RFC 6455 section 1.3.
	if got := ws.AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("acceptKey = %q", got)
	}
}

// TestFramesOnTheWire checks what the client writes (masked frames, one
// write for a batch, lengths in all three encodings) and how it reads
// fragments with a ping in the middle (answered with the same payload).
func TestFramesOnTheWire(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 70000)
	mid := bytes.Repeat([]byte("b"), 300)
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		req := readRequest(t, br)
		answer(c, ws.AcceptKey(req.Header.Get("Sec-WebSocket-Key")), "")
		for _, want := range [][]byte{[]byte("hi"), mid, long} {
			op, p := readClientFrame(t, br)
			if op != ws.OpText || !bytes.Equal(p, want) {
				t.Errorf("got op %d, %d bytes; want text of %d", op, len(p), len(want))
			}
		}
		var out []byte
		out = append(out, serverFrame(false, ws.OpText, []byte("frag-"))...)
		out = append(out, serverFrame(true, ws.OpPing, []byte("are you there"))...)
		out = append(out, serverFrame(false, ws.OpContinuation, []byte("men-"))...)
		out = append(out, serverFrame(true, ws.OpContinuation, []byte("ted"))...)
		out = append(out, serverFrame(true, ws.OpBinary, mid)...)
		c.Write(out)
		if op, p := readClientFrame(t, br); op != ws.OpPong || string(p) != "are you there" {
			t.Errorf("pong: op %d payload %q", op, p)
		}
		c.Write(serverFrame(true, ws.OpClose, append([]byte{0x03, 0xe9}, "going away"...)))
		if op, p := readClientFrame(t, br); op != ws.OpClose || !bytes.Equal(p, []byte{0x03, 0xe9}) {
			t.Errorf("close reply: op %d payload %x", op, p)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteText([]byte("hi"), mid, long); err != nil {
		t.Fatal(err)
	}
	op, p, err := c.ReadMessage()
	if err != nil || op != ws.OpText || string(p) != "frag-men-ted" {
		t.Fatalf("ReadMessage = %d %q %v", op, p, err)
	}
	op, p, err = c.ReadMessage()
	if err != nil || op != ws.OpBinary || !bytes.Equal(p, mid) {
		t.Fatalf("ReadMessage = %d %d bytes %v", op, len(p), err)
	}
	_, _, err = c.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "going away" {
		t.Fatalf("ReadMessage error = %v, want close 1001", err)
	}
	if err := c.WriteText([]byte("late")); !errors.Is(err, ErrConnClosed) {
		t.Errorf("write after close = %v, want ErrConnClosed", err)
	}
}

// TestAgainstGorilla talks to a gorilla/websocket echo server: text and
// binary, a large message gorilla fragments, a ping from the server, and
// the closing handshake started by the client.
func TestAgainstGorilla(t *testing.T) {
	closed := make(chan int, 1)
	up := websocket.Upgrader{WriteBufferSize: 1024}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		pong := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		if err := c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(5*time.Second)); err != nil {
			t.Error(err)
		}
		for {
			op, data, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					closed <- ce.Code
				}
				select {
				case s := <-pong:
					if s != "p1" {
						t.Errorf("pong %q", s)
					}
				default:
					t.Error("no pong")
				}
				return
			}
			// NextWriter with a small buffer sends a long message as
			// several fragments.
			w, _ := c.NextWriter(op)
			w.Write(data)
			w.Close()
		}
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("0123456789"), 10000)
	for _, msg := range [][]byte{[]byte("hello"), long} {
		if err := c.WriteText(msg); err != nil {
			t.Fatal(err)
		}
		op, got, err := c.ReadMessage()
		if err != nil || op != ws.OpText || !bytes.Equal(got, msg) {
			t.Fatalf("echo: op %d, %d bytes, %v", op, len(got), err)
		}
	}
	err = c.CloseHandshake(1000, "bye", 5*time.Second)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 1000 {
		t.Fatalf("CloseHandshake = %v, want the server's close 1000", err)
	}
	select {
	case code := <-closed:
		if code != 1000 {
			t.Errorf("server saw close %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no close frame")
	}
}

// TestAgainstOurServer exchanges messages with core/chat directly.
func TestAgainstOurServer(t *testing.T) {
	ts := startChat(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ts+"/chat/t?name=alice", DialOptions{Subprotocols: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteText([]byte("hello there")); err != nil {
		t.Fatal(err)
	}
	for {
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(p) == "alice: hello there" {
			break
		}
		if !strings.HasPrefix(string(p), "* ") {
			t.Fatalf("unexpected line %q", p)
		}
	}
	if err := c.CloseHandshake(1000, "", 5*time.Second); err == nil {
		t.Error("no close frame from the server")
	}
}
