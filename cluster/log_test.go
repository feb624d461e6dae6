package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestConcurrentPublishers: three Logs (three nodes) publish batches to
// one room and one conversation at once. Ids are 1..N in each, without a
// hole or a duplicate; every node's Consume sees the same records in the
// same order; each Publish's ids are the ones the stream holds.
func TestConcurrentPublishers(t *testing.T) {
	ns := startNATS(t, nil)
	const nodes, batches = 3, 12
	room := "lobby.eu *>" // '.', '*', '>' and a space: still one subject token
	dm := chat.ConversationKey("acct:1", "acct.2")
	logs := make([]*Log, nodes)
	cols := make([]*collector, nodes)
	for i := range logs {
		cfg := testConfig(ns.url())
		cfg.Node = fmt.Sprintf("node%d", i)
		logs[i] = openLog(t, cfg)
		cols[i] = collect(t, logs[i], 0)
	}
	type sent struct {
		key  string
		id   uint64
		text string
	}
	var mu sync.Mutex
	var all []sent
	var wg sync.WaitGroup
	total := 0
	for i, l := range logs {
		for _, key := range []string{room, dm} {
			for b := range batches {
				total += 1 + b%3
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					ms := msgs(fmt.Sprintf("u%d", i), fmt.Sprintf("%s/n%d/b%d", key, i, b), 1+b%3)
					if err := l.Publish(context.Background(), key, ms); err != nil {
						t.Errorf("node %d: Publish: %v", i, err)
						return
					}
					mu.Lock()
					for _, m := range ms {
						all = append(all, sent{key, m.ID, m.Text})
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for i, l := range logs {
		t.Logf("node %d: %+v", i, l.Stats())
	}
	if t.Failed() {
		return
	}
	var first []Entry
	for i, c := range cols {
		got := c.messages(t, total, 30*time.Second)
		if i == 0 {
			first = got
			continue
		}
		if len(got) != len(first) {
			t.Fatalf("node %d saw %d records, node 0 %d", i, len(got), len(first))
		}
		for j := range got {
			if got[j].Seq != first[j].Seq || got[j].Key != first[j].Key || fmt.Sprint(got[j].Msgs) != fmt.Sprint(first[j].Msgs) {
				t.Fatalf("node %d record %d differs:\n%+v\n%+v", i, j, got[j], first[j])
			}
		}
	}
	// Ids contiguous per key, in stream order; texts as published.
	next := map[string]uint64{room: 1, dm: 1}
	byID := map[string]string{}
	for _, e := range first {
		for _, m := range e.Msgs {
			if m.ID != next[e.Key] {
				t.Fatalf("%q: id %d where %d was next", e.Key, m.ID, next[e.Key])
			}
			next[e.Key]++
			if m.Room != e.Key || !strings.HasPrefix(m.Text, e.Key+"/") {
				t.Fatalf("message %+v in record of %q", m, e.Key)
			}
			byID[fmt.Sprint(e.Key, m.ID)] = m.Text
		}
	}
	if n := next[room] - 1 + next[dm] - 1; int(n) != total {
		t.Fatalf("%d messages in the stream, %d published", n, total)
	}
	for _, s := range all {
		if byID[fmt.Sprint(s.key, s.id)] != s.text {
			t.Fatalf("Publish gave %q id %d, the stream holds %q there", s.text, s.id, byID[fmt.Sprint(s.key, s.id)])
		}
	}
	id, seq, err := logs[1].Last(context.Background(), room)
	if err != nil || id != next[room]-1 || seq == 0 {
		t.Fatalf("Last(room) = %d, %d, %v; want id %d", id, seq, err, next[room]-1)
	}
	if lag, err := logs[2].Lag(context.Background()); err != nil || lag != 0 {
		t.Fatalf("Lag after consuming everything = %d, %v", lag, err)
	}
}

// TestConsumeAfterRestart: a node that applied part of the stream and
// stopped resumes from the sequence it kept: the rest, no gap, no
// duplicate.
func TestConsumeAfterRestart(t *testing.T) {
	ns := startNATS(t, nil)
	pub := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	for i := range 6 {
		if err := pub.Publish(ctx, "r", msgs("a", fmt.Sprint("first", i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	// The first life of the node applies 3 records, then stops.
	node := openLog(t, testConfig(ns.url()))
	var ids []uint64
	stop := errors.New("stop")
	err := node.Consume(ctx, 0, func(e Entry) error {
		if len(ids) == 6 {
			return stop
		}
		for _, m := range e.Msgs {
			ids = append(ids, m.ID)
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Consume = %v", err)
	}
	applied := node.Applied()
	if applied != 3 {
		t.Fatalf("Applied = %d after 3 records", applied)
	}
	node.Close()
	for i := range 3 {
		if err := pub.Publish(ctx, "r", msgs("a", fmt.Sprint("second", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Its second life (a new connection, like a restarted process).
	again := openLog(t, testConfig(ns.url()))
	c := collect(t, again, applied)
	for _, e := range c.messages(t, 9, 10*time.Second) {
		for _, m := range e.Msgs {
			ids = append(ids, m.ID)
		}
	}
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("ids across the restart: %v", ids)
		}
	}
	if len(ids) != 15 {
		t.Fatalf("%d ids, want 15: %v", len(ids), ids)
	}
}

// TestRedact: a redaction is a record of the room, ordered after the batch
// it redacts; ids the room never had are refused, also by a node that
// never saw the room.
func TestRedact(t *testing.T) {
	ns := startNATS(t, nil)
	a := openLog(t, testConfig(ns.url()))
	b := openLog(t, testConfig(ns.url()))
	c := collect(t, a, 0)
	ctx := context.Background()
	if err := a.Publish(ctx, "r", msgs("a", "x", 3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Redact(ctx, "r", 2); err != nil {
		t.Fatalf("Redact from another node: %v", err)
	}
	for _, id := range []uint64{0, 4} {
		if err := b.Redact(ctx, "r", id); !errors.Is(err, ErrNoSuchMessage) {
			t.Fatalf("Redact(%d) = %v, want ErrNoSuchMessage", id, err)
		}
	}
	if err := b.Redact(ctx, "nowhere", 1); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("Redact in an empty room = %v", err)
	}
	if err := a.Publish(ctx, "r", msgs("a", "y", 1)); err != nil {
		t.Fatal(err)
	}
	got := c.messages(t, 4, 10*time.Second)
	if len(got) != 3 || len(got[0].Msgs) != 3 || got[1].Redact != 2 || got[1].Msgs != nil || got[2].Msgs[0].ID != 4 {
		t.Fatalf("records: %+v", got)
	}
	// A redaction is the room's last record: ids continue after it.
	if id, _, err := b.Last(ctx, "r"); err != nil || id != 4 {
		t.Fatalf("Last = %d, %v", id, err)
	}
}

// TestLargeBatchSplit: a batch bigger than the server's max_payload is cut
// into records that fit, ids still contiguous; a message that cannot fit
// at all is refused with ErrTooLarge and nothing is published.
func TestLargeBatchSplit(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.MaxPayload = 8192 })
	l := openLog(t, testConfig(ns.url()))
	c := collect(t, l, 0)
	ctx := context.Background()
	ms := msgs("a", "big", 20)
	for _, m := range ms {
		m.Text += strings.Repeat("x", 1500)
	}
	if err := l.Publish(ctx, "r", ms); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.ID != uint64(i+1) {
			t.Fatalf("message %d got id %d", i, m.ID)
		}
	}
	got := c.messages(t, 20, 10*time.Second)
	if len(got) < 4 {
		t.Fatalf("20 messages of 1.5 KB in %d records under an 8 KB max_payload", len(got))
	}
	huge := []*chat.Message{{User: "a", Text: strings.Repeat("y", 9000)}}
	if err := l.Publish(ctx, "r", huge); !errors.Is(err, ErrTooLarge) || huge[0].ID != 0 {
		t.Fatalf("Publish of a 9 KB message = %v (id %d)", err, huge[0].ID)
	}
	if id, _, err := l.Last(ctx, "r"); err != nil || id != 20 {
		t.Fatalf("Last = %d, %v", id, err)
	}
}

// TestStaleHead: a node whose idea of a room's end is stale (it published
// before, others published since) gets the stream's refusal, renumbers and
// publishes after them.
func TestStaleHead(t *testing.T) {
	ns := startNATS(t, nil)
	a := openLog(t, testConfig(ns.url()))
	b := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	if err := a.Publish(ctx, "r", msgs("a", "1", 1)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := b.Publish(ctx, "r", msgs("b", "2", 2)); err != nil {
			t.Fatal(err)
		}
	}
	ms := msgs("a", "3", 2)
	if err := a.Publish(ctx, "r", ms); err != nil {
		t.Fatal(err)
	}
	if ms[0].ID != 8 || ms[1].ID != 9 {
		t.Fatalf("ids %d, %d after 7 messages", ms[0].ID, ms[1].ID)
	}
	if st := a.Stats(); st.Conflicts != 1 || st.Records != 2 {
		t.Fatalf("a's stats %+v: want 1 conflict, 2 records", st)
	}
	a2 := openLog(t, func() Config { c := testConfig(ns.url()); c.MaxAttempts = 1; return c }())
	if err := a2.Publish(ctx, "r", msgs("c", "4", 1)); err != nil {
		t.Fatalf("a fresh node reads the head before its first publish: %v", err)
	}
	if err := a.Publish(ctx, "r", msgs("a", "5", 1)); err != nil {
		t.Fatal(err)
	}
	if err := a2.Publish(ctx, "r", msgs("c", "6", 1)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale head with MaxAttempts 1: %v, want ErrConflict", err)
	}
}

// TestStreamSettings: Open creates the stream from the config (file
// storage, limits from [store] retention) and a second Open with other
// limits updates it.
func TestStreamSettings(t *testing.T) {
	ns := startNATS(t, nil)
	cfg := testConfig(ns.url())
	cfg.Stream = "chat-1"
	cfg.MaxAge = time.Hour
	cfg.MaxPerRoom = 100
	l := openLog(t, cfg)
	info, err := l.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sc := info.Config
	if sc.Name != "chat-1" || sc.MaxAge != time.Hour || sc.MaxMsgsPerSubject != 100 || sc.Replicas != 1 ||
		sc.Storage.String() != "File" || strings.Join(sc.Subjects, " ") != "chat-1.room.> chat-1.dm.>" {
		t.Fatalf("stream config %+v", sc)
	}
	cfg.MaxAge = 0
	cfg.MaxPerRoom = 0
	l2 := openLog(t, cfg)
	info, err = l2.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 0 || info.Config.MaxMsgsPerSubject != -1 {
		t.Fatalf("updated stream config %+v", info.Config)
	}
	// A stream of that name that is not a room log is not taken over.
	if _, err := l.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "orders", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg.Stream = "orders"
	if _, err := Open(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "orders.>") {
		t.Fatalf("Open over another stream: %v", err)
	}
	if _, err := Open(context.Background(), Config{URL: ns.url(), Stream: "a.b", Replicas: 7}); err == nil ||
		!strings.Contains(err.Error(), "stream") || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("bad config: %v", err)
	}
}

// TestExpiredRoomKeepsIds: when MaxAge dropped every record of an idle
// room, the stream no longer knows its last id; the node's replica does
// (Config.Floor) and so does the room's id reservation (ids.go): the
// room's ids go on after the higher of the two instead of starting again
// at 1. A replica above the reservation (a single node's store that
// became a cluster's, its ids never reserved) is followed too.
func TestExpiredRoomKeepsIds(t *testing.T) {
	ns := startNATS(t, nil)
	cfg := testConfig(ns.url())
	cfg.MaxAge = time.Second
	replica := map[string]uint64{"old": 5000} // a single node's room, never published
	var mu sync.Mutex
	cfg.Floor = func(key string) uint64 {
		mu.Lock()
		defer mu.Unlock()
		return replica[key]
	}
	l := openLog(t, cfg)
	ctx := context.Background()
	ms := msgs("a", "old", 3)
	if err := l.Publish(ctx, "idle", ms); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	replica["idle"] = ms[2].ID // what the node's store applied
	mu.Unlock()
	// A node that restarted since (no head known) sees the stream empty.
	l2 := openLog(t, cfg)
	if id := waitExpired(t, l2, "idle"); id != idBlock {
		t.Fatalf("Last of an expired room = %d, want its reservation %d (floor 3)", id, idBlock)
	}
	ms = msgs("a", "new", 2)
	if err := l2.Publish(ctx, "idle", ms); err != nil {
		t.Fatal(err)
	}
	if ms[0].ID != idBlock+1 || ms[1].ID != idBlock+2 {
		t.Fatalf("ids after expiry: %d, %d; want %d, %d", ms[0].ID, ms[1].ID, idBlock+1, idBlock+2)
	}
	ms = msgs("a", "first", 1)
	if err := l2.Publish(ctx, "old", ms); err != nil {
		t.Fatal(err)
	}
	if ms[0].ID != 5001 {
		t.Fatalf("first id of a room the replica held up to 5000: %d", ms[0].ID)
	}
}

// waitExpired waits until the stream holds no record of key (MaxAge) and
// returns its Last id then.
func waitExpired(t testing.TB, l *Log, key string) uint64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		id, seq, err := l.Last(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if seq == 0 {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatal("the room's records did not expire")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCloseEndsConsume: one Consume at a time; closing the Log ends a
// running Consume with ErrClosed, and a closed Log refuses to publish.
func TestCloseEndsConsume(t *testing.T) {
	ns := startNATS(t, nil)
	l := openLog(t, testConfig(ns.url()))
	done := make(chan error, 1)
	applied := make(chan struct{}, 1)
	go func() {
		done <- l.Consume(context.Background(), 0, func(Entry) error {
			applied <- struct{}{}
			return nil
		})
	}()
	if err := l.Publish(context.Background(), "r", msgs("a", "x", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-applied: // the first Consume is running
	case <-time.After(10 * time.Second):
		t.Fatal("nothing consumed")
	}
	if err := l.Consume(context.Background(), 0, nil); !errors.Is(err, ErrConsuming) {
		t.Fatalf("second Consume = %v, want ErrConsuming", err)
	}
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Consume after Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume still running after Close")
	}
	if err := l.Publish(context.Background(), "r", msgs("a", "y", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
}

// TestLongKey: the longest key a Log accepts makes a subject the NATS
// server takes, and comes back from Consume intact.
func TestLongKey(t *testing.T) {
	ns := startNATS(t, nil)
	l := openLog(t, testConfig(ns.url()))
	c := collect(t, l, 0)
	key := chat.ConversationKey(strings.Repeat("a", maxKeyBytes/2-10), strings.Repeat("b", maxKeyBytes/2-10))
	if len(key) > maxKeyBytes {
		t.Fatalf("test key of %d bytes", len(key))
	}
	if err := l.Publish(context.Background(), key, msgs("a", "long", 1)); err != nil {
		t.Fatal(err)
	}
	if got := c.messages(t, 1, 10*time.Second); got[0].Key != key || got[0].Msgs[0].Room != key {
		t.Fatalf("key came back as %.40q…", got[0].Key)
	}
}

// TestWatchdog: Consume's watchdog stops a consumer that delivers nothing
// while the stream holds records beyond Applied, and leaves alone one
// that is simply idle at the stream's end.
func TestWatchdog(t *testing.T) {
	ns := startNATS(t, nil)
	l := openLog(t, testConfig(ns.url()))
	l.stallAfter = 50 * time.Millisecond
	ctx := context.Background()
	if err := l.Publish(ctx, "r", msgs("a", "x", 1)); err != nil {
		t.Fatal(err)
	}
	run := func(applied uint64, wait time.Duration) bool {
		l.applied.Store(applied)
		done := make(chan struct{})
		stopped := make(chan struct{})
		var stalled atomic.Bool
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			l.watch(ctx, done, &stalled, func() { close(stopped) })
		}()
		defer func() { close(done); <-finished }()
		select {
		case <-stopped:
			if !stalled.Load() {
				t.Fatal("stopped without being marked stalled")
			}
			return true
		case <-time.After(wait):
			return false
		}
	}
	if run(1, 500*time.Millisecond) {
		t.Fatal("an idle consumer at the stream's end was stopped")
	}
	if !run(0, 10*time.Second) {
		t.Fatal("a consumer behind the stream that delivers nothing was not stopped")
	}
	if st := l.Stats(); st.Stalls != 1 {
		t.Fatalf("Stalls = %d", st.Stalls)
	}
}
