package chat

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The doubles of the in-package tests. Tests that need only the exported
// API are in package chat_test and use package chattest's doubles; the
// ones here serve the tests that must stay in package chat because they
// read internals (metrics_test.go reads the metric counters and
// collectors) and cannot import chattest, which imports this package.
// Keep them to what those tests use: anything more belongs in chattest.

// waitTime bounds every "should eventually happen" here, as chattest.Wait
// does for the external tests.
const waitTime = 10 * time.Second

// testLimits is chattest.Limits: the settings New requires that cfg leaves
// at zero get the built-in config.toml's values; the ones whose zero
// means "off" stay.
func testLimits(cfg Config) Config {
	set := func(v *int, to int) {
		if *v == 0 {
			*v = to
		}
	}
	set(&cfg.MaxConnections, 10000)
	set(&cfg.MaxNameLength, 24)
	set(&cfg.MaxRooms, 1000)
	set(&cfg.MaxTextBytes, 4096)
	set(&cfg.APILimit, 500)
	if cfg.DefaultRoom == "" {
		cfg.DefaultRoom = "lobby"
	}
	return cfg
}

// memHistory is a minimal in-memory History (chattest.History is the
// full double, with paging gaps and fault injection).
type memHistory struct {
	mu    sync.Mutex
	rooms map[string][]Message
	last  map[string]uint64 // last id per room
}

func newMemHistory() *memHistory {
	return &memHistory{rooms: map[string][]Message{}, last: map[string]uint64{}}
}

func (h *memHistory) Append(ctx context.Context, msgs []*Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range msgs {
		h.last[m.Room]++
		m.ID = h.last[m.Room]
		h.rooms[m.Room] = append(h.rooms[m.Room], *m)
	}
	return nil
}

func (h *memHistory) Recent(room string, n int) ([]Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.rooms[room]
	return slices.Clone(all[max(0, len(all)-n):]), nil
}

func (h *memHistory) Before(room string, before uint64, n int) ([]Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Message
	for _, m := range h.rooms[room] {
		if m.ID < before {
			out = append(out, m)
		}
	}
	return out[max(0, len(out)-n):], nil
}

func (h *memHistory) After(room string, after uint64, n int) ([]Message, bool, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Message
	for _, m := range h.rooms[room] {
		if m.ID > after {
			out = append(out, m)
		}
	}
	return out[:min(n, len(out))], true, len(out) > n, nil
}

func (h *memHistory) Redact(room string, id uint64) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, m := range h.rooms[room] {
		if m.ID == id {
			h.rooms[room] = slices.Delete(h.rooms[room], i, i+1)
			return true, nil
		}
	}
	return false, nil
}

// testHooks is a Hooks that lets everything through.
type testHooks struct{}

func (testHooks) Join(context.Context, User) JoinResult { return JoinResult{} }
func (testHooks) Message(context.Context, User, *Message) MessageResult {
	return MessageResult{}
}
func (testHooks) Leave(context.Context, User) error          { return nil }
func (testHooks) Rename(context.Context, User, string) error { return nil }

// testServer is a chat server on 127.0.0.1:0, as chattest.Start runs one.
type testServer struct {
	srv  *Server
	ws   string // ws://127.0.0.1:PORT
	http string // http://127.0.0.1:PORT
}

// startServer runs New(testLimits(cfg), hooks, hist) behind an httptest
// listener until the test ends. hooks and hist may be nil.
func startServer(t testing.TB, cfg Config, hooks Hooks, hist History) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv, err := New(testLimits(cfg), hooks, hist)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &testServer{srv: srv, http: hs.URL, ws: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// client is a third-party WebSocket client (gorilla/websocket).
type client struct {
	t testing.TB
	c *websocket.Conn
}

// dial connects to path ("/chat/room?name=x") offering the subprotocol
// proto ("" offers none) and fails the test on error.
func (ts *testServer) dial(t testing.TB, path, proto string) *client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTime}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	c, _, err := d.Dial(ts.ws+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, c: c}
}

// send sends text as one text frame.
func (c *client) send(text string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// expect reads len(lines) text frames and checks them byte for byte.
func (c *client) expect(lines ...string) {
	c.t.Helper()
	for i, want := range lines {
		_ = c.c.SetReadDeadline(time.Now().Add(waitTime))
		op, data, err := c.c.ReadMessage()
		if err != nil || op != websocket.TextMessage || string(data) != want {
			c.t.Fatalf("frame %d: got %d %q %v, want text %q", i, op, data, err, want)
		}
	}
}

// get fetches path over HTTP and returns status, body and header.
func (ts *testServer) get(t testing.TB, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(ts.http + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// eventually polls cond until it holds or waitTime passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
