package chat_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Cluster presence (issue 15, remote.go) with chattest's in-memory
// PresenceHub standing in for package cluster's roster: servers sharing
// one hub are nodes of one cluster; names are claimed for the whole room
// and each node shows the others' members.

// presenceNodes starts one server per name on a new hub, with accounts by
// ?as=ID&n=NAME (memberAuth).
func presenceNodes(t *testing.T, cfg chat.Config, names ...string) (*chattest.PresenceHub, []*chattest.Server) {
	t.Helper()
	if cfg.Authenticator == nil {
		cfg.Authenticator = authFunc(memberAuth)
	}
	hub := chattest.NewPresenceHub()
	var srv []*chattest.Server
	for _, n := range names {
		ts, _ := chattest.StartPresence(t, hub, n, cfg, nil, nil)
		srv = append(srv, ts)
	}
	return hub, srv
}

// userOf returns room's user called name on ts (failing when there is
// none, after waiting for it).
func userOf(t *testing.T, ts *chattest.Server, room, name string) chat.User {
	t.Helper()
	var got chat.User
	chattest.Eventually(t, name+" in "+room, func() bool {
		for _, u := range ts.Chat.Users(room) {
			if u.Name == name {
				got = u
				return true
			}
		}
		return false
	})
	return got
}

// A member sees the other node's members as its own node's: in its
// presence list (a room started after they joined), in the presence
// deltas and notices of their joins and leaves (moonchat.v1 and plain
// text), with their accounts and roles, and in Host.Users with their
// node; a leave there removes them here.
func TestPresenceAcrossNodes(t *testing.T) {
	hub, srv := presenceNodes(t, chat.Config{}, "a", "b")
	a, b := srv[0], srv[1]

	alice := a.Dial(t, "/chat/lobby?name=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	alice.ExpectEvent("history")
	alice.Expect(`{"type":"presence","room":"lobby","users":["alice"]}`)
	carol := a.Dial(t, "/chat/lobby?name=carol", "")
	carol.Expect("* carol joined")
	hub.Settle() // b knows alice and carol, its lobby has no goroutine yet

	bob := b.Dial(t, "/chat/lobby?as=bo&n=bob&role=mod", chat.SubprotocolJSON)
	if w := bob.ExpectEvent("welcome"); w.Str("user") != "bob" {
		t.Fatalf("welcome %v", w)
	}
	bob.ExpectEvent("history")
	bob.Expect(`{"type":"presence","room":"lobby","users":["alice","carol","bob"],"accounts":{"bob":{"id":"bo","roles":["user","mod"]}}}`)

	alice.SkipUntil(`{"type":"presence","room":"lobby","joined":["bob"],"accounts":{"bob":{"id":"bo","roles":["user","mod"]}}}`)
	if e := alice.ExpectEvent("system"); e.Str("text") != "bob joined" {
		t.Fatalf("system %v", e)
	}
	carol.SkipUntil("* bob joined")

	u := userOf(t, a, "lobby", "bob")
	if u.Node != "b" || u.ID != "bo" || !slices.Equal(u.Roles, []string{"user", "mod"}) || u.Room != "lobby" {
		t.Fatalf("a's user bob: %+v", u)
	}
	for _, x := range a.Chat.Users("lobby") {
		if x.Name != "bob" && x.Node != "" {
			t.Fatalf("a's own member %+v has a node", x)
		}
	}
	if got := b.Names("lobby"); !slices.Equal(got, []string{"bob", "alice", "carol"}) {
		t.Fatalf("b's users %v", got)
	}
	if got := b.Chat.Rooms(); !slices.Equal(got, []string{"lobby"}) {
		t.Fatalf("b's rooms %v", got)
	}
	// A full list asked for is the whole room too.
	alice.SendJSON(map[string]string{"type": "presence"})
	alice.Expect(`{"type":"presence","room":"lobby","users":["alice","carol","bob"],"accounts":{"bob":{"id":"bo","roles":["user","mod"]}}}`)

	// A rename there is announced here.
	if got, err := b.Chat.Rename(userOf(t, b, "lobby", "bob").SessionID, "robert"); err != nil || got != "robert" {
		t.Fatalf("rename: %q, %v", got, err)
	}
	alice.Expect(`{"type":"rename","room":"lobby","old":"bob","new":"robert"}`)
	if e := alice.ExpectEvent("system"); e.Str("text") != "bob is now known as robert" {
		t.Fatalf("system %v", e)
	}
	carol.Expect("* bob is now known as robert")
	if r := userOf(t, a, "lobby", "robert"); r.SessionID != u.SessionID || r.Node != "b" {
		t.Fatalf("a's robert %+v, was %+v: the same session id across a rename", r, u)
	}

	_ = bob.Conn.Close()
	carol.Expect("* robert left")
	if e := alice.ExpectEvent("system"); e.Str("text") != "robert left" {
		t.Fatalf("system %v", e)
	}
	alice.Expect(`{"type":"presence","room":"lobby","left":["robert"]}`)
	if got := a.Names("lobby"); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("a's users after bob left: %v", got)
	}
}

