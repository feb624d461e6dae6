package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestClusterServerLoss: three NATS servers, each its own process, with
// the settings docs/cluster.md recommends (sync_interval: always, a
// stream with 3 replicas); the stream's leader is killed (SIGKILL) while
// two nodes publish. Every message whose Publish returned nil is in the
// stream afterwards, with the id Publish gave it, and the ids are 1..N
// without a hole or a duplicate; the killed server, restarted on its
// store, is a current replica again.
func TestClusterServerLoss(t *testing.T) {
	nodes := startChildren(t, 3, true)
	var all []string
	for _, n := range nodes {
		all = append(all, n.url())
	}
	cfg := testConfig(strings.Join(all, ","))
	cfg.Replicas = 3
	pubs := []*Log{openLog(t, cfg), openLog(t, cfg)}
	ctx := context.Background()
	waitReplicas(t, pubs[0], 3)
	// A node consuming through the loss sees what a reader afterwards
	// sees: the ordered consumer recovers without a gap or a duplicate.
	through := collect(t, pubs[0], 0)

	info, err := pubs[0].stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leader *childNATS
	for _, n := range nodes {
		if n.spec.Name == info.Cluster.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("stream leader %q not found", info.Cluster.Leader)
	}
	acked, failures := publishWhile(t, pubs, 60, leader.kill)
	t.Logf("acknowledged %d of %d; failed publishes per node %v", len(acked), 2*60, failures)
	if len(acked) < 60 {
		t.Fatalf("only %d of %d publishes acknowledged with two servers of three up", len(acked), 2*60)
	}

	var survivors []string
	for _, n := range nodes {
		if n != leader {
			survivors = append(survivors, n.url())
		}
	}
	rcfg := testConfig(strings.Join(survivors, ","))
	rcfg.Replicas = 3
	reader := openLog(t, rcfg)
	want := checkStream(t, reader, "r", acked)
	got := through.messages(t, len(want), 30*time.Second)
	i := 0
	for _, e := range got {
		for _, m := range e.Msgs {
			if i >= len(want) {
				t.Fatalf("the node consuming through the loss saw more than the stream's %d messages", len(want))
			}
			if m.ID != uint64(i+1) || m.Text != want[i] {
				t.Fatalf("the node consuming through the loss saw %d %q where the stream holds %d %q", m.ID, m.Text, i+1, want[i])
			}
			i++
		}
	}

	t.Logf("the node consuming through the loss: %+v", pubs[0].Stats())

	leader.start()
	waitReplicas(t, reader, 3)
}

// TestKillNATSProcess: one NATS server with the default sync_interval
// (replicas 1) is killed (SIGKILL) while a node publishes, and started
// again on its store at once: every acknowledged message is there, with
// its id (an acknowledged record is written to the file before the
// answer: a killed process loses nothing the kernel has;
// docs/cluster.md), and the node's publishes after the restart continue
// the ids.
func TestKillNATSProcess(t *testing.T) {
	ns := startChildren(t, 1, false)[0]
	pub := openLog(t, testConfig(ns.url()))
	acked, failures := publishWhile(t, []*Log{pub}, 90, func() { ns.kill(); ns.start() })
	t.Logf("acknowledged %d of 90 around the kill; failed %v", len(acked), failures)
	if len(acked) < 60 {
		t.Fatalf("only %d of 90 acknowledged, the server back after the kill", len(acked))
	}
	reader := openLog(t, testConfig(ns.url()))
	checkStream(t, reader, "r", acked)
}

// publishWhile has each of pubs publish n one-message batches to room
// "r", calls kill once every publisher is a third of the way, and
// returns what was acknowledged (text → id) and how many failed per
// publisher. Failures must be the named errors of an outage.
func publishWhile(t *testing.T, pubs []*Log, n int, kill func()) (map[string]uint64, []int) {
	acked := make(map[string]uint64)
	failures := make([]int, len(pubs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	third := make(chan struct{}, len(pubs))
	for i, l := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				if j == n/3 {
					third <- struct{}{}
				}
				ms := msgs(fmt.Sprint("p", i), fmt.Sprintf("p%d-%d", i, j), 1)
				if err := l.Publish(context.Background(), "r", ms); err != nil {
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
	for range pubs {
		<-third
	}
	kill()
	wg.Wait()
	return acked, failures
}

// checkStream reads key's records through l: ids 1..N in order, no text
// twice, and every acknowledged text with its id. It returns the texts
// by id (index id-1).
func checkStream(t *testing.T, l *Log, key string, acked map[string]uint64) []string {
	t.Helper()
	var last uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if last, _, err = l.Last(context.Background(), key); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Last: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := collect(t, l, 0)
	seen := make(map[string]uint64)
	var texts []string
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
			texts = append(texts, m.Text)
		}
	}
	for text, id := range acked {
		if got, ok := seen[text]; !ok || got != id {
			t.Fatalf("acknowledged %q (id %d) is in the stream as %d (present %v)", text, id, got, ok)
		}
	}
	return texts
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
