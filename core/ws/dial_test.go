package ws

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

	coder "github.com/coder/websocket"

	"github.com/moonchat/moonchat/core/ws/internal/mask"
)

// TestDialRoundTrip talks to our own server (both drivers) through Dial:
// the chosen subprotocol, custom headers reaching the server, text and
// binary messages of every length encoding echoed back, a ping answered on
// the way, and the closing handshake started by the client.
func TestDialRoundTrip(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		h := newRecHandler()
		var auth string
		ts := newTestServer(t, Config{Subprotocols: []string{"moonchat.v1", "chat"}}, fallback, h)
		// Wrap the server to see the request the client sent.
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth = r.Header.Get("Authorization")
			ts.srv.ServeHTTP(w, r)
		}))
		defer hs.Close()
		ctx := context.Background()
		c, resp, err := Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/chat", &DialOptions{
			Subprotocols: []string{"nope", "chat"},
			HTTPHeader:   http.Header{"Authorization": {"Bearer t0ken"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "chat" || auth != "Bearer t0ken" {
			t.Fatalf("status %d, subprotocol %q, Authorization %q", resp.StatusCode, c.Subprotocol(), auth)
		}
		open := h.next(t, "open")
		for _, m := range [][]byte{nil, []byte("héllo"), bytes.Repeat([]byte("x"), 200), bytes.Repeat([]byte("y"), 70000)} {
			for _, op := range []Opcode{OpText, OpBinary} {
				if err := c.WriteMessage(ctx, op, m); err != nil {
					t.Fatal(err)
				}
				gotOp, got, err := c.ReadMessage(ctx)
				if err != nil || gotOp != op || !bytes.Equal(got, m) {
					t.Fatalf("echo of %s %d bytes: %s %d bytes, %v", op, len(m), gotOp, len(got), err)
				}
			}
		}
		if err := open.c.Ping([]byte("p")); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(ctx, OpText, []byte("after ping")); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(ctx); err != nil || string(got) != "after ping" {
			t.Fatalf("after ping: %q, %v", got, err)
		}
		if err := c.Close(StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if ce := h.next(t, "close").err; ce.Code != StatusNormalClosure || ce.Reason != "bye" {
			t.Fatalf("server saw %v, want 1000 bye", ce)
		}
		if err := c.WriteMessage(ctx, OpText, []byte("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("write after Close: %v, want ErrClosed", err)
		}
	})
}

// TestDialServerCloses checks the closing handshake the server starts:
// ReadMessage returns its code and reason, and the server gets the echo
// (its OnClose reports the clean close, not 1006).
func TestDialServerCloses(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		h := newRecHandler()
		ts := newTestServer(t, Config{}, fallback, h)
		c, sc := openClient(t, ts)
		_ = sc.Close(StatusGoingAway, "restart")
		_, _, err := c.ReadMessage(context.Background())
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != StatusGoingAway || ce.Reason != "restart" {
			t.Fatalf("ReadMessage: %v, want 1001 restart", err)
		}
		if got := h.next(t, "close").err; got.Code != StatusGoingAway {
			t.Fatalf("server OnClose %v, want 1001 (answered)", got)
		}
		if _, _, err2 := c.ReadMessage(context.Background()); err2 != err {
			t.Fatalf("second read: %v, want the same close error", err2)
		}
	})
}

// fakeServer accepts one connection, reads the upgrade request and lets
// respond answer it; it returns the listener's address and a channel with
// the server side of the connection and the request.
type fakeConn struct {
	nc  net.Conn
	br  *bufio.Reader
	req *http.Request
}

func fakeServer(t *testing.T, respond func(fc *fakeConn)) (string, <-chan *fakeConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *fakeConn, 1)
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			nc.Close()
			return
		}
		fc := &fakeConn{nc: nc, br: br, req: req}
		respond(fc)
		got <- fc
	}()
	return ln.Addr().String(), got
}

