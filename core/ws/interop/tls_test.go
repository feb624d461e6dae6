package interop

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// TestTLS runs the main scenarios over wss://, where the engine uses its
// goroutine-per-connection driver instead of the epoll loops: echo across
// the length encodings, a ping, a server-initiated close, a client-initiated
// close, and Shutdown (1001) for the connections still open.
func TestTLS(t *testing.T) {
	srv := startTestServer(t, ws.Config{}, nil, true)
	tlsCfg := srv.http.Client().Transport.(*http.Transport).TLSClientConfig
	dialers := []struct {
		name string
		dial dialer
	}{
		{"gorilla", func(t testing.TB, url string, protocols []string, h http.Header) (client, *http.Response, error) {
			d := websocket.Dialer{HandshakeTimeout: eventually, Subprotocols: protocols, TLSClientConfig: tlsCfg.Clone()}
			c, resp, err := d.Dial(url, h)
			if err != nil {
				return nil, resp, err
			}
			t.Cleanup(func() { _ = c.Close() })
			return &gorillaClient{c}, resp, nil
		}},
		{"coder", func(t testing.TB, url string, protocols []string, h http.Header) (client, *http.Response, error) {
			ctx := ctxT(t)
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()}}
			c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{HTTPClient: hc, Subprotocols: protocols, HTTPHeader: h})
			if err != nil {
				return nil, resp, err
			}
			c.SetReadLimit(64 << 20)
			t.Cleanup(func() { _ = c.CloseNow() })
			return &coderClient{c, ctx}, resp, nil
		}},
	}
	var open []client
	top := t // the echo connections outlive their subtests (Shutdown below)
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			c, _, err := d.dial(top, srv.wsURL("tls-echo-"+d.name), nil, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			for _, n := range []int{0, 125, 126, 65535, 65536, 8 << 20} {
				for _, op := range []ws.Opcode{ws.OpText, ws.OpBinary} {
					want := payload(n, op == ws.OpText, 5)
					if err := c.write(op, want); err != nil {
						t.Fatalf("write %d: %v", n, err)
					}
					gotOp, got, err := c.read()
					if err != nil || gotOp != op || !bytes.Equal(got, want) {
						t.Fatalf("echo %v %d: got %v %s, %v", op, n, gotOp, describe(got), err)
					}
				}
			}

			t.Run("server-close", func(t *testing.T) {
				id := "tls-sclose-" + d.name
				c, _, err := d.dial(t, srv.wsURL(id), nil, nil)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				if err := srv.rec.waitConn(t, id).Close(4000, "tls bye"); err != nil {
					t.Fatal(err)
				}
				if code, reason := readUntilClose(t, c); code != 4000 || reason != "tls bye" {
					t.Errorf("client saw close %d %q, want 4000 %q", code, reason, "tls bye")
				}
				if ce := srv.rec.waitClose(t, id); ce.Code != 4000 {
					t.Errorf("OnClose code %d, want 4000", ce.Code)
				}
			})
			t.Run("client-close", func(t *testing.T) {
				id := "tls-cclose-" + d.name
				c, _, err := d.dial(t, srv.wsURL(id), nil, nil)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				srv.rec.waitConn(t, id)
				if err := c.sendClose(4100, "client bye"); err != nil {
					t.Fatal(err)
				}
				if _, ok := c.(*gorillaClient); ok {
					// Read the server's answer and hang up, as gorilla
					// applications do (coder's Close already did).
					if code, _ := readUntilClose(t, c); code != 4100 {
						t.Errorf("server answered close with %d, want 4100", code)
					}
				}
				if ce := srv.rec.waitClose(t, id); ce.Code != 4100 || ce.Reason != "client bye" {
					t.Errorf("OnClose = %d %q, want 4100 %q", ce.Code, ce.Reason, "client bye")
				}
			})
			open = append(open, c)
		})
	}

	t.Run("gorilla-ping", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: eventually, TLSClientConfig: tlsCfg.Clone()}
		c, _, err := d.Dial(srv.wsURL("tls-ping"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pong := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		if err := c.WriteControl(websocket.PingMessage, []byte("tls-ping"), time.Now().Add(eventually)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("after")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(eventually))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "after" {
			t.Fatalf("echo %q, %v", p, err)
		}
		select {
		case p := <-pong:
			if p != "tls-ping" {
				t.Errorf("pong %q, want tls-ping", p)
			}
		default:
			t.Errorf("no pong before the echo of a later message")
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		if len(open) != len(dialers) {
			t.Fatal("echo connections failed above: cannot test shutdown")
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			done <- srv.ws.Shutdown(ctx, ws.StatusGoingAway, "tls shutdown")
		}()
		for i, c := range open {
			if code, reason := readUntilClose(t, c); code != 1001 || reason != "tls shutdown" {
				t.Errorf("client %d saw %d %q, want 1001 %q", i, code, reason, "tls shutdown")
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(eventually):
			t.Fatal("Shutdown did not return")
		}
		for _, d := range dialers {
			if ce := srv.rec.waitClose(t, "tls-echo-"+d.name); ce.Code != ws.StatusGoingAway {
				t.Errorf("OnClose %s = %d, want 1001", d.name, ce.Code)
			}
		}
	})
}
