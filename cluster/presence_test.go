package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Short liveness for tests: a node is counted dead 600ms after its last
// heartbeat.
var testPresence = PresenceConfig{Heartbeat: 100 * time.Millisecond, DeadAfter: 600 * time.Millisecond}

func openPresence(t testing.TB, l *Log, cfg PresenceConfig) *Presence {
	t.Helper()
	p, err := l.OpenPresence(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func entry(session uint64, name string, keys ...string) chat.PresenceEntry {
	return chat.PresenceEntry{Session: session, Name: name, Keys: keys, Joined: time.Now()}
}

// TestClaimAcrossNodes: a name key held on one node is taken for every
// other member of the room on any node (a look-alike shares a key), not
// in another room; the same session claims again freely; a rename
// releases the keys it no longer uses; a release frees them all.
func TestClaimAcrossNodes(t *testing.T) {
	ns := startNATS(t, nil)
	a := openPresence(t, openNode(t, ns.url(), "a"), PresenceConfig{})
	b := openPresence(t, openNode(t, ns.url(), "b"), PresenceConfig{})
	ctx := context.Background()
	if err := a.Claim(ctx, "lobby", entry(1, "Bob", "bob")); err != nil {
		t.Fatal(err)
	}
	// "B0b" looks like "Bob": the chat server gives it the key "bob" too.
	if err := b.Claim(ctx, "lobby", entry(1, "B0b", "b0b", "bob")); !errors.Is(err, chat.ErrNameTaken) {
		t.Fatalf("look-alike claim on another node = %v, want ErrNameTaken", err)
	}
	if err := a.Claim(ctx, "lobby", entry(2, "bob", "bob")); !errors.Is(err, chat.ErrNameTaken) {
		t.Fatalf("claim of another session on the same node = %v, want ErrNameTaken", err)
	}
	// The failed claim gave back the key it had taken ("b0b").
	if err := a.Claim(ctx, "lobby", entry(3, "b0b2", "b0b")); err != nil {
		t.Fatalf("key of a failed claim was not given back: %v", err)
	}
	if err := b.Claim(ctx, "other", entry(1, "Bob", "bob")); err != nil {
		t.Fatalf("same name in another room: %v", err)
	}
	if err := a.Claim(ctx, "lobby", entry(1, "Bob", "bob")); err != nil {
		t.Fatalf("same session claiming again: %v", err)
	}
	// Rename: session 1 becomes Alice; "bob" is free, "alice" is not.
	if err := a.Claim(ctx, "lobby", entry(1, "Alice", "alice")); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, "lobby", entry(5, "Bob", "bob")); err != nil {
		t.Fatalf("old name after a rename: %v", err)
	}
	if err := b.Claim(ctx, "lobby", entry(6, "ALICE", "alice")); !errors.Is(err, chat.ErrNameTaken) {
		t.Fatalf("new name after a rename = %v, want ErrNameTaken", err)
	}
	if err := a.Release(ctx, "lobby", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, "lobby", entry(6, "ALICE", "alice")); err != nil {
		t.Fatalf("name after its release: %v", err)
	}
	if err := a.Release(ctx, "lobby", 99); err != nil {
		t.Fatalf("release of a session never claimed: %v", err)
	}
}

// TestClaimRace: members on two nodes claiming the same name at once:
// exactly one gets it.
func TestClaimRace(t *testing.T) {
	ns := startNATS(t, nil)
	ps := []*Presence{
		openPresence(t, openNode(t, ns.url(), "a"), PresenceConfig{}),
		openPresence(t, openNode(t, ns.url(), "b"), PresenceConfig{}),
	}
	for round := range 10 {
		room := strings.Repeat("r", round+1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 6 {
			wg.Go(func() {
				err := ps[i%2].Claim(context.Background(), room, entry(uint64(i+1), "x", "x"))
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.Is(err, chat.ErrNameTaken):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d claims won, want 1", round, won)
		}
	}
}

// TestPresenceWatch: the other node's joins, renames and leaves reach
// the applier, members that were there before the watch first; its own
// never do.
func TestPresenceWatch(t *testing.T) {
	ns := startNATS(t, nil)
	a := openPresence(t, openNode(t, ns.url(), "a"), PresenceConfig{})
	b := openPresence(t, openNode(t, ns.url(), "b"), PresenceConfig{})
	ctx := context.Background()
	e := entry(1, "Bob", "bob")
	e.Account, e.Roles = "acct1", []string{"mod"}
	if err := a.Claim(ctx, "lobby", e); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	rec.expect(t, false, "joined lobby a/1 Bob [bob] acct=acct1")
	if err := b.Claim(ctx, "lobby", entry(7, "Own", "own")); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "lobby", entry(1, "Robert", "robert")); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "room two", entry(2, "Carol", "carol")); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "lobby", 1); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, false,
		"joined lobby a/1 Robert [robert] acct=",
		"joined room two a/2 Carol [carol] acct=",
		"left lobby a/1",
	)
}

