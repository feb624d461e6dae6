package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestNATSDown: with the NATS server gone, Publish fails at once with
// ErrUnavailable and OnState says so; when the server is back (same port,
// same store), the connection recovers by itself, OnState says so,
// publishing works again and Consume resumes after what it applied.
func TestNATSDown(t *testing.T) {
	ns := startNATS(t, nil)
	states := make(chan bool, 16)
	cfg := testConfig(ns.url())
	cfg.OnState = func(up bool) { states <- up }
	l := openLog(t, cfg)
	c := collect(t, l, 0)
	ctx := context.Background()
	if err := l.Publish(ctx, "r", msgs("a", "before", 2)); err != nil {
		t.Fatal(err)
	}
	c.messages(t, 2, 10*time.Second)

	ns.stop()
	waitState(t, states, false)
	if l.Connected() {
		t.Fatal("Connected with the server down")
	}
	ms := msgs("a", "down", 1)
	if err := l.Publish(ctx, "r", ms); !errors.Is(err, ErrUnavailable) || ms[0].ID != 0 {
		t.Fatalf("Publish with NATS down = %v (id %d), want ErrUnavailable", err, ms[0].ID)
	}
	if err := l.Redact(ctx, "r", 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redact with NATS down = %v", err)
	}
	if _, err := l.Lag(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lag with NATS down = %v", err)
	}

	ns.start()
	waitState(t, states, true)
	// JetStream may take a moment to load the stream after the restart:
	// Publish says ErrUnavailable until then (bounded here).
	ms = msgs("a", "after", 2)
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := l.Publish(ctx, "r", ms)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Publish after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ms[0].ID != 3 || ms[1].ID != 4 {
		t.Fatalf("ids after the restart: %d, %d", ms[0].ID, ms[1].ID)
	}
	got := c.messages(t, 2, 15*time.Second)
	if len(got) != 1 || got[0].Msgs[0].ID != 3 || got[0].Msgs[1].ID != 4 {
		t.Fatalf("Consume after the restart: %+v", got)
	}
}

func waitState(t *testing.T, states <-chan bool, want bool) {
	t.Helper()
	select {
	case got := <-states:
		if got != want {
			t.Fatalf("OnState(%v), want %v", got, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no OnState(%v)", want)
	}
}

// TestClusterServerLoss: three NATS servers with the settings
// docs/cluster.md recommends (sync_interval: always, a stream with 3
// replicas); the stream's leader is shut down while two nodes publish. Every message
// whose Publish returned nil is in the stream afterwards, with the id
// Publish gave it, and the ids are 1..N without a hole or a duplicate.
func TestClusterServerLoss(t *testing.T) {
	nodes := startCluster(t, 3, func(o *server.Options) { o.SyncAlways = true })
	cfg := testConfig(urls(nodes))
	cfg.Replicas = 3
	pubs := []*Log{openLog(t, cfg), openLog(t, cfg)}
	ctx := context.Background()
	// Wait for the stream to have its three replicas current.
	waitReplicas(t, pubs[0], 3)

	info, err := pubs[0].stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leader *natsNode
	for _, n := range nodes {
		if n.opts.ServerName == info.Cluster.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("stream leader %q not found", info.Cluster.Leader)
	}

	const perNode = 60
	acked := make(map[string]uint64) // text → id
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failures [2]int
	started := make(chan struct{}, 2)
	for i, l := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				if j == perNode/3 {
					started <- struct{}{}
				}
				ms := msgs(fmt.Sprint("p", i), fmt.Sprintf("p%d-%d", i, j), 1)
				if err := l.Publish(ctx, "r", ms); err != nil {
					if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrUnacknowledged) && !errors.Is(err, ErrConflict) {
						t.Errorf("Publish: unexpected error %v", err)
					}
					failures[i]++
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[ms[0].Text] = ms[0].ID
				mu.Unlock()
			}
		}()
	}
	<-started
	<-started
	leader.stop()
	wg.Wait()
	t.Logf("acknowledged %d of %d; failed publishes per node %v", len(acked), 2*perNode, failures)
	if len(acked) < perNode {
		t.Fatalf("only %d of %d publishes acknowledged with two servers of three up", len(acked), 2*perNode)
	}

	// Read the stream back through a survivor.
	var survivors []*natsNode
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	reader := openLog(t, testConfig(urls(survivors)))
	last, _, err := reader.Last(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	c := collect(t, reader, 0)
	seen := make(map[string]uint64)
	next := uint64(1)
	for _, e := range c.messages(t, int(last), 30*time.Second) {
		for _, m := range e.Msgs {
			if m.ID != next {
				t.Fatalf("id %d where %d was next", m.ID, next)
			}
			next++
			if _, dup := seen[m.Text]; dup {
				t.Fatalf("%q stored twice", m.Text)
			}
			seen[m.Text] = m.ID
		}
	}
	for text, id := range acked {
		if got, ok := seen[text]; !ok || got != id {
			t.Fatalf("acknowledged %q (id %d) is in the stream as %d (present %v)", text, id, got, ok)
		}
	}
}

// waitReplicas waits (bounded) until l's stream reports n current peers.
func waitReplicas(t testing.TB, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := l.stream.Info(context.Background())
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			current := 1
			for _, p := range info.Cluster.Replicas {
				if p.Current {
					current++
				}
			}
			if current >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream replicas not current: %v %+v", err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
