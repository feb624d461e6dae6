package chat_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Cluster-wide state (issue 15, shared.go) with chattest's in-memory
// Shared standing in for package cluster's: two servers (nodes A and B)
// share bans, mutes, room settings, the audit log, name owners and
// ignore lists, each with its own History (never used for them) and a
// watcher handing every stored change to it.

// sharedPair starts nodes A and B on one new Shared, with memberAuth
// accounts, the admin API and clock (nil: the real one).
func sharedPair(t *testing.T, clock *chattest.Clock) (*chattest.Shared, [2]*chattest.Server, [2]*chattest.Watcher, [2]*chattest.History) {
	t.Helper()
	sh := chattest.NewShared()
	cfg := chat.Config{Authenticator: authFunc(memberAuth), AdminToken: adminToken, Replay: 10}
	if clock != nil {
		cfg.Clock = clock
	}
	var srv [2]*chattest.Server
	var ws [2]*chattest.Watcher
	var hist [2]*chattest.History
	for i := range srv {
		hist[i] = chattest.NewHistory()
		srv[i], ws[i] = chattest.StartShared(t, sh, cfg, nil, hist[i])
	}
	return sh, srv, ws, hist
}

// synced waits until every node was handed every stored change.
func synced(t *testing.T, sh *chattest.Shared) {
	t.Helper()
	chattest.Eventually(t, "the watchers caught up", sh.Synced)
}

// sharedAudit returns the actions of ts's audit log, oldest first.
func sharedAudit(t *testing.T, ts *chattest.Server) []string {
	t.Helper()
	es, err := ts.Chat.Audit("", time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" by "+e.By)
	}
	return out
}

// A ban made on A kicks the member it matches connected to B (notice,
// 1008 with the reason), and both nodes refuse it at the handshake; it is
// in the shared state (the Histories' stores stay empty), audited once
// and loaded by a node started later. Lifted on B, A lets the name in
// again.
func TestSharedBan(t *testing.T) {
	sh, srv, _, hist := sharedPair(t, nil)
	a, b := srv[0], srv[1]
	mallory := b.Dial(t, "/chat/lobby?name=mallory", "")
	mallory.SkipUntil("* mallory joined")
	bob := joinedJSON(t, b, "/chat/lobby?name=bob")
	inRoom(t, b, "lobby", "bob")

	if err := a.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "Mallory"}, 0, "spam", "mod"); err != nil {
		t.Fatal(err)
	}
	mallory.SkipUntil("* you are banned from lobby: spam")
	mallory.ExpectCloseReason(1008, "you are banned from lobby: spam")
	bob.SkipTo(func(s string) bool { return strings.Contains(s, `"mallory left"`) })
	for i, ts := range srv {
		if status, body := refusedDial(t, ts, "", "/chat/lobby?name=mallory"); status != 403 || body != "you are banned from lobby: spam" {
			t.Errorf("node %d: handshake %d %q", i, status, body)
		}
	}
	synced(t, sh)
	for i, ts := range srv {
		if rs := ts.Chat.Restrictions("lobby"); len(rs) != 1 || rs[0].By != "mod" || rs[0].Target.Name != "Mallory" {
			t.Errorf("node %d holds %+v", i, rs)
		}
		if rs, _ := hist[i].Restrictions(); len(rs) != 0 {
			t.Errorf("node %d's History stored %+v", i, rs)
		}
	}
	if got := sharedAudit(t, b); !slices.Equal(got, []string{"ban by mod"}) {
		t.Errorf("audit %q", got)
	}
	// A node started later loads it.
	c, _ := chattest.StartShared(t, sh, chat.Config{}, nil, nil)
	if status, body := refusedDial(t, c, "", "/chat/lobby?name=mallory"); status != 403 || body != "you are banned from lobby: spam" {
		t.Errorf("node started later: handshake %d %q", status, body)
	}

	if ok, err := b.Chat.Lift(chat.KindBan, "lobby", chat.Target{Name: "Mallory"}, "mod2"); !ok || err != nil {
		t.Fatalf("lift on B: %v %v", ok, err)
	}
	synced(t, sh)
	if rs := a.Chat.Restrictions(""); len(rs) != 0 {
		t.Errorf("A still holds %+v", rs)
	}
	a.Dial(t, "/chat/lobby?name=mallory", "")
	inRoom(t, a, "lobby", "mallory")
	if got := sharedAudit(t, a); !slices.Equal(got, []string{"ban by mod", "unban by mod2"}) {
		t.Errorf("audit %q", got)
	}
}

