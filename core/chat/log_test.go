package chat

import (
	"log/slog"
	"testing"
)

// testLogger sends the server's logs to the test log (shown on failure or
// with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// discardLogger drops logs (benchmarks).
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
