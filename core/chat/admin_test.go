package chat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

const adminToken = "s3cret-admin-token"

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failOnTextHistory fails every Append holding a message with the text
// "fail me", as a store whose disk is full.
type failOnTextHistory struct{ *chattest.History }

func (h failOnTextHistory) Append(ctx context.Context, msgs []*chat.Message) error {
	for _, m := range msgs {
		if m.Text == "fail me" {
			return errors.New("disk full")
		}
	}
	return h.History.Append(ctx, msgs)
}

// jsonErr returns the "error" of a JSON error body ("" when none).
func jsonErr(body string) string {
	var e struct{ Error string }
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error
}

// nextMessage skips c's frames to the next "message" event.
func nextMessage(t *testing.T, c *chattest.Client) chattest.Event {
	t.Helper()
	raw := c.SkipTo(func(s string) bool { return strings.Contains(s, `"type":"message"`) })
	var e chattest.Event
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return e
}

// The admin API needs the bearer token: without it, with a wrong one, with
// another scheme or in the URL, every endpoint is 401 with a challenge,
// logged without the token and counted; with the API off (no token
// configured) every admin path is 404.
func TestAdminAPIAuth(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken, Logger: log}, nil, chattest.NewHistory())
	off := chattest.Start(t, chat.Config{}, nil, chattest.NewHistory())
	endpoints := []struct{ method, path, body string }{
		{"POST", "/api/rooms/lobby/messages", `{"text":"hi"}`},
		{"DELETE", "/api/messages/lobby/1", ""},
		{"GET", "/api/members?room=lobby", ""},
		{"POST", "/api/rooms/lobby/kick", `{"name":"x"}`},
	}
	for _, e := range endpoints {
		for _, tc := range []struct{ name, header string }{
			{"no token", ""},
			{"wrong token", "Bearer wrong-token"},
			{"token prefix", "Bearer " + adminToken[:5]},
			{"longer token", "Bearer " + adminToken + "x"},
			{"basic scheme", "Basic " + adminToken},
		} {
			t.Run(e.method+e.path+"/"+tc.name, func(t *testing.T) {
				req := httptest.NewRequest(e.method, e.path, strings.NewReader(e.body))
				req.Host = "localhost"
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				rec := httptest.NewRecorder()
				ts.Chat.ServeHTTP(rec, req)
				if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="moonchat admin"` ||
					!strings.HasPrefix(jsonErr(rec.Body.String()), "admin token required") {
					t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
				}
			})
		}
		// A token in the URL is not accepted (URLs end up in logs).
		sep := "?"
		if strings.Contains(e.path, "?") {
			sep = "&"
		}
		if status, _, _ := do(t, ts, e.method, e.path+sep+"token="+adminToken, "", e.body); status != 401 {
			t.Errorf("%s %s with ?token=: %d", e.method, e.path, status)
		}
		// (The ?token= requests above count too: 6 per action.)
		// Off: 404, whatever the token.
		if status, body, _ := do(t, off, e.method, e.path, adminToken, e.body); status != 404 || jsonErr(body) == "" {
			t.Errorf("admin API off: %s %s: %d %s", e.method, e.path, status, body)
		}
	}
	// An authorized request is logged with its action, room and address.
	if status, _, _ := do(t, ts, "GET", "/api/members?room=lobby", adminToken, ""); status != 200 {
		t.Fatalf("members: %d", status)
	}
	if !strings.Contains(logs.String(), `msg="chat: admin request" action=members room=lobby remote=127.0.0.1:`) {
		t.Errorf("admin request not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), adminToken[:5]) {
		t.Errorf("the log holds the token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "admin request refused") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
	_, m, _ := ts.Get(t, "/metrics")
	for _, want := range []string{
		`moonchat_admin_requests_total{action="post",result="unauthorized"} 6`,
		`moonchat_admin_requests_total{action="delete",result="unauthorized"} 6`,
		`moonchat_admin_requests_total{action="members",result="unauthorized"} 6`,
		`moonchat_admin_requests_total{action="kick",result="unauthorized"} 6`,
		`moonchat_admin_requests_total{action="post",result="ok"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Wrong methods and unknown admin paths are answered without the
	// token: they reveal nothing.
	if status, body, h := do(t, ts, "GET", "/api/rooms/lobby/messages", "", ""); status != 405 || h.Get("Allow") != "POST" || jsonErr(body) == "" {
		t.Errorf("GET messages: %d %v %s", status, h, body)
	}
	if status, _, h := do(t, ts, "POST", "/api/members", "", ""); status != 405 || h.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST members: %d %v", status, h)
	}
	if status, body, _ := do(t, ts, "GET", "/api/messages/lobby", adminToken, ""); status != 404 || jsonErr(body) != "not found" {
		t.Errorf("unknown admin path: %d %s", status, body)
	}
}

// An admin post to a live room goes through the room: stored first, then
// delivered to members (plain and JSON) under its "as" name, in the
// room's order with members' messages, bypassing room rules and message
// hooks; 201 carries the stored id and time. A post to a room without
// members is stored and replayed to the next newcomer.
func TestAdminPost(t *testing.T) {
	hist := chattest.NewHistory()
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		return chat.MessageResult{Drop: true, Reason: "hooks drop everything"}
	}}
	rr, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "news", Read: []string{chat.RoleEveryone}, Post: []string{"staff"}, History: true}})
	if err != nil {
		t.Fatal(err)
	}
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken, RoomRules: rr, Replay: 10}, hooks, hist)
	js := ts.Dial(t, "/chat/news?name=j", chat.SubprotocolJSON)
	js.ExpectEvent("welcome")
	pl := ts.Dial(t, "/chat/news?name=p", "")
	pl.SkipUntil("* p joined")

	status, body, _ := do(t, ts, "POST", "/api/rooms/news/messages", adminToken, `{"text":"hello\nall","as":"bot"}`)
	var a struct {
		Room string
		ID   uint64
		Time string
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || status != 201 || a.Room != "news" || a.ID != 1 || !strings.HasSuffix(a.Time, "Z") {
		t.Fatalf("post: %d %s", status, body)
	}
	ev := nextMessage(t, js)
	if ev.Str("user") != "bot" || ev.Str("text") != "hello\nall" || ev.Num("id") != 1 || ev.Str("ts") != a.Time {
		t.Errorf("JSON member got %v", ev)
	}
	pl.SkipTo(func(s string) bool { return s == "bot: hello ⏎ all" })
	if msgs := hist.All("news"); len(msgs) != 1 || msgs[0].User != "bot" || msgs[0].Text != "hello\nall" {
		t.Errorf("stored %+v", msgs)
	}

	// Default name "server"; a second post gets the next id, in order.
	status, body, _ = do(t, ts, "POST", "/api/rooms/news/messages", adminToken, `{"text":"second"}`)
	if status != 201 || !strings.Contains(body, `"id":2`) {
		t.Fatalf("second post: %d %s", status, body)
	}
	if ev := nextMessage(t, js); ev.Str("user") != "server" || ev.Num("id") != 2 {
		t.Errorf("second message %v", ev)
	}

	// A room without members: stored, and replayed to a newcomer.
	status, body, _ = do(t, ts, "POST", "/api/rooms/empty/messages", adminToken, `{"text":"while you were out"}`)
	if status != 201 || !strings.Contains(body, `"room":"empty","id":1`) {
		t.Fatalf("post to an empty room: %d %s", status, body)
	}
	if msgs := hist.All("empty"); len(msgs) != 1 || msgs[0].Text != "while you were out" {
		t.Fatalf("stored %+v", msgs)
	}
	// The room started for the post was retired before the answer.
	if n := metric(t, ts, "moonchat_rooms"); n != 1 {
		t.Errorf("moonchat_rooms = %v after the post, want 1 (news)", n)
	}
	c := ts.Dial(t, "/chat/empty?name=late", "")
	c.SkipTo(func(s string) bool { return strings.HasSuffix(s, "server: while you were out") })

	_, m, _ := ts.Get(t, "/metrics")
	if want := `moonchat_admin_requests_total{action="post",result="ok"} 3`; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// Invalid admin posts are 400 with a reason and post nothing; a post the
// store fails is 500 and reaches nobody.
func TestAdminPostRefused(t *testing.T) {
	hist := failOnTextHistory{chattest.NewHistory()}
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken, MaxTextBytes: 20}, nil, hist)
	js := ts.Dial(t, "/chat/lobby?name=j", chat.SubprotocolJSON)
	js.ExpectEvent("welcome")
	for _, tc := range []struct {
		name, path, body string
		status           int
		reason           string
	}{
		{"bad room", "/api/rooms/a%20b/messages", `{"text":"x"}`, 400, "invalid room name: only A-Z a-z 0-9 - _ . allowed"},
		{"bad as", "/api/rooms/lobby/messages", `{"text":"x","as":"two words"}`, 400, "as: invalid name: white space not allowed"},
		{"empty text", "/api/rooms/lobby/messages", `{"text":""}`, 400, "text: empty"},
		{"control character", "/api/rooms/lobby/messages", `{"text":"a\u001bb"}`, 400, "text: invalid text: control character U+001B is not allowed (only tab and line breaks are)"},
		{"too long", "/api/rooms/lobby/messages", `{"text":"` + strings.Repeat("x", 21) + `"}`, 400, "text: text too long: at most 20 bytes"},
		{"unknown field", "/api/rooms/lobby/messages", `{"text":"x","user":"y"}`, 400, `bad JSON body: json: unknown field "user"`},
		{"not JSON", "/api/rooms/lobby/messages", `text=x`, 400, "bad JSON body: invalid character 'e' in literal true (expecting 'r')"},
		{"two objects", "/api/rooms/lobby/messages", `{"text":"x"}{}`, 400, "bad JSON body: one JSON object expected, found more"},
		{"too large", "/api/rooms/lobby/messages", `{"text":"` + strings.Repeat("x", 2000) + `"}`, 413, "body too large: at most 1144 bytes"},
		{"store fails", "/api/rooms/lobby/messages", `{"text":"fail me"}`, 500, "message not posted: the server could not store it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := do(t, ts, "POST", tc.path, adminToken, tc.body)
			if status != tc.status || jsonErr(body) != tc.reason {
				t.Fatalf("%d %s, want %d %q", status, body, tc.status, tc.reason)
			}
		})
	}
	// Nothing was delivered: a notice queued after every post arrives
	// first.
	if err := ts.Chat.Broadcast("lobby", "marker"); err != nil {
		t.Fatal(err)
	}
	got := js.SkipTo(func(s string) bool { return strings.Contains(s, `"type":"message"`) || strings.Contains(s, "marker") })
	if strings.Contains(got, `"type":"message"`) {
		t.Fatalf("a refused post was delivered: %s", got)
	}
	if msgs := hist.All("lobby"); len(msgs) != 0 {
		t.Fatalf("stored %+v", msgs)
	}
	_, m, _ := ts.Get(t, "/metrics")
	for _, want := range []string{
		`moonchat_admin_requests_total{action="post",result="bad_request"} 9`,
		`moonchat_admin_requests_total{action="post",result="failed"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// DELETE /api/messages/{room}/{id} redacts (204, the room's JSON members
// told, the message gone from history) and is 404 for an id not stored;
// GET /api/members lists the room's members; POST .../kick closes a
// member's connection with 1000 and the reason, 404 for a name not in the
// room.
func TestAdminDeleteMembersKick(t *testing.T) {
	hist := chattest.NewHistory()
	add(hist, "lobby", "u", "one", "two")
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken, Authenticator: bearerAuth{}}, nil, hist)
	alice := ts.Dial(t, "/chat/lobby?token=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	bob := ts.Dial(t, "/chat/lobby?name=bob", "")
	bob.SkipUntil("* bob joined")

	if status, body, _ := do(t, ts, "DELETE", "/api/messages/lobby/1", adminToken, ""); status != 204 || body != "" {
		t.Fatalf("delete: %d %s", status, body)
	}
	if ev := alice.SkipTo(func(s string) bool { return strings.Contains(s, `"type":"redact"`) }); !strings.Contains(ev, `"id":1`) {
		t.Errorf("redact event %s", ev)
	}
	if msgs := hist.All("lobby"); len(msgs) != 1 || msgs[0].Text != "two" {
		t.Errorf("history after delete %+v", msgs)
	}
	for _, tc := range []struct {
		path   string
		status int
		reason string
	}{
		{"/api/messages/lobby/1", 404, "no such message"},
		{"/api/messages/nowhere/9", 404, "no such message"},
		{"/api/messages/lobby/x", 400, "id must be a message id (an unsigned integer)"},
	} {
		if status, body, _ := do(t, ts, "DELETE", tc.path, adminToken, ""); status != tc.status || jsonErr(body) != tc.reason {
			t.Errorf("DELETE %s: %d %s", tc.path, status, body)
		}
	}

	status, body, _ := do(t, ts, "GET", "/api/members?room=lobby", adminToken, "")
	var ms struct {
		Room    string
		Members []struct {
			Name    string
			ID      *string
			Roles   []string
			Session uint64
		}
	}
	if err := json.Unmarshal([]byte(body), &ms); err != nil || status != 200 || ms.Room != "lobby" || len(ms.Members) != 2 {
		t.Fatalf("members: %d %s", status, body)
	}
	a, b := ms.Members[0], ms.Members[1]
	if a.Name != "alice" || a.ID == nil || *a.ID != "u-alice" || !slices.Equal(a.Roles, []string{"user", "mod"}) || a.Session == 0 ||
		b.Name != "bob" || b.ID != nil || !slices.Equal(b.Roles, []string{"guest"}) || b.Session == a.Session {
		t.Errorf("members %s", body)
	}
	if status, body, _ := do(t, ts, "GET", "/api/members?room=nobody-here", adminToken, ""); status != 200 || strings.TrimSpace(body) != `{"room":"nobody-here","members":[]}` {
		t.Errorf("empty room: %d %s", status, body)
	}

	if status, body, _ := do(t, ts, "POST", "/api/rooms/lobby/kick", adminToken, `{"name":"carol","reason":"x"}`); status != 404 || jsonErr(body) != `no member named "carol" in lobby` {
		t.Errorf("kick unknown: %d %s", status, body)
	}
	if status, body, _ := do(t, ts, "POST", "/api/rooms/lobby/kick", adminToken, `{"name":"bob","reason":"bell\u0007"}`); status != 400 || jsonErr(body) != "reason: invalid text: control character U+0007 is not allowed (only tab and line breaks are)" {
		t.Errorf("kick with a bad reason: %d %s", status, body)
	}
	if status, body, _ := do(t, ts, "POST", "/api/rooms/lobby/kick", adminToken, `{"name":"bob","reason":"be nice"}`); status != 204 {
		t.Fatalf("kick: %d %s", status, body)
	}
	bob.SkipUntil("* be nice")
	bob.ExpectCloseReason(1000, "be nice")
	chattest.Eventually(t, "bob gone", func() bool { return slices.Equal(ts.Names("lobby"), []string{"alice"}) })

	_, m, _ := ts.Get(t, "/metrics")
	for _, want := range []string{
		`moonchat_admin_requests_total{action="delete",result="ok"} 1`,
		`moonchat_admin_requests_total{action="delete",result="not_found"} 2`,
		`moonchat_admin_requests_total{action="delete",result="bad_request"} 1`,
		`moonchat_admin_requests_total{action="members",result="ok"} 2`,
		`moonchat_admin_requests_total{action="kick",result="ok"} 1`,
		`moonchat_admin_requests_total{action="kick",result="not_found"} 1`,
		`moonchat_admin_requests_total{action="kick",result="bad_request"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// /metrics with MetricsNeedToken answers only the admin bearer token (401
// with a challenge otherwise); New refuses MetricsNeedToken without a
// token.
func TestMetricsNeedToken(t *testing.T) {
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken, MetricsNeedToken: true}, nil, nil)
	status, body, h := do(t, ts, "GET", "/metrics", "", "")
	if status != 401 || h.Get("WWW-Authenticate") == "" || strings.Contains(body, "moonchat_") {
		t.Errorf("no token: %d %v %s", status, h, body)
	}
	if status, body, _ := do(t, ts, "GET", "/metrics", "wrong", ""); status != 401 || strings.Contains(body, "moonchat_") {
		t.Errorf("wrong token: %d", status)
	}
	status, body, _ = do(t, ts, "GET", "/metrics", adminToken, "")
	if status != 200 || !strings.Contains(body, `moonchat_admin_requests_total{action="metrics",result="unauthorized"} 2`) {
		t.Errorf("with the token: %d\n%s", status, body)
	}
	if _, err := chat.New(chattest.Limits(chat.Config{MetricsNeedToken: true}), nil, nil); err == nil || !strings.Contains(err.Error(), "admin token is empty") {
		t.Errorf("New without a token: %v", err)
	}
	// Without MetricsNeedToken, /metrics is open as before.
	open := chattest.Start(t, chat.Config{AdminToken: adminToken}, nil, nil)
	if status, _, _ := open.Get(t, "/metrics"); status != 200 {
		t.Errorf("unprotected: %d", status)
	}
}

