package chat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// memberAuth authenticates by query parameters, for the member-side tests
// of issue 12: as=ID makes an account (none: a guest), n=NAME its nick,
// role=R (repeatable) its roles, ttl=DURATION its expiry from now.
func memberAuth(r *http.Request, _ string) (chat.Identity, bool, error) {
	q := r.URL.Query()
	if !q.Has("as") {
		return chat.Identity{}, false, nil
	}
	id := chat.Identity{ID: q.Get("as"), Name: q.Get("n"), Roles: q["role"]}
	if ttl := q.Get("ttl"); ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil {
			return chat.Identity{}, false, err
		}
		id.Expires = time.Now().Add(d)
	}
	return id, true, nil
}

// refresher is an Authenticator that is also a chat.TokenRefresher.
type refresher struct {
	authFunc
	refresh func(token, room string) (chat.Identity, error)
}

func (r refresher) Refresh(token, room string) (chat.Identity, error) { return r.refresh(token, room) }

// nextOf reads c's events until one of type typ and returns it.
func nextOf(t *testing.T, c *chattest.Client, typ string) chattest.Event {
	t.Helper()
	for {
		if e := c.ReadEvent(); e.Str("type") == typ {
			return e
		}
	}
}

// rawNextOf is nextOf returning the frame as sent.
func rawNextOf(c *chattest.Client, typ string) string {
	return c.SkipTo(func(s string) bool { return strings.HasPrefix(s, `{"type":"`+typ+`"`) })
}

// metricLine returns /metrics' line for series (with labels), or "".
func metricLine(t *testing.T, ts *chattest.Server, series string) string {
	t.Helper()
	_, body, _ := ts.Get(t, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, series+" ") {
			return l
		}
	}
	return ""
}