// accept answers fc's request with a valid 101 plus extra header lines.
func accept(fc *fakeConn, extra string) {
	key := fc.req.Header.Get("Sec-WebSocket-Key")
	_, _ = io.WriteString(fc.nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
		AcceptKey(key)+"\r\n"+extra+"\r\n")
}

// readClientFrame reads one frame the client sent, checks that it is
// masked (section 5.3) and returns its opcode and unmasked payload.
func readClientFrame(t *testing.T, br *bufio.Reader) (Opcode, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read client frame: %v", err)
	}
	if h[1]&maskBit == 0 {
		t.Fatalf("client frame %x not masked", h)
	}
	n := int(h[1] & lenBits)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	var key [4]byte
	_, _ = io.ReadFull(br, key[:])
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("read client payload: %v", err)
	}
	mask.Apply(key, 0, p)
	return Opcode(h[0] & opBits), p
}

// TestDialMasking checks both rules of section 5.1/5.3 from the client's
// side: every client frame is masked (with keys that differ), and a masked
// frame from the server fails the connection with 1002, which the client
// sends in its own (masked) close frame.
func TestDialMasking(t *testing.T) {
	addr, conns := fakeServer(t, func(fc *fakeConn) { accept(fc, "") })
	c, _, err := Dial(context.Background(), "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := <-conns
	ctx := context.Background()
	for _, m := range []string{"one", "two"} {
		if err := c.WriteMessage(ctx, OpText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if op, p := readClientFrame(t, fc.br); op != OpText || string(p) != m {
			t.Fatalf("server got %s %q, want text %q", op, p, m)
		}
	}
	// An unmasked server frame is read; a masked one is refused.
	_, _ = fc.nc.Write(append(appendFrame(nil, OpText, []byte("plain")), frame(finBit|byte(OpText), []byte("masked"))...))
	if _, got, err := c.ReadMessage(ctx); err != nil || string(got) != "plain" {
		t.Fatalf("unmasked server frame: %q, %v", got, err)
	}
	_, _, err = c.ReadMessage(ctx)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != StatusProtocolError {
		t.Fatalf("masked server frame: %v, want 1002", err)
	}
	op, p := readClientFrame(t, fc.br)
	if op != OpClose || len(p) < 2 || StatusCode(binary.BigEndian.Uint16(p)) != StatusProtocolError {
		t.Fatalf("client sent %s %q, want close 1002", op, p)
	}
}

// TestDialRefusals checks that Dial fails, with ErrBadHandshake and the
// response, when the answer breaks section 4.1: a wrong accept key, a
// subprotocol or extension that was not offered, no upgrade, a refusal.
func TestDialRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(fc *fakeConn)
		want    string
	}{
		{"bad accept", func(fc *fakeConn) {
			_, _ = io.WriteString(fc.nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
				AcceptKey("dGhlIHNhbXBsZSBub25jZQ==")+"\r\n\r\n")
		}, "Sec-WebSocket-Accept"},
		{"subprotocol not offered", func(fc *fakeConn) { accept(fc, "Sec-WebSocket-Protocol: other\r\n") }, `subprotocol "other"`},
		{"extension not offered", func(fc *fakeConn) { accept(fc, "Sec-WebSocket-Extensions: permessage-deflate\r\n") }, "extension"},
		{"no upgrade", func(fc *fakeConn) {
			_, _ = io.WriteString(fc.nc, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
				AcceptKey(fc.req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		}, "Upgrade"},
		{"refused", func(fc *fakeConn) {
			_, _ = io.WriteString(fc.nc, "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno entry\n")
		}, "403"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := fakeServer(t, tc.respond)
			c, resp, err := Dial(context.Background(), "ws://"+addr+"/", &DialOptions{Subprotocols: []string{"chat"}})
			if c != nil || !errors.Is(err, ErrBadHandshake) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial: %v, want ErrBadHandshake mentioning %q", err, tc.want)
			}
			if resp == nil {
				t.Fatal("no response returned")
			}
			if tc.name == "refused" {
				if body, _ := io.ReadAll(resp.Body); string(body) != "no entry\n" {
					t.Fatalf("refusal body %q", body)
				}
			}
		})
	}
}

