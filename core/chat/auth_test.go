package chat_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// authFunc adapts a function to chat.Authenticator.
type authFunc func(r *http.Request, room string) (chat.Identity, bool, error)

func (f authFunc) Authenticate(r *http.Request, room string) (chat.Identity, bool, error) {
	return f(r, room)
}

// TestAuthenticatorSeam (issue 12): the chat server answers an
// Authenticator's refusal before the upgrade with its status and reason,
// fails closed on errors that are not an AuthError (401) and on statuses
// other than 401/403, applies the identity's rooms (403) and counts every
// refusal; nothing of the room reaches a refused client.
func TestAuthenticatorSeam(t *testing.T) {
	h := chattest.NewHistory()
	add(h, "lobby", "carol", "secret history")
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(func(r *http.Request, room string) (chat.Identity, bool, error) {
		switch r.URL.Query().Get("case") {
		case "plain-error":
			return chat.Identity{}, false, errors.New("database down")
		case "status-500":
			return chat.Identity{}, false, &chat.AuthError{Status: 500, Reason: "oops"}
		case "forbidden":
			return chat.Identity{}, false, &chat.AuthError{Status: 403, Reason: "not you"}
		case "no-id":
			return chat.Identity{Name: "x"}, true, nil
		case "rooms":
			return chat.Identity{ID: "u1", Rooms: []string{"team-*"}}, true, nil
		case "account":
			return chat.Identity{ID: "u-alice", Name: "alice", Roles: []string{"mod", "user"}}, true, nil
		}
		return chat.Identity{}, false, nil // a guest
	})}, nil, h)

	for _, tc := range []struct {
		name   string
		status int
		reason string
	}{
		{"plain-error", 401, "credentials refused"},
		{"status-500", 401, "credentials refused"},
		{"forbidden", 403, "not you"},
		{"no-id", 401, "credentials name no account"},
		{"rooms", 403, `token does not allow room "lobby"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := ts.TryDial("/chat/lobby?name=m&case="+tc.name, "moonchat.v1")
			if err == nil {
				conn.Close()
				t.Fatal("connected")
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			var b strings.Builder
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			b.Write(buf[:n])
			if resp.StatusCode != tc.status || strings.TrimSpace(b.String()) != tc.reason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, b.String(), tc.status, tc.reason)
			}
		})
	}
	_, body, _ := ts.Get(t, "/metrics")
	for _, want := range []string{`moonchat_auth_refused_total{status="401"} 3`, `moonchat_auth_refused_total{status="403"} 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// An account joins under its name with "user" first and no
	// duplicate; a guest has the role "guest" and no ID.
	alice := ts.Dial(t, "/chat/lobby?name=ignored&case=account", "moonchat.v1")
	if w := alice.ExpectEvent("welcome"); w.Str("user") != "alice" {
		t.Errorf("account joined as %q", w.Str("user"))
	}
	guest := ts.Dial(t, "/chat/lobby?name=bob", "moonchat.v1")
	guest.ExpectEvent("welcome")
	got := map[string]string{}
	for _, u := range ts.Chat.Users("lobby") {
		got[u.Name] = fmt.Sprintf("%s %v", u.ID, u.Roles)
	}
	if got["alice"] != "u-alice [user mod]" || got["bob"] != " [guest]" {
		t.Errorf("users %v", got)
	}
	if !slices.Equal(ts.Names("lobby"), []string{"alice", "bob"}) {
		t.Errorf("names %v", ts.Names("lobby"))
	}
}

// TestHistoryForRoomsClaim: Host.HistoryFor reads as the member — its
// credentials' rooms claim is applied to the room asked for (not only to
// the room it joined), as are the room rules; History (as the server) is
// not narrowed.
func TestHistoryForRoomsClaim(t *testing.T) {
	h := chattest.NewHistory()
	add(h, "team-a", "carol", "team a")
	add(h, "hr", "carol", "salaries")
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(func(r *http.Request, room string) (chat.Identity, bool, error) {
		return chat.Identity{ID: "u1", Name: "ann", Rooms: []string{"team-*"}}, true, nil
	})}, nil, h)
	ts.Dial(t, "/chat/team-a", "")
	chattest.Eventually(t, "ann in team-a", func() bool { return len(ts.Chat.Users("team-a")) == 1 })
	users := ts.Chat.Users("team-a")
	if len(users) != 1 {
		t.Fatalf("users %v", users)
	}
	sid := users[0].SessionID
	if msgs, err := ts.Chat.HistoryFor(sid, "team-a", 10); err != nil || len(msgs) != 1 {
		t.Errorf("own room: %v, %v", msgs, err)
	}
	msgs, err := ts.Chat.HistoryFor(sid, "hr", 10)
	if !errors.Is(err, chat.ErrNotAllowed) || len(msgs) != 0 || !strings.Contains(err.Error(), `room "hr"`) {
		t.Errorf("hr for ann: %v, %v", msgs, err)
	}
	if msgs, err := ts.Chat.History("hr", 10); err != nil || len(msgs) != 1 {
		t.Errorf("hr as the server: %v, %v", msgs, err)
	}
	if _, err := ts.Chat.HistoryFor(sid+1000, "hr", 10); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("unknown session: %v", err)
	}
}
