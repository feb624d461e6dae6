package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

func openState(t testing.TB, l *Log) *State {
	t.Helper()
	s, err := l.OpenState(context.Background(), StateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStateAcrossNodes: what one node stores reaches the other node's
// applier, values stored before its watch began first, then each change
// in order; the loaders read it all back.
func TestStateAcrossNodes(t *testing.T) {
	ns := startNATS(t, nil)
	a := openState(t, openNode(t, ns.url(), "a"))
	b := openState(t, openNode(t, ns.url(), "b"))
	now := time.Now().UTC().Truncate(time.Millisecond)
	ban := chat.Restriction{Kind: chat.KindBan, Room: "lobby", Target: chat.Target{Account: "acct1"}, Created: now, By: "mod"}
	if err := a.PutRestriction(ban); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	rec.expect(t, false, `stored ban "lobby" a=acct1 n= i= by=mod`)

	mute := chat.Restriction{Kind: chat.KindMute, Room: "", Target: chat.Target{Addr: "203.0.113.0/24"}, Created: now, By: "admin"}
	steps := []func() error{
		func() error { return a.PutRestriction(mute) },
		func() error { return a.PutRoomSettings("a.b c", chat.RoomSettings{Topic: "hello", Slow: time.Second}) },
		func() error { return a.SetNameOwner("acct1", "Bob") },
		func() error { return a.SetIgnoreList("acct1", []string{"acct2", "acct3"}) },
		func() error {
			_, err := a.DeleteRestriction(chat.KindBan, "lobby", chat.Target{Account: "acct1"})
			return err
		},
		func() error { return a.PutRoomSettings("a.b c", chat.RoomSettings{}) },
		func() error { return a.SetIgnoreList("acct1", nil) },
		func() error { return a.SetNameOwner("acct1", "Robert") },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	rec.expect(t, false,
		`stored mute "" a= n= i=203.0.113.0/24 by=admin`,
		`settings "a.b c" topic="hello" slow=1s`,
		`owner acct1=Bob`,
		`ignore acct1=[acct2,acct3]`,
		`removed ban "lobby" a=acct1 n= i=`,
		`settings "a.b c" topic="" slow=0s`,
		`ignore acct1=[]`,
		`owner acct1=Robert`,
	)

	rs, err := b.Restrictions()
	if err != nil || len(rs) != 1 || rs[0].Kind != chat.KindMute || rs[0].Target.Addr != "203.0.113.0/24" || !rs[0].Created.Equal(now) {
		t.Fatalf("Restrictions = %+v, %v", rs, err)
	}
	if err := a.PutRoomSettings("x", chat.RoomSettings{Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	settings, err := b.RoomSettings()
	if err != nil || len(settings) != 1 || settings["x"].Topic != "t" {
		t.Fatalf("RoomSettings = %v, %v", settings, err)
	}
	owners, err := b.NameOwners()
	if err != nil || len(owners) != 1 || owners["acct1"] != "Robert" {
		t.Fatalf("NameOwners = %v, %v", owners, err)
	}
	if err := a.SetIgnoreList("z", []string{"q"}); err != nil {
		t.Fatal(err)
	}
	lists, err := b.IgnoreLists()
	if err != nil || len(lists) != 1 || !slices.Equal(lists["z"], []string{"q"}) {
		t.Fatalf("IgnoreLists = %v, %v", lists, err)
	}
}

// TestDeleteRestrictionOnce: nodes deleting the same restriction at once
// (its expiry on every node): exactly one is told there was one.
func TestDeleteRestrictionOnce(t *testing.T) {
	ns := startNATS(t, nil)
	states := []*State{openState(t, openNode(t, ns.url(), "a")), openState(t, openNode(t, ns.url(), "b"))}
	tg := chat.Target{Name: "spammer"}
	for round := range 10 {
		if err := states[0].PutRestriction(chat.Restriction{Kind: chat.KindMute, Room: "r", Target: tg, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		trues := 0
		for i := range 8 {
			wg.Go(func() {
				ok, err := states[i%2].DeleteRestriction(chat.KindMute, "r", tg)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					trues++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if trues != 1 {
			t.Fatalf("round %d: %d deleters were told there was a restriction, want 1", round, trues)
		}
	}
}

// TestStateWatchSurvivesRestart: the NATS server restarts (same store);
// the watch resumes and hands over the changes made after it, none lost.
func TestStateWatchSurvivesRestart(t *testing.T) {
	ns := startNATS(t, nil)
	a := openState(t, openNode(t, ns.url(), "a"))
	b := openState(t, openNode(t, ns.url(), "b"))
	rec := newRecorder()
	run(t, func(ctx context.Context) error { return b.Watch(ctx, rec) })
	if err := a.SetNameOwner("u1", "one"); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, false, "owner u1=one")
	ns.stop()
	if err := a.SetNameOwner("u2", "two"); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("SetNameOwner with NATS down = %v, want chat.ErrUnavailable", err)
	}
	ns.start()
	for i := range 3 {
		retry(t, func() error { return a.SetNameOwner(fmt.Sprint("v", i), fmt.Sprint("n", i)) })
	}
	// The resumed watch may repeat the change it saw last, never skip one.
	rec.expect(t, true, "owner v0=n0", "owner v1=n1", "owner v2=n2")
}

// retry calls f until it succeeds, while it fails as unavailable (NATS
// reconnecting, JetStream loading its streams), for a bounded time.
func retry(t testing.TB, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if !errors.Is(err, chat.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after a restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAudit: entries of several rooms, read back per room and for all,
// since a time, the newest n, oldest first.
func TestAudit(t *testing.T) {
	ns := startNATS(t, nil)
	a := openState(t, openNode(t, ns.url(), "a"))
	b := openState(t, openNode(t, ns.url(), "b"))
	base := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 10 {
		room := "r1"
		if i%2 == 1 {
			room = "r2"
		}
		if i == 9 {
			room = ""
		}
		e := chat.AuditEntry{Time: base.Add(time.Duration(i) * time.Millisecond), Room: room, By: "mod", Action: "kick", Target: fmt.Sprint("t", i)}
		if err := a.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	targets := func(es []chat.AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Target)
		}
		return out
	}
	for _, c := range []struct {
		room  string
		since time.Time
		n     int
		want  []string
	}{
		{"r1", time.Time{}, 100, []string{"t0", "t2", "t4", "t6", "t8"}},
		{"r1", time.Time{}, 2, []string{"t6", "t8"}},
		{"r2", base.Add(4 * time.Millisecond), 100, []string{"t5", "t7"}},
		{"", time.Time{}, 3, []string{"t7", "t8", "t9"}},
		{"", base.Add(8 * time.Millisecond), 100, []string{"t8", "t9"}},
		{"none", time.Time{}, 10, nil},
	} {
		got, err := b.Audit(c.room, c.since, c.n)
		if err != nil || !slices.Equal(targets(got), c.want) {
			t.Errorf("Audit(%q, %v, %d) = %v, %v; want %v", c.room, c.since, c.n, targets(got), err, c.want)
		}
	}
}

// TestDeleteExpiredKeepsReplacement: node A's ban expires while node B
// has just replaced it with a new ban of the same kind, room and target
// (A's watcher has not handed the new one in yet): A's sweep leaves B's
// ban in place and is told false. Then both nodes sweep B's ban when it
// expires, several goroutines each, with Created as the chat server holds
// it (nanoseconds) and as read back (milliseconds): exactly one is told
// true, and the key is gone.
func TestDeleteExpiredKeepsReplacement(t *testing.T) {
	ns := startNATS(t, nil)
	a := openState(t, openNode(t, ns.url(), "a"))
	b := openState(t, openNode(t, ns.url(), "b"))
	tg := chat.Target{Name: "troll"}
	created := time.Date(2026, 12, 3, 7, 0, 0, 123456789, time.UTC)
	old := chat.Restriction{Kind: chat.KindBan, Room: "lobby", Target: tg, Created: created, Expires: created.Add(time.Minute), By: "mod-a"}
	if err := a.PutRestriction(old); err != nil {
		t.Fatal(err)
	}
	repl := old
	repl.Created = created.Add(30 * time.Second)
	repl.Expires = repl.Created.Add(time.Hour)
	repl.By = "mod-b"
	if err := b.PutRestriction(repl); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.DeleteExpired(old); ok || err != nil {
		t.Fatalf("DeleteExpired of the replaced ban = %v, %v; want false, nil", ok, err)
	}
	rs, err := a.Restrictions()
	if err != nil || len(rs) != 1 || rs[0].By != "mod-b" || !rs[0].Created.Equal(repl.Created) {
		t.Fatalf("after the stale sweep: %+v, %v; want B's ban", rs, err)
	}
	if got := a.Stats().ExpiriesKept; got != 1 {
		t.Fatalf("ExpiriesKept = %d, want 1", got)
	}
	// Gone: false, no error.
	if ok, err := a.DeleteExpired(chat.Restriction{Kind: chat.KindMute, Room: "lobby", Target: tg, Created: created}); ok || err != nil {
		t.Fatalf("DeleteExpired of a missing key = %v, %v", ok, err)
	}

	states := []*State{a, b}
	var wg sync.WaitGroup
	var mu sync.Mutex
	trues := 0
	for i := range 8 {
		wg.Go(func() {
			r := repl
			if i%2 == 1 {
				r.Created = r.Created.Truncate(time.Millisecond) // as a store gives it back
			}
			ok, err := states[i%2].DeleteExpired(r)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				trues++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if trues != 1 {
		t.Fatalf("%d sweepers were told they removed the expired ban, want 1", trues)
	}
	if rs, err := b.Restrictions(); err != nil || len(rs) != 0 {
		t.Fatalf("after the sweep: %+v, %v; want none", rs, err)
	}
}
