package chattest

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

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
// with a Bind(chat.Host) method are bound to the server. The server is
// shut down and the listener closed when the test ends (a test may shut
// the server down earlier itself: a second Shutdown is harmless). hooks
// and hist may be nil.
func Start(t testing.TB, cfg chat.Config, hooks chat.Hooks, hist chat.History) *Server {
	t.Helper()
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
