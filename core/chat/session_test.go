package chat_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// do sends method path to ts with body ("" for none) and, when token is
// not empty, "Authorization: Bearer token"; it returns the status, body
// and header.
func do(t testing.TB, ts *chattest.Server, method, path, token, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.HTTP+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// tokenExpires is the expiry of the test tokens that have one.
var tokenExpires = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// bearerAuth is the Authenticator of the HTTP credential tests. It reads
// the bearer token (header or ?token=, as cmd/moonchat's does) and knows:
//   - "alice": account u-alice, nick alice, role mod, expiring;
//   - "sam": account u-sam, role staff, never expiring;
//   - "una": account u-una, no role of its own;
//   - "teams": account u-teams whose rooms claim is "team-*";
//   - "spaced": account u-spaced whose name "two words" is no nick;
//   - "expired" (and any other token): 401 "token expired" — a bad
//     token is refused, never treated as a guest;
//   - no token: a guest, or 401 when guestsOff.
type bearerAuth struct{ guestsOff bool }

func (a bearerAuth) Authenticate(r *http.Request, _ string) (chat.Identity, bool, error) {
	tok := r.URL.Query().Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tok = h
	}
	switch tok {
	case "":
		if a.guestsOff {
			return chat.Identity{}, false, &chat.AuthError{Status: 401, Reason: "a token is required"}
		}
		return chat.Identity{}, false, nil
	case "alice":
		return chat.Identity{ID: "u-alice", Name: "alice", Roles: []string{"mod"}, Expires: tokenExpires}, true, nil
	case "sam":
		return chat.Identity{ID: "u-sam", Name: "sam", Roles: []string{"staff"}}, true, nil
	case "una":
		return chat.Identity{ID: "u-una", Name: "una"}, true, nil
	case "spaced":
		return chat.Identity{ID: "u-spaced", Name: "two words"}, true, nil
	case "teams":
		return chat.Identity{ID: "u-teams", Name: "teams", Rooms: []string{"team-*"}}, true, nil
	}
	return chat.Identity{}, false, &chat.AuthError{Status: 401, Reason: "token expired"}
}

