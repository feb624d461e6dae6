package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// waitFor polls cond until it holds or the "eventually" bound passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentClients runs many gorilla and coder clients at once, each
// checking its own echoes, and checks Server.Len along the way.
func TestConcurrentClients(t *testing.T) {
	const (
		perLib   = 100
		messages = 20
	)
	srv := newTestServer(t, ws.Config{}, nil)
	var (
		wg     sync.WaitGroup
		ready  sync.WaitGroup
		failMu sync.Mutex
		fails  []string
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		fails = append(fails, fmt.Sprintf(format, args...))
	}
	release := make(chan struct{})
	for _, cl := range clients {
		for i := range perLib {
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("many-%s-%d", cl.name, i)
				c, _, err := cl.dial(t, srv.wsURL(id), nil, nil)
				ready.Done()
				if err != nil {
					fail("%s dial: %v", id, err)
					return
				}
				defer c.closeNow()
				<-release // everyone connected before anyone talks
				for m := range messages {
					want := payload(100+m*37, m%2 == 0, uint64(i))
					op := ws.OpBinary
					if m%2 == 0 {
						op = ws.OpText
					}
					if err := c.write(op, want); err != nil {
						fail("%s write %d: %v", id, m, err)
						return
					}
					gotOp, got, err := c.read()
					if err != nil {
						fail("%s read %d: %v", id, m, err)
						return
					}
					if gotOp != op || !bytes.Equal(got, want) {
						fail("%s message %d: echo mismatch", id, m)
						return
					}
				}
				if err := c.sendClose(ws.StatusNormalClosure, ""); err != nil {
					fail("%s close: %v", id, err)
				}
			}()
		}
	}
	ready.Wait()
	total := perLib * len(clients)
	waitFor(t, fmt.Sprintf("Server.Len() == %d", total), func() bool { return srv.ws.Len() == total })
	close(release)
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	waitFor(t, "Server.Len() == 0", func() bool { return srv.ws.Len() == 0 })
	srv.rec.mu.Lock()
	defer srv.rec.mu.Unlock()
	if srv.rec.opens != total || srv.rec.closed != total {
		t.Errorf("OnOpen %d times, OnClose %d times, want %d each", srv.rec.opens, srv.rec.closed, total)
	}
}

// TestShutdown: clients connected during Server.Shutdown see close 1001 with
// the given reason, Shutdown returns once they answered, and later upgrades
// are refused with 503.
func TestShutdown(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	const n = 10
	var cs []client
	var names []string
	for _, cl := range clients {
		for i := range n {
			id := fmt.Sprintf("shut-%s-%d", cl.name, i)
			c, _, err := cl.dial(t, srv.wsURL(id), nil, nil)
			if err != nil {
				t.Fatalf("dial %s: %v", id, err)
			}
			cs = append(cs, c)
			names = append(names, id)
		}
	}
	waitFor(t, "all connections open", func() bool { return srv.ws.Len() == len(cs) })

	shutErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		defer cancel()
		shutErr <- srv.ws.Shutdown(ctx, ws.StatusGoingAway, "server shutdown")
	}()
	for i, c := range cs {
		code, reason := readUntilClose(t, c) // the client answers the close
		if code != int(ws.StatusGoingAway) || reason != "server shutdown" {
			t.Errorf("%s saw close %d %q, want 1001 %q", names[i], code, reason, "server shutdown")
		}
	}
	select {
	case err := <-shutErr:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil (every client answered)", err)
		}
	case <-time.After(eventually):
		t.Fatal("Shutdown did not return")
	}
	if got := srv.ws.Len(); got != 0 {
		t.Errorf("Len after Shutdown = %d", got)
	}
	for _, id := range names {
		if ce := srv.rec.waitClose(t, id); ce.Code != ws.StatusGoingAway {
			t.Errorf("%s OnClose code %d, want 1001", id, ce.Code)
		}
	}
	_, resp, err := dialGorilla(t, srv.wsURL("after-shutdown"), nil, nil)
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after Shutdown: resp %v err %v, want 503", resp, err)
	}
}

