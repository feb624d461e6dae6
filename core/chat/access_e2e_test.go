package chat_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Room rules enforced over real connections (issue 12). Without an
// Authenticator every member and HTTP caller is a guest; TestRoomRulesRoles
// and session_test.go bring identities.

// accessRules are the rules of these tests:
//   - "*": read and post for "user" only, history not public;
//   - "lobby": open to everyone (exact name beats "*");
//   - "news": everyone reads, only "staff" posts, history public;
//   - "team-*": everyone reads and posts, history public;
//   - "team-ops": "user" only (exact name beats "team-*");
//   - "quiet": everyone reads and posts, history not public.
func accessRules(t *testing.T) *chat.RoomRules {
	t.Helper()
	everyone := []string{chat.RoleEveryone}
	users := []string{chat.RoleUser}
	rr, err := chat.NewRoomRules([]chat.RoomRule{
		{Pattern: "*", Read: users, Post: users},
		{Pattern: "lobby", Read: everyone, Post: everyone, History: true},
		{Pattern: "news", Read: everyone, Post: []string{"staff"}, History: true},
		{Pattern: "team-*", Read: everyone, Post: everyone, History: true},
		{Pattern: "team-ops", Read: users, Post: users, History: true},
		{Pattern: "quiet", Read: everyone, Post: everyone},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// A guest joins the rooms the most specific rule lets a guest read and is
// refused (close 1008, "you may not read ROOM") elsewhere; without rules
// every room is open, as before.
func TestRoomRulesJoin(t *testing.T) {
	for _, rules := range []struct {
		name string
		rr   *chat.RoomRules
	}{{"rules", accessRules(t)}, {"no rules", nil}} {
		ts := chattest.Start(t, chat.Config{RoomRules: rules.rr}, nil, chattest.NewHistory())
		for _, tc := range []struct {
			room   string
			closed bool // refused when rules are set
		}{
			{"lobby", false},    // exact rule for everyone beats "*"
			{"news", false},     // read-only, but readable
			{"team-dev", false}, // "team-*" beats "*"
			{"team-ops", true},  // exact "team-ops" beats "team-*"
			{"staff", true},     // only "*" matches: users only
		} {
			for _, proto := range []string{"", chat.SubprotocolJSON} {
				t.Run(rules.name+"/"+tc.room+"/"+proto, func(t *testing.T) {
					name := "plain"
					if proto != "" {
						name = "json"
					}
					c := ts.Dial(t, "/chat/"+tc.room+"?name="+name, proto)
					if rules.rr != nil && tc.closed {
						c.ExpectCloseReason(1008, "you may not read "+tc.room)
						if n := ts.Names(tc.room); len(n) != 0 {
							t.Errorf("refused guest is a member: %q", n)
						}
						return
					}
					if proto == "" {
						c.SkipUntil("* " + name + " joined")
					} else {
						c.SkipTo(func(s string) bool { return strings.Contains(s, `"`+name+` joined"`) })
					}
					_ = c.Conn.Close()
				})
			}
		}
	}
}

// In a room a guest may read but not post, the guest's message gets a
// not_allowed error (a notice in plain text) and is neither stored nor
// delivered; in an open room of the same server posting works as before.
func TestRoomRulesReadOnlyRoomRefusesPosts(t *testing.T) {
	for _, proto := range []string{"", chat.SubprotocolJSON} {
		t.Run("proto="+proto, func(t *testing.T) {
			hist := chattest.NewHistory()
			ts := chattest.Start(t, chat.Config{RoomRules: accessRules(t)}, nil, hist)
			reader := ts.Dial(t, "/chat/news?name=reader", chat.SubprotocolJSON)
			reader.SkipTo(func(s string) bool { return strings.Contains(s, `"reader joined"`) })
			poster := ts.Dial(t, "/chat/news?name=poster", proto)
			if proto == "" {
				poster.SkipUntil("* poster joined")
			} else {
				poster.SkipTo(func(s string) bool { return strings.Contains(s, `"poster joined"`) })
			}
			reader.SkipTo(func(s string) bool { return strings.Contains(s, `"poster joined"`) })

			if proto == "" {
				poster.Send("hello")
				poster.Expect("* message not sent: you may not post in news")
			} else {
				poster.SendJSON(map[string]string{"type": "message", "text": "hello"})
				ev := poster.ExpectEvent("error")
				if ev.Str("code") != "not_allowed" || ev.Str("text") != "message not sent: you may not post in news" {
					t.Fatalf("error event %v", ev)
				}
			}
			// The refusal was written in the message's room run; a
			// broadcast queued after it reaches the reader after anything
			// that run delivered, so no message may come before it.
			if err := ts.Chat.Broadcast("news", "marker"); err != nil {
				t.Fatal(err)
			}
			got := reader.SkipTo(func(s string) bool {
				return strings.Contains(s, `"type":"message"`) || strings.Contains(s, `"marker"`)
			})
			if strings.Contains(got, `"type":"message"`) {
				t.Fatalf("refused message delivered: %s", got)
			}
			if msgs, _ := hist.Recent("news", 10); len(msgs) != 0 {
				t.Fatalf("refused message stored: %+v", msgs)
			}
			if v := metric(t, ts, `moonchat_messages_dropped_total{reason="not_allowed"}`); v != 1 {
				t.Errorf("dropped not_allowed = %v, want 1", v)
			}

			// An open room of the same server is unchanged.
			a := ts.Dial(t, "/chat/lobby?name=a", "")
			a.SkipUntil("* a joined")
			a.Send("hi")
			a.SkipTo(func(s string) bool { return strings.HasSuffix(s, "a: hi") })
			if msgs, _ := hist.Recent("lobby", 10); len(msgs) != 1 {
				t.Fatalf("lobby stored %d messages, want 1", len(msgs))
			}
		})
	}
}

// /api/history answers a caller without credentials (a guest) only for
// rooms a guest may read whose history is public; otherwise 403 and no
// message text. Without rules every room's history is served, as before.
// (TestAPIHistoryCredentials covers callers with credentials.)
func TestRoomRulesAPIHistory(t *testing.T) {
	for _, tc := range []struct {
		room   string
		status int // with rules
		reason string
	}{
		{"lobby", 200, ""},
		{"team-dev", 200, ""},
		{"news", 200, ""},
		{"team-ops", 403, "you may not read team-ops"},
		{"staff", 403, "you may not read staff"},
		{"quiet", 403, "the history of quiet is not public"},
	} {
		for _, rules := range []bool{true, false} {
			name := tc.room + "/no rules"
			if rules {
				name = tc.room + "/rules"
			}
			t.Run(name, func(t *testing.T) {
				hist := chattest.NewHistory()
				add(hist, tc.room, "u", "secret-"+tc.room)
				cfg := chat.Config{}
				if rules {
					cfg.RoomRules = accessRules(t)
				}
				ts := chattest.Start(t, cfg, nil, hist)
				status, body, _ := ts.Get(t, "/api/history?room="+tc.room)
				want := 200
				if rules {
					want = tc.status
				}
				if status != want {
					t.Fatalf("status %d, want %d: %s", status, want, body)
				}
				if want == 200 {
					if !strings.Contains(body, "secret-"+tc.room) {
						t.Fatalf("history missing: %s", body)
					}
					return
				}
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != tc.reason {
					t.Fatalf("body %s, want error %q", body, tc.reason)
				}
				if strings.Contains(body, "secret") {
					t.Fatalf("refused history leaked: %s", body)
				}
				if v := metric(t, ts, "moonchat_history_refused_total"); v != 1 {
					t.Errorf("moonchat_history_refused_total = %v, want 1", v)
				}
			})
		}
	}
}

// /api/rooms lists only the rooms a guest may read (stored and live);
// without rules it lists them all.
func TestRoomRulesAPIRooms(t *testing.T) {
	for _, tc := range []struct {
		name string
		rr   *chat.RoomRules
		want []string
	}{
		{"rules", accessRules(t), []string{"lobby", "news", "team-dev"}},
		{"no rules", nil, []string{"lobby", "news", "staff", "team-dev", "team-ops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist := chattest.NewListingHistory()
			for _, room := range []string{"lobby", "staff", "team-ops", "news"} {
				add(hist.History, room, "u", "x")
			}
			ts := chattest.Start(t, chat.Config{RoomRules: tc.rr}, nil, hist)
			// team-dev has a live member and nothing stored.
			c := ts.Dial(t, "/chat/team-dev?name=d", "")
			c.SkipUntil("* d joined")
			var got []string
			chattest.Eventually(t, "team-dev listed", func() bool {
				rec := roomsGet(ts.Chat, http.MethodGet)
				var p apiRooms
				if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
					return false
				}
				got = got[:0]
				for _, r := range p.Rooms {
					got = append(got, r.Room)
				}
				return slices.Contains(got, "team-dev")
			})
			if !slices.Equal(got, tc.want) {
				t.Errorf("rooms %q, want %q", got, tc.want)
			}
		})
	}
}

// queryRoles is an Authenticator for tests: ?roles=a,b signs the caller in
// as account "acct-NAME" with those roles (the server adds "user"); no
// roles parameter is a guest.
type queryRoles struct{}

func (queryRoles) Authenticate(r *http.Request, _ string) (chat.Identity, bool, error) {
	q := r.URL.Query()
	if !q.Has("roles") {
		return chat.Identity{}, false, nil
	}
	var roles []string
	if v := q.Get("roles"); v != "" {
		roles = strings.Split(v, ",")
	}
	return chat.Identity{ID: "acct-" + q.Get("name"), Name: q.Get("name"), Roles: roles}, true, nil
}

// Roles from the identity decide: an account ("user") joins the rooms
// closed to guests, a "staff" account posts in the read-only room and its
// message is stored and delivered, while a guest is still refused.
func TestRoomRulesRoles(t *testing.T) {
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{RoomRules: accessRules(t), Authenticator: queryRoles{}}, nil, hist)
	for _, room := range []string{"staff", "team-ops"} {
		u := ts.Dial(t, "/chat/"+room+"?name=ann&roles=", "")
		u.SkipUntil("* ann joined")
		g := ts.Dial(t, "/chat/"+room+"?name=guest", "")
		g.ExpectCloseReason(1008, "you may not read "+room)
	}

	reader := ts.Dial(t, "/chat/news?name=reader", "")
	reader.SkipUntil("* reader joined")
	staff := ts.Dial(t, "/chat/news?name=sam&roles=staff", "")
	staff.SkipUntil("* sam joined")
	reader.SkipUntil("* sam joined")
	staff.Send("news!")
	reader.SkipTo(func(s string) bool { return strings.HasSuffix(s, "sam: news!") })
	if msgs, _ := hist.Recent("news", 10); len(msgs) != 1 || msgs[0].Text != "news!" {
		t.Fatalf("stored %+v, want the staff message", msgs)
	}
	user := ts.Dial(t, "/chat/news?name=una&roles=", "")
	user.SkipUntil("* una joined")
	user.Send("hi")
	user.SkipUntil("* message not sent: you may not post in news")
}
