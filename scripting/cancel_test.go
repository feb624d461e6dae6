package scripting

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// cancelOnLog is a slog handler that cancels a context when a script logs
// "started": the script is then surely running.
type cancelOnLog struct {
	slog.Handler
	cancel context.CancelFunc
}

func (h cancelOnLog) Enabled(context.Context, slog.Level) bool { return true }

func (h cancelOnLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "started" {
		h.cancel()
	}
	return nil
}

// Cancelling the caller's context (SIGINT, SIGTERM to `moonchat check`)
// stops a script's top level at once — in a Lua loop or inside one library
// call — and the error says it was cancelled, not that a script failed
// (issue 10.13).
func TestCheckStopsOnCancel(t *testing.T) {
	for name, body := range map[string]string{
		"loop":    `while true do end`,
		"pattern": `local s = string.rep("a", 65536) s:find("a*a*a*a*a*b")`,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			log := slog.New(cancelOnLog{slog.DiscardHandler, cancel})
			err := Check(ctx, scriptFS(map[string]string{"a.lua": `print("started") ` + body, "b.lua": `print("not reached")`}), log, nil)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Check = %v, want context.Canceled", err)
			}
			if strings.Contains(err.Error(), "time limit") {
				t.Fatalf("reported as a time limit: %v", err)
			}
		})
	}
	// Already cancelled: nothing runs.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := New(ctx, Options{FS: scriptFS(map[string]string{"a.lua": ``})}); !errors.Is(err, context.Canceled) {
		t.Fatalf("New = %v", err)
	}
}