// TestDeadNode: a node that stops renewing its heartbeat (its process
// gone, here its Run stopped) is purged by a survivor: its members leave
// the other nodes' rosters and their names are free again.
func TestDeadNode(t *testing.T) {
	ns := startNATS(t, nil)
	la := openNode(t, ns.url(), "a")
	a := openPresence(t, la, testPresence)
	b := openPresence(t, openNode(t, ns.url(), "b"), testPresence)
	ctx := context.Background()
	stopA := run(t, a.Run)
	run(t, b.Run)
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	for i, name := range []string{"x", "y", "z"} {
		if err := a.Claim(ctx, "lobby", entry(uint64(i+1), name, name)); err != nil {
			t.Fatal(err)
		}
	}
	rec.expect(t, false, "joined lobby a/1 x [x] acct=", "joined lobby a/2 y [y] acct=", "joined lobby a/3 z [z] acct=")
	if err := b.Claim(ctx, "lobby", entry(9, "x", "x")); !errors.Is(err, chat.ErrNameTaken) {
		t.Fatalf("claim of a live node's name = %v", err)
	}
	stopA()
	la.Close() // as a process gone: no more heartbeats, nothing released
	got := map[string]bool{}
	for len(got) < 3 {
		select {
		case s := <-rec.ch:
			if !strings.HasPrefix(s, "left ") {
				t.Fatalf("got %q, want the dead node's members leaving", s)
			}
			got[s] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("dead node's members not purged: %v", got)
		}
	}
	for _, s := range []string{"left lobby a/1", "left lobby a/2", "left lobby a/3"} {
		if !got[s] {
			t.Fatalf("missing %q in %v", s, got)
		}
	}
	if err := b.Claim(ctx, "lobby", entry(9, "x", "x")); err != nil {
		t.Fatalf("name of a purged member: %v", err)
	}
	// b, the one survivor, purged a and its 3 members; its one claim of
	// a held name was refused.
	waitFor(t, "the purge counted", func() bool { return b.Stats().NodesPurged == 1 })
	if st := b.Stats(); st.MembersPurged != 3 || st.ClaimsTaken != 1 || st.ClaimsUnavailable != 0 {
		t.Fatalf("b's stats = %+v, want 3 members purged, 1 claim taken", st)
	}
}

// TestNodeRestart: a process started again under the same node name
// (the earlier one gone without a word) takes the node's heartbeat once
// the earlier one stopped renewing it, and removes what it left in the
// roster before it serves; its names are free.
func TestNodeRestart(t *testing.T) {
	ns := startNATS(t, nil)
	la := openNode(t, ns.url(), "a")
	a := openPresence(t, la, testPresence)
	b := openPresence(t, openNode(t, ns.url(), "b"), testPresence)
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	ctx := context.Background()
	if err := a.Claim(ctx, "lobby", entry(1, "x", "x")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, false, "joined lobby a/1 x [x] acct=")
	la.Close()
	a2 := openPresence(t, openNode(t, ns.url(), "a"), testPresence)
	rec.expect(t, false, "left lobby a/1")
	if err := a2.Claim(ctx, "lobby", entry(1, "x", "x")); err != nil {
		t.Fatalf("claim on the restarted node: %v", err)
	}
	rec.expect(t, false, "joined lobby a/1 x [x] acct=")
}

