package chat_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// TestOneDefaultPageSize: a page nobody sized holds [store] api_limit
// messages, on both paths a client can ask for one (the JSON history
// request and /api/history), like a since=ID resume; the replay on joining
// keeps its own count. A before cursor of 0 means the newest messages on
// both paths.
func TestOneDefaultPageSize(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 70; i++ {
		add(hist, "r", "u", fmt.Sprint("m", i))
	}
	ts := chattest.Start(t, chat.Config{Replay: 2, APILimit: 60}, nil, hist)
	ids := func(msgs []any) (first, last uint64, n int) {
		if len(msgs) == 0 {
			return 0, 0, 0
		}
		return chattest.Event(msgs[0].(map[string]any)).Num("id"), chattest.Event(msgs[len(msgs)-1].(map[string]any)).Num("id"), len(msgs)
	}

	j := ts.Dial(t, "/chat/r?name=a", chat.SubprotocolJSON)
	j.ExpectEvent("welcome")
	if first, last, n := ids(j.ExpectEvent("history")["messages"].([]any)); n != 2 || first != 69 || last != 70 {
		t.Fatalf("replay: %d messages %d..%d, want the 2 newest ([store] replay)", n, first, last)
	}
	j.SkipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })
	for _, req := range []map[string]any{
		{"type": "history"},
		{"type": "history", "before": 0},
		{"type": "history", "before": 71, "limit": 0},
	} {
		j.SendJSON(req)
		h := j.ExpectEvent("history")
		if first, last, n := ids(h["messages"].([]any)); n != 60 || first != 11 || last != 70 || h["more"] != true {
			t.Errorf("%v: %d messages %d..%d more %v, want 60 (api_limit) 11..70 more", req, n, first, last, h["more"])
		}
	}
	j.SendJSON(map[string]any{"type": "history", "after": 0})
	h := j.ExpectEvent("history")
	if first, last, n := ids(h["messages"].([]any)); n != 60 || first != 1 || last != 60 || h["more"] != true {
		t.Errorf("after 0: %d messages %d..%d more %v, want 60 (api_limit) 1..60 more", n, first, last, h["more"])
	}

	for _, tc := range []struct {
		query       string
		first, last uint64
		more        bool
	}{
		{"room=r", 11, 70, true},
		{"room=r&before=0", 11, 70, true},
		{"room=r&after=0", 1, 60, true},
		{"room=r&after=5", 6, 65, true},
	} {
		status, body, _ := ts.Get(t, "/api/history?"+tc.query)
		var p struct {
			More     bool           `json:"more"`
			Messages []chat.Message `json:"messages"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("%s: %d %s", tc.query, status, body)
		}
		if n := len(p.Messages); n != 60 || p.Messages[0].ID != tc.first || p.Messages[n-1].ID != tc.last || p.More != tc.more {
			t.Errorf("/api/history?%s: %d messages, more %v; want 60 (api_limit) %d..%d more %v", tc.query, n, p.More, tc.first, tc.last, tc.more)
		}
	}

	// The resume page is the same size.
	k := ts.Dial(t, "/chat/r?name=b&since=0", chat.SubprotocolJSON)
	k.ExpectEvent("welcome")
	h = k.ExpectEvent("history")
	if first, last, n := ids(h["messages"].([]any)); n != 60 || first != 1 || last != 60 || h["more"] != true || h.Str("reason") != "since" {
		t.Errorf("since=0: %v messages %d..%d more %v, want 60 (api_limit) 1..60 more", n, first, last, h["more"])
	}
}
