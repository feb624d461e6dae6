package ws

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTLSUsesGoroutineDriver: a TLS connection is not a *net.TCPConn after
// the hijack, so it must run on the goroutine driver, and work. The client
// is Dial over wss://, which also checks the client's TLS path.
func TestTLSUsesGoroutineDriver(t *testing.T) {
	h := newRecHandler()
	srv, err := NewServer(h, Config{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
		checkNoGoroutines(t)
	})
	// The server's certificate is verified, for the URL's host name
	// (ServerName is not set: Dial takes it from the URL).
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	ctx := context.Background()
	c, _, err := Dial(ctx, "wss"+strings.TrimPrefix(hs.URL, "https")+"/", &DialOptions{
		TLSConfig: &tls.Config{RootCAs: roots},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := h.next(t, "open")
	if ev.c.fb == nil || ev.c.lp != nil {
		t.Fatal("TLS connection not on the goroutine driver")
	}
	if err := c.WriteMessage(ctx, OpText, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	if op, got, err := c.ReadMessage(ctx); err != nil || op != OpText || string(got) != "over tls" {
		t.Fatalf("echo: %s %q, %v", op, got, err)
	}
	if err := c.Close(StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v (no close frame from the server)", err)
	}
	if ce := h.next(t, "close").err; ce.Code != 1000 {
		t.Fatalf("OnClose %+v", ce)
	}
}

// TestTLSLeanDriver: the goroutine driver's TLS paths. A message spanning
// many TLS records arrives whole through the one-byte read and the
// borrowed buffer; a burst of frames queued at once arrives intact and in
// order through gathered writes; input held back by PauseReading is kept
// and delivered after ResumeReading; and once its output is written, the
// connection has no writer goroutine left (an idle TLS connection costs
// its reader only).
func TestTLSLeanDriver(t *testing.T) {
	h := newRecHandler()
	srv, err := NewServer(h, Config{MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
		checkNoGoroutines(t)
	})
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	ctx := context.Background()
	c, _, err := Dial(ctx, "wss"+strings.TrimPrefix(hs.URL, "https")+"/", &DialOptions{
		TLSConfig:       &tls.Config{RootCAs: roots},
		MaxMessageBytes: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(StatusNormalClosure, "")
	sc := h.next(t, "open").c
	if sc.fb == nil || !sc.fb.tls {
		t.Fatal("not a TLS connection on the goroutine driver")
	}

	big := make([]byte, 300<<10) // about 19 records of 16 KiB
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	if err := c.WriteMessage(ctx, OpText, big); err != nil {
		t.Fatal(err)
	}
	if op, got, err := c.ReadMessage(ctx); err != nil || op != OpText || !bytes.Equal(got, big) {
		t.Fatalf("echo of %d bytes: %s, %d bytes, %v", len(big), op, len(got), err)
	}

	const burst = 2000
	for i := range burst {
		if err := sc.WriteMessage(OpBinary, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		op, got, err := c.ReadMessage(ctx)
		if err != nil || op != OpBinary || string(got) != strconv.Itoa(i) {
			t.Fatalf("burst message %d: %s %q, %v", i, op, got, err)
		}
	}

	sc.PauseReading()
	for i := range 3 {
		if err := c.WriteMessage(ctx, OpText, []byte("held "+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	sc.ResumeReading()
	for i := range 3 {
		if op, got, err := c.ReadMessage(ctx); err != nil || op != OpText || string(got) != "held "+strconv.Itoa(i) {
			t.Fatalf("after ResumeReading, message %d: %s %q, %v", i, op, got, err)
		}
	}

	deadline := time.Now().Add(waitLong)
	for len(engineGoroutines("ws.(*Conn).fbWriter")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer goroutine outlives the queue")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(engineGoroutines("ws.(*Conn).fbReader")); n != 1 {
		t.Fatalf("%d readers, want 1", n)
	}
}

// TestWriteGathered: small buffers are copied together into writes of at
// most the record size (a long one split across them), a buffer at least
// that long that starts a write is written as it is, and the bytes and
// their order are kept.
func TestWriteGathered(t *testing.T) {
	var w recordWriter
	rec := make([]byte, 8)
	bufs := [][]byte{[]byte("ABCDEFGHIJ"), []byte("ab"), []byte("cde"), []byte("fghij"), []byte("0123456789"), []byte("k"), []byte("lm")}
	n, err := writeGathered(&w, bufs, rec)
	if err != nil || n != 33 {
		t.Fatalf("wrote %d, %v", n, err)
	}
	want := []string{"ABCDEFGHIJ", "abcdefgh", "ij012345", "6789klm"}
	if strings.Join(w.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", w.writes, want)
	}
}

type recordWriter struct{ writes []string }

func (w *recordWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// deadlineConn records the read deadlines set on a connection; not being a
// *net.TCPConn, it is served by the goroutine driver (as TLS is).
type deadlineConn struct {
	net.Conn
	mu   sync.Mutex
	last time.Time
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.last = t
	d.mu.Unlock()
	return d.Conn.SetReadDeadline(t)
}

func (d *deadlineConn) lastDeadline() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

type deadlineListener struct {
	net.Listener
	conns chan *deadlineConn
}

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c}
	l.conns <- dc
	return dc, nil
}

// TestFallbackIdleWakesForTimers: the goroutine driver's reader blocks
// until the connection's next timer (here the keepalive ping, seconds
// away), not for one timer tick (10 ms here), so idle connections cost no
// CPU; and a Close from another goroutine while it blocks still gets its
// closing deadline (CloseTimeout) honoured, not the ping's.
func TestFallbackIdleWakesForTimers(t *testing.T) {
	h := newRecHandler()
	srv, err := NewServer(h, Config{PingInterval: 5 * time.Second, PingTimeout: 5 * time.Second, CloseTimeout: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if srv.tick > 20*time.Millisecond {
		t.Fatalf("tick %v", srv.tick)
	}
	hs := httptest.NewUnstartedServer(srv)
	conns := make(chan *deadlineConn, 4)
	hs.Listener = deadlineListener{hs.Listener, conns}
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	ctx := context.Background()
	c, _, err := Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(StatusNormalClosure, "")
	dc := <-conns
	sc := h.next(t, "open").c
	if sc.fb == nil {
		t.Fatal("not on the goroutine driver")
	}
	deadline := time.Now().Add(waitLong)
	for dc.lastDeadline().Before(time.Now().Add(2 * time.Second)) {
		if time.Now().After(deadline) {
			t.Fatalf("the idle reader's read deadline stays at %v from now: it wakes every tick", time.Until(dc.lastDeadline()))
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The client never reads, so it never answers our close: the closing
	// deadline ends the connection.
	start := time.Now()
	if err := sc.Close(StatusGoingAway, "bye"); err != nil {
		t.Fatal(err)
	}
	h.next(t, "close")
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("closed after %v: the closing deadline (40ms) waited for the reader's ping deadline (5s)", took)
	}
}
