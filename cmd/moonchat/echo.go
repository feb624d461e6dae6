package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// echoHandler sends every message back with its opcode.
type echoHandler struct{}

func (echoHandler) OnOpen(*ws.Conn) {}

func (echoHandler) OnMessage(c *ws.Conn, op ws.Opcode, data []byte) {
	_ = c.WriteMessage(op, data)
}

func (echoHandler) OnClose(*ws.Conn, error) {}

// runEcho runs the bare WebSocket engine as an echo server on every path:
// the harness that the Autobahn TestSuite runs against.
func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("echo", "[flags]", stderr)
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on")
	maxMessage := fs.Int64("max-message", 64<<20, "largest message accepted, in bytes (larger ones close with 1009)")
	hixie := fs.Bool("hixie76", false, "also accept the legacy hixie-76 handshake")
	compress := fs.Bool("compress", false, "negotiate permessage-deflate (RFC 7692) with clients that offer it")
	compressMin := fs.Int("compress-threshold", -1, "with -compress: messages shorter than this many bytes are sent uncompressed (negative: compress every message)")
	verbose := fs.Bool("v", false, "log debug messages (handshake refusals, protocol errors)")
	tlsCert := fs.String("tls-cert", "", "serve wss:// with this PEM certificate chain (with -tls-key; reloaded on file change)")
	tlsKey := fs.String("tls-key", "", "the PEM private key of -tls-cert")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return newUsageError(fs, errors.New("-tls-cert and -tls-key go together"))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv, err := ws.NewServer(echoHandler{}, ws.Config{
		MaxMessageBytes: *maxMessage,
		// An echo must be able to queue at least one maximal message
		// (plus what is still in flight) for a client that is busy
		// sending; Autobahn 9.x echoes messages of up to 16 MiB.
		MaxQueueBytes: int(min(2**maxMessage+1<<20, 1<<31-1)),
		Hixie76:       *hixie,
		Compression:   *compress,
		// The echo server compresses every message by default, so
		// that a conformance run exercises compression on all of
		// them; a message that would not shrink still goes plain.
		CompressionThreshold: *compressMin,
		// Autobahn's clients send an Origin header naming their own
		// host; the echo server serves no pages, so any origin is fine.
		CheckOrigin: func(*http.Request) bool { return true },
		// Nor does it hold anything a DNS-rebinding page could steal,
		// and a test suite in a container may name the host any way.
		Hosts:  []string{"*"},
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("echo server: %w", err)
	}
	var certs *certHolder
	if *tlsCert != "" {
		if certs, err = newCertHolder(*tlsCert, *tlsKey, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	scheme := "ws://"
	if certs != nil {
		// The same TLS as moonchat serve (tls.go): TLS 1.2+, HTTP/1.1.
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, GetCertificate: certs.GetCertificate})
		scheme = "wss://"
		wctx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			certs.watch(wctx)
		}()
		defer func() { stopWatch(); <-watched }()
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("echo server listening", "addr", ln.Addr().String(), "url", scheme+ln.Addr().String()+"/", "max_message", *maxMessage, "compress", *compress)

	select {
	case err := <-serveErr:
		_ = srv.Close()
		return fmt.Errorf("serve %s: %w", *listen, err)
	case <-ctx.Done():
	}
	log.Info("echo server shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := srv.Shutdown(sctx, ws.StatusGoingAway, "server shutting down"); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("websocket shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", *listen, err)
	}
	return nil
}