// A mute made on A refuses the posts of its target connected to B (the
// "muted" error; the others see nothing); lifted on A, B lets them
// through.
func TestSharedMute(t *testing.T) {
	sh, srv, _, _ := sharedPair(t, nil)
	a, b := srv[0], srv[1]
	carol := joinedJSON(t, b, "/chat/lobby?as=u-carol&n=carol")
	bob := joinedJSON(t, b, "/chat/lobby?name=bob")
	if err := a.Chat.Restrict(chat.KindMute, "", chat.Target{Account: "u-carol"}, 0, "", "mod"); err != nil {
		t.Fatal(err)
	}
	synced(t, sh)
	carol.SendJSON(map[string]string{"type": "message", "text": "me too"})
	if e := nextOf(t, carol, "error"); e.Str("code") != "muted" || e.Str("text") != "message not sent: you are muted in every room" {
		t.Errorf("carol got %v", e)
	}
	if ok, err := a.Chat.Lift(chat.KindMute, "", chat.Target{Account: "u-carol"}, "mod"); !ok || err != nil {
		t.Fatalf("lift: %v %v", ok, err)
	}
	synced(t, sh)
	carol.SendJSON(map[string]string{"type": "message", "text": "thanks"})
	if e := nextMessage(t, bob); e.Str("text") != "thanks" {
		t.Errorf("bob got %v", e)
	}
}

// A topic set on A is sent to B's members once (the "topic" event and
// the notice), and to A's once: the watcher handing A's own change back
// tells nobody again. B holds it (its slow mode keeps A's topic); a topic
// cleared on A is announced on B without a name. Each change is audited
// once.
func TestSharedTopic(t *testing.T) {
	sh, srv, _, _ := sharedPair(t, nil)
	a, b := srv[0], srv[1]
	alice := joinedJSON(t, a, "/chat/lobby?as=alice")
	bob := joinedJSON(t, b, "/chat/lobby?name=bob")
	inRoom(t, b, "lobby", "bob")
	if err := a.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: "release friday"}, "alice"); err != nil {
		t.Fatal(err)
	}
	synced(t, sh)
	if err := b.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: "release friday", Slow: time.Minute}, "bob"); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*chattest.Client{"alice": alice, "bob": bob} {
		var topics, notices int
		for _, e := range untilSystem(t, c, "slow mode is on: one message per 1m per member (moderators exempt)") {
			switch {
			case e.Str("type") == "topic":
				topics++
				if e.Str("topic") != "release friday" || e.Str("by") != "alice" {
					t.Errorf("%s got %v", who, e)
				}
			case e.Str("type") == "system" && e.Str("text") == "alice set the topic: release friday":
				notices++
			}
		}
		if topics != 1 || notices != 1 {
			t.Errorf("%s was told of the topic %d times (%d notices), want once", who, topics, notices)
		}
	}
	synced(t, sh)
	for i, ts := range srv {
		if st := ts.Chat.RoomSettings("lobby"); st.Topic != "release friday" || st.TopicBy != "alice" || st.Slow != time.Minute {
			t.Errorf("node %d holds %+v", i, st)
		}
	}
	if err := a.Chat.SetRoomSettings("lobby", chat.RoomSettings{Slow: time.Minute}, "alice"); err != nil {
		t.Fatal(err)
	}
	if e := nextOf(t, alice, "system"); e.Str("text") != "alice cleared the topic" {
		t.Errorf("alice got %v", e)
	}
	if e := nextOf(t, bob, "system"); e.Str("text") != "the topic was cleared" {
		t.Errorf("bob got %v", e)
	}
	if got := sharedAudit(t, b); !slices.Equal(got, []string{"topic by alice", "slow by bob", "topic by alice"}) {
		t.Errorf("audit %q", got)
	}
}

