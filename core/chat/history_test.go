package chat_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

func TestReplayOnJoin(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 5; i++ {
		add(hist, "r", "old", fmt.Sprint("m", i))
	}
	ts := chattest.Start(t, chat.Config{Replay: 3}, nil, hist)
	p := ts.Dial(t, "/chat/r?name=p", "")
	p.Expect(replayAt+"old: m3", replayAt+"old: m4", replayAt+"old: m5", "* --- end of history ---", "* p joined")

	j := ts.Dial(t, "/chat/r?name=j", chat.SubprotocolJSON)
	j.ExpectEvent("welcome")
	h := j.ExpectEvent("history")
	msgs := h["messages"].([]any)
	if len(msgs) != 3 || h["more"] != true || h["complete"] != true {
		t.Fatalf("history: %v", h)
	}
	if first := chattest.Event(msgs[0].(map[string]any)); first.Num("id") != 3 {
		t.Fatalf("first replayed id %v", first)
	}

	// Replay: none.
	ts2 := chattest.Start(t, chat.Config{}, nil, hist)
	c := ts2.Dial(t, "/chat/r?name=q", "")
	c.Expect("* q joined")
}

// A join queued behind messages gets exactly the messages before it in
// its replay and exactly the ones after it live: none twice, none lost.
func TestReplayAndLiveDoNotOverlap(t *testing.T) {
	t.Run("small room", func(t *testing.T) { testReplayAndLive(t, 0, chat.Config{Replay: 500}) })
	// In a big room the broadcasts are written by the sweepers while the
	// room goes on; newcomers join (and members leave) while passes are
	// in flight.
	t.Run("big room", func(t *testing.T) {
		testReplayAndLive(t, chat.FanoutMinMembers, chat.WithFanout(chat.Config{Replay: 500}, 2, 0))
	})
}

// testReplayAndLive floods a room with numbered messages while newcomers
// join: each must see every message exactly once, replayed or live.
func testReplayAndLive(t *testing.T, silent int, cfg chat.Config) {
	hist := chattest.NewHistory()
	ts := chattest.Start(t, cfg, nil, hist)
	for i := range silent {
		ts.Dial(t, fmt.Sprintf("/chat/r?name=q%d", i), "")
	}
	s := ts.Dial(t, "/chat/r?name=s", "")
	chattest.Eventually(t, "all joined", func() bool { return len(ts.Chat.Users("r")) == silent+1 })
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			_ = s.Conn.WriteMessage(1, fmt.Appendf(nil, "%d", i))
		}
	}()
	for k := range 3 {
		j := ts.Dial(t, fmt.Sprintf("/chat/r?name=j%d", k), "")
		var got []string
		for len(got) < n {
			line := j.Read()
			if strings.HasPrefix(line, "* ") {
				continue
			}
			if strings.HasPrefix(line, "[") { // replayed: "[TIME] s: N"
				_, line, _ = strings.Cut(line, "] ")
			}
			got = append(got, line)
		}
		for i, l := range got {
			if l != fmt.Sprintf("s: %d", i) {
				t.Fatalf("newcomer %d's line %d is %q (replay and live overlap or miss)", k, i, l)
			}
		}
		_ = j.Conn.Close() // leaves while the flood may still go on
	}
	<-done
}

func TestSinceResumeAndGap(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 6; i++ {
		add(hist, "r", "u", fmt.Sprint("m", i))
	}
	ts := chattest.Start(t, chat.Config{APILimit: 3}, nil, hist)

	// Complete resume: exactly the messages after 4.
	c := ts.Dial(t, "/chat/r?name=a&since=4", "")
	c.Expect(replayAt+"u: m5", replayAt+"u: m6", "* --- end of history ---", "* a joined")
	j := ts.Dial(t, "/chat/r?name=b&since=4", chat.SubprotocolJSON)
	j.ExpectEvent("welcome")
	h := j.ExpectEvent("history")
	if h.Str("reason") != "since" || h["complete"] != true || h["more"] != false || len(h["messages"].([]any)) != 2 {
		t.Fatalf("history: %v", h)
	}

	// More than APILimit missed: capped, "more" set.
	j2 := ts.Dial(t, "/chat/r?name=c&since=1", chat.SubprotocolJSON)
	j2.ExpectEvent("welcome")
	if h := j2.ExpectEvent("history"); h["more"] != true || len(h["messages"].([]any)) != 3 {
		t.Fatalf("history: %v", h)
	}

	// Retention removed 1..3: resuming after 1 reports the gap.
	hist.PruneTo("r", 3)
	g := ts.Dial(t, "/chat/r?name=d&since=1", chat.SubprotocolJSON)
	g.ExpectEvent("welcome")
	gap := g.ExpectEvent("gap")
	if gap.Num("after") != 1 || gap.Num("first") != 4 || gap.Str("room") != "r" {
		t.Fatalf("gap: %v", gap)
	}
	if h := g.ExpectEvent("history"); h["complete"] != false || h.Str("reason") != "since" {
		t.Fatalf("history: %v", h)
	}
	p := ts.Dial(t, "/chat/r?name=e&since=1", "")
	p.Expect("* some messages were lost", replayAt+"u: m4", replayAt+"u: m5", replayAt+"u: m6", "* --- end of history ---", "* e joined")
	add(hist, "r", "u", "m7")
	p2 := ts.Dial(t, "/chat/r?name=f&since=3", "")
	p2.Expect(replayAt+"u: m4", replayAt+"u: m5", replayAt+"u: m6", "* more messages were missed than shown", "* --- end of history ---", "* f joined")
}

