package chat

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// sweepRecorder stands in for the engine behind a sweeper: it records
// which passes each member got in each write.
type sweepRecorder struct {
	mu     sync.Mutex
	writes []string            // "member:A+B" per write, in order
	got    map[uint64][]string // member id → pass names received, in order
	names  map[*ws.Prepared]string
	// hook runs (without mu) before the n-th write (1-based).
	hook map[int]func()
	slow map[uint64]bool // members reported as slow consumers
}

func newSweepRecorder() *sweepRecorder {
	return &sweepRecorder{got: map[uint64][]string{}, names: map[*ws.Prepared]string{}, hook: map[int]func(){}, slow: map[uint64]bool{}}
}

func (rec *sweepRecorder) prepared(name string) *ws.Prepared {
	p := ws.NewPrepared(ws.OpText, []byte(name))
	rec.mu.Lock()
	rec.names[p] = name
	rec.mu.Unlock()
	return p
}

func (rec *sweepRecorder) write(m *member, ps []*ws.Prepared) bool {
	rec.mu.Lock()
	hook := rec.hook[len(rec.writes)+1]
	rec.mu.Unlock()
	if hook != nil {
		hook()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var names []string
	for _, p := range ps {
		names = append(names, rec.names[p])
	}
	rec.writes = append(rec.writes, fmt.Sprintf("%d:%s", m.id, strings.Join(names, "+")))
	rec.got[m.id] = append(rec.got[m.id], names...)
	return rec.slow[m.id]
}

// newTestPass is a pass for one sweeper with the named encodings ("" =
// none for that format).
func newTestPass(rec *sweepRecorder, plain, json string) *pass {
	p := &pass{}
	if plain != "" {
		p.plain = rec.prepared(plain)
	}
	if json != "" {
		p.json = rec.prepared(json)
	}
	p.sweepers.Store(1)
	return p
}

func sweepMembers(n int) []*member {
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = &member{id: uint64(i)}
	}
	return ms
}

