package scripting

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gateRig is an engine with one chat.every(1, …) timer that broadcasts
// "tick N", N counting its runs, behind a TimerGate the test switches (a
// cluster's timer lease, held or not); asked counts the gate's answers.
type gateRig struct {
	*rig
	clk   *fakeClock
	lease atomic.Bool
	asked atomic.Int64
}

func newGateRig(t *testing.T, gate func(g *gateRig) bool) *gateRig {
	g := &gateRig{clk: newFakeClock()}
	g.rig = newRigOpts(t, Options{Clock: g.clk, TimerGate: func() bool { return gate(g) }, FS: scriptFS(map[string]string{"tick.lua": `
local n = 0
chat.every(1, function()
  n = n + 1
  chat.broadcast("lobby", "tick " .. n)
end)`})})
	g.e.Start(t.Context())
	return g
}

// tick advances the clock by the timer's interval once the timer
// goroutine waits, and returns once the gate has been asked about that
// tick and the goroutine waits for the next one (so a tick that ran has
// made its broadcast).
func (g *gateRig) tick(t *testing.T) {
	t.Helper()
	eventually(t, "the timer waiting", func() bool { return g.clk.Active() == 1 })
	before := g.asked.Load()
	g.clk.Advance(time.Second)
	eventually(t, "the gate asked", func() bool { return g.asked.Load() > before })
	eventually(t, "the timer waiting again", func() bool { return g.clk.Active() == 1 })
}

// texts returns the broadcasts the timer made since the last call.
func (g *gateRig) texts() []string {
	var out []string
	for _, c := range g.host.take() {
		out = append(out, c.Text)
	}
	return out
}

// TestTimerGate: with Options.TimerGate false (another node holds the
// cluster's timer lease) a due chat.every function does not run and the
// tick is counted as skipped; true, it runs at its next tick; switching
// back and forth hands the ticks over, none run twice, none later.
func TestTimerGate(t *testing.T) {
	g := newGateRig(t, func(g *gateRig) bool {
		defer g.asked.Add(1)
		return g.lease.Load()
	})
	skipped := func() float64 {
		v, _ := sample(gather(t, g.e), "moonchat_script_timer_skipped_total", "script", "tick.lua", "event", "timer")
		return v
	}
	wantSample(t, gather(t, g.e), 0, "moonchat_script_timer_skipped_total", "script", "tick.lua", "event", "timer")

	for range 3 {
		g.tick(t)
	}
	if got := g.texts(); len(got) != 0 {
		t.Fatalf("the timer ran without the lease: %q", got)
	}
	if got := skipped(); got != 3 {
		t.Fatalf("skipped ticks = %v, want 3", got)
	}
	// A skipped tick is not a call, nor a failure.
	fams := gather(t, g.e)
	wantSample(t, fams, 0, "moonchat_script_calls_total", "script", "tick.lua", "event", "timer")
	wantSample(t, fams, 0, "moonchat_script_errors_total", "script", "tick.lua", "event", "timer")

	g.lease.Store(true) // this node takes the lease over
	g.tick(t)
	g.tick(t)
	if got := g.texts(); strings.Join(got, ",") != "tick 1,tick 2" {
		t.Fatalf("with the lease: %q, want tick 1 and tick 2 (the skipped ticks never ran)", got)
	}
	g.lease.Store(false) // and loses it
	g.tick(t)
	if got := g.texts(); len(got) != 0 {
		t.Fatalf("the timer ran after the lease was lost: %q", got)
	}
	g.lease.Store(true)
	g.tick(t)
	if got := g.texts(); strings.Join(got, ",") != "tick 3" {
		t.Fatalf("with the lease again: %q, want tick 3", got)
	}
	if got := skipped(); got != 4 {
		t.Fatalf("skipped ticks = %v, want 4", got)
	}
	wantSample(t, gather(t, g.e), 3, "moonchat_script_calls_total", "script", "tick.lua", "event", "timer")
}

// TestTimerGatePanics: a gate that panics counts as "not this node": the
// tick is skipped and logged, the timer goroutine lives on and runs the
// next tick the gate allows.
func TestTimerGatePanics(t *testing.T) {
	g := newGateRig(t, func(g *gateRig) bool {
		defer g.asked.Add(1)
		if !g.lease.Load() {
			panic("lease state unknown")
		}
		return true
	})
	g.tick(t)
	if got := g.texts(); len(got) != 0 {
		t.Fatalf("the timer ran when its gate panicked: %q", got)
	}
	if !strings.Contains(g.log.String(), `lua timer gate panicked; the tick is skipped" panic="lease state unknown"`) {
		t.Fatalf("the panic is not logged:\n%s", g.log.String())
	}
	wantSample(t, gather(t, g.e), 1, "moonchat_script_timer_skipped_total", "script", "tick.lua", "event", "timer")
	g.lease.Store(true)
	g.tick(t)
	if got := g.texts(); strings.Join(got, ",") != "tick 1" {
		t.Fatalf("after the panic: %q", got)
	}
}

// TestTimerNoGate: without a gate (a single node) every tick runs and
// there is no series of skipped ticks (nothing could ever move it).
func TestTimerNoGate(t *testing.T) {
	clk := newFakeClock()
	r := newRigOpts(t, Options{Clock: clk, FS: scriptFS(map[string]string{"tick.lua": `chat.every(1, function() chat.broadcast("lobby", "tick") end)`})})
	r.e.Start(t.Context())
	for n := 1; n <= 2; n++ {
		eventually(t, "the timer waiting", func() bool { return clk.Active() == 1 })
		clk.Advance(time.Second)
		eventually(t, fmt.Sprintf("tick %d", n), func() bool {
			r.host.mu.Lock()
			defer r.host.mu.Unlock()
			return len(r.host.calls) == n
		})
	}
	if _, ok := gather(t, r.e)["moonchat_script_timer_skipped_total"]; ok {
		t.Fatal("a series of skipped ticks without a gate")
	}
}
