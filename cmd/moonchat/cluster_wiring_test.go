package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/store"
)

// fakeReplica is a replica in memory whose Apply fails as the test says.
type fakeReplica struct {
	mu      sync.Mutex
	applied uint64
	last    map[string]uint64
	fail    func(seq uint64) error
	events  *[]string // shared with fakeOut: applies and deliveries in order
}

func (r *fakeReplica) Apply(seq uint64, key string, msgs []chat.Message, redact uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(seq); err != nil {
			return err
		}
	}
	if seq <= r.applied {
		return nil
	}
	r.applied = seq
	if len(msgs) > 0 {
		r.last[key] = msgs[len(msgs)-1].ID
		*r.events = append(*r.events, fmt.Sprintf("apply %s %d", key, msgs[0].ID))
	} else {
		*r.events = append(*r.events, fmt.Sprintf("apply %s -%d", key, redact))
	}
	return nil
}

func (r *fakeReplica) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

func (r *fakeReplica) LastID(key string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[key]
}

// fakeOut records deliveries after the replica's applies.
type fakeOut struct {
	r *fakeReplica
}

func (o fakeOut) Deliver(key string, msgs []chat.Message) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	*o.r.events = append(*o.r.events, fmt.Sprintf("deliver %s %d", key, msgs[0].ID))
}

func (o fakeOut) Redacted(key string, id uint64) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	*o.r.events = append(*o.r.events, fmt.Sprintf("redacted %s %d", key, id))
}

func (r *fakeReplica) eventsNow() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.events)
}

// testClusterNode opens a clusterNode on the NATS server at natsURL with
// rep as its replica, consuming into out.
func testClusterNode(t *testing.T, natsURL string, rep *fakeReplica) *clusterNode {
	t.Helper()
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster.NATSURL = natsURL
	cfg.Cluster.Node = "test"
	n, err := openCluster(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n.rep = rep
	n.start(fakeOut{rep})
	t.Cleanup(n.close)
	return n
}

// publisher opens another node's Log on the same stream.
func publisher(t *testing.T, natsURL string) *cluster.Log {
	t.Helper()
	l, err := cluster.Open(context.Background(), cluster.Config{URL: natsURL, Node: "other"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func publish(t *testing.T, l *cluster.Log, key, text string) uint64 {
	t.Helper()
	m := []*chat.Message{{Room: key, User: "u", Text: text, Time: time.Now().UTC()}}
	if err := l.Publish(context.Background(), key, m); err != nil {
		t.Fatal(err)
	}
	return m[0].ID
}

// waitEvents waits until the replica and out saw n events.
func waitEvents(t *testing.T, r *fakeReplica, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		ev := r.eventsNow()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events within %v: %q", len(ev), n, waitLong, ev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterConsume (issue 15): each record goes to the replica, then
// to the chat server, in the stream's order; a record the store fails to
// write is applied again (counted), never skipped nor delivered before it
// is stored.
func TestClusterConsume(t *testing.T) {
	natsURL := startTestNATS(t)
	pub := publisher(t, natsURL)
	var events []string
	failures := 2
	rep := &fakeReplica{last: map[string]uint64{}, events: &events}
	rep.fail = func(seq uint64) error {
		if seq == 2 && failures > 0 {
			failures--
			return errors.New("disk full")
		}
		return nil
	}
	n := testClusterNode(t, natsURL, rep)
	publish(t, pub, "lobby", "one")
	publish(t, pub, "lobby", "two")
	publish(t, pub, "dev", "three")
	if err := pub.Redact(context.Background(), "lobby", 1); err != nil {
		t.Fatal(err)
	}
	got := waitEvents(t, rep, 8)
	want := []string{"apply lobby 1", "deliver lobby 1", "apply lobby 2", "deliver lobby 2", "apply dev 1", "deliver dev 1", "apply lobby -1", "redacted lobby 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %q\nwant %q", got, want)
	}
	if e := n.applyErrors.Load(); e != 2 {
		t.Errorf("apply errors %d, want 2", e)
	}
	if a := rep.Applied(); a != 4 {
		t.Errorf("applied %d, want 4", a)
	}
	st := n.status(context.Background())
	if st.Lag == nil || *st.Lag != 0 || st.Applied != 4 || !st.Connected || st.ApplyErrors != 2 || st.Node != "test" {
		t.Errorf("status %+v", st)
	}
	select {
	case err := <-n.fatalErr():
		t.Fatalf("fatal: %v", err)
	default:
	}
}

// TestClusterConsumeStops (issue 15): a record the replica says does not
// follow its rooms (store.ErrDiverged) is not retried for ever: the
// consumer stops and reports it, and serve stops on it.
func TestClusterConsumeStops(t *testing.T) {
	natsURL := startTestNATS(t)
	pub := publisher(t, natsURL)
	var events []string
	rep := &fakeReplica{last: map[string]uint64{}, events: &events}
	rep.fail = func(seq uint64) error {
		if seq == 2 {
			return fmt.Errorf("apply: %w", store.ErrDiverged)
		}
		return nil
	}
	n := testClusterNode(t, natsURL, rep)
	publish(t, pub, "lobby", "one")
	publish(t, pub, "lobby", "two")
	publish(t, pub, "lobby", "three")
	select {
	case err := <-n.fatalErr():
		if !errors.Is(err, store.ErrDiverged) {
			t.Fatalf("fatal %v, want ErrDiverged", err)
		}
	case <-time.After(waitLong):
		t.Fatal("the consumer did not stop")
	}
	<-n.done
	if got := rep.eventsNow(); !slices.Equal(got, []string{"apply lobby 1", "deliver lobby 1"}) {
		t.Fatalf("events %q: nothing after the record that failed", got)
	}
}

// TestClusterConsumeStreamReset (issue 15): a store that applied more of
// the stream than the stream holds (the stream was created again: its
// NATS store lost) stops the node instead of skipping the new stream's
// first records.
func TestClusterConsumeStreamReset(t *testing.T) {
	natsURL := startTestNATS(t)
	var events []string
	rep := &fakeReplica{applied: 5, last: map[string]uint64{}, events: &events}
	n := testClusterNode(t, natsURL, rep) // the stream is new: it ends at 0
	select {
	case err := <-n.fatalErr():
		if !errors.Is(err, cluster.ErrStreamReset) {
			t.Fatalf("fatal %v, want ErrStreamReset", err)
		}
	case <-time.After(waitLong):
		t.Fatal("the consumer did not stop")
	}
}
