package ws

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
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
