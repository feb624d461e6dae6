package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// batchFake is a fakeReplica that also applies batches (ApplyBatch),
// all or none, recording each batch's size.
type batchFake struct {
	*fakeReplica
	batches []int // guarded by fakeReplica.mu
}

func newBatchFake() *batchFake {
	return &batchFake{fakeReplica: &fakeReplica{last: map[string]uint64{}, events: new([]string)}}
}

func (r *batchFake) ApplyBatch(recs []store.LogRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		for _, rec := range recs {
			if err := r.fail(rec.Seq); err != nil {
				return fmt.Errorf("log record %d: %w", rec.Seq, err)
			}
		}
	}
	r.batches = append(r.batches, len(recs))
	for _, rec := range recs {
		if rec.Seq <= r.applied {
			continue
		}
		r.applied = rec.Seq
		if len(rec.Msgs) > 0 {
			r.last[rec.Key] = rec.Msgs[len(rec.Msgs)-1].ID
			*r.events = append(*r.events, fmt.Sprintf("apply %s %d", rec.Key, rec.Msgs[0].ID))
		} else {
			*r.events = append(*r.events, fmt.Sprintf("apply %s -%d", rec.Key, rec.Redact))
		}
	}
	return nil
}

func (r *batchFake) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// testEntries are four stream records: two batches of lobby, one of dev,
// and the redaction of lobby's message 1.
func testEntries() []cluster.Entry {
	m := func(key string, id uint64) []chat.Message {
		return []chat.Message{{ID: id, Room: key, User: "u", Text: fmt.Sprint(key, id), Time: time.Now().UTC()}}
	}
	return []cluster.Entry{
		{Seq: 1, Key: "lobby", Msgs: m("lobby", 1)},
		{Seq: 2, Key: "lobby", Msgs: m("lobby", 2)},
		{Seq: 3, Key: "dev", Msgs: m("dev", 1)},
		{Seq: 4, Key: "lobby", Redact: 1},
	}
}

// TestClusterApplyEntries (issue 15): entries taken together go into the
// replica in one batch, then to the chat server one by one in order; a
// batch the replica refuses is applied again one record at a time, so
// that the records before a bad one go in (each delivered once stored)
// and the error names the bad one; one entry, or a replica without
// batches, is applied alone.
func TestClusterApplyEntries(t *testing.T) {
	newNode := func(rep replica) *clusterNode {
		return &clusterNode{name: "test", logger: slog.New(slog.DiscardHandler), rep: rep, fatal: make(chan error, 1)}
	}
	perRecord := []string{"apply lobby 1", "deliver lobby 1", "apply lobby 2", "deliver lobby 2", "apply dev 1", "deliver dev 1", "apply lobby -1", "redacted lobby 1"}

	t.Run("batch", func(t *testing.T) {
		rep := newBatchFake()
		n := newNode(rep)
		if _, err := n.applyEntries(testEntries(), fakeOut{rep.fakeReplica}, nil); err != nil {
			t.Fatal(err)
		}
		want := []string{"apply lobby 1", "apply lobby 2", "apply dev 1", "apply lobby -1", "deliver lobby 1", "deliver lobby 2", "deliver dev 1", "redacted lobby 1"}
		if got := rep.eventsNow(); !slices.Equal(got, want) {
			t.Fatalf("events %q\nwant %q", got, want)
		}
		if b := rep.batchSizes(); !slices.Equal(b, []int{4}) || rep.Applied() != 4 || n.applyErrors.Load() != 0 {
			t.Fatalf("batches %v, applied %d, apply errors %d", b, rep.Applied(), n.applyErrors.Load())
		}
	})
	t.Run("diverged", func(t *testing.T) {
		rep := newBatchFake()
		rep.fail = func(seq uint64) error {
			if seq == 3 {
				return fmt.Errorf("room dev: %w", store.ErrDiverged)
			}
			return nil
		}
		n := newNode(rep)
		_, err := n.applyEntries(testEntries(), fakeOut{rep.fakeReplica}, nil)
		if !errors.Is(err, store.ErrDiverged) || !strings.Contains(err.Error(), `stream record 3 of "dev"`) {
			t.Fatalf("err %v, want ErrDiverged naming record 3", err)
		}
		if got := rep.eventsNow(); !slices.Equal(got, perRecord[:4]) {
			t.Fatalf("events %q\nwant %q (the records before the bad one, nothing after)", got, perRecord[:4])
		}
		if rep.Applied() != 2 || n.applyErrors.Load() != 1 || len(rep.batchSizes()) != 0 {
			t.Fatalf("applied %d, apply errors %d, batches %v", rep.Applied(), n.applyErrors.Load(), rep.batchSizes())
		}
	})
	t.Run("batch fails once", func(t *testing.T) {
		rep := newBatchFake()
		failures := 1
		rep.fail = func(seq uint64) error {
			if seq == 3 && failures > 0 {
				failures--
				return errors.New("disk full")
			}
			return nil
		}
		n := newNode(rep)
		if _, err := n.applyEntries(testEntries(), fakeOut{rep.fakeReplica}, nil); err != nil {
			t.Fatal(err)
		}
		if got := rep.eventsNow(); !slices.Equal(got, perRecord) || rep.Applied() != 4 {
			t.Fatalf("events %q, applied %d\nwant %q", got, rep.Applied(), perRecord)
		}
	})
	t.Run("one entry", func(t *testing.T) {
		rep := newBatchFake()
		n := newNode(rep)
		if _, err := n.applyEntries(testEntries()[:1], fakeOut{rep.fakeReplica}, nil); err != nil {
			t.Fatal(err)
		}
		if got := rep.eventsNow(); !slices.Equal(got, perRecord[:2]) || len(rep.batchSizes()) != 0 {
			t.Fatalf("events %q, batches %v", got, rep.batchSizes())
		}
	})
	t.Run("no batches", func(t *testing.T) {
		rep := &fakeReplica{last: map[string]uint64{}, events: new([]string)}
		n := newNode(rep)
		if _, err := n.applyEntries(testEntries(), fakeOut{rep}, nil); err != nil {
			t.Fatal(err)
		}
		if got := rep.eventsNow(); !slices.Equal(got, perRecord) {
			t.Fatalf("events %q\nwant %q", got, perRecord)
		}
	})
}