// A change this node stored and the watcher has not handed back yet
// holds back the older changes of its key: a ban lifted at once does not
// kick its target again when the watcher catches up, and a topic set
// twice is not flipped back.
func TestSharedOwnChangesInOrder(t *testing.T) {
	sh, srv, ws, _ := sharedPair(t, nil)
	a := srv[0]
	ws[0].Pause()
	if err := a.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "mallory"}, 0, "", "mod"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Chat.Lift(chat.KindBan, "lobby", chat.Target{Name: "mallory"}, "mod"); !ok || err != nil {
		t.Fatalf("lift: %v %v", ok, err)
	}
	for _, topic := range []string{"one", "two"} {
		if err := a.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: topic}, "mod"); err != nil {
			t.Fatal(err)
		}
	}
	alice := joinedJSON(t, a, "/chat/lobby?as=alice")
	mallory := a.Dial(t, "/chat/lobby?name=mallory", "")
	mallory.SkipUntil("* mallory joined")
	ws[0].Resume()
	synced(t, sh)
	mallory.Send("still here")
	var topics []string
	for {
		e := alice.ReadEvent()
		if strings.Contains(fmt.Sprint(e), "mallory left") {
			t.Fatalf("mallory was kicked by the ban lifted before: %v", e)
		}
		if e.Str("type") == "topic" {
			topics = append(topics, e.Str("topic"))
		}
		if e.Str("type") == "message" {
			if e.Str("text") != "still here" {
				t.Fatalf("alice got %v", e)
			}
			break
		}
	}
	if !slices.Equal(topics, []string{"two"}) {
		t.Errorf("alice was told the topics %q, want the one she joined with", topics)
	}
	for i, ts := range srv {
		if st := ts.Chat.RoomSettings("lobby"); st.Topic != "two" {
			t.Errorf("node %d holds %+v", i, st)
		}
		if rs := ts.Chat.Restrictions(""); len(rs) != 0 {
			t.Errorf("node %d holds %+v", i, rs)
		}
	}
}

// A ban's expiry fires every node's timer; each drops it, and the
// cluster's audit log has it once (by the node whose DeleteRestriction
// reported true).
func TestSharedExpiryAuditedOnce(t *testing.T) {
	clock := &chattest.Clock{}
	sh, srv, ws, _ := sharedPair(t, clock)
	a, b := srv[0], srv[1]
	if err := a.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "mallory"}, time.Minute, "", "mod"); err != nil {
		t.Fatal(err)
	}
	synced(t, sh)
	// B does not hear of A's sweep before its own timer fires: both
	// sweep it.
	ws[1].Pause()
	clock.Advance(time.Minute)
	ws[1].Resume()
	synced(t, sh)
	if rs, _ := sh.Restrictions(); len(rs) != 0 {
		t.Errorf("still stored: %+v", rs)
	}
	for i, ts := range srv {
		if got := sharedAudit(t, ts); !slices.Equal(got, []string{"ban by mod", "unban by server"}) {
			t.Errorf("node %d: audit %q", i, got)
		}
	}
	b.Dial(t, "/chat/lobby?name=mallory", "")
	inRoom(t, b, "lobby", "mallory")
}

// The name an account was given on A is its own on B: a guest on B asking
// for it gets the usual variant; a rename on A moves the ownership on B
// too.
func TestSharedNameOwner(t *testing.T) {
	sh, srv, _, hist := sharedPair(t, nil)
	a, b := srv[0], srv[1]
	joinedJSON(t, a, "/chat/lobby?as=u-ada&n=ada")
	synced(t, sh)
	if _, n := joinName(t, b, "/chat/lobby?name=ada"); n != "ada-2" {
		t.Errorf("a guest on B asking for ada's name got %q", n)
	}
	if n, err := a.Chat.Rename(sessionOf(t, a, "lobby", "ada"), "adele"); err != nil || n != "adele" {
		t.Fatalf("rename: %q %v", n, err)
	}
	synced(t, sh)
	if _, n := joinName(t, b, "/chat/other?name=ada"); n != "ada" {
		t.Errorf("ada's old name on B given as %q", n)
	}
	if _, n := joinName(t, b, "/chat/other?name=adele"); n != "adele-2" {
		t.Errorf("ada's new name on B given as %q", n)
	}
	if o, _ := hist[0].NameOwners(); len(o) != 0 {
		t.Errorf("A's History recorded %v", o)
	}
}

