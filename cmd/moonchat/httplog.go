package main

import (
	"bytes"
	"context"
	"log"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// tlsHandshakeErrorPrefix starts the line net/http logs for every TLS
// handshake that fails on a listener: on the internet, scanners and
// clients that give up send them all day.
var tlsHandshakeErrorPrefix = []byte("http: TLS handshake error ")

// httpErrorLog is the ErrorLog of the HTTP servers: net/http's own lines
// go to log at Warn, except failed TLS handshakes, which are counted in
// handshakeErrors (when not nil) and logged at Debug only, so that
// strangers cannot fill the log by opening and dropping connections.
func httpErrorLog(l *slog.Logger, handshakeErrors prometheus.Counter) *log.Logger {
	return log.New(httpLogWriter{log: l, handshakeErrors: handshakeErrors}, "", 0)
}

// httpLogWriter receives one net/http log line per Write.
type httpLogWriter struct {
	log             *slog.Logger
	handshakeErrors prometheus.Counter
}

// Write implements io.Writer.
func (w httpLogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelWarn
	if bytes.HasPrefix(p, tlsHandshakeErrorPrefix) {
		level = slog.LevelDebug
		if w.handshakeErrors != nil {
			w.handshakeErrors.Inc()
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

// newHandshakeErrors is the counter of failed TLS handshakes on the main
// listener (moonchat_tls_handshake_errors_total).
func newHandshakeErrors() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moonchat_tls_handshake_errors_total",
		Help: "TLS handshakes on the main listener that failed (logged at debug level only: scanners send them all day).",
	})
}