// startSweeper starts a sweeper writing to rec, with members added.
func startSweeper(t *testing.T, rec *sweepRecorder, members ...*member) (*sweeper, chan *pass) {
	t.Helper()
	done := make(chan *pass, maxPassesInFlight)
	sw := &sweeper{done: done, write: rec.write, wake: make(chan struct{}, 1)}
	for _, m := range members {
		sw.give(sweepCmd{m: m})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go sw.run(&wg)
	t.Cleanup(func() {
		sw.stop()
		wg.Wait()
	})
	return sw, done
}

func waitPass(t *testing.T, done chan *pass) *pass {
	t.Helper()
	select {
	case p := <-done:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("a pass did not complete")
		return nil
	}
}

// TestSweeperJoinsPassInProgress: a pass that arrives while the sweeper is
// part-way round goes out together with the one in progress from that
// member on, then to the members already passed; every member gets both,
// once each, in order, and the older pass completes first.
func TestSweeperJoinsPassInProgress(t *testing.T) {
	rec := newSweepRecorder()
	members := sweepMembers(6)
	sw, done := startSweeper(t, rec, members...)
	a, b := newTestPass(rec, "A", ""), newTestPass(rec, "B", "")
	// B is handed over during the write to member 2: the sweeper picks it
	// up at member 3.
	rec.hook[3] = func() { sw.give(sweepCmd{p: b}) }
	sw.give(sweepCmd{p: a})
	if got := waitPass(t, done); got != a {
		t.Fatal("B completed before A")
	}
	if got := waitPass(t, done); got != b {
		t.Fatal("second completion is not B")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{"0:A", "1:A", "2:A", "3:A+B", "4:A+B", "5:A+B", "0:B", "1:B", "2:B"}
	if !slices.Equal(rec.writes, want) {
		t.Fatalf("writes %v, want %v", rec.writes, want)
	}
	for _, m := range members {
		if got := rec.got[m.id]; !slices.Equal(got, []string{"A", "B"}) {
			t.Fatalf("member %d got %v, want [A B]", m.id, got)
		}
	}
}

// TestSweeperFormatsAndEviction: a share with plain and JSON members gets
// each format's encoding (a pass without one skips those members), and a
// member the engine reports as a slow consumer comes back with the pass.
func TestSweeperFormatsAndEviction(t *testing.T) {
	rec := newSweepRecorder()
	ms := sweepMembers(4)
	ms[2].format, ms[3].format = formatJSON, formatJSON
	sw, done := startSweeper(t, rec, ms...)
	rec.slow[3] = true
	sw.give(sweepCmd{p: newTestPass(rec, "P", "J")})
	got := waitPass(t, done)
	if len(got.evict) != 1 || got.evict[0] != ms[3] {
		t.Fatalf("evict %v, want member 3", got.evict)
	}
	sw.give(sweepCmd{p: newTestPass(rec, "", "R")})
	waitPass(t, done)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for id, want := range map[uint64][]string{0: {"P"}, 1: {"P"}, 2: {"J", "R"}, 3: {"J", "R"}} {
		if g := rec.got[id]; !slices.Equal(g, want) {
			t.Fatalf("member %d got %v, want %v", id, g, want)
		}
	}
}

// TestSweeperManyPassesBehind: passes handed over faster than they are
// written are written together (fewer writes than passes × members) and
// every member still gets every pass once, in order.
func TestSweeperManyPassesBehind(t *testing.T) {
	rec := newSweepRecorder()
	members := sweepMembers(10)
	sw, done := startSweeper(t, rec, members...)
	const passes = 12
	gate := make(chan struct{})
	rec.hook[1] = func() { <-gate } // hold the first write until all are queued
	var want []string
	for i := range passes {
		name := fmt.Sprintf("p%d", i)
		want = append(want, name)
		sw.give(sweepCmd{p: newTestPass(rec, name, "")})
	}
	close(gate)
	for range passes {
		waitPass(t, done)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, m := range members {
		if g := rec.got[m.id]; !slices.Equal(g, want) {
			t.Fatalf("member %d got %v, want %v", m.id, g, want)
		}
	}
	if n := len(rec.writes); n >= passes*len(members) {
		t.Fatalf("%d writes for %d passes to %d members: the queued passes were not written together", n, passes, len(members))
	}
}

// TestSweeperMembershipBetweenPasses: a member added while a pass is in
// progress gets only the passes given after it (the earlier ones are in
// its replay), a member removed gets the passes given before it, and the
// others get everything in order.
func TestSweeperMembershipBetweenPasses(t *testing.T) {
	rec := newSweepRecorder()
	ms := sweepMembers(5)
	old, leaver, newcomer := ms[:3], ms[3], ms[4]
	sw, done := startSweeper(t, rec, append(old, leaver)...)
	// While A is being written: B, then the leaver goes and the newcomer
	// comes, then C.
	rec.hook[2] = func() {
		sw.give(sweepCmd{p: newTestPass(rec, "B", "")})
		sw.give(sweepCmd{m: leaver, remove: true})
		sw.give(sweepCmd{m: newcomer})
		sw.give(sweepCmd{p: newTestPass(rec, "C", "")})
	}
	sw.give(sweepCmd{p: newTestPass(rec, "A", "")})
	for range 3 {
		waitPass(t, done)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, m := range old {
		if g := rec.got[m.id]; !slices.Equal(g, []string{"A", "B", "C"}) {
			t.Errorf("member %d got %v, want [A B C]", m.id, g)
		}
	}
	if g := rec.got[leaver.id]; !slices.Equal(g, []string{"A", "B"}) {
		t.Errorf("leaver got %v, want [A B]", g)
	}
	if g := rec.got[newcomer.id]; !slices.Equal(g, []string{"C"}) {
		t.Errorf("newcomer got %v, want [C]", g)
	}
}