// startBatchNode opens a clusterNode on the NATS server at natsURL with
// rep as its replica and runs consumeBatches into out (start, with the
// batch consumer), until the test ends.
func startBatchNode(t *testing.T, natsURL, name string, rep replica, out deliverer) *clusterNode {
	t.Helper()
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster.NATSURL = natsURL
	cfg.Cluster.Node = name
	n, err := openCluster(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n.rep = rep
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		n.consumeBatches(ctx, out)
	}()
	t.Cleanup(n.close)
	return n
}

// checkApplyDeliver checks events against records (each an "apply …"
// and its delivery event): every record applied once and delivered once,
// applies in order, deliveries in order, each delivery after its apply.
func checkApplyDeliver(t *testing.T, events []string, records [][2]string) {
	t.Helper()
	var applies, delivers []string
	at := map[string]int{}
	for i, e := range events {
		if strings.HasPrefix(e, "apply ") {
			applies = append(applies, e)
		} else {
			delivers = append(delivers, e)
		}
		if _, seen := at[e]; seen {
			t.Fatalf("%q twice in %q", e, events)
		}
		at[e] = i
	}
	var wantA, wantD []string
	for _, r := range records {
		wantA, wantD = append(wantA, r[0]), append(wantD, r[1])
		if at[r[0]] > at[r[1]] {
			t.Fatalf("%q before %q in %q", r[1], r[0], events)
		}
	}
	if !slices.Equal(applies, wantA) || !slices.Equal(delivers, wantD) {
		t.Fatalf("events %q: applies %q, deliveries %q\nwant %q and %q", events, applies, delivers, wantA, wantD)
	}
}

// TestClusterConsumeBatches (issue 15): the batch consumer applies each
// record, then delivers it, in the stream's order; a record the store
// fails to write is applied again (counted), never skipped nor delivered
// before it is stored; a record that diverges stops the node after the
// records before it.
func TestClusterConsumeBatches(t *testing.T) {
	natsURL := startTestNATS(t)
	pub := publisher(t, natsURL)
	rep := newBatchFake()
	failures := 2
	rep.fail = func(seq uint64) error {
		if seq == 2 && failures > 0 {
			failures--
			return errors.New("disk full")
		}
		if seq == 6 {
			return fmt.Errorf("room dev: %w", store.ErrDiverged)
		}
		return nil
	}
	n := startBatchNode(t, natsURL, "test", rep, fakeOut{rep.fakeReplica})
	publish(t, pub, "lobby", "one")
	publish(t, pub, "lobby", "two")
	publish(t, pub, "dev", "three")
	if err := pub.Redact(context.Background(), "lobby", 1); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, "dev", "four")
	checkApplyDeliver(t, waitEvents(t, rep.fakeReplica, 10), [][2]string{
		{"apply lobby 1", "deliver lobby 1"}, {"apply lobby 2", "deliver lobby 2"}, {"apply dev 1", "deliver dev 1"},
		{"apply lobby -1", "redacted lobby 1"}, {"apply dev 2", "deliver dev 2"},
	})
	if e := n.applyErrors.Load(); e < 1 || e > 2 {
		t.Errorf("apply errors %d, want the failed record counted (once per try one by one)", e)
	}
	publish(t, pub, "dev", "diverges") // seq 6
	select {
	case err := <-n.fatalErr():
		if !errors.Is(err, store.ErrDiverged) {
			t.Fatalf("fatal %v, want ErrDiverged", err)
		}
	case <-time.After(waitLong):
		t.Fatal("the consumer did not stop")
	}
	<-n.done
	if a := rep.Applied(); a != 5 || len(rep.eventsNow()) != 10 {
		t.Fatalf("applied %d, events %q: nothing of the record that diverged", a, rep.eventsNow())
	}
}