func TestHistoryPaging(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 10; i++ {
		add(hist, "r", "u", fmt.Sprint("m", i))
	}
	ts := chattest.Start(t, chat.Config{Replay: 2, APILimit: 4}, nil, hist)
	j := ts.Dial(t, "/chat/r?name=a", chat.SubprotocolJSON)
	j.SkipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })
	ids := func(h chattest.Event) []uint64 {
		var out []uint64
		for _, m := range h["messages"].([]any) {
			out = append(out, chattest.Event(m.(map[string]any)).Num("id"))
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
		j.SendJSON(map[string]any{"type": "history", "before": tc.before, "limit": tc.limit})
		h := j.ExpectEvent("history")
		if got := fmt.Sprint(ids(h)); got != tc.want || h["more"] != tc.wantMore || h.Str("reason") != "before" {
			t.Errorf("before %d limit %d: ids %s more %v, want %s more %v", tc.before, tc.limit, got, h["more"], tc.want, tc.wantMore)
		}
	}

	// Without a store, paging is answered with an error.
	ts2 := chattest.Start(t, chat.Config{}, nil, nil)
	n := ts2.Dial(t, "/chat/r?name=a", chat.SubprotocolJSON)
	n.ExpectEvent("welcome")
	if h := n.ExpectEvent("history"); len(h["messages"].([]any)) != 0 {
		t.Fatalf("history without a store: %v", h)
	}
	n.SkipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })
	n.SendJSON(map[string]any{"type": "history", "before": 5})
	if e := n.ExpectEvent("error"); e.Str("code") != "no_history" {
		t.Fatalf("%v", e)
	}
}

func TestHistoryAPI(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 10; i++ {
		add(hist, "r", "u", fmt.Sprint("m", i))
	}
	ts := chattest.Start(t, chat.Config{APILimit: 4}, nil, hist)
	type page struct {
		Room     string         `json:"room"`
		Complete bool           `json:"complete"`
		More     bool           `json:"more"`
		Messages []chat.Message `json:"messages"`
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
		status, body, hdr := ts.Get(t, "/api/history?"+tc.query)
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
	if !strings.Contains(func() string { _, b, _ := ts.Get(t, "/api/history?room=r&limit=1"); return b }(), `"user":"u","text":"m10","ts":"`) {
		t.Fatal("message fields differ from the WebSocket encoding")
	}
	for _, q := range []string{"room=a%20b", "room=r&before=x", "room=r&after=-1", "room=r&limit=0", "room=r&limit=x", "room=r&before=1&after=1"} {
		status, body, _ := ts.Get(t, "/api/history?"+q)
		var e struct{ Error string }
		if status != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want 400 with a JSON error", q, status, body)
		}
	}
	ts2 := chattest.Start(t, chat.Config{}, nil, nil)
	status, body, _ := ts2.Get(t, "/api/history?room=r")
	if status != 404 || !strings.Contains(body, `"error":"no history`) {
		t.Fatalf("without a store: %d %s", status, body)
	}
}

// historyIDs returns the ids of a history event's messages.
func historyIDs(h chattest.Event) []uint64 {
	var out []uint64
	for _, m := range h["messages"].([]any) {
		out = append(out, chattest.Event(m.(map[string]any)).Num("id"))
	}
	return out
}

