package chat_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat/chattest"
)

// addedAt is the time of the messages add stores, and replayAt how a
// plain-text replay shows it.
var addedAt = time.Date(2026, 12, 2, 14, 3, 59, 0, time.UTC)

const replayAt = "[2026-12-02 14:03 UTC] "

// add stores texts in room from user, at addedAt (test setup).
func add(h *chattest.History, room, user string, texts ...string) {
	for _, t := range texts {
		h.Add(room, user, t, addedAt)
	}
}

// metric returns the value of the unlabelled series name on ts's /metrics
// (docs/protocol.md lists them), failing the test when there is none.
func metric(t testing.TB, ts *chattest.Server, name string) float64 {
	t.Helper()
	_, body, _ := ts.Get(t, "/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no series %s:\n%s", name, body)
	return 0
}