// TestDialHeaderRules checks that Dial refuses extra headers that would
// replace the handshake's own or split the request, before dialling.
func TestDialHeaderRules(t *testing.T) {
	for _, h := range []http.Header{
		{"Sec-WebSocket-Protocol": {"chat"}},
		{"Host": {"evil.example"}},
		{"X-Test": {"a\r\nInjected: 1"}},
	} {
		if _, _, err := Dial(context.Background(), "ws://127.0.0.1:1/", &DialOptions{HTTPHeader: h}); err == nil || errors.Is(err, ErrBadHandshake) {
			t.Errorf("header %v: %v, want a refusal before dialling", h, err)
		}
	}
}

// TestDialCancelDuringHandshake cancels ctx while the server sits on the
// request: Dial returns the context's error at once, without a connection.
func TestDialCancelDuringHandshake(t *testing.T) {
	requested := make(chan struct{})
	release := make(chan struct{})
	addr, _ := fakeServer(t, func(fc *fakeConn) {
		close(requested)
		<-release // never answer until the test ends
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-requested
		cancel()
	}()
	c, _, err := Dial(ctx, "ws://"+addr+"/", nil)
	if c != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v, want context.Canceled", err)
	}
}

// TestReadMessageCancel checks that a read cancelled by its ctx returns
// the context's error and leaves the connection closed.
func TestReadMessageCancel(t *testing.T) {
	ts := newTestServer(t, Config{}, false, nil)
	c, _ := openClient(t, ts)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		cancel()
	}()
	if _, _, err := c.ReadMessage(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadMessage: %v, want context.Canceled", err)
	}
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("second ReadMessage: %v, want the same error", err)
	}
	if ce := ts.h.next(t, "close").err; ce.Code != StatusAbnormalClosure {
		t.Fatalf("server saw %v, want 1006 (connection dropped)", ce)
	}
}

