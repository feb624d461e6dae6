package chat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitTime bounds every "should eventually happen" in these tests; it is
// generous because the test machine is shared.
const waitTime = 10 * time.Second

type testServer struct {
	srv  *Server
	hs   *httptest.Server
	ws   string // ws://127.0.0.1:PORT
	http string // http://127.0.0.1:PORT
}

// testLimits is chattest.Limits for the in-package tests (which cannot
// import chattest): the settings New requires that cfg leaves at zero get
// the built-in config.toml's values; the ones whose zero means "off" stay.
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

// startServer runs a chat server on 127.0.0.1:0 with testLimits(cfg); it is
// shut down when the test ends. hooks and hist may be nil.
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
	ts := &testServer{srv: srv, hs: hs, http: hs.URL, ws: "ws" + strings.TrimPrefix(hs.URL, "http")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return ts
}

// client is a third-party WebSocket client (gorilla/websocket).
type client struct {
	t testing.TB
	c *websocket.Conn
}

// dial connects to path ("/chat/room?name=x") with subprotocol proto ("" =
// none) and fails the test on error.
func (ts *testServer) dial(t testing.TB, path, proto string) *client {
	t.Helper()
	c, resp, err := ts.tryDial(path, proto)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	cl := &client{t: t, c: c}
	t.Cleanup(func() { _ = c.Close() })
	return cl
}

func (ts *testServer) tryDial(path, proto string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: waitTime}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	return d.Dial(ts.ws+path, nil)
}

// read returns the next text frame.
func (c *client) read() string {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(waitTime))
	op, data, err := c.c.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if op != websocket.TextMessage {
		c.t.Fatalf("read: opcode %d, want text", op)
	}
	return string(data)
}

// expect reads len(lines) frames and checks them byte for byte.
func (c *client) expect(lines ...string) {
	c.t.Helper()
	for i, want := range lines {
		if got := c.read(); got != want {
			c.t.Fatalf("frame %d: got %q, want %q", i, got, want)
		}
	}
}

// event is a decoded JSON frame.
type event map[string]any

func (e event) str(k string) string { s, _ := e[k].(string); return s }
func (e event) num(k string) uint64 { f, _ := e[k].(float64); return uint64(f) }

// readEvent reads the next frame as JSON.
func (c *client) readEvent() event {
	c.t.Helper()
	raw := c.read()
	var e event
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		c.t.Fatalf("frame is not JSON: %q: %v", raw, err)
	}
	return e
}

// expectEvent reads the next frame and checks its type.
func (c *client) expectEvent(typ string) event {
	c.t.Helper()
	e := c.readEvent()
	if e.str("type") != typ {
		c.t.Fatalf("got %v, want a %q event", e, typ)
	}
	return e
}

// skipTo reads frames until one satisfies match.
func (c *client) skipTo(match func(string) bool) string {
	c.t.Helper()
	for {
		if s := c.read(); match(s) {
			return s
		}
	}
}

func (c *client) send(text string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	c.send(string(b))
}

// expectClose reads until the connection ends and checks the close code
// (and reason, when not empty). Data frames before the close are skipped.
// gorilla answers the close frame; the TCP connection is then closed, as
// the server waits for that (up to its CloseTimeout) before OnClose.
func (c *client) expectClose(code int, reason string) {
	c.t.Helper()
	defer c.c.Close()
	_ = c.c.SetReadDeadline(time.Now().Add(waitTime))
	for {
		_, _, err := c.c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close %d", err, code)
		}
		if ce.Code != code || (reason != "" && ce.Text != reason) {
			c.t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

// get fetches path over HTTP and returns status and body.
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

// names returns the names of room's members.
func (ts *testServer) names(room string) []string {
	var out []string
	for _, u := range ts.srv.Users(room) {
		out = append(out, u.Name)
	}
	return out
}

// applyPresenceDelta applies a presence delta the way docs/protocol.md tells
// clients to: remove the left names, then add the joined ones not there.
func applyPresenceDelta(list, left, joined []string) []string {
	for _, n := range left {
		list = slices.DeleteFunc(list, func(x string) bool { return x == n })
	}
	for _, n := range joined {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}