// An account's ignore list changed on A filters on B, for the account's
// connection there; unignored on B, A's list is empty too.
func TestSharedIgnore(t *testing.T) {
	sh, srv, _, _ := sharedPair(t, nil)
	a, b := srv[0], srv[1]
	joinedJSON(t, a, "/chat/lobby?as=u-ada&n=ada")
	adaB := joinedJSON(t, b, "/chat/lobby?as=u-ada&n=ada")
	bo := joinedJSON(t, b, "/chat/lobby?as=u-bo&n=bo")
	gus := joinedJSON(t, b, "/chat/lobby?name=gus")
	if err := a.Chat.Ignore(sessionOf(t, a, "lobby", "ada"), chat.IgnoreTarget{Account: "u-bo"}); err != nil {
		t.Fatal(err)
	}
	synced(t, sh)
	bo.SendJSON(map[string]string{"type": "message", "text": "hidden"})
	if e := nextMessage(t, gus); e.Str("text") != "hidden" {
		t.Fatalf("gus got %v", e)
	}
	gus.SendJSON(map[string]string{"type": "message", "text": "seen"})
	if e := nextMessage(t, adaB); e.Str("text") != "seen" {
		t.Errorf("ada on B got %v, want bo's message hidden", e)
	}
	if ok, err := b.Chat.Unignore(sessionOf(t, b, "lobby", "ada"), chat.IgnoreTarget{Account: "u-bo"}); !ok || err != nil {
		t.Fatalf("unignore on B: %v %v", ok, err)
	}
	synced(t, sh)
	if l, err := a.Chat.Ignored(sessionOf(t, a, "lobby", "ada")); len(l) != 0 || err != nil {
		t.Errorf("A's list %v %v", l, err)
	}
	if lists, _ := sh.IgnoreLists(); len(lists) != 0 {
		t.Errorf("stored %v", lists)
	}
}

// A change the SharedState cannot store is refused (fail closed) and in
// force nowhere: a ban, room settings, an ignore list, an account's new
// name; a SharedState that cannot be read fails New.
func TestSharedFailClosed(t *testing.T) {
	sh, srv, _, _ := sharedPair(t, nil)
	a := srv[0]
	joinedJSON(t, a, "/chat/lobby?as=u-ada&n=ada")
	ada := sessionOf(t, a, "lobby", "ada")
	synced(t, sh)
	before := sh.Changes()
	sh.Fail(chattest.ErrStore, nil)
	if err := a.Chat.Restrict(chat.KindBan, "lobby", chat.Target{Name: "bob"}, 0, "", "mod"); !errors.Is(err, chattest.ErrStore) {
		t.Errorf("restrict: %v", err)
	}
	if err := a.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: "x"}, "mod"); !errors.Is(err, chattest.ErrStore) {
		t.Errorf("settings: %v", err)
	}
	if err := a.Chat.Ignore(ada, chat.IgnoreTarget{Account: "u-bo"}); !errors.Is(err, chattest.ErrStore) {
		t.Errorf("ignore: %v", err)
	}
	if _, err := a.Chat.Rename(ada, "adele"); !errors.Is(err, chat.ErrNameNotRecorded) {
		t.Errorf("rename: %v", err)
	}
	for i, ts := range srv {
		if rs := ts.Chat.Restrictions(""); len(rs) != 0 {
			t.Errorf("node %d holds %+v", i, rs)
		}
		if st := ts.Chat.RoomSettings("lobby"); st != (chat.RoomSettings{}) {
			t.Errorf("node %d holds %+v", i, st)
		}
	}
	if l, _ := a.Chat.Ignored(ada); len(l) != 0 {
		t.Errorf("ignored %v", l)
	}
	if !slices.Equal(a.Names("lobby"), []string{"ada"}) {
		t.Errorf("names %v", a.Names("lobby"))
	}
	if n := sh.Changes(); n != before {
		t.Errorf("%d changes stored", n-before)
	}
	if got := metricLine(t, a, "moonchat_moderation_store_errors_total"); got != "moonchat_moderation_store_errors_total 3" {
		t.Errorf("metric %q", got)
	}
	sh.Fail(nil, chattest.ErrStore)
	if _, err := chat.New(chattest.Limits(chat.Config{Shared: sh, Logger: chattest.TestLogger(t)}), nil, chattest.NewHistory()); !errors.Is(err, chattest.ErrStore) {
		t.Errorf("New with an unreadable SharedState: %v", err)
	}
}