// TestDialInterop talks to a third-party server, github.com/coder/websocket:
// subprotocol, echo, a close started by the client, and one by the server.
func TestDialInterop(t *testing.T) {
	serverClose := make(chan error, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc, err := coder.Accept(w, r, &coder.AcceptOptions{Subprotocols: []string{"chat"}})
		if err != nil {
			return
		}
		sc.SetReadLimit(1 << 20)
		ctx := r.Context()
		if r.URL.Path == "/bye" {
			serverClose <- sc.Close(coder.StatusGoingAway, "bye")
			return
		}
		for {
			typ, p, err := sc.Read(ctx)
			if err != nil {
				serverClose <- err
				return
			}
			if err := sc.Write(ctx, typ, p); err != nil {
				return
			}
		}
	}))
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	ctx := context.Background()

	c, _, err := Dial(ctx, url+"/echo", &DialOptions{Subprotocols: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "chat" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	for _, m := range []string{"hello", strings.Repeat("z", 100000)} {
		if err := c.WriteMessage(ctx, OpText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if op, got, err := c.ReadMessage(ctx); err != nil || op != OpText || string(got) != m {
			t.Fatalf("echo: %s %d bytes, %v", op, len(got), err)
		}
	}
	if err := c.Close(StatusNormalClosure, "done"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-serverClose; coder.CloseStatus(err) != coder.StatusNormalClosure {
		t.Fatalf("coder server read ended with %v, want 1000", err)
	}

	c, _, err = Dial(ctx, url+"/bye", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage(ctx)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != StatusGoingAway || ce.Reason != "bye" {
		t.Fatalf("ReadMessage: %v, want 1001 bye", err)
	}
	// coder's Close returns nil only when our close frame answered its own.
	select {
	case err := <-serverClose:
		if err != nil {
			t.Fatalf("coder server Close: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("coder server Close did not return")
	}
}

// TestAppendClientFrame checks the masked "Hello" of RFC 6455 section 5.7
// and the three length encodings.
func TestAppendClientFrame(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f := AppendClientFrame(nil, OpText, []byte("Hello"), key)
	if want := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}; !bytes.Equal(f, want) {
		t.Fatalf("frame %x, want %x", f, want)
	}
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{0xa5}, n)
		f := AppendClientFrame([]byte("prefix"), OpBinary, p, key)
		op, got := readClientFrame(t, bufio.NewReader(bytes.NewReader(f[len("prefix"):])))
		if op != OpBinary || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: read back %s %d bytes", n, op, len(got))
		}
		if wantLen := 2 + 4 + n + map[bool]int{true: 2}[n > 125 && n <= 65535] + map[bool]int{true: 8}[n > 65535]; len(f)-len("prefix") != wantLen {
			t.Fatalf("%d bytes: frame of %d bytes, want %d (minimal length)", n, len(f)-len("prefix"), wantLen)
		}
	}
	keys := map[[4]byte]bool{}
	for range 4 {
		keys[NewMaskKey()] = true
	}
	if len(keys) == 1 {
		t.Fatal("NewMaskKey gave the same key four times")
	}
}

// TestCloseWhileReading is the terminal client's pattern: one goroutine
// blocks in ReadMessage while another calls Close. The reader gets the
// server's answer to the close (1000) and the server sees a clean close.
func TestCloseWhileReading(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		h := newRecHandler()
		ts := newTestServer(t, Config{}, fallback, h)
		c, _ := openClient(t, ts)
		// The reader proves it is inside ReadMessage by reading one
		// message first; the second read is the one Close ends.
		read := make(chan error, 1)
		first := make(chan struct{})
		go func() {
			_, _, err := c.ReadMessage(context.Background())
			close(first)
			if err != nil {
				read <- err
				return
			}
			_, _, err = c.ReadMessage(context.Background())
			read <- err
		}()
		if err := c.WriteMessage(context.Background(), OpText, []byte("one")); err != nil {
			t.Fatal(err)
		}
		<-first
		if err := c.Close(StatusNormalClosure, "quit"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-read:
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != StatusNormalClosure {
				t.Fatalf("reader got %v, want the server's 1000", err)
			}
		case <-time.After(waitLong):
			t.Fatal("reader still blocked after Close")
		}
		if ce := h.next(t, "close").err; ce.Code != StatusNormalClosure || ce.Reason != "quit" {
			t.Fatalf("server saw %v, want 1000 quit", ce)
		}
	})
}

// TestClientCloseRefusesReservedCodes: a ClientConn, like a server's Conn,
// refuses to put on the wire a close code that section 7.4 keeps off it
// (1005 is "no code": a close frame without a body, so it is allowed).
// The refusal sends nothing: the connection still carries messages, and
// a valid Close still ends it cleanly.
func TestClientCloseRefusesReservedCodes(t *testing.T) {
	h := newRecHandler()
	ts := newTestServer(t, Config{}, false, h)
	c, _ := openClient(t, ts)
	for _, code := range []StatusCode{0, 999, 1004, StatusAbnormalClosure, 1015, 2999, 5000} {
		if err := c.Close(code, "x"); err == nil || errors.Is(err, ErrClosed) {
			t.Fatalf("Close(%d): %v, want a refusal", code, err)
		}
	}
	if err := c.WriteMessage(context.Background(), OpText, []byte("still open")); err != nil {
		t.Fatal(err)
	}
	expectRead(t, c, OpText, []byte("still open"))
	if err := c.Close(StatusNormalClosure, "done"); err != nil {
		t.Fatalf("Close(1000): %v", err)
	}
	if ce := h.next(t, "close").err; ce.Code != StatusNormalClosure || ce.Reason != "done" {
		t.Fatalf("server saw %v, want 1000 done", ce)
	}
}