// TestGrantRevoke (issue 12): Host.Grant and Host.Revoke change a
// member's session roles; the room rules see the change at its next
// message, the hooks' User.Roles too, and the room's moonchat.v1 members
// get a "roles" event in order with renames. A guest granted roles keeps
// no user_id: its messages carry roles, presence lists it under "guests".
func TestGrantRevoke(t *testing.T) {
	rules, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "ops", Read: []string{"*"}, Post: []string{"mod"}, History: true}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hookRoles []string
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		mu.Lock()
		hookRoles = u.Roles
		mu.Unlock()
		return chat.MessageResult{}
	}}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), RoomRules: rules}, hooks, nil)
	alice := ts.Dial(t, "/chat/ops?as=u-alice&n=alice&role=mod", "moonchat.v1")
	nextOf(t, alice, "presence")
	bob := ts.Dial(t, "/chat/ops?name=bob", "moonchat.v1")
	nextOf(t, bob, "presence")
	nextOf(t, alice, "presence") // bob joined
	bobID := sessionOf(t, ts, "ops", "bob")
	aliceID := sessionOf(t, ts, "ops", "alice")

	bob.SendJSON(map[string]string{"type": "message", "text": "before"})
	if e := nextOf(t, bob, "error"); e.Str("code") != "not_allowed" {
		t.Fatalf("a guest posted in ops: %v", e)
	}

	if err := ts.Chat.Grant(bobID, "mod"); err != nil {
		t.Fatalf("Grant: %v", err)
	}
	want := `{"type":"roles","room":"ops","name":"bob","roles":["guest","mod"]}`
	if got := rawNextOf(alice, "roles"); got != want {
		t.Errorf("alice got %s, want %s", got, want)
	}
	if got := rawNextOf(bob, "roles"); got != want {
		t.Errorf("bob got %s, want %s", got, want)
	}
	bob.SendJSON(map[string]string{"type": "message", "text": "now a mod"})
	m := nextOf(t, alice, "message")
	if m.Str("text") != "now a mod" || fmt.Sprint(m["roles"]) != "[guest mod]" || m["user_id"] != nil {
		t.Errorf("bob's message %v: want roles [guest mod] and no user_id", m)
	}
	mu.Lock()
	if !slices.Equal(hookRoles, []string{"guest", "mod"}) {
		t.Errorf("the message hook saw roles %v", hookRoles)
	}
	mu.Unlock()

	// Granting a role the member has changes nothing and tells nobody:
	// the next event alice gets is bob's next message.
	if err := ts.Chat.Grant(bobID, "mod"); err != nil {
		t.Errorf("Grant again: %v", err)
	}
	bob.SendJSON(map[string]string{"type": "message", "text": "again"})
	if e := alice.ReadEvent(); e.Str("type") != "message" || e.Str("text") != "again" {
		t.Errorf("after a grant that changed nothing alice got %v", e)
	}

	// A newcomer's presence lists bob among the guests with roles and
	// alice among the accounts.
	carol := ts.Dial(t, "/chat/ops?name=carol", "moonchat.v1")
	p := nextOf(t, carol, "presence")
	if g, _ := p["guests"].(map[string]any); fmt.Sprint(g) != "map[bob:map[roles:[guest mod]]]" {
		t.Errorf("presence guests %v", p["guests"])
	}
	if a, _ := p["accounts"].(map[string]any); fmt.Sprint(a) != "map[alice:map[id:u-alice roles:[user mod]]]" {
		t.Errorf("presence accounts %v", p["accounts"])
	}
	nextOf(t, alice, "presence")
	nextOf(t, alice, "system") // carol joined

	// A rename then a grant: the events keep that order and names.
	if _, err := ts.Chat.Rename(bobID, "robert"); err != nil {
		t.Fatal(err)
	}
	if err := ts.Chat.Grant(bobID, "ops-team"); err != nil {
		t.Fatal(err)
	}
	if e := alice.ReadEvent(); e.Str("type") != "rename" || e.Str("new") != "robert" {
		t.Errorf("want the rename first, got %v", e)
	}
	nextOf(t, alice, "system")
	if got, want := alice.Read(), `{"type":"roles","room":"ops","name":"robert","roles":["guest","mod","ops-team"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}

	// Revoke: a credentials' role too; the rules see it at once.
	if err := ts.Chat.Revoke(bobID, "mod"); err != nil {
		t.Fatal(err)
	}
	if got, want := rawNextOf(alice, "roles"), `{"type":"roles","room":"ops","name":"robert","roles":["guest","ops-team"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	bob.SendJSON(map[string]string{"type": "message", "text": "after revoke"})
	if e := nextOf(t, bob, "error"); e.Str("code") != "not_allowed" {
		t.Errorf("bob posted after the revoke: %v", e)
	}
	if err := ts.Chat.Revoke(aliceID, "mod"); err != nil {
		t.Fatal(err)
	}
	if got, want := carol.SkipTo(func(s string) bool { return strings.HasPrefix(s, `{"type":"roles","room":"ops","name":"alice"`) }),
		`{"type":"roles","room":"ops","name":"alice","id":"u-alice","roles":["user"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got := map[string]string{}
	for _, u := range ts.Chat.Users("ops") {
		got[u.Name] = fmt.Sprint(u.Roles)
	}
	if got["alice"] != "[user]" || got["robert"] != "[guest ops-team]" || got["carol"] != "[guest]" {
		t.Errorf("Users roles %v", got)
	}

	for _, tc := range []struct {
		session uint64
		role    string
		grant   bool
		want    error
	}{
		{bobID, "guest", true, chat.ErrBuiltinRole},
		{aliceID, "user", false, chat.ErrBuiltinRole},
		{bobID, "user", true, chat.ErrBuiltinRole},
		{bobID, "", true, chat.ErrInvalidRole},
		{bobID, "a b", true, chat.ErrInvalidRole},
		{bobID, "*", true, chat.ErrInvalidRole},
		{bobID, "x\u202e", true, chat.ErrInvalidRole},
		{bobID, strings.Repeat("x", 65), true, chat.ErrInvalidRole},
		{1 << 40, "mod", true, chat.ErrNoSuchUser},
		{1 << 40, "mod", false, chat.ErrNoSuchUser},
	} {
		f := ts.Chat.Revoke
		if tc.grant {
			f = ts.Chat.Grant
		}
		if err := f(tc.session, tc.role); !errors.Is(err, tc.want) {
			t.Errorf("grant=%v %q: %v, want %v", tc.grant, tc.role, err, tc.want)
		}
	}
}

// TestGrantConcurrent: grants and revokes from many goroutines at once
// lose no change (run with -race).
func TestGrantConcurrent(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	c := ts.Dial(t, "/chat/lobby?name=bob", "moonchat.v1")
	nextOf(t, c, "presence")
	id := sessionOf(t, ts, "lobby", "bob")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tmp := fmt.Sprintf("tmp%d", i)
			for _, f := range []func() error{
				func() error { return ts.Chat.Grant(id, fmt.Sprintf("r%d", i)) },
				func() error { return ts.Chat.Grant(id, tmp) },
				func() error { return ts.Chat.Revoke(id, tmp) },
			} {
				if err := f(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	roles := ts.Chat.Users("lobby")[0].Roles
	if len(roles) != 17 || roles[0] != "guest" {
		t.Fatalf("roles %v: want guest and r0..r15", roles)
	}
	for i := range 16 {
		if !slices.Contains(roles, fmt.Sprintf("r%d", i)) {
			t.Errorf("lost r%d: %v", i, roles)
		}
	}
	// A session has at most 64 roles: every message carries them.
	for i := 16; i < 63; i++ {
		if err := ts.Chat.Grant(id, fmt.Sprintf("r%d", i)); err != nil {
			t.Fatalf("role %d: %v", i+2, err)
		}
	}
	if err := ts.Chat.Grant(id, "one-too-many"); !errors.Is(err, chat.ErrInvalidRole) {
		t.Errorf("a 65th role: %v", err)
	}
	if err := ts.Chat.Revoke(id, "r0"); err != nil {
		t.Errorf("revoke at the limit: %v", err)
	}
}

// joinName dials path as JSON and returns the name the welcome gives.
func joinName(t *testing.T, ts *chattest.Server, path string) (*chattest.Client, string) {
	t.Helper()
	c := ts.Dial(t, path, "moonchat.v1")
	return c, c.ExpectEvent("welcome").Str("user")
}

// TestNameOwnership (issue 12): an account owns the name it was last
// given, also while offline and across a restart with the same History
// (chat.NameOwners); a guest or another account asking for it, or a
// look-alike, gets a variant, or GuestPrefix+name for a guest; a rename
// moves the ownership; when the store cannot record a change the join or
// rename is refused (fail closed), logged and counted.
func TestNameOwnership(t *testing.T) {
	h := chattest.NewHistory()
	cfg := chat.Config{Authenticator: authFunc(memberAuth)}
	hooks := &chattest.Hooks{}
	ts := chattest.Start(t, cfg, hooks, h)
	alice, name := joinName(t, ts, "/chat/a?as=u-alice&n=alice")
	if name != "alice" {
		t.Fatalf("alice joined as %q", name)
	}
	if o, _ := h.NameOwners(); o["u-alice"] != "alice" {
		t.Fatalf("owners %v", o)
	}
	// Her second connection in the same room gets a variant, and she
	// still owns "alice".
	alice2, n := joinName(t, ts, "/chat/a?as=u-alice&n=alice")
	if n != "alice-2" {
		t.Errorf("second connection named %q", n)
	}
	if o, _ := h.NameOwners(); o["u-alice"] != "alice" {
		t.Errorf("owners after a second connection %v", o)
	}
	_ = alice.Conn.Close()
	_ = alice2.Conn.Close()
	left := func(room, name string) func() bool {
		return func() bool { return slices.Contains(hooks.Events(), "leave "+room+" "+name) }
	}
	chattest.Eventually(t, "alice gone", left("a", "alice"))
	chattest.Eventually(t, "alice's second connection gone", left("a", "alice-2"))

	// Offline, her name is still hers.
	var guests []*chattest.Client
	for _, tc := range []struct{ path, want string }{
		{"/chat/b?name=alice", "alice-2"},
		{"/chat/c?name=ALICE", "ALICE-2"},
		{"/chat/d?name=%EF%BD%81lice", "alice-2"}, // full-width a
		{"/chat/e?as=u-eve&n=alice", "alice-2"},
	} {
		c, n := joinName(t, ts, tc.path)
		if n != tc.want {
			t.Errorf("%s: named %q, want %q", tc.path, n, tc.want)
		}
		guests = append(guests, c)
	}
	if o, _ := h.NameOwners(); o["u-eve"] != "alice-2" {
		t.Errorf("eve owns %q, want the variant she was given", o["u-eve"])
	}
	for _, c := range guests {
		_ = c.Conn.Close() // so that Shutdown need not wait for their close handshakes
	}
	chattest.Eventually(t, "everyone gone", func() bool { return len(ts.Chat.Rooms()) == 0 })
	if err := ts.Chat.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// After a restart with the same store, and with a guest prefix.
	cfg.GuestPrefix = "guest-"
	ts = chattest.Start(t, cfg, hooks, h)
	if _, n := joinName(t, ts, "/chat/b?name=alice"); n != "guest-alice" {
		t.Errorf("guest after the restart named %q, want guest-alice", n)
	}
	if _, n := joinName(t, ts, "/chat/c?name=alice"); n != "guest-alice" {
		t.Errorf("guest in another room named %q, want guest-alice", n)
	}
	if _, n := joinName(t, ts, "/chat/b?name=bob"); n != "bob" {
		t.Errorf("unowned name given as %q", n)
	}
	if _, n := joinName(t, ts, "/chat/b?name=bob"); n != "bob-2" {
		t.Errorf("a guest's name taken by a guest gives %q, want the usual variant", n)
	}
	_, name = joinName(t, ts, "/chat/a?as=u-alice&n=alice")
	if name != "alice" {
		t.Fatalf("alice rejoined as %q", name)
	}
	// A rename moves her ownership: "alice" is free once no connection
	// of hers uses it.
	aliceID := sessionOf(t, ts, "a", "alice")
	if n, err := ts.Chat.Rename(aliceID, "alicia"); err != nil || n != "alicia" {
		t.Fatalf("rename: %q %v", n, err)
	}
	if o, _ := h.NameOwners(); o["u-alice"] != "alicia" {
		t.Errorf("owners after the rename %v", o)
	}
	if _, n := joinName(t, ts, "/chat/f?name=alice"); n != "alice" {
		t.Errorf("a guest asking for alice's old name got %q", n)
	}
	if _, n := joinName(t, ts, "/chat/f?name=alicia"); n != "guest-alicia" {
		t.Errorf("a guest asking for alice's new name got %q", n)
	}

	// Fail closed.
	h.FailNameOwners(errors.New("disk full"), nil)
	zed := ts.Dial(t, "/chat/a?as=u-zed&n=zed", "moonchat.v1")
	if e := nextOf(t, zed, "error"); e.Str("code") != "refused" || !strings.Contains(e.Str("text"), `could not record "zed"`) {
		t.Errorf("refusal %v", e)
	}
	zed.ExpectClose(1013)
	// The join hook saw zed, so the leave hook does too.
	chattest.Eventually(t, "zed's leave", left("a", "zed"))
	if _, err := ts.Chat.Rename(aliceID, "al"); !errors.Is(err, chat.ErrNameNotRecorded) {
		t.Errorf("rename with a failing store: %v", err)
	}
	if !slices.Contains(ts.Names("a"), "alicia") {
		t.Errorf("alice lost her name: %v", ts.Names("a"))
	}
	if _, n := joinName(t, ts, "/chat/g?name=alicia"); n != "guest-alicia" {
		t.Errorf("after a failed rename a guest got %q", n)
	}
	if l := metricLine(t, ts, "moonchat_name_owner_errors_total"); l != "moonchat_name_owner_errors_total 2" {
		t.Errorf("metric %q", l)
	}
	h.FailNameOwners(nil, errors.New("disk gone"))
	if _, err := chat.New(chattest.Limits(chat.Config{}), nil, h); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("New with unreadable owners: %v", err)
	}
}

// TestNameOwnershipInMemory: without chat.NameOwners an account's name is
// still its own while it is offline, for the life of the process.
func TestNameOwnershipInMemory(t *testing.T) {
	hooks := &chattest.Hooks{}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth)}, hooks, nil)
	alice, _ := joinName(t, ts, "/chat/a?as=u-alice&n=alice")
	_ = alice.Conn.Close()
	// The leave hook runs once the room has let go of her name.
	chattest.Eventually(t, "alice gone", func() bool { return slices.Contains(hooks.Events(), "leave a alice") })
	if _, n := joinName(t, ts, "/chat/a?name=alice"); n != "alice-2" {
		t.Errorf("guest named %q", n)
	}
}

// logBuffer is a log destination safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTokenExpiry (issue 12): a member whose credentials expire is closed
// with 4001 "token expired" when Config.Clock says they did, plain text
// and JSON alike; a moonchat.v1 client's fresh token (TokenRefresher,
// same account) moves the expiry and is answered with its new expiry;
// anything else is token_refused and the old expiry stands. Refresh runs
// off the connection's event loop, and a member's timer is stopped when
// it leaves. Tokens are never logged.
func TestTokenExpiry(t *testing.T) {
	clock := &chattest.Clock{}
	release := make(chan struct{})
	auth := refresher{authFunc(memberAuth), func(token, room string) (chat.Identity, error) {
		switch token {
		case "tok-secret-good":
			return chat.Identity{ID: "u-alice", Expires: time.Now().Add(2 * time.Hour)}, nil
		case "tok-secret-eve":
			return chat.Identity{ID: "u-eve", Expires: time.Now().Add(2 * time.Hour)}, nil
		case "tok-secret-slow":
			<-release
			return chat.Identity{ID: "u-slow", Expires: time.Now().Add(2 * time.Hour)}, nil
		}
		return chat.Identity{}, &chat.AuthError{Status: 401, Reason: "bad signature"}
	}}
	var logs logBuffer
	ts := chattest.Start(t, chat.Config{Authenticator: auth, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, nil, nil)

	sendToken := func(c *chattest.Client, tok string) {
		c.SendJSON(map[string]string{"type": "token", "token": tok})
	}
	echo := func(c *chattest.Client, text string) {
		t.Helper()
		c.SendJSON(map[string]string{"type": "message", "text": text})
		for {
			if e := nextOf(t, c, "message"); e.Str("text") == text {
				return
			}
		}
	}

	// Plain text: closed at expiry, not a minute before.
	pat := ts.Dial(t, "/chat/p?as=u-pat&n=pat&ttl=1h", "")
	chattest.Eventually(t, "pat's timer", func() bool { return clock.Pending() == 1 })
	clock.Advance(59 * time.Minute)
	pat.Send("still here")
	pat.SkipUntil("pat: still here")
	clock.Advance(time.Minute)
	pat.ExpectCloseReason(4001, "token expired")

	// JSON: a refresh moves the expiry.
	alice := ts.Dial(t, "/chat/j?as=u-alice&n=alice&ttl=1h", "moonchat.v1")
	nextOf(t, alice, "presence")
	sendToken(alice, "tok-secret-good")
	e := nextOf(t, alice, "token")
	if exp := time.Unix(int64(e.Num("expires")), 0); exp.Before(time.Now().Add(110*time.Minute)) || len(e) != 2 {
		t.Errorf("token answer %v", e)
	}
	clock.Advance(time.Hour) // her first token's expiry
	echo(alice, "after the old expiry")
	// Refusals leave the expiry as it is.
	for _, tc := range []struct{ tok, want string }{
		{"tok-secret-bad", "token refused: bad signature"},
		{"tok-secret-eve", "token refused: the token names another account: reconnect to change accounts"},
	} {
		sendToken(alice, tc.tok)
		if e := nextOf(t, alice, "error"); e.Str("code") != "token_refused" || e.Str("text") != tc.want {
			t.Errorf("%s: %v, want token_refused %q", tc.tok, e, tc.want)
		}
	}
	clock.Advance(59 * time.Minute)
	echo(alice, "a minute left")
	clock.Advance(time.Minute)
	alice.ExpectCloseReason(4001, "token expired")

	// A guest has nothing to refresh.
	guest := ts.Dial(t, "/chat/j?name=gus", "moonchat.v1")
	nextOf(t, guest, "presence")
	sendToken(guest, "tok-secret-good")
	if e := nextOf(t, guest, "error"); e.Str("code") != "token_refused" || !strings.Contains(e.Str("text"), "reconnect to log in") {
		t.Errorf("guest's token: %v", e)
	}

	// A slow verification holds up neither this connection nor others.
	slow := ts.Dial(t, "/chat/s?as=u-slow&n=slow&ttl=1h", "moonchat.v1")
	nextOf(t, slow, "presence")
	sendToken(slow, "tok-secret-slow")
	echo(slow, "while verifying")
	echo(guest, "meanwhile")
	sendToken(slow, "tok-secret-slow")
	if e := nextOf(t, slow, "error"); e.Str("code") != "token_refused" || !strings.Contains(e.Str("text"), "already under way") {
		t.Errorf("second refresh: %v", e)
	}
	close(release)
	nextOf(t, slow, "token")

	// Leaving stops the timer.
	n := clock.Pending()
	_ = slow.Conn.Close()
	chattest.Eventually(t, "the leaver's timer stopped", func() bool { return clock.Pending() == n-1 })

	for series, want := range map[string]string{
		"moonchat_token_expired_total":                    "2",
		`moonchat_token_refresh_total{result="accepted"}`: "2",
		`moonchat_token_refresh_total{result="refused"}`:  "4",
	} {
		if l := metricLine(t, ts, series); l != series+" "+want {
			t.Errorf("metric %q, want %s", l, want)
		}
	}
	if strings.Contains(logs.String(), "tok-secret") {
		t.Errorf("a token reached the log")
	}
}

// TestTokenRefreshUnsupported: without a TokenRefresher a refresh is
// refused and the connection keeps its expiry.
func TestTokenRefreshUnsupported(t *testing.T) {
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), Clock: clock}, nil, nil)
	c := ts.Dial(t, "/chat/j?as=u-alice&n=alice&ttl=1h", "moonchat.v1")
	nextOf(t, c, "presence")
	c.SendJSON(map[string]string{"type": "token", "token": "x"})
	if e := nextOf(t, c, "error"); e.Str("code") != "token_refused" || !strings.Contains(e.Str("text"), "cannot refresh") {
		t.Errorf("refresh: %v", e)
	}
	c.SendJSON(map[string]any{"type": "token", "token": 5})
	if e := nextOf(t, c, "error"); e.Str("code") != "bad_request" || !strings.Contains(e.Str("text"), `"token" must be a string`) {
		t.Errorf("bad token event: %v", e)
	}
	clock.Advance(time.Hour)
	c.ExpectCloseReason(4001, "token expired")
}

// TestReplayCarriesAccounts (issue 12): messages a History returns with
// their Account are replayed, paged, resumed and served by /api/history
// with user_id and roles exactly as live message events carry them; a
// guest's carry neither.
func TestReplayCarriesAccounts(t *testing.T) {
	h := chattest.NewHistory()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if err := h.Append(context.Background(), []*chat.Message{
		{Room: "lobby", User: "alice", Text: "stored by alice", Time: at, Account: &chat.Account{ID: "u-alice", Roles: []string{"user", "mod"}}},
		{Room: "lobby", User: "bob", Text: "stored by bob", Time: at},
	}); err != nil {
		t.Fatal(err)
	}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), Replay: 10}, nil, h)
	alice := ts.Dial(t, "/chat/lobby?as=u-alice&n=alice&role=mod", "moonchat.v1")
	nextOf(t, alice, "presence")
	alice.SendJSON(map[string]string{"type": "message", "text": "live"})
	live := strings.TrimPrefix(rawNextOf(alice, "message"), `{"type":"message",`)
	stored := `{"id":1,"room":"lobby","user":"alice","text":"stored by alice","ts":"2026-12-01T10:00:00.000Z","user_id":"u-alice","roles":["user","mod"]},` +
		`{"id":2,"room":"lobby","user":"bob","text":"stored by bob","ts":"2026-12-01T10:00:00.000Z"},{` + live
	check := func(where, frame string) {
		t.Helper()
		if !strings.Contains(frame, `"messages":[`+stored+`]`) {
			t.Errorf("%s: %s\nwant messages [%s]", where, frame, stored)
		}
	}
	c := ts.Dial(t, "/chat/lobby?name=carol", "moonchat.v1")
	c.ExpectEvent("welcome")
	check("join replay", c.Read())
	c.SendJSON(map[string]any{"type": "history", "before": 0})
	check("history before", rawNextOf(c, "history"))
	c.SendJSON(map[string]any{"type": "history", "after": 0})
	check("history after", rawNextOf(c, "history"))
	r := ts.Dial(t, "/chat/lobby?name=dave&since=0", "moonchat.v1")
	r.ExpectEvent("welcome")
	check("since resume", r.Read())
	_, body, _ := ts.Get(t, "/api/history?room=lobby")
	check("/api/history", body)
	var v struct{ Messages []map[string]any }
	if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Messages) != 3 {
		t.Fatalf("/api/history: %v %s", err, body)
	}
}

// TestTokenFlood: token events count against the connection's flood
// bucket, as messages do.
func TestTokenFlood(t *testing.T) {
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), FloodRate: 0.001, FloodBurst: 1}, nil, nil)
	c := ts.Dial(t, "/chat/j?as=u-alice&n=alice", "moonchat.v1")
	nextOf(t, c, "presence")
	for _, want := range []string{"cannot refresh", "sending too fast"} {
		c.SendJSON(map[string]string{"type": "token", "token": "x"})
		if e := nextOf(t, c, "error"); e.Str("code") != "token_refused" || !strings.Contains(e.Str("text"), want) {
			t.Errorf("got %v, want token_refused %q", e, want)
		}
	}
}
