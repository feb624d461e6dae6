package cluster

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestExpiredRoomFreshNode: a room idle for longer than MaxAge (gone
// from the stream) whose next message is posted on a node with an empty
// store (Floor 0: added after the room expired) goes on above every id
// the room ever had, so the nodes that hold them do not stop at it
// (store.ErrDiverged); the node that published them was closed at once
// after its acknowledgement (as if killed: nothing of it runs later).
// Ids crossing a reservation block in one batch raise the bound past
// them, and nodes publishing to one room at once keep it above
// everything published.
func TestExpiredRoomFreshNode(t *testing.T) {
	ns := startNATS(t, nil)
	cfg := testConfig(ns.url())
	cfg.MaxAge = 2 * time.Second
	a := openLog(t, cfg)
	ctx := context.Background()
	ms := msgs("a", "m", 3)
	if err := a.Publish(ctx, "idle", ms); err != nil {
		t.Fatal(err)
	}
	big := msgs("a", "big", idBlock+500) // ids 1..1500: the bound must pass them
	if err := a.Publish(ctx, "busy", big); err != nil {
		t.Fatal(err)
	}
	// Two nodes at once on a third room.
	b := openLog(t, cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var top uint64
	for _, l := range []*Log{a, b} {
		wg.Go(func() {
			for range 30 {
				ms := msgs("x", "c", 40)
				if err := l.Publish(ctx, "contended", ms); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				top = max(top, ms[len(ms)-1].ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if top != 2400 {
		t.Fatalf("contended room's last id = %d, want 2400", top)
	}
	if st := a.Stats(); st.Reservations < 3 {
		t.Fatalf("node a wrote %d reservations, want at least 3 (idle, busy twice)", st.Reservations)
	}
	a.Close()
	b.Close()

	fresh := openLog(t, cfg) // Floor nil: an empty store
	for key, above := range map[string]uint64{"idle": 3, "busy": idBlock + 500, "contended": top} {
		id := waitExpired(t, fresh, key)
		if id < above {
			t.Fatalf("%s: Last after expiry on a fresh node = %d, below the room's last id %d", key, id, above)
		}
		ms := msgs("f", "next", 1)
		if err := fresh.Publish(ctx, key, ms); err != nil {
			t.Fatal(err)
		}
		if ms[0].ID != id+1 || ms[0].ID <= above {
			t.Fatalf("%s: next id on a fresh node = %d, want %d (above %d)", key, ms[0].ID, id+1, above)
		}
	}
}

// TestReserveRace: nodes raising one room's bound at once, from no key
// (Create races) and from stale revisions (Update races): the bound
// ends at or above every id any of them reserved, and each reservation
// was acknowledged at or above its id when reserve returned.
func TestReserveRace(t *testing.T) {
	ns := startNATS(t, nil)
	ls := []*Log{openLog(t, testConfig(ns.url())), openLog(t, testConfig(ns.url()))}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			l := ls[i%2]
			for j := range 5 {
				last := uint64(1 + (i*5+j)*337%9000)
				if err := l.reserve(ctx, "lobby", last); err != nil {
					t.Error(err)
					return
				}
				// Read by the other node: the bucket holds it already.
				r, err := ls[(i+1)%2].readReservation(ctx, "lobby")
				if err != nil || r.upTo < last {
					t.Errorf("after reserving %d: bound %d, %v", last, r.upTo, err)
				}
			}
		})
	}
	wg.Wait()
	var top uint64
	for i := range 16 {
		for j := range 5 {
			top = max(top, uint64(1+(i*5+j)*337%9000))
		}
	}
	r, err := ls[0].readReservation(ctx, "lobby")
	if err != nil || r.upTo < top || r.upTo >= top+idBlock+idBlock {
		t.Fatalf("bound %d, %v; want at least %d", r.upTo, err, top)
	}
}

// TestFirstPublishersRace: a new room's first publishers race — one has
// reserved its block (written ahead) but not sent its record when another
// publishes: the room starts at id 1 all the same, not after the block
// (the reservation's previous bound counts while the stream still holds
// everything published since it was written), and the first publisher's
// record follows. (Seen in TestClusterNodeKill: a room whose history
// started at 1001.)
func TestFirstPublishersRace(t *testing.T) {
	ns := startNATS(t, nil)
	a, b := openLog(t, testConfig(ns.url())), openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	if err := a.reserve(ctx, "fresh", 1); err != nil { // a's first record is on its way
		t.Fatal(err)
	}
	mb := msgs("bob", "b", 1)
	if err := b.Publish(ctx, "fresh", mb); err != nil {
		t.Fatal(err)
	}
	if mb[0].ID != 1 {
		t.Fatalf("b's first message in a new room: id %d, want 1", mb[0].ID)
	}
	ma := msgs("amy", "a", 1)
	if err := a.Publish(ctx, "fresh", ma); err != nil {
		t.Fatal(err)
	}
	if ma[0].ID != 2 {
		t.Fatalf("a's message after it: id %d, want 2", ma[0].ID)
	}
}
