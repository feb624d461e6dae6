package loadgen

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestRunTLS: the load tool drives a chat server over wss:// (the
// certificate verified against Config.TLSRoots), reading its clients on
// goroutines, with nothing lost or reordered and the join probes over TLS
// too.
func TestRunTLS(t *testing.T) {
	srv, err := chat.New(chattest.Limits(chat.Config{
		MaxConnections: 1000,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	cfg := Config{
		URL: "wss" + strings.TrimPrefix(hs.URL, "https") + "/chat/e2e-tls", Clients: 20, Senders: 3, Window: 8, Size: 80,
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, JoinProbes: 2, TLSRoots: roots,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanRun(t, sum, 20)
	checkReaders(t, sum, true)
	if sum.JoinProbe == nil || sum.JoinProbe.Failed != 0 {
		t.Errorf("join probe over TLS: %+v", sum.JoinProbe)
	}

	// Without the roots the server's certificate is refused.
	cfg.TLSRoots = nil
	cfg.JoinProbes = 0
	if sum, err := Run(ctx, cfg, testWriter{t}); err == nil {
		t.Fatalf("untrusted certificate accepted: %+v", sum)
	}
}