// With AdminSeparate, ServeHTTP serves neither /metrics nor the admin API
// (404); AdminHandler serves both, behind the same Host check, and
// nothing else.
func TestAdminHandler(t *testing.T) {
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{AdminToken: adminToken, AdminSeparate: true}, nil, hist)
	for _, p := range []struct{ method, path string }{{"GET", "/metrics"}, {"GET", "/api/members"}, {"POST", "/api/rooms/lobby/messages"}} {
		if status, _, _ := do(t, ts, p.method, p.path, adminToken, `{"text":"x"}`); status != 404 {
			t.Errorf("main handler %s %s: %d", p.method, p.path, status)
		}
	}
	admin := httptest.NewServer(ts.Chat.AdminHandler())
	t.Cleanup(admin.Close)
	get := func(method, path, body string, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, admin.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if status, body := get("GET", "/metrics", "", ""); status != 200 || !strings.Contains(body, "moonchat_connections") {
		t.Errorf("admin /metrics: %d", status)
	}
	if status, body := get("POST", "/api/rooms/lobby/messages", `{"text":"via admin"}`, ""); status != 201 {
		t.Errorf("admin post: %d %s", status, body)
	}
	if msgs := hist.All("lobby"); len(msgs) != 1 || msgs[0].Text != "via admin" {
		t.Errorf("stored %+v", msgs)
	}
	for _, p := range []string{"/", "/api/history", "/api/session", "/healthz"} {
		if status, _ := get("GET", p, "", ""); status != 404 {
			t.Errorf("admin handler %s: %d", p, status)
		}
	}
	if status, _ := get("GET", "/metrics", "", "evil.example"); status != 421 {
		t.Errorf("foreign Host: %d", status)
	}
}