// sessionRules adds to accessRules a room "mods" where "mod" moderates.
func sessionRules(t *testing.T) *chat.RoomRules {
	t.Helper()
	everyone := []string{chat.RoleEveryone}
	rr, err := chat.NewRoomRules([]chat.RoomRule{
		{Pattern: "*", Read: []string{chat.RoleUser}, Post: []string{chat.RoleUser}},
		{Pattern: "lobby", Read: everyone, Post: everyone, History: true},
		{Pattern: "news", Read: everyone, Post: []string{"staff"}, History: true},
		{Pattern: "team-*", Read: everyone, Post: everyone, History: true},
		{Pattern: "quiet", Read: everyone, Post: everyone},
		{Pattern: "mods", Read: everyone, Post: everyone, Moderate: []string{"mod"}, History: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// GET /api/session answers what a handshake to the room would get —
// the Authenticator's decision, the rooms claim, the room rules' read —
// with the identity and what it may do there, or the refusal's status
// and reason; it joins nobody and runs no hook.
func TestAPISession(t *testing.T) {
	hooks := &chattest.Hooks{}
	ts := chattest.Start(t, chat.Config{Authenticator: bearerAuth{}, RoomRules: sessionRules(t)}, hooks, chattest.NewHistory())
	exp := tokenExpires.Unix()
	for _, tc := range []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"guest default room", "/api/session", "", 200,
			`{"room":"lobby","guest":true,"roles":["guest"],"may":{"read":true,"post":true,"moderate":false}}`},
		{"guest read-only", "/api/session?room=news", "", 200,
			`{"room":"news","guest":true,"roles":["guest"],"may":{"read":true,"post":false,"moderate":false}}`},
		{"account with expiry", "/api/session?room=mods", "alice", 200,
			`{"room":"mods","guest":false,"id":"u-alice","name":"alice","roles":["user","mod"],"expires":` + itoa(exp) + `,"may":{"read":true,"post":true,"moderate":true}}`},
		{"token in the query", "/api/session?room=mods&token=alice", "", 200,
			`{"room":"mods","guest":false,"id":"u-alice","name":"alice","roles":["user","mod"],"expires":` + itoa(exp) + `,"may":{"read":true,"post":true,"moderate":true}}`},
		{"account without expiry", "/api/session?room=news", "sam", 200,
			`{"room":"news","guest":false,"id":"u-sam","name":"sam","roles":["user","staff"],"may":{"read":true,"post":true,"moderate":false}}`},
		{"account in a users-only room", "/api/session?room=staff", "una", 200,
			`{"room":"staff","guest":false,"id":"u-una","name":"una","roles":["user"],"may":{"read":true,"post":true,"moderate":false}}`},
		{"account whose name is no nick", "/api/session?room=lobby", "spaced", 200,
			`{"room":"lobby","guest":false,"id":"u-spaced","name":"u-spaced","roles":["user"],"may":{"read":true,"post":true,"moderate":false}}`},
		{"guest in a users-only room", "/api/session?room=staff", "", 403, `{"error":"you may not read staff"}`},
		{"bad token", "/api/session?room=lobby", "expired", 401, `{"error":"token expired"}`},
		{"rooms claim", "/api/session?room=lobby", "teams", 403, `{"error":"token does not allow room \"lobby\""}`},
		{"rooms claim allows", "/api/session?room=team-dev", "teams", 200,
			`{"room":"team-dev","guest":false,"id":"u-teams","name":"teams","roles":["user"],"may":{"read":true,"post":true,"moderate":false}}`},
		{"bad room", "/api/session?room=a%20b", "", 400, `{"error":"invalid room name: only A-Z a-z 0-9 - _ . allowed"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := do(t, ts, http.MethodGet, tc.path, tc.token, "")
			if status != tc.status || strings.TrimSpace(body) != tc.body {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tc.status, tc.body)
			}
			if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", h)
			}
			if got, want := h.Get("WWW-Authenticate"), `Bearer realm="moonchat"`; (status == 401) != (got == want) {
				t.Errorf("WWW-Authenticate %q on %d", got, status)
			}
		})
	}
	if status, _, h := do(t, ts, http.MethodPost, "/api/session", "", "{}"); status != 405 || h.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", status, h)
	}
	if ev := hooks.Events(); len(ev) != 0 {
		t.Errorf("hooks ran: %q", ev)
	}
	if rooms := ts.Chat.Rooms(); len(rooms) != 0 {
		t.Errorf("rooms with members: %q", rooms)
	}
	// Refusals count as the handshake's do: 401 bad token; 403 the rooms
	// claim and the guest in "staff".
	_, m, _ := ts.Get(t, "/metrics")
	for _, want := range []string{`moonchat_auth_refused_total{status="401"} 1`, `moonchat_auth_refused_total{status="403"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// With guests off, /api/session without a token is the Authenticator's
// 401; without an Authenticator everyone is a guest, and without rules
// a guest may read and post but not moderate (DefaultRoomRule).
func TestAPISessionGuests(t *testing.T) {
	off := chattest.Start(t, chat.Config{Authenticator: bearerAuth{guestsOff: true}}, nil, nil)
	status, body, h := do(t, off, http.MethodGet, "/api/session?room=x", "", "")
	if status != 401 || strings.TrimSpace(body) != `{"error":"a token is required"}` || h.Get("WWW-Authenticate") == "" {
		t.Errorf("guests off: %d %s %v", status, body, h)
	}
	open := chattest.Start(t, chat.Config{}, nil, nil)
	status, body, _ = do(t, open, http.MethodGet, "/api/session?room=x", "ignored-token", "")
	if want := `{"room":"x","guest":true,"roles":["guest"],"may":{"read":true,"post":true,"moderate":false}}`; status != 200 || strings.TrimSpace(body) != want {
		t.Errorf("no authenticator: %d %s", status, body)
	}
}

// itoa formats n in decimal.
func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// apiHistoryTexts returns the texts of an /api/history answer.
func apiHistoryTexts(t *testing.T, body string) []string {
	t.Helper()
	var p struct {
		Messages []struct{ Text string }
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	var texts []string
	for _, m := range p.Messages {
		texts = append(texts, m.Text)
	}
	return texts
}

// /api/history authenticates its caller as a handshake does: a bad token
// is 401 (never a guest), the rooms claim narrows (403), the room rules
// decide read, and a room whose history is not public is served only to
// an account with a live connection in it. No refusal carries history.
func TestAPIHistoryCredentials(t *testing.T) {
	hist := chattest.NewHistory()
	for _, room := range []string{"lobby", "staff", "quiet", "team-dev"} {
		add(hist, room, "u", "secret-"+room)
	}
	ts := chattest.Start(t, chat.Config{Authenticator: bearerAuth{}, RoomRules: sessionRules(t)}, nil, hist)
	// Members of "quiet": the account una and a guest.
	una := ts.Dial(t, "/chat/quiet?token=una", "")
	una.SkipUntil("* una joined")
	g := ts.Dial(t, "/chat/quiet?name=g", "")
	g.SkipUntil("* g joined")

	for _, tc := range []struct {
		name, room, token string
		status            int
		reason            string
	}{
		{"guest, public", "lobby", "", 200, ""},
		{"bad token, public room", "lobby", "expired", 401, "token expired"},
		{"guest, users only", "staff", "", 403, "you may not read staff"},
		{"account, users only, not public, not a member", "staff", "sam", 403, "the history of staff is not public"},
		{"guest, not public (a guest member is nobody over HTTP)", "quiet", "", 403, "the history of quiet is not public"},
		{"account, not public, not a member", "quiet", "sam", 403, "the history of quiet is not public"},
		{"account, not public, member", "quiet", "una", 200, ""},
		{"rooms claim refuses", "lobby", "teams", 403, `token does not allow room "lobby"`},
		{"rooms claim allows", "team-dev", "teams", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := do(t, ts, http.MethodGet, "/api/history?room="+tc.room, tc.token, "")
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if status == 200 {
				if texts := apiHistoryTexts(t, body); !slices.Equal(texts, []string{"secret-" + tc.room}) {
					t.Fatalf("history %q", texts)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != tc.reason {
				t.Fatalf("body %s, want error %q", body, tc.reason)
			}
			if strings.Contains(body, "secret") || strings.Contains(body, "messages") {
				t.Fatalf("refused history leaked: %s", body)
			}
			if (status == 401) != (h.Get("WWW-Authenticate") != "") {
				t.Errorf("WWW-Authenticate %q on %d", h.Get("WWW-Authenticate"), status)
			}
		})
	}

	// una leaves: no longer a member, the history is not served.
	_ = una.Conn.Close()
	chattest.Eventually(t, "una left", func() bool { return !slices.Contains(ts.Names("quiet"), "una") })
	if status, body, _ := do(t, ts, http.MethodGet, "/api/history?room=quiet", "una", ""); status != 403 || strings.Contains(body, "secret") {
		t.Errorf("after leaving: %d %s", status, body)
	}

	// With guests off, no token is the Authenticator's 401.
	off := chattest.Start(t, chat.Config{Authenticator: bearerAuth{guestsOff: true}}, nil, hist)
	if status, body, _ := do(t, off, http.MethodGet, "/api/history?room=lobby", "", ""); status != 401 || strings.Contains(body, "secret") {
		t.Errorf("guests off: %d %s", status, body)
	}
}

// /api/rooms lists only the rooms the caller's identity may read, narrowed
// by its rooms claim; a bad token is 401 with no room in the body.
func TestAPIRoomsCredentials(t *testing.T) {
	hist := chattest.NewListingHistory()
	for _, room := range []string{"lobby", "news", "staff", "team-dev", "team-ops"} {
		add(hist.History, room, "u", "x")
	}
	ts := chattest.Start(t, chat.Config{Authenticator: bearerAuth{}, RoomRules: sessionRules(t)}, nil, hist)
	for _, tc := range []struct {
		token  string
		status int
		want   []string
	}{
		{"", 200, []string{"lobby", "news", "team-dev", "team-ops"}},
		{"una", 200, []string{"lobby", "news", "staff", "team-dev", "team-ops"}},
		{"teams", 200, []string{"team-dev", "team-ops"}},
		{"expired", 401, nil},
	} {
		t.Run("token="+tc.token, func(t *testing.T) {
			status, body, _ := do(t, ts, http.MethodGet, "/api/rooms", tc.token, "")
			var p apiRooms
			if err := json.Unmarshal([]byte(body), &p); err != nil || status != tc.status {
				t.Fatalf("%d %s (%v)", status, body, err)
			}
			var got []string
			for _, r := range p.Rooms {
				got = append(got, r.Room)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rooms %q, want %q", got, tc.want)
			}
			if status == 401 && (p.Error != "token expired" || strings.Contains(body, "lobby")) {
				t.Errorf("refusal body %s", body)
			}
		})
	}
}
