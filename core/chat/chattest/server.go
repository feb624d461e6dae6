package chattest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
)

// Server is a chat.Server behind a test listener on 127.0.0.1.
type Server struct {
	// Chat is the server under test.
	Chat *chat.Server
	// WS is the ws:// base URL (ws://127.0.0.1:PORT).
	WS string
	// HTTP is the http:// base URL.
	HTTP string
}

// binder is a Hooks that acts on the server through chat.Host (the
// scripting engine): Start binds it to the new server.
type binder interface {
	Bind(chat.Host)
}

// Limits returns cfg with the settings chat.New requires (the limits and
// the default room) that cfg leaves at zero set to the built-in
// config.toml's values, so that a test names only what it tests. The
// settings whose zero means "off" or "none" (FloodRate, Replay,
// AnnounceInterval, AnnounceBatchMembers) are left as they are.
func Limits(cfg chat.Config) chat.Config {
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

// Start runs chat.New(Limits(cfg), hooks, hist) behind an httptest
// listener. Hooks
// with a Bind(chat.Host) method are bound to the server. A cfg without a
// Logger logs to the test log (TestLogger). The server is
// shut down and the listener closed when the test ends (a test may shut
// the server down earlier itself: a second Shutdown is harmless). hooks
// and hist may be nil.
func Start(t testing.TB, cfg chat.Config, hooks chat.Hooks, hist chat.History) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = TestLogger(t)
	}
	srv, err := chat.New(Limits(cfg), hooks, hist)
	if err != nil {
		t.Fatalf("chat.New: %v", err)
	}
	if b, ok := hooks.(binder); ok {
		b.Bind(srv)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &Server{Chat: srv, HTTP: hs.URL, WS: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// Dial connects a Client to path ("/chat/ROOM?name=NAME") on s offering
// the subprotocol proto ("" offers none); see the package's Dial.
func (s *Server) Dial(t testing.TB, path, proto string) *Client {
	t.Helper()
	return Dial(t, s.WS+path, proto)
}

// DialFrom is Dial from the local address ip (see the package's
// DialFrom).
func (s *Server) DialFrom(t testing.TB, ip, path, proto string) *Client {
	t.Helper()
	return DialFrom(t, ip, s.WS+path, proto)
}

// TryDial is Dial for a test that expects the handshake to fail, or that
// reads the raw connection from its own goroutines: it returns what the
// dialer returned instead of failing the test, and the caller closes the
// connection.
func (s *Server) TryDial(path, proto string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: Wait}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	return d.Dial(s.WS+path, nil)
}

// Get fetches path over HTTP and returns the status, body and header.
func (s *Server) Get(t testing.TB, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(s.HTTP + path)
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

// Names returns the names of room's members, in the server's order.
func (s *Server) Names(room string) []string {
	var out []string
	for _, u := range s.Chat.Users(room) {
		out = append(out, u.Name)
	}
	return out
}

// TestLogger returns a logger that writes to t's log (shown when the test
// fails, or with -v), at debug level.
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
