package chat

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestReplayOnJoin(t *testing.T) {
	hist := newMemHistory()
	for i := 1; i <= 5; i++ {
		hist.add("r", "old", fmt.Sprint("m", i))
	}
	ts := startServer(t, Config{Replay: 3}, nil, hist)
	p := ts.dial(t, "/chat/r?name=p", "")
	p.expect("old: m3", "old: m4", "old: m5", "* p joined")

	j := ts.dial(t, "/chat/r?name=j", SubprotocolJSON)
	j.expectEvent("welcome")
	h := j.expectEvent("history")
	msgs := h["messages"].([]any)
	if len(msgs) != 3 || h["more"] != true || h["complete"] != true {
		t.Fatalf("history: %v", h)
	}
	if first := event(msgs[0].(map[string]any)); first.num("id") != 3 {
		t.Fatalf("first replayed id %v", first)
	}

	// Replay: none.
	ts2 := startServer(t, Config{Replay: -1}, nil, hist)
	c := ts2.dial(t, "/chat/r?name=q", "")
	c.expect("* q joined")
}

// A join queued behind messages gets exactly the messages before it in
// its replay and exactly the ones after it live: none twice, none lost.
func TestReplayAndLiveDoNotOverlap(t *testing.T) {
	hist := newMemHistory()
	ts := startServer(t, Config{FloodRate: -1, Replay: 500}, nil, hist)
	s := ts.dial(t, "/chat/r?name=s", "")
	s.expect("* s joined")
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			_ = s.c.WriteMessage(1, fmt.Appendf(nil, "%d", i))
		}
	}()
	j := ts.dial(t, "/chat/r?name=j", "")
	var got []string
	for len(got) < n {
		line := j.read()
		if strings.HasPrefix(line, "* ") {
			continue
		}
		got = append(got, line)
	}
	<-done
	for i, l := range got {
		if l != fmt.Sprintf("s: %d", i) {
			t.Fatalf("newcomer's line %d is %q (replay and live overlap or miss)", i, l)
		}
	}
}

func TestSinceResumeAndGap(t *testing.T) {
	hist := newMemHistory()
	for i := 1; i <= 6; i++ {
		hist.add("r", "u", fmt.Sprint("m", i))
	}
	ts := startServer(t, Config{APILimit: 3}, nil, hist)

	// Complete resume: exactly the messages after 4.
	c := ts.dial(t, "/chat/r?name=a&since=4", "")
	c.expect("u: m5", "u: m6", "* a joined")
	j := ts.dial(t, "/chat/r?name=b&since=4", SubprotocolJSON)
	j.expectEvent("welcome")
	h := j.expectEvent("history")
	if h.str("reason") != "since" || h["complete"] != true || h["more"] != false || len(h["messages"].([]any)) != 2 {
		t.Fatalf("history: %v", h)
	}

	// More than APILimit missed: capped, "more" set.
	j2 := ts.dial(t, "/chat/r?name=c&since=1", SubprotocolJSON)
	j2.expectEvent("welcome")
	if h := j2.expectEvent("history"); h["more"] != true || len(h["messages"].([]any)) != 3 {
		t.Fatalf("history: %v", h)
	}

	// Retention removed 1..3: resuming after 1 reports the gap.
	hist.pruneTo("r", 3)
	g := ts.dial(t, "/chat/r?name=d&since=1", SubprotocolJSON)
	g.expectEvent("welcome")
	gap := g.expectEvent("gap")
	if gap.num("after") != 1 || gap.num("first") != 4 || gap.str("room") != "r" {
		t.Fatalf("gap: %v", gap)
	}
	if h := g.expectEvent("history"); h["complete"] != false || h.str("reason") != "since" {
		t.Fatalf("history: %v", h)
	}
	p := ts.dial(t, "/chat/r?name=e&since=1", "")
	p.expect("* some messages were lost", "u: m4", "u: m5", "u: m6", "* e joined")
	hist.add("r", "u", "m7")
	p2 := ts.dial(t, "/chat/r?name=f&since=3", "")
	p2.expect("u: m4", "u: m5", "u: m6", "* more messages were missed than shown", "* f joined")
}