// TestNodeInUse: a second live process with the same node name refuses
// to start.
func TestNodeInUse(t *testing.T) {
	ns := startNATS(t, nil)
	a := openPresence(t, openNode(t, ns.url(), "a"), testPresence)
	run(t, a.Run)
	_, err := openNode(t, ns.url(), "a").OpenPresence(context.Background(), testPresence)
	if !errors.Is(err, ErrNodeInUse) {
		t.Fatalf("second process with the node's name: %v, want ErrNodeInUse", err)
	}
}

// TestClaimUnavailable: with NATS unreachable, Claim fails closed with
// chat.ErrUnavailable; a Release that failed is done once NATS is back.
func TestClaimUnavailable(t *testing.T) {
	ns := startNATS(t, nil)
	la := openNode(t, ns.url(), "a")
	a := openPresence(t, la, testPresence)
	b := openPresence(t, openNode(t, ns.url(), "b"), PresenceConfig{})
	ctx := context.Background()
	if err := a.Claim(ctx, "lobby", entry(1, "x", "x")); err != nil {
		t.Fatal(err)
	}
	run(t, a.Run)
	ns.stop()
	waitFor(t, "the connection lost", func() bool { return !la.Connected() })
	if err := a.Claim(ctx, "lobby", entry(2, "y", "y")); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Claim with NATS down = %v, want chat.ErrUnavailable", err)
	}
	if err := a.Release(ctx, "lobby", 1); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Release with NATS down = %v, want chat.ErrUnavailable", err)
	}
	if a.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1", a.Pending())
	}
	if st := a.Stats(); st.Pending != 1 || st.ClaimsUnavailable != 1 || st.ClaimsTaken != 0 {
		t.Fatalf("stats with NATS down = %+v, want 1 pending, 1 claim refused unavailable", st)
	}
	ns.start()
	waitFor(t, "the release done", func() bool { return a.Pending() == 0 })
	if st := a.Stats(); st.Pending != 0 {
		t.Fatalf("stats after the release = %+v, want none pending", st)
	}
	retry(t, func() error { return b.Claim(ctx, "lobby", entry(5, "x", "x")) })
}