// A ban replaced on A (a new one on the same name) just before the old
// one expires is not removed by B's sweep of the old one, which B still
// held (its watcher behind): the shared state removes an expired
// restriction only while it is the stored one (chat.ExpiryDeleter).
func TestSharedExpiryOfReplaced(t *testing.T) {
	clock := &chattest.Clock{}
	sh, srv, ws, _ := sharedPair(t, clock)
	a, b := srv[0], srv[1]
	mallory := chat.Target{Name: "mallory"}
	if err := a.Chat.Restrict(chat.KindBan, "lobby", mallory, time.Minute, "", "mod"); err != nil {
		t.Fatal(err)
	}
	synced(t, sh)
	ws[1].Pause()
	clock.Advance(30 * time.Second)
	if err := a.Chat.Restrict(chat.KindBan, "lobby", mallory, time.Hour, "again", "mod"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second) // B's timer fires for the old one
	ws[1].Resume()
	synced(t, sh)
	if rs, _ := sh.Restrictions(); len(rs) != 1 || rs[0].Reason != "again" {
		t.Fatalf("stored %+v", rs)
	}
	for i, ts := range srv {
		if rs := ts.Chat.Restrictions("lobby"); len(rs) != 1 || rs[0].Reason != "again" {
			t.Errorf("node %d holds %+v", i, rs)
		}
	}
	if status, body := refusedDial(t, b, "", "/chat/lobby?name=mallory"); status != 403 || !strings.HasSuffix(body, ": again") {
		t.Errorf("handshake on B: %d %q", status, body)
	}
	if got := sharedAudit(t, a); !slices.Equal(got, []string{"ban by mod", "ban by mod"}) {
		t.Errorf("audit %q", got)
	}
}

// A change this node stored that another node's superseded before this
// node's watcher read it (the store keeps a key's newest revision only)
// never comes back: the newer change held back behind it is applied
// after a while, and this node's members are told.
func TestSharedOwnChangeSuperseded(t *testing.T) {
	clock := &chattest.Clock{}
	sh, srv, ws, _ := sharedPair(t, clock)
	a, b := srv[0], srv[1]
	alice := joinedJSON(t, a, "/chat/lobby?as=alice")
	ws[0].Pause()
	if err := a.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: "mine"}, "alice"); err != nil {
		t.Fatal(err)
	}
	synced := func() bool { return b.Chat.RoomSettings("lobby").Topic == "mine" }
	chattest.Eventually(t, "B holds A's topic", synced)
	if err := b.Chat.SetRoomSettings("lobby", chat.RoomSettings{Topic: "theirs"}, "bob"); err != nil {
		t.Fatal(err)
	}
	sh.Compact()
	ws[0].Resume()
	chattest.Eventually(t, "the watchers caught up", sh.Synced)
	if st := a.Chat.RoomSettings("lobby"); st.Topic != "mine" {
		t.Fatalf("A applied the change held back at once: %+v", st)
	}
	clock.Advance(2 * time.Second)
	if st := a.Chat.RoomSettings("lobby"); st.Topic != "theirs" || st.TopicBy != "bob" {
		t.Errorf("A holds %+v", st)
	}
	var told []string
	for len(told) < 2 {
		if e := nextOf(t, alice, "system"); strings.Contains(e.Str("text"), "topic") {
			told = append(told, e.Str("text"))
		}
	}
	if want := []string{"alice set the topic: mine", "bob set the topic: theirs"}; !slices.Equal(told, want) {
		t.Errorf("alice was told %q, want %q", told, want)
	}
}