func TestHistoryPaging(t *testing.T) {
	hist := newMemHistory()
	for i := 1; i <= 10; i++ {
		hist.add("r", "u", fmt.Sprint("m", i))
	}
	ts := startServer(t, Config{Replay: 2, APILimit: 4}, nil, hist)
	j := ts.dial(t, "/chat/r?name=a", SubprotocolJSON)
	j.skipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })
	ids := func(h event) []uint64 {
		var out []uint64
		for _, m := range h["messages"].([]any) {
			out = append(out, event(m.(map[string]any)).num("id"))
		}
		return out
	}
	for _, tc := range []struct {
		before   uint64
		limit    int
		want     string
		wantMore bool
	}{
		{9, 3, "[6 7 8]", true},
		{6, 100, "[2 3 4 5]", true}, // capped at APILimit
		{3, 5, "[1 2]", false},
		{1, 5, "[]", false},
		{0, 2, "[9 10]", true}, // before 0 = the newest
	} {
		j.sendJSON(map[string]any{"type": "history", "before": tc.before, "limit": tc.limit})
		h := j.expectEvent("history")
		if got := fmt.Sprint(ids(h)); got != tc.want || h["more"] != tc.wantMore || h.str("reason") != "before" {
			t.Errorf("before %d limit %d: ids %s more %v, want %s more %v", tc.before, tc.limit, got, h["more"], tc.want, tc.wantMore)
		}
	}

	// Without a store, paging is answered with an error.
	ts2 := startServer(t, Config{}, nil, nil)
	n := ts2.dial(t, "/chat/r?name=a", SubprotocolJSON)
	n.expectEvent("welcome")
	if h := n.expectEvent("history"); len(h["messages"].([]any)) != 0 {
		t.Fatalf("history without a store: %v", h)
	}
	n.skipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })
	n.sendJSON(map[string]any{"type": "history", "before": 5})
	if e := n.expectEvent("error"); e.str("code") != "no_history" {
		t.Fatalf("%v", e)
	}
}

func TestHistoryAPI(t *testing.T) {
	hist := newMemHistory()
	for i := 1; i <= 10; i++ {
		hist.add("r", "u", fmt.Sprint("m", i))
	}
	ts := startServer(t, Config{APILimit: 4}, nil, hist)
	type page struct {
		Room     string    `json:"room"`
		Complete bool      `json:"complete"`
		More     bool      `json:"more"`
		Messages []Message `json:"messages"`
	}
	for _, tc := range []struct {
		query string
		ids   string
		more  bool
	}{
		{"room=r", "[7 8 9 10]", true},
		{"room=r&limit=2", "[9 10]", true},
		{"room=r&before=4", "[1 2 3]", false},
		{"room=r&after=5&limit=3", "[6 7 8]", true},
		{"room=r&after=8", "[9 10]", false},
		{"room=empty", "[]", false},
	} {
		status, body, hdr := ts.get(t, "/api/history?"+tc.query)
		if status != 200 || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", tc.query, status, body)
		}
		var p page
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("%s: %v: %s", tc.query, err, body)
		}
		var ids []uint64
		for _, m := range p.Messages {
			ids = append(ids, m.ID)
		}
		if fmt.Sprint(ids) != tc.ids && !(tc.ids == "[]" && ids == nil) || p.More != tc.more || !p.Complete {
			t.Errorf("%s: ids %v more %v complete %v, want %s more %v", tc.query, ids, p.More, p.Complete, tc.ids, tc.more)
		}
	}
	if !strings.Contains(func() string { _, b, _ := ts.get(t, "/api/history?room=r&limit=1"); return b }(), `"user":"u","text":"m10","ts":"`) {
		t.Fatal("message fields differ from the WebSocket encoding")
	}
	for _, q := range []string{"room=a%20b", "room=r&before=x", "room=r&after=-1", "room=r&limit=0", "room=r&limit=x", "room=r&before=1&after=1"} {
		status, body, _ := ts.get(t, "/api/history?"+q)
		var e struct{ Error string }
		if status != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want 400 with a JSON error", q, status, body)
		}
	}
	ts2 := startServer(t, Config{}, nil, nil)
	status, body, _ := ts2.get(t, "/api/history?room=r")
	if status != 404 || !strings.Contains(body, `"error":"no history`) {
		t.Fatalf("without a store: %d %s", status, body)
	}
}
