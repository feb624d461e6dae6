package cluster

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestWatchReloadAfterLongOutage: a watching node cut off from NATS for
// longer than the removal markers last (shortened to 1s here) does not
// resume blindly — the removals made meanwhile have left no trace — but
// loads afresh and tells its applier what went: members who left the
// roster and state keys removed. The watcher reaches NATS through a
// proxy that the test cuts, while the writer carries on.
func TestWatchReloadAfterLongOutage(t *testing.T) {
	ns := startNATS(t, nil)
	px := newProxy(t, ns.opts.Port)
	open := func(url, name string) *Log {
		l := openNode(t, url, name)
		l.markerTTL = time.Second
		return l
	}
	la, lb := open(ns.url(), "a"), open(px.url(), "b")
	ctx := context.Background()
	pa, pb := openPresence(t, la, PresenceConfig{}), openPresence(t, lb, PresenceConfig{})
	sa, sb := openState(t, la), openState(t, lb)
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

	px.cut()
	waitFor(t, "the watcher cut off", func() bool { return !lb.Connected() })
	if err := pa.Release(ctx, "lobby", 2); err != nil {
		t.Fatal(err)
	}
	if err := sa.SetNameOwner("u2", ""); err != nil {
		t.Fatal(err)
	}
	if err := pa.Claim(ctx, "lobby", entry(3, "z", "z")); err != nil {
		t.Fatal(err)
	}
	// Outlast the markers of those removals (and half their TTL, the
	// outage after which a watcher loads afresh).
	time.Sleep(2 * time.Second)
	px.heal()

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

// proxy is a TCP proxy to a NATS server that a test can cut (every
// connection closed, new ones refused) and heal.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, port int) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(s, c); s.Close(); c.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, s); s.Close(); c.Close() })
	}
}

// cut closes every connection and refuses new ones until heal.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