// waitFor waits until cond holds, for a bounded time.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKick: a kick sent to another node runs its kick function and
// returns its answer (chat.ErrNoSuchUser recognisable, other errors as
// their text); a node that serves no kicks is ErrNoSuchNode.
func TestKick(t *testing.T) {
	ns := startNATS(t, nil)
	a := openPresence(t, openNode(t, ns.url(), "a"), PresenceConfig{})
	b := openPresence(t, openNode(t, ns.url(), "b"), PresenceConfig{})
	kicked := make(chan string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := b.ServeKicks(ctx, func(session uint64, reason, by string) error {
		switch session {
		case 404:
			return errors.New("no such session")
		case 405:
			return fmt.Errorf("kick: %w", chat.ErrNoSuchUser) // the member left meanwhile
		}
		kicked <- reason + "/" + by
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Kick(context.Background(), "b", 3, "spam", "mod"); err != nil {
		t.Fatal(err)
	}
	if got := <-kicked; got != "spam/mod" {
		t.Fatalf("kicked with %q", got)
	}
	if err := a.Kick(context.Background(), "b", 404, "", ""); err == nil || !strings.Contains(err.Error(), "no such session") || errors.Is(err, chat.ErrNoSuchUser) {
		t.Fatalf("kick failing remotely = %v, want its text", err)
	}
	// The member left: errors.Is works across the nodes (the admin API
	// answers 404).
	if err := a.Kick(context.Background(), "b", 405, "", ""); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Fatalf("kick of a member that left = %v, want chat.ErrNoSuchUser", err)
	}
	if err := a.Kick(context.Background(), "nobody", 1, "", ""); !errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("kick on an unknown node = %v, want ErrNoSuchNode", err)
	}
}

// TestCountedDeadReturns: a node counted dead while it lives (here its
// Run paused; in life, cut off from NATS longer than DeadAfter) is
// purged; when it renews again it claims its members back under a new
// incarnation, and a member whose name another node took meanwhile is
// reported lost (OnLost), not claimed.
func TestCountedDeadReturns(t *testing.T) {
	ns := startNATS(t, nil)
	lost := make(chan string, 4)
	cfg := testPresence
	cfg.OnLost = func(room string, session uint64) { lost <- room + "/" + strings.Repeat("I", int(session)) }
	a := openPresence(t, openNode(t, ns.url(), "a"), cfg)
	b := openPresence(t, openNode(t, ns.url(), "b"), testPresence)
	run(t, b.Run)
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	ctx := context.Background()
	if err := a.Claim(ctx, "lobby", entry(1, "x", "x")); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "lobby", entry(2, "y", "y")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, false, "joined lobby a/1 x [x] acct=", "joined lobby a/2 y [y] acct=")
	// a never ran: b counts it dead after DeadAfter and purges it.
	left := map[string]bool{}
	for len(left) < 2 {
		select {
		case s := <-rec.ch:
			left[s] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("not purged: %v", left)
		}
	}
	if !left["left lobby a/1"] || !left["left lobby a/2"] {
		t.Fatalf("purge told %v", left)
	}
	if err := b.Claim(ctx, "lobby", entry(9, "y", "y")); err != nil {
		t.Fatalf("a purged member's name: %v", err)
	}
	run(t, a.Run)
	rec.expect(t, false, "joined lobby a/1 x [x] acct=")
	select {
	case s := <-lost:
		if s != "lobby/II" {
			t.Fatalf("lost %q, want lobby/II", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the member whose name was taken was not reported lost")
	}
	if st := a.Stats(); st.MembersLost != 1 {
		t.Fatalf("a's stats = %+v, want 1 member lost", st)
	}
	if st := b.Stats(); st.NodesPurged != 1 || st.MembersPurged != 2 {
		t.Fatalf("b's stats = %+v, want 1 node and its 2 members purged", st)
	}
	if err := b.Claim(ctx, "lobby", entry(8, "x", "x")); !errors.Is(err, chat.ErrNameTaken) {
		t.Fatalf("name of a reclaimed member = %v, want ErrNameTaken", err)
	}
}

// TestPresenceClose: a node shutting down cleanly takes its members out
// of the roster at once (the other node's watch sees them leave, their
// names are free) and frees its node name for its next process.
func TestPresenceClose(t *testing.T) {
	ns := startNATS(t, nil)
	// DeadAfter long: what happens here is Close's doing, not a purge.
	cfg := PresenceConfig{Heartbeat: time.Second, DeadAfter: time.Hour}
	a := openPresence(t, openNode(t, ns.url(), "a"), cfg)
	b := openPresence(t, openNode(t, ns.url(), "b"), cfg)
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	ctx := context.Background()
	stop := run(t, a.Run)
	for i, name := range []string{"x", "y"} {
		if err := a.Claim(ctx, "lobby", entry(uint64(i+1), name, name)); err != nil {
			t.Fatal(err)
		}
	}
	rec.expect(t, false, "joined lobby a/1 x [x] acct=", "joined lobby a/2 y [y] acct=")
	stop()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-rec.ch:
			got[s] = true
		case <-time.After(15 * time.Second):
			t.Fatalf("members not removed: %v", got)
		}
	}
	if !got["left lobby a/1"] || !got["left lobby a/2"] {
		t.Fatalf("told %v", got)
	}
	if err := b.Claim(ctx, "lobby", entry(9, "x", "x")); err != nil {
		t.Fatalf("name of a member of a closed node: %v", err)
	}
	// The next process of node a starts at once: the heartbeat is gone.
	openPresence(t, openNode(t, ns.url(), "a"), cfg)
}