// TestNoGoroutineLeak counts goroutines around a full server life: clients
// connect, talk, close (cleanly, abruptly and server-initiated), the server
// shuts down; afterwards the goroutine count returns to where it was.
func TestNoGoroutineLeak(t *testing.T) {
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()
	func() {
		// A sub-scope so the server's own cleanup runs before we count.
		rec := newRecorder()
		srv, err := ws.NewServer(rec, ws.Config{Logger: quietLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ts := &testServer{ws: srv, rec: rec}
		hs := newHTTPServer(t, srv)
		ts.addr = hs.Listener.Addr().String()
		for i := range 30 {
			id := fmt.Sprintf("leak-%d", i)
			c, _, err := websocket.DefaultDialer.Dial(ts.wsURL(id), nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(eventually))
			if _, _, err := c.ReadMessage(); err != nil {
				t.Fatal(err)
			}
			switch i % 3 {
			case 0: // clean client close
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(eventually))
				_, _, _ = c.ReadMessage() // the server's reply
				c.Close()
			case 1: // TCP drop
				c.Close()
			case 2: // left open for Shutdown
				defer c.Close()
				go func() { // answer the shutdown close, then hang up
					for {
						if _, _, err := c.ReadMessage(); err != nil {
							c.Close()
							return
						}
					}
				}()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		defer cancel()
		if err := srv.Shutdown(ctx, ws.StatusGoingAway, "bye"); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	}()
	deadline := time.Now().Add(eventually)
	for {
		now := settle()
		if now <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, now, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := engineGoroutines(); len(left) > 0 {
		t.Errorf("core/ws goroutines left: %d; first:\n%s", len(left), left[0])
	}
}

// newHTTPServer serves srv at /ws (userData from ?id=) on 127.0.0.1:0.
func newHTTPServer(t testing.TB, srv *ws.Server) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		_, _ = srv.Upgrade(w, r, r.URL.Query().Get("id"))
	})
	return httptest.NewServer(mux)
}

// TestCoderCloseRead covers coder's CloseRead helper against the engine:
// the server closes, the read context ends with the server's code.
func TestCoderCloseRead(t *testing.T) {
	srv := newTestServer(t, ws.Config{}, nil)
	ctx := ctxT(t)
	c, _, err := coder.Dial(ctx, srv.wsURL("closeread"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	rctx := c.CloseRead(ctx)
	if err := srv.rec.waitConn(t, "closeread").Close(4321, "done"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rctx.Done():
	case <-time.After(eventually):
		t.Fatal("read side never ended")
	}
	ce := srv.rec.waitClose(t, "closeread")
	if ce.Code != 4321 {
		t.Errorf("OnClose code = %d, want 4321 (coder echoes the code)", ce.Code)
	}
	if err := c.Write(ctx, coder.MessageText, []byte("x")); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write after close = %v, want a closed error", err)
	}
}

// TestSlowConsumer: a real client that stops reading. Writes never block;
// the engine closes the connection once the queue exceeds MaxQueueBytes
// (WriteMessage returns ErrSlowConsumer) or makes no progress for
// WriteTimeout, and OnClose reports 1008.
func TestSlowConsumer(t *testing.T) {
	cases := []struct {
		name string
		cfg  ws.Config
	}{
		{"queue-bound", ws.Config{MaxQueueBytes: 1 << 20, WriteTimeout: time.Hour}},
		{"no-progress", ws.Config{MaxQueueBytes: 256 << 20, WriteTimeout: 200 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, tc.cfg, nil)
			c, _, err := websocket.DefaultDialer.Dial(srv.wsURL("slow"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close() // never reads
			sc := srv.rec.waitConn(t, "slow")
			chunk := make([]byte, 64<<10)
			var werr error
			start := time.Now()
			// Bounded: 800 × 64 KiB = 50 MiB, far above socket buffers plus
			// the 1 MiB bound and below the 256 MiB one, written over
			// seconds so that the 200 ms no-progress timer fires first.
			for i := 0; i < 800 && werr == nil && time.Since(start) < eventually; i++ {
				werr = sc.WriteMessage(ws.OpBinary, chunk)
				if tc.cfg.WriteTimeout < time.Hour && i > 50 {
					time.Sleep(5 * time.Millisecond) // let the stall timer see no progress
				}
			}
			if tc.name == "queue-bound" && !errors.Is(werr, ws.ErrSlowConsumer) {
				t.Errorf("WriteMessage past the queue bound = %v, want ErrSlowConsumer", werr)
			}
			ce := srv.rec.waitClose(t, "slow")
			if ce.Code != ws.StatusPolicyViolation {
				t.Errorf("OnClose = %d %q, want 1008", ce.Code, ce.Reason)
			}
		})
	}
}
