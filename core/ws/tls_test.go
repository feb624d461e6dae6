package ws

import (
	"bufio"
	"crypto/tls"
	"net/http/httptest"
	"testing"
	"time"
)

// TestTLSUsesGoroutineDriver: a TLS connection is not a *net.TCPConn after
// the hijack, so it must run on the goroutine driver, and work.
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
	addr := hs.Listener.Addr().String()
	nc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rc := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	rc.write([]byte(handshakeRequest(addr, "/")))
	if resp := rc.response(); resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev := h.next(t, "open")
	if ev.c.fb == nil || ev.c.lp != nil {
		t.Fatal("TLS connection not on the goroutine driver")
	}
	rc.write(text("over tls"))
	rc.expectMessage(OpText, []byte("over tls"))
	rc.write(closeF(closeBody(1000, "")))
	f := rc.mustFrame()
	if f.op != OpClose {
		t.Fatalf("got %v", f.op)
	}
	_ = nc.SetReadDeadline(time.Now().Add(waitLong))
	if ce := h.next(t, "close").err; ce.Code != 1000 {
		t.Fatalf("OnClose %+v", ce)
	}
}
