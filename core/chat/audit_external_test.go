package chat_test

import (
	"errors"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestAuditAction: an entry appended from outside reaches the audit log
// (a ModerationStore's, and the in-memory one), with the server's time;
// a store that cannot write it says so (the caller refuses to act) and
// counts it; an entry without an action is refused.
func TestAuditAction(t *testing.T) {
	hist := chattest.NewHistory()
	ts := modServer(t, hist, nil, nil)
	if err := ts.Chat.AuditAction("", "console:alice", "console", "", "return #chat.rooms()"); err != nil {
		t.Fatal(err)
	}
	es, err := ts.Chat.Audit("", time.Time{}, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("audit %+v %v", es, err)
	}
	if e := es[0]; e.Room != "" || e.By != "console:alice" || e.Action != "console" || e.Reason != "return #chat.rooms()" || time.Since(e.Time) > time.Minute {
		t.Errorf("entry %+v", e)
	}
	if err := ts.Chat.AuditAction("lobby", "x", "", "", ""); err == nil {
		t.Error("an entry without an action was accepted")
	}
	hist.FailAudit(chattest.ErrStore)
	if err := ts.Chat.AuditAction("", "console:alice", "console", "", "x = 1"); !errors.Is(err, chattest.ErrStore) {
		t.Errorf("failing store: %v", err)
	}
	if got := metricLine(t, ts, "moonchat_audit_write_errors_total"); got != "moonchat_audit_write_errors_total 1" {
		t.Errorf("metric %q", got)
	}

	mem := chattest.Start(t, chat.Config{}, nil, nil)
	if err := mem.Chat.AuditAction("dev", "console", "console", "", "1"); err != nil {
		t.Fatal(err)
	}
	if es, err := mem.Chat.Audit("dev", time.Time{}, 10); err != nil || len(es) != 1 || es[0].Reason != "1" {
		t.Errorf("in memory: %+v %v", es, err)
	}
}
