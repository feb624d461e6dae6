package ws

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/ws/internal/mask"
)

// waitLong bounds every "should eventually happen" in these tests.
const waitLong = 10 * time.Second

// event is one Handler call recorded by recHandler.
type event struct {
	kind string // "open", "message", "close"
	c    *Conn
	op   Opcode
	data []byte
	err  *CloseError
}

// recHandler records events; by default it echoes every message.
type recHandler struct {
	events    chan event
	closed    map[string]*CloseError // OnClose events seen by closeOf, by remote address (test goroutine only)
	onOpen    func(c *Conn)
	onMessage func(c *Conn, op Opcode, data []byte)
	onClose   func(c *Conn) // runs inside OnClose, after the event is recorded
}

func newRecHandler() *recHandler { return &recHandler{events: make(chan event, 4096)} }

func (h *recHandler) OnOpen(c *Conn) {
	if h.onOpen != nil {
		h.onOpen(c)
	}
	h.events <- event{kind: "open", c: c}
}

func (h *recHandler) OnMessage(c *Conn, op Opcode, data []byte) {
	h.events <- event{kind: "message", c: c, op: op, data: bytes.Clone(data)}
	if h.onMessage != nil {
		h.onMessage(c, op, data)
		return
	}
	_ = c.WriteMessage(op, data)
}

func (h *recHandler) OnClose(c *Conn, err error) {
	ce, ok := err.(*CloseError)
	if !ok {
		panic(fmt.Sprintf("OnClose with %T, want *CloseError", err))
	}
	h.events <- event{kind: "close", c: c, err: ce}
	if h.onClose != nil {
		h.onClose(c)
	}
}

// next returns the next event of kind, skipping others.
func (h *recHandler) next(t *testing.T, kind string) event {
	t.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case ev := <-h.events:
			if ev.kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within %v", kind, waitLong)
		}
	}
}

// closeOf returns the OnClose event of the connection that rc dialled,
// skipping events of other connections.
func (h *recHandler) closeOf(t *testing.T, rc *rawClient) *CloseError {
	t.Helper()
	return h.closeOfAddr(t, rc.nc.LocalAddr().String())
}

// closeOfAddr returns the OnClose event of the connection from the client
// address want, skipping events of other connections.
func (h *recHandler) closeOfAddr(t *testing.T, want string) *CloseError {
	t.Helper()
	if ce, ok := h.closed[want]; ok {
		return ce
	}
	if h.closed == nil {
		h.closed = map[string]*CloseError{}
	}
	timeout := time.After(waitLong)
	for {
		select {
		case ev := <-h.events:
			if ev.kind != "close" {
				continue
			}
			if ev.c.RemoteAddr() == want {
				return ev.err
			}
			h.closed[ev.c.RemoteAddr()] = ev.err
		case <-timeout:
			t.Fatalf("no OnClose for %s within %v", want, waitLong)
		}
	}
}

// testServer is a Server behind an httptest server on 127.0.0.1.
type testServer struct {
	srv  *Server
	h    *recHandler
	addr string
}

// newTestServer starts a server; fallback selects the goroutine driver.
// Cleanup closes it and checks that none of its goroutines is left.
func newTestServer(t *testing.T, cfg Config, fallback bool, h *recHandler) *testServer {
	t.Helper()
	if h == nil {
		h = newRecHandler()
	}
	srv, err := NewServer(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.forceFallback = fallback
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
		checkNoGoroutines(t)
	})
	return &testServer{srv: srv, h: h, addr: hs.Listener.Addr().String()}
}

// forDrivers runs f with the epoll driver and with the goroutine driver.
func forDrivers(t *testing.T, f func(t *testing.T, fallback bool)) {
	t.Helper()
	t.Run("epoll", func(t *testing.T) { f(t, false) })
	t.Run("goroutines", func(t *testing.T) { f(t, true) })
}

