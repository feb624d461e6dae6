package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestWatchReloadAfterLongOutage: a watching node cut off from NATS for
// longer than the removal markers last (shortened to 1s here) does not
// resume blindly — the removals made meanwhile have left no trace — but
// loads afresh and tells its applier what went: members who left the
// roster and state keys removed. Three NATS servers (R3): the watcher's
// server stops while the writer's carries on.
func TestWatchReloadAfterLongOutage(t *testing.T) {
	// NoAdvertise: a client knows only its own server, and does not
	// fail over.
	nodes := startCluster(t, 3, func(o *server.Options) { o.Cluster.NoAdvertise = true })
	open := func(url, name string) *Log {
		cfg := testConfig(url)
		cfg.Node, cfg.Replicas = name, 3
		l := openLog(t, cfg)
		l.markerTTL = time.Second
		return l
	}
	la, lb := open(nodes[0].url(), "a"), open(nodes[2].url(), "b")
	ctx := context.Background()
	var pa, pb *Presence
	var sa, sb *State
	// A fresh cluster may still be electing leaders: bounded retries.
	waitFor(t, "the buckets", func() bool {
		var err error
		if pa == nil {
			pa, err = la.OpenPresence(ctx, PresenceConfig{})
		}
		if err == nil && pb == nil {
			pb, err = lb.OpenPresence(ctx, PresenceConfig{})
		}
		if err == nil && sa == nil {
			sa, err = la.OpenState(ctx, StateConfig{})
		}
		if err == nil && sb == nil {
			sb, err = lb.OpenState(ctx, StateConfig{})
		}
		return err == nil
	})
	roster, state := newRecorder(), newRecorder()
	run(t, func(ctx context.Context) error { return pb.Watch(ctx, roster) })
	run(t, func(ctx context.Context) error { return sb.Watch(ctx, state) })
	for i, name := range []string{"x", "y"} {
		if err := pa.Claim(ctx, "lobby", entry(uint64(i+1), name, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"u1", "u2"} {
		if err := sa.SetNameOwner(id, "name-"+id); err != nil {
			t.Fatal(err)
		}
	}
	roster.expect(t, false, "joined lobby a/1 x [x] acct=", "joined lobby a/2 y [y] acct=")
	state.expect(t, false, "owner u1=name-u1", "owner u2=name-u2")

	nodes[2].stop()
	waitFor(t, "the watcher cut off", func() bool { return !lb.Connected() })
	retry(t, func() error { return pa.Release(ctx, "lobby", 2) })
	retry(t, func() error { return sa.SetNameOwner("u2", "") })
	retry(t, func() error { return pa.Claim(ctx, "lobby", entry(3, "z", "z")) })
	// Outlast the markers of those removals (and half their TTL, the
	// outage after which a watcher loads afresh).
	time.Sleep(2 * time.Second)
	nodes[2].start()

	got := map[string]bool{}
	for !got["left lobby a/2"] || !got["joined lobby a/3 z [z] acct="] {
		select {
		case s := <-roster.ch:
			got[s] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("after the outage the roster watch told only %v", got)
		}
	}
	state.expect(t, true, "owner u2=")
}