// A name held on one node, and its look-alikes, cannot be taken on
// another: a newcomer gets the next variant, whether the node knows the
// holder already (its room's table) or not yet (the cluster refuses the
// claim); a rename likewise.
func TestPresenceNamesAcrossNodes(t *testing.T) {
	hub, srv := presenceNodes(t, chat.Config{}, "a", "b")
	a, b := srv[0], srv[1]
	zed := a.Dial(t, "/chat/lobby?name=zed", "")
	zed.Expect("* zed joined")
	hub.Settle()

	other := b.Dial(t, "/chat/lobby?name=Zed", chat.SubprotocolJSON)
	if w := other.ExpectEvent("welcome"); w.Str("user") != "Zed-2" {
		t.Fatalf("b gave %v, want Zed-2", w)
	}
	zed.Expect("* Zed-2 joined")

	// c watches nothing: its room does not know a's and b's members, the
	// cluster refuses their names (zed, then Zed-2's look-alike zed-2).
	cn := hub.Node("c")
	c := chattest.Start(t, chat.Config{Presence: cn}, nil, nil)
	third := c.Dial(t, "/chat/lobby?name=zed", "")
	third.Expect("* zed-3 joined")
	if got := c.Names("lobby"); !slices.Equal(got, []string{"zed-3"}) {
		t.Fatalf("c's users %v", got)
	}

	// Renames: on b, to a look-alike of a's zed (known to b's room); on
	// c, to a look-alike of b's member (unknown to c's room).
	hub.Settle()
	sid := userOf(t, b, "lobby", "Zed-2").SessionID
	if got, err := b.Chat.Rename(sid, "ZED"); err != nil || got != "ZED-2" {
		t.Fatalf("rename on b: %q, %v; want ZED-2", got, err)
	}
	zed.SkipUntil("* Zed-2 is now known as ZED-2")
	sid = userOf(t, c, "lobby", "zed-3").SessionID
	if got, err := c.Chat.Rename(sid, "Zed"); err != nil || got != "Zed-3" {
		// The cluster refuses Zed (a's zed) and Zed-2 (b's ZED-2); Zed-3
		// looks like c's member's own zed-3.
		t.Fatalf("rename on c: %q, %v; want Zed-3", got, err)
	}
	var names []string
	for _, e := range hub.Entries("lobby") {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if want := []string{"ZED-2", "Zed-3", "zed"}; !slices.Equal(names, want) {
		t.Fatalf("cluster roster %v, want %v", names, want)
	}

	// A look-alike by a mark, in a room started on b after a's member.
	amy := a.Dial(t, "/chat/marks?name=amy", "")
	amy.Expect("* amy joined")
	hub.Settle()
	if got := b.Names("marks"); !slices.Equal(got, []string{"amy"}) {
		t.Fatalf("b's users of a room without a goroutine there: %v", got)
	}
	other = b.Dial(t, "/chat/marks?name=%C3%A1my", chat.SubprotocolJSON) // ámy
	if w := other.ExpectEvent("welcome"); w.Str("user") != "ámy-2" {
		t.Fatalf("b gave %v, want ámy-2", w)
	}
}

// Another node's member is kicked from here through its node (which
// audits it); the Host methods that act on a connection refuse it
// clearly.
func TestPresenceKickRemote(t *testing.T) {
	hub, srv := presenceNodes(t, chat.Config{}, "a", "b")
	a, b := srv[0], srv[1]
	alice := a.Dial(t, "/chat/lobby?name=alice", "")
	alice.Expect("* alice joined")
	bob := b.Dial(t, "/chat/lobby?name=bob", "")
	bob.Expect("* bob joined")
	alice.Expect("* bob joined")
	hub.Settle()

	sid := userOf(t, a, "lobby", "bob").SessionID
	if err := a.Chat.Send(sid, "hi"); !errors.Is(err, chat.ErrRemoteMember) || !strings.Contains(err.Error(), "on node b") {
		t.Fatalf("Send to a remote member: %v", err)
	}
	if _, err := a.Chat.Rename(sid, "robert"); !errors.Is(err, chat.ErrRemoteMember) {
		t.Fatalf("Rename of a remote member: %v", err)
	}
	if err := a.Chat.Grant(sid, "mod"); !errors.Is(err, chat.ErrRemoteMember) {
		t.Fatalf("Grant to a remote member: %v", err)
	}
	if err := a.Chat.Action(sid, "waves"); !errors.Is(err, chat.ErrRemoteMember) {
		t.Fatalf("Action of a remote member: %v", err)
	}
	if err := a.Chat.Send(sid+1000, "hi"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Fatalf("Send to nobody: %v", err)
	}

	if err := a.Chat.Kick(sid, "bye"); err != nil {
		t.Fatal(err)
	}
	bob.SkipUntil("* bye")
	bob.ExpectClose(1000)
	alice.SkipUntil("* bob left")
	entries, err := b.Chat.Audit("lobby", time.Time{}, 10)
	if err != nil || len(entries) != 1 || entries[0].Action != "kick" || entries[0].Target != "name:bob" || entries[0].By != "script" {
		t.Fatalf("b's audit: %+v, %v", entries, err)
	}
	if err := a.Chat.Kick(sid, "again"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Fatalf("kicking the member gone: %v", err)
	}
}

// While the cluster's roster cannot be reached, joins and renames are
// refused clearly (error code "unavailable", close 1013; the rename's
// error wraps ErrUnavailable), logged and counted; a leave meanwhile is
// released once it is back.
func TestPresenceUnavailable(t *testing.T) {
	hub, srv := presenceNodes(t, chat.Config{}, "a", "b")
	a := srv[0]
	alice := a.Dial(t, "/chat/lobby?name=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	bob := a.Dial(t, "/chat/lobby?name=bob", "")
	bob.Expect("* bob joined")

	hub.SetAvailable(false)
	want := "join refused: " + chat.ErrUnavailable.Error()
	json := a.Dial(t, "/chat/lobby?name=carol", chat.SubprotocolJSON)
	json.Expect(fmt.Sprintf(`{"type":"error","code":"unavailable","text":%q}`, want))
	json.ExpectCloseReason(1013, want)
	plain := a.Dial(t, "/chat/lobby?name=dave", "")
	plain.Expect("* " + want)
	plain.ExpectClose(1013)

	sid := userOf(t, a, "lobby", "alice").SessionID
	if got, err := a.Chat.Rename(sid, "alicia"); !errors.Is(err, chat.ErrUnavailable) || got != "" {
		t.Fatalf("rename while unavailable: %q, %v", got, err)
	}
	if got := a.Names("lobby"); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("users %v", got)
	}
	if l := metricLine(t, a, "moonchat_presence_errors_total"); l != "moonchat_presence_errors_total 3" {
		t.Fatalf("metric: %q", l)
	}

	_ = bob.Conn.Close() // its release fails: the roster makes it later
	chattest.Eventually(t, "bob's release refused", func() bool {
		return metricLine(t, a, "moonchat_presence_errors_total") == "moonchat_presence_errors_total 4"
	})
	hub.SetAvailable(true)
	if es := hub.Entries("lobby"); len(es) != 1 || es[0].Name != "alice" {
		t.Fatalf("roster %+v", es)
	}
	if got, err := a.Chat.Rename(sid, "alicia"); err != nil || got != "alicia" {
		t.Fatalf("rename once available: %q, %v", got, err)
	}
}

// A change of roles is claimed again: the other nodes' members get the
// roles event and the new roles in Host.Users.
func TestPresenceRoles(t *testing.T) {
	hub, srv := presenceNodes(t, chat.Config{}, "a", "b")
	a, b := srv[0], srv[1]
	alice := a.Dial(t, "/chat/lobby?name=alice", "")
	alice.Expect("* alice joined")
	bob := b.Dial(t, "/chat/lobby?name=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	hub.Settle()
	if err := a.Chat.Grant(userOf(t, a, "lobby", "alice").SessionID, "mod"); err != nil {
		t.Fatal(err)
	}
	if got := rawNextOf(bob, "roles"); got != `{"type":"roles","room":"lobby","name":"alice","roles":["guest","mod"]}` {
		t.Fatalf("roles event %s", got)
	}
	if u := userOf(t, b, "lobby", "alice"); !slices.Equal(u.Roles, []string{"guest", "mod"}) || u.Node != "a" {
		t.Fatalf("b's alice %+v", u)
	}
}

// Other nodes' joins into a big room are coalesced like local ones: a
// burst of them reaches the members as one presence delta and one notice
// when the announce interval has passed, not a frame per join.
func TestPresenceRemoteJoinsCoalesced(t *testing.T) {
	clock := &chattest.Clock{}
	hub := chattest.NewPresenceHub()
	a, _ := chattest.StartPresence(t, hub, "a", chat.Config{AnnounceBatchMembers: 1, AnnounceInterval: time.Hour, Clock: clock}, nil, nil)
	alice := a.Dial(t, "/chat/lobby?name=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	alice.ExpectEvent("history")
	alice.ExpectEvent("presence")
	alice.Expect(`{"type":"presence","room":"lobby","joined":["alice"]}`)
	alice.ExpectEvent("system")
	var joined []string
	for i := range 50 {
		name := fmt.Sprintf("r%d", i)
		joined = append(joined, name)
		a.Chat.RemoteJoined("lobby", chat.PresenceEntry{Node: "b", Session: uint64(i + 1), Name: name, Roles: []string{chat.RoleGuest}, Joined: time.Unix(int64(i), 0)})
	}
	chattest.Eventually(t, "the remote members", func() bool { return len(a.Chat.Users("lobby")) == 51 })
	fire(t, clock, time.Hour)
	e := alice.ExpectEvent("presence")
	var got []string
	for _, n := range e["joined"].([]any) {
		got = append(got, n.(string))
	}
	if !slices.Equal(got, joined) {
		t.Fatalf("delta joined %v", got)
	}
	if s := alice.ExpectEvent("system"); s.Str("text") != "r0, r1, r2 and 47 others joined" {
		t.Fatalf("notice %v", s)
	}
	// Told again (a watcher may repeat), nothing changes.
	a.Chat.RemoteJoined("lobby", chat.PresenceEntry{Node: "b", Session: 1, Name: "r0", Roles: []string{chat.RoleGuest}, Joined: time.Unix(0, 0)})
	a.Chat.RemoteLeft("lobby", "b", 2)
	a.Chat.RemoteLeft("lobby", "b", 2)
	chattest.Eventually(t, "r1 gone", func() bool { return len(a.Chat.Users("lobby")) == 50 })
	fire(t, clock, time.Hour)
	alice.Expect(`{"type":"presence","room":"lobby","left":["r1"]}`)
	if s := alice.ExpectEvent("system"); s.Str("text") != "r1 left" {
		t.Fatalf("notice %v", s)
	}
}

// The admin API and /api/rooms see the whole room too: the members list
// has the other nodes' members with their node, a kick by name reaches
// them through their node, and the rooms' member counts are the
// cluster's (a room with members only elsewhere included).
func TestPresenceAdminAndRooms(t *testing.T) {
	hub := chattest.NewPresenceHub()
	cfg := chat.Config{AdminToken: adminToken}
	a, _ := chattest.StartPresence(t, hub, "a", cfg, nil, chattest.NewListingHistory())
	b, _ := chattest.StartPresence(t, hub, "b", cfg, nil, chattest.NewListingHistory())
	alice := a.Dial(t, "/chat/lobby?name=alice", "")
	alice.Expect("* alice joined")
	bob := b.Dial(t, "/chat/lobby?name=bob", "")
	bob.Expect("* bob joined")
	dan := b.Dial(t, "/chat/side?name=dan", "")
	dan.Expect("* dan joined")
	alice.SkipUntil("* bob joined")
	hub.Settle()

	sid := userOf(t, a, "lobby", "bob").SessionID
	status, body := adminDo(t, a, http.MethodGet, "/api/members?room=lobby", "")
	want := fmt.Sprintf(`{"room":"lobby","members":[{"name":"alice","roles":["guest"],"session":1},{"name":"bob","roles":["guest"],"session":%d,"node":"b"}]}`, sid)
	if status != http.StatusOK || strings.TrimSpace(body) != want {
		t.Fatalf("members: %d %s\nwant %s", status, body, want)
	}
	rec := roomsGet(a.Chat, http.MethodGet)
	if got := rec.Body.String(); got != `{"rooms":[{"room":"lobby","count":0,"first_id":0,"last_id":0,"members":2},{"room":"side","count":0,"first_id":0,"last_id":0,"members":1}]}`+"\n" {
		t.Fatalf("/api/rooms: %s", got)
	}

	status, body = adminDo(t, a, http.MethodPost, "/api/rooms/lobby/kick", `{"name":"bob","reason":"enough"}`)
	if status != http.StatusNoContent {
		t.Fatalf("kick: %d %s", status, body)
	}
	bob.SkipUntil("* enough")
	bob.ExpectClose(1000)
	alice.SkipUntil("* bob left")
	entries, err := b.Chat.Audit("lobby", time.Time{}, 10)
	if err != nil || len(entries) != 1 || entries[0].By != "admin" || entries[0].Target != "name:bob" {
		t.Fatalf("b's audit: %+v, %v", entries, err)
	}
}

// barrierPresence holds the claims of the names in hold until n of them
// are under way at once: claims made one after the other never get
// there (their context ends, and the join is refused).
type barrierPresence struct {
	chat.Presence
	hold map[string]bool
	n    int
	mu   sync.Mutex
	seen int
	all  chan struct{}
}

func (p *barrierPresence) Claim(ctx context.Context, room string, e chat.PresenceEntry) error {
	if p.hold[e.Name] {
		p.mu.Lock()
		if p.seen++; p.seen == p.n {
			close(p.all)
		}
		p.mu.Unlock()
		select {
		case <-p.all:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.Presence.Claim(ctx, room, e)
}

// A run of joins in one batch is claimed together: each gets a distinct
// name in the room at once, the claims are under way at the same time,
// and a name the cluster refuses (held by another node's member this
// node does not know yet) gets the next variant.
func TestPresenceJoinRun(t *testing.T) {
	hub := chattest.NewPresenceHub()
	b, _ := chattest.StartPresence(t, hub, "b", chat.Config{}, nil, nil)
	zed := b.Dial(t, "/chat/lobby?name=zed", "")
	zed.Expect("* zed joined")

	g := newGatedJoins("gate")
	p := &barrierPresence{Presence: hub.Node("a"), hold: map[string]bool{"bob": true, "bob-2": true, "zed": true}, n: 3, all: make(chan struct{})}
	a := chattest.Start(t, chat.Config{Presence: p}, &chattest.Hooks{OnJoin: g.join}, nil) // no watcher: a knows nobody of b
	gate := a.Dial(t, "/chat/lobby?name=gate", "")
	<-g.entered // the room goroutine waits in gate's join hook
	var cs []*chattest.Client
	for i, n := range []string{"bob", "bob", "zed"} {
		cs = append(cs, a.Dial(t, "/chat/lobby?name="+n, ""))
		// A dial returns with the handshake; its join is queued just
		// after. Waiting for it keeps the queue in dial order (the two
		// bobs otherwise may swap).
		chattest.Eventually(t, "join queued", func() bool { return a.Chat.Queued("lobby") == i+1 })
	}
	close(g.open)
	gate.Expect("* gate joined")
	for i, want := range []string{"bob", "bob-2", "zed-2"} {
		cs[i].SkipUntil("* " + want + " joined")
	}
	if got := a.Names("lobby"); !slices.Equal(got, []string{"gate", "bob", "bob-2", "zed-2"}) {
		t.Fatalf("a's users %v", got)
	}
	var names []string
	for _, e := range hub.Entries("lobby") {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if want := []string{"bob", "bob-2", "gate", "zed", "zed-2"}; !slices.Equal(names, want) {
		t.Fatalf("cluster roster %v, want %v", names, want)
	}
}

// A member whose claim the cluster lost (its node counted dead meanwhile)
// is told and disconnected with 1013; the others stay.
func TestPresenceLost(t *testing.T) {
	_, srv := presenceNodes(t, chat.Config{}, "a")
	a := srv[0]
	alice := a.Dial(t, "/chat/lobby?name=alice", "")
	alice.Expect("* alice joined")
	bob := a.Dial(t, "/chat/lobby?name=bob", "")
	bob.Expect("* bob joined")
	sid := userOf(t, a, "lobby", "bob").SessionID
	a.Chat.PresenceLost("other", sid) // not its room: nothing
	a.Chat.PresenceLost("lobby", sid)
	bob.SkipUntil("* this server was cut off from the cluster and your name went to someone else; reconnect to join again")
	bob.ExpectClose(1013)
	alice.SkipUntil("* bob left")
	if got := a.Names("lobby"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("users %v", got)
	}
}

// A name left and asked for again within one batch is free in the
// cluster too: the leave's release is made before the join's claim.
func TestPresenceLeaveThenJoinInOneBatch(t *testing.T) {
	hub := chattest.NewPresenceHub()
	g := newGatedJoins("gate")
	a, _ := chattest.StartPresence(t, hub, "a", chat.Config{}, &chattest.Hooks{OnJoin: g.join}, nil)
	bob := a.Dial(t, "/chat/lobby?name=bob", "")
	bob.Expect("* bob joined")
	gate := a.Dial(t, "/chat/lobby?name=gate", "")
	<-g.entered
	_ = bob.Conn.Close()
	chattest.Eventually(t, "bob's leave queued", func() bool { return a.Chat.Queued("lobby") == 1 })
	again := a.Dial(t, "/chat/lobby?name=bob", "")
	chattest.Eventually(t, "the new bob's join queued", func() bool { return a.Chat.Queued("lobby") == 2 })
	close(g.open)
	gate.SkipUntil("* bob left")
	again.SkipUntil("* bob joined")
	if got := a.Names("lobby"); !slices.Equal(got, []string{"gate", "bob"}) {
		t.Fatalf("users %v", got)
	}
}