// storeOut is a chat server stand-in that checks, at each delivery, that
// the replica already holds what it is handed, and records it.
type storeOut struct {
	t  *testing.T
	db *store.DB
	mu sync.Mutex
	// got is every message id delivered per room, redactions as -id.
	got map[string][]int64
}

func (o *storeOut) Deliver(key string, msgs []chat.Message) {
	if last := msgs[len(msgs)-1].ID; o.db.LastID(key) < last {
		o.t.Errorf("%s %d delivered before the replica holds it (its last id %d)", key, last, o.db.LastID(key))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range msgs {
		o.got[key] = append(o.got[key], int64(m.ID))
	}
}

func (o *storeOut) Redacted(key string, id uint64) {
	if m, _, _, err := o.db.After(key, id-1, 1); err == nil && len(m) == 1 && m[0].ID == id {
		o.t.Errorf("%s %d: redaction delivered while the replica still holds the message", key, id)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got[key] = append(o.got[key], -int64(id))
}

func (o *storeOut) snapshot() map[string][]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := map[string][]int64{}
	for k, v := range o.got {
		c[k] = slices.Clone(v)
	}
	return c
}

// TestClusterConsumeBatchesStores (issue 15): two nodes, each with a
// store replica and the batch consumer, read a stream written before
// they started and while they run: both deliver every record once, in
// order, each after their store holds it, and end with the same rooms.
func TestClusterConsumeBatchesStores(t *testing.T) {
	natsURL := startTestNATS(t)
	pub := publisher(t, natsURL)
	const early, late = 60, 20
	rooms := []string{"lobby", "dev", chat.ConversationKey("acc-a", "acc-b")}
	want := map[string][]int64{}
	post := func(i int) {
		key := rooms[i%len(rooms)]
		m := []*chat.Message{{Room: key, User: "u", Text: fmt.Sprint("m", i), Time: time.Now().UTC()}}
		if chat.IsConversation(key) {
			m[0].Account = &chat.Account{ID: "acc-a", Roles: []string{"user"}}
		}
		if err := pub.Publish(context.Background(), key, m); err != nil {
			t.Fatal(err)
		}
		want[key] = append(want[key], int64(m[0].ID))
		if i%7 == 6 {
			if err := pub.Redact(context.Background(), key, m[0].ID); err != nil {
				t.Fatal(err)
			}
			want[key] = append(want[key], -int64(m[0].ID))
		}
	}
	for i := range early {
		post(i)
	}
	var dbs []*store.DB
	var outs []*storeOut
	for i := range 2 {
		db, err := store.Open(filepath.Join(t.TempDir(), "replica.db"), store.Options{Replica: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() }) // after the node's close (cleanups run last first)
		out := &storeOut{t: t, db: db, got: map[string][]int64{}}
		startBatchNode(t, natsURL, fmt.Sprint("node-", i), db, out)
		dbs, outs = append(dbs, db), append(outs, out)
	}
	for i := early; i < early+late; i++ {
		post(i)
	}
	last, err := pub.Lag(context.Background()) // nothing consumed on pub: its lag is the stream's last sequence
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for dbs[0].Applied() < last || dbs[1].Applied() < last {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d and %d of %d within %v", dbs[0].Applied(), dbs[1].Applied(), last, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, out := range outs {
		if got := out.snapshot(); !reflect.DeepEqual(got, want) {
			t.Errorf("node %d delivered %v\nwant %v", i, got, want)
		}
		t.Logf("node %d: %d records in %d store commits", i, last, dbs[i].Stats().Commits)
	}
	for _, key := range rooms {
		a, errA := dbs[0].Recent(key, 1000)
		b, errB := dbs[1].Recent(key, 1000)
		if errA != nil || errB != nil || len(a) == 0 || !reflect.DeepEqual(a, b) {
			t.Errorf("%q: the replicas differ (%v, %v):\n%+v\n%+v", key, errA, errB, a, b)
		}
	}
}