// Config.Routes serves extra handlers at exact paths, behind the Host
// check; New refuses a route for a path the server serves itself.
func TestConfigRoutes(t *testing.T) {
	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("login here")) })
	ts := chattest.Start(t, chat.Config{Routes: map[string]http.Handler{"/api/login": login}}, nil, nil)
	if status, body, _ := ts.Get(t, "/api/login"); status != 200 || body != "login here" {
		t.Errorf("route: %d %q", status, body)
	}
	if status, body, _ := ts.Get(t, "/api/login/x"); status == 200 && body == "login here" {
		t.Errorf("a route matched a longer path")
	}
	req := httptest.NewRequest("GET", "/api/login", nil)
	req.Host = "evil.example"
	rec := httptest.NewRecorder()
	ts.Chat.ServeHTTP(rec, req)
	if rec.Code != 421 || strings.Contains(rec.Body.String(), "login here") {
		t.Errorf("foreign Host: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"/", "/chat", "/chat/x", "/healthz", "/metrics", "/api/history", "/api/rooms", "/api/session",
		"/api/members", "/api/rooms/x/kick", "/api/messages/a/1", "/app.js", "/index.html", "/style.css", "login"} {
		_, err := chat.New(chattest.Limits(chat.Config{Routes: map[string]http.Handler{p: login}}), nil, nil)
		if err == nil || !strings.Contains(err.Error(), `route "`+p+`"`) {
			t.Errorf("route %q: New said %v", p, err)
		}
	}
	if _, err := chat.New(chattest.Limits(chat.Config{Routes: map[string]http.Handler{"/x": nil}}), nil, nil); err == nil || !strings.Contains(err.Error(), "no handler") {
		t.Errorf("nil handler: %v", err)
	}
}