// engineGoroutines returns the stacks of goroutines running engine code.
func engineGoroutines(filter ...string) []string {
	if len(filter) == 0 {
		filter = []string{"ws.(*loop).run", "ws.(*Conn).fbReader", "ws.(*Conn).fbWriter", "ws.(*Conn).finalize", "ws.(*Server).fbStart"}
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range filter {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// checkNoGoroutines fails when engine goroutines outlive their server.
func checkNoGoroutines(t *testing.T, filter ...string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		left := engineGoroutines(filter...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d engine goroutine(s) left behind:\n%s", len(left), strings.Join(left, "\n\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient speaks WebSocket by hand over TCP, so that tests control every
// byte and see every byte the server sends.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// handshakeRequest returns an RFC 6455 upgrade request with extra header
// lines (each "Name: value").
func handshakeRequest(host, path string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, host, testKey)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// dialTCP connects to addr.
func dialTCP(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// dial connects and completes an RFC 6455 handshake; after is written in
// the same segment as the request (bytes that follow the handshake).
func dial(t *testing.T, addr string, after []byte, extra ...string) (*rawClient, *http.Response) {
	t.Helper()
	rc := dialTCP(t, addr)
	rc.write(append([]byte(handshakeRequest(addr, "/", extra...)), after...))
	resp := rc.response()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("handshake: %s %q", resp.Status, body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept = %q", got)
	}
	return rc, resp
}

func (rc *rawClient) response() *http.Response {
	rc.t.Helper()
	_ = rc.nc.SetReadDeadline(time.Now().Add(waitLong))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("read handshake response: %v", err)
	}
	return resp
}

func (rc *rawClient) write(b []byte) {
	rc.t.Helper()
	_ = rc.nc.SetWriteDeadline(time.Now().Add(waitLong))
	if _, err := rc.nc.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

var testMaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a client frame. b0 is the first header byte (FIN, RSV,
// opcode); the payload is masked unless unmasked is set.
func frame(b0 byte, payload []byte, unmasked ...bool) []byte {
	var b []byte
	b = append(b, b0)
	mb := byte(maskBit)
	if len(unmasked) > 0 && unmasked[0] {
		mb = 0
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mb|byte(n))
	case n <= 0xffff:
		b = append(b, mb|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mb|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(payload)
	if mb != 0 {
		b = append(b, testMaskKey[:]...)
		mask.Apply(testMaskKey, 0, p)
	}
	return append(b, p...)
}

// text and bin build final single-frame messages.
func text(s string) []byte   { return frame(finBit|byte(OpText), []byte(s)) }
func bin(b []byte) []byte    { return frame(finBit|byte(OpBinary), b) }
func ping(s string) []byte   { return frame(finBit|byte(OpPing), []byte(s)) }
func closeF(b []byte) []byte { return frame(finBit|byte(OpClose), b) }

func closeBody(code StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// serverFrame is one frame received from the server.
type serverFrame struct {
	fin     bool
	op      Opcode
	payload []byte
}

func (rc *rawClient) readFrame() (serverFrame, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(waitLong))
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[0]&rsvBits != 0 {
		return serverFrame{}, fmt.Errorf("server frame with RSV bits %#x", h[0])
	}
	if h[1]&maskBit != 0 {
		return serverFrame{}, errors.New("server frame is masked")
	}
	n := uint64(h[1] & lenBits)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(rc.br, e[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(rc.br, e[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{fin: h[0]&finBit != 0, op: Opcode(h[0] & opBits), payload: p}, nil
}

func (rc *rawClient) mustFrame() serverFrame {
	rc.t.Helper()
	f, err := rc.readFrame()
	if err != nil {
		rc.t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectMessage asserts that the next frame is a final data frame.
func (rc *rawClient) expectMessage(op Opcode, data []byte) {
	rc.t.Helper()
	f := rc.mustFrame()
	if !f.fin || f.op != op || !bytes.Equal(f.payload, data) {
		rc.t.Fatalf("got fin=%v %v %q (%d bytes), want %v %q (%d bytes)", f.fin, f.op, trunc(f.payload), len(f.payload), op, trunc(data), len(data))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// expectClose asserts that the next frame is a close frame with code (and
// reason, when given), and that the server then closes TCP.
func (rc *rawClient) expectClose(code StatusCode, reason ...string) {
	rc.t.Helper()
	f := rc.mustFrame()
	if f.op != OpClose {
		rc.t.Fatalf("got %v frame %q, want close %d", f.op, trunc(f.payload), code)
	}
	var got StatusCode = StatusNoStatusRcvd
	if len(f.payload) >= 2 {
		got = StatusCode(binary.BigEndian.Uint16(f.payload))
	}
	if got != code {
		rc.t.Fatalf("close code %d (%q), want %d", got, f.payload, code)
	}
	if len(reason) > 0 && string(f.payload[2:]) != reason[0] {
		rc.t.Fatalf("close reason %q, want %q", f.payload[2:], reason[0])
	}
	rc.expectEOF()
}

// expectEOF asserts that the server closes the TCP connection without
// sending anything more.
func (rc *rawClient) expectEOF() {
	rc.t.Helper()
	_ = rc.nc.SetReadDeadline(time.Now().Add(waitLong))
	b, err := io.ReadAll(rc.br)
	if len(b) > 0 {
		rc.t.Fatalf("%d unexpected bytes before EOF: %q", len(b), trunc(b))
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		rc.t.Fatalf("want EOF, got %v", err)
	}
	// Like a real client (RFC 6455 section 7.1.1), close our side once the
	// server has closed its side.
	rc.nc.Close()
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
