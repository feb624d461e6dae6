package interop

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moonchat/moonchat/core/ws"
)

// eventually is the bound for anything that "should eventually happen"; it is
// generous because the 2-core test machine is shared and -race is slow.
const eventually = 10 * time.Second

// recorder is an echo Handler that also records, per connection id (the
// userData given to Upgrade, taken from the ?id= query parameter), the
// server-side *ws.Conn and how it closed, so tests can act on the server side
// of one particular client and assert what the server observed.
type recorder struct {
	mu     sync.Mutex
	conns  map[string]chan *ws.Conn
	closes map[string]chan error
	opens  int
	closed int
	// badOrder records handler-contract violations (OnMessage before OnOpen,
	// events after OnClose); checked by every test's cleanup.
	badOrder []string
	state    map[*ws.Conn]int // 1 = open, 2 = closed
}

func newRecorder() *recorder {
	return &recorder{
		conns:  make(map[string]chan *ws.Conn),
		closes: make(map[string]chan error),
		state:  make(map[*ws.Conn]int),
	}
}

func (r *recorder) connCh(id string) chan *ws.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.conns[id]
	if !ok {
		ch = make(chan *ws.Conn, 1)
		r.conns[id] = ch
	}
	return ch
}

func (r *recorder) closeCh(id string) chan error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.closes[id]
	if !ok {
		ch = make(chan error, 1)
		r.closes[id] = ch
	}
	return ch
}

func idOf(c *ws.Conn) string {
	id, _ := c.UserData().(string)
	return id
}

// OnOpen implements ws.Handler.
func (r *recorder) OnOpen(c *ws.Conn) {
	r.mu.Lock()
	if r.state[c] != 0 {
		r.badOrder = append(r.badOrder, "OnOpen twice or after OnClose for "+idOf(c))
	}
	r.state[c] = 1
	r.opens++
	r.mu.Unlock()
	if id := idOf(c); id != "" {
		select {
		case r.connCh(id) <- c:
		default: // ids are unique per test; a second open is a test bug
		}
	}
}

// OnMessage implements ws.Handler: it echoes every message with its opcode.
func (r *recorder) OnMessage(c *ws.Conn, op ws.Opcode, data []byte) {
	r.mu.Lock()
	if r.state[c] != 1 {
		r.badOrder = append(r.badOrder, "OnMessage outside OnOpen..OnClose for "+idOf(c))
	}
	r.mu.Unlock()
	// Errors here mean the connection is closing; the client sees that.
	_ = c.WriteMessage(op, data)
}

// OnClose implements ws.Handler.
func (r *recorder) OnClose(c *ws.Conn, err error) {
	r.mu.Lock()
	if r.state[c] != 1 {
		r.badOrder = append(r.badOrder, "OnClose without OnOpen or twice for "+idOf(c))
	}
	r.state[c] = 2
	r.closed++
	r.mu.Unlock()
	if id := idOf(c); id != "" {
		select {
		case r.closeCh(id) <- err:
		default:
		}
	}
}

// waitConn returns the server-side Conn of the client that dialed with id.
func (r *recorder) waitConn(t testing.TB, id string) *ws.Conn {
	t.Helper()
	select {
	case c := <-r.connCh(id):
		return c
	case <-time.After(eventually):
		t.Fatalf("server never opened connection %q", id)
		return nil
	}
}

// waitClose returns the *ws.CloseError the server's OnClose got for id.
func (r *recorder) waitClose(t testing.TB, id string) *ws.CloseError {
	t.Helper()
	select {
	case err := <-r.closeCh(id):
		var ce *ws.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("OnClose(%q) err = %T %v, want *ws.CloseError", id, err, err)
		}
		return ce
	case <-time.After(eventually):
		t.Fatalf("server never called OnClose for %q", id)
		return nil
	}
}

// testServer is the engine behind an httptest server on 127.0.0.1.
type testServer struct {
	ws   *ws.Server
	http *httptest.Server
	rec  *recorder
	addr string // host:port
	tls  bool   // served over TLS (wss://)
}

// wsURL is the WebSocket URL for a client identified by id.
func (s *testServer) wsURL(id string) string {
	if s.tls {
		return "wss://" + s.addr + "/ws?id=" + id
	}
	return "ws://" + s.addr + "/ws?id=" + id
}

// quietLogger keeps expected engine logs (refused handshakes, slow consumers)
// out of test output unless -v is given.
func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestServer starts the engine with cfg and an echo recorder. Extra HTTP
// routes (the browser test's page) go in extra. Cleanup closes the engine and
// the HTTP server and then asserts that no goroutine running core/ws code is
// left and that the Handler contract was kept.
func newTestServer(t testing.TB, cfg ws.Config, extra map[string]http.HandlerFunc) *testServer {
	t.Helper()
	return startTestServer(t, cfg, extra, false)
}

// startTestServer is newTestServer, over TLS when useTLS is set (the engine
// drives TLS connections with its goroutine-per-connection driver).
func startTestServer(t testing.TB, cfg ws.Config, extra map[string]http.HandlerFunc, useTLS bool) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(t)
	}
	rec := newRecorder()
	srv, err := ws.NewServer(rec, cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		// The engine has written the HTTP error already; tests assert it.
		_, _ = srv.Upgrade(w, r, r.URL.Query().Get("id"))
	})
	for path, h := range extra {
		mux.HandleFunc(path, h)
	}
	var hs *httptest.Server
	if useTLS {
		hs = httptest.NewTLSServer(mux) // HTTP/1.1 only: hijacking works
	} else {
		hs = httptest.NewServer(mux)
	}
	ts := &testServer{ws: srv, http: hs, rec: rec, addr: hs.Listener.Addr().String(), tls: useTLS}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
		hs.Close()
		assertNoEngineGoroutines(t)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, v := range rec.badOrder {
			t.Errorf("handler contract: %s", v)
		}
	})
	return ts
}

// engineGoroutines returns the stacks of goroutines (other than the caller)
// that are executing code of package core/ws (not core/ws/interop).
func engineGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the calling goroutine
			continue
		}
		if strings.Contains(g, "github.com/moonchat/moonchat/core/ws.") {
			out = append(out, g)
		}
	}
	return out
}

// assertNoEngineGoroutines waits (bounded) for every engine goroutine to exit.
func assertNoEngineGoroutines(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		left := engineGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d core/ws goroutines left after Close; first:\n%s", len(left), left[0])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// payload returns n deterministic bytes: valid UTF-8 (mixing 1- to 4-byte
// runes) when text is set, arbitrary bytes otherwise.
func payload(n int, text bool, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, 0, n)
	if !text {
		b = b[:n]
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	runes := []rune{'a', 'Z', '0', ' ', 'é', 'ß', 'ж', '✓', '€', '中', '😀', '𝄞'}
	for len(b) < n {
		r := runes[rng.IntN(len(runes))]
		if len(b)+utf8.RuneLen(r) > n {
			r = 'x'
		}
		b = utf8.AppendRune(b, r)
	}
	return b
}

// ctxT is a context bounded by the "eventually" timeout.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	t.Cleanup(cancel)
	return ctx
}