// A JSON client that resumes with ?since=ID over a gap of several pages
// fetches the rest with "after" requests and ends with every message
// exactly once, in order, even while new messages arrive live meanwhile.
func TestResumeAfterPages(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 12; i++ {
		add(hist, "r", "u", fmt.Sprint("m", i))
	}
	ts := chattest.Start(t, chat.Config{APILimit: 4, Replay: 4}, nil, hist)
	live := ts.Dial(t, "/chat/r?name=live", "")
	live.Expect(replayAt+"u: m9", replayAt+"u: m10", replayAt+"u: m11", replayAt+"u: m12", "* --- end of history ---", "* live joined")

	c := ts.Dial(t, "/chat/r?name=c&since=1", chat.SubprotocolJSON)
	c.ExpectEvent("welcome")
	h := c.ExpectEvent("history")
	if h.Str("reason") != "since" || h["more"] != true || h["complete"] != true {
		t.Fatalf("resume batch: %v", h)
	}
	seen := map[uint64]int{}
	var order []uint64
	take := func(ids []uint64) {
		for _, id := range ids {
			if seen[id]++; seen[id] == 1 {
				order = append(order, id)
			}
		}
	}
	take(historyIDs(h))
	// Someone talks while c is catching up: c gets these live, and the
	// after pages reach them too (the page drops duplicate ids).
	live.Send("n13")
	live.Send("n14")
	var liveIDs []uint64
	pages := 0
	for more := true; more; {
		cursor := order[len(order)-1]
		c.SendJSON(map[string]any{"type": "history", "after": cursor, "limit": 100})
		for {
			e := c.ReadEvent()
			if e.Str("type") == "message" {
				liveIDs = append(liveIDs, e.Num("id"))
				continue
			}
			if e.Str("type") != "history" {
				continue // presence, joins
			}
			if e.Str("reason") != "after" || e["complete"] != true || len(e["messages"].([]any)) > 4 {
				t.Fatalf("after %d: %v", cursor, e)
			}
			ids := historyIDs(e)
			if len(ids) > 0 && ids[0] != cursor+1 {
				t.Fatalf("after %d: page starts at %d", cursor, ids[0])
			}
			take(ids)
			more = e["more"] == true
			break
		}
		if pages++; pages > 10 {
			t.Fatal("after pages never end")
		}
	}
	for len(liveIDs) < 2 {
		if e := c.ReadEvent(); e.Str("type") == "message" {
			liveIDs = append(liveIDs, e.Num("id"))
		}
	}
	if fmt.Sprint(liveIDs) != "[13 14]" {
		t.Fatalf("live ids %v, want [13 14]", liveIDs)
	}
	take(liveIDs)
	want := []uint64{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("client ends with ids %v, want %v", order, want)
	}
	if pages < 2 {
		t.Fatalf("%d after pages, want at least 2 (the gap of 11 spans three pages of 4)", pages)
	}
}

// "after" requests: gaps, limits, the end of history, and errors.
func TestHistoryAfterRequest(t *testing.T) {
	hist := chattest.NewHistory()
	for i := 1; i <= 8; i++ {
		add(hist, "r", "u", fmt.Sprint("m", i))
	}
	hist.PruneTo("r", 2)
	ts := chattest.Start(t, chat.Config{Replay: 2, APILimit: 3}, nil, hist)
	j := ts.Dial(t, "/chat/r?name=a", chat.SubprotocolJSON)
	j.SkipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })

	// Retention removed 1..2: a gap event comes first.
	j.SendJSON(map[string]any{"type": "history", "after": 0, "limit": 2})
	gap := j.ExpectEvent("gap")
	if gap.Num("after") != 0 || gap.Num("first") != 3 {
		t.Fatalf("gap: %v", gap)
	}
	h := j.ExpectEvent("history")
	if fmt.Sprint(historyIDs(h)) != "[3 4]" || h["complete"] != false || h["more"] != true || h.Str("reason") != "after" {
		t.Fatalf("after 0: %v", h)
	}
	for _, tc := range []struct {
		after    uint64
		limit    int
		want     string
		wantMore bool
	}{
		{4, 100, "[5 6 7]", true}, // capped at APILimit
		{6, 0, "[7 8]", false},    // limit 0 = api_limit
		{8, 5, "[]", false},
	} {
		j.SendJSON(map[string]any{"type": "history", "after": tc.after, "limit": tc.limit})
		h := j.ExpectEvent("history")
		if got := fmt.Sprint(historyIDs(h)); got != tc.want || h["more"] != tc.wantMore || h["complete"] != true || h.Str("reason") != "after" {
			t.Errorf("after %d limit %d: %v, want ids %s more %v", tc.after, tc.limit, h, tc.want, tc.wantMore)
		}
	}
	j.Send(`{"type":"history","before":5,"after":2}`)
	if e := j.ExpectEvent("error"); e.Str("code") != "bad_request" {
		t.Fatalf("before and after: %v", e)
	}

	ts2 := chattest.Start(t, chat.Config{}, nil, nil)
	n := ts2.Dial(t, "/chat/r?name=a", chat.SubprotocolJSON)
	n.SkipTo(func(s string) bool { return strings.Contains(s, `"a joined"`) })
	n.SendJSON(map[string]any{"type": "history", "after": 1})
	if e := n.ExpectEvent("error"); e.Str("code") != "no_history" {
		t.Fatalf("%v", e)
	}
}
