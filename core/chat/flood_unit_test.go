package chat

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFloodTableBounded: an address nobody holds is forgotten once its
// bucket has refilled (reconnecting does not refill it sooner), one that is
// held or still refilling is kept, and a stream of new addresses keeps the
// table at about twice what is live, without a goroutine.
func TestFloodTableBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tab := newFloodTable[string](1, 2) // refills from empty in 2s
	held := tab.acquire("held", t0)
	drained := tab.acquire("drained", t0)
	for i, want := range []bool{true, true, false} {
		if drained.take(t0) != want {
			t.Fatalf("take %d at once: %v with burst 2", i+1, !want)
		}
	}
	tab.release(drained)
	// Reconnecting from the drained address finds its empty bucket.
	again := tab.acquire("drained", t0)
	if again != drained || again.take(t0) {
		t.Fatal("a new connection refilled its address's bucket")
	}
	tab.release(again)
	for i := range 1000 {
		tab.release(tab.acquire(fmt.Sprint("a", i), t0))
	}
	if n := tab.size(); n > 2*minSweep+2 {
		t.Errorf("%d buckets for 1000 idle, full addresses; want them swept", n)
	}
	// Still refilling at t0+1s: drained stays; at t0+2s it is full and goes.
	tab.release(tab.acquire("x", t0.Add(time.Second)))
	tab.sweep(t0.Add(time.Second))
	if tab.m["drained"] == nil || tab.m["held"] == nil {
		t.Fatal("a bucket still refilling or held was swept")
	}
	tab.sweep(t0.Add(2 * time.Second))
	if tab.m["drained"] != nil || tab.m["held"] != held || tab.size() != 1 {
		t.Fatalf("after refill: %d buckets, drained %v", tab.size(), tab.m["drained"])
	}
	if newFloodTable[string](0, 5) != nil {
		t.Error("rate 0 made a table: no limit wanted")
	}
}

// TestBucketRefund: a refund puts back the token, never beyond the burst,
// and is nothing for an unlimited bucket.
func TestBucketRefund(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(1, 2)
	b.take(t0)
	b.take(t0)
	b.refund()
	if !b.take(t0) || b.take(t0) {
		t.Fatal("refund did not give back exactly one token")
	}
	b.refund()
	b.refund()
	b.refund()
	if b.tokens != 2 {
		t.Fatalf("tokens %v after refunds, want the burst 2", b.tokens)
	}
	off := newBucket(0, 0)
	off.refund()
	if off.tokens != 0 {
		t.Fatal("refund changed an unlimited bucket")
	}
}

// TestFloodConfig: the new settings are checked like flood_rate: a rate
// without a burst, a negative or NaN rate, strikes without a window.
func TestFloodConfig(t *testing.T) {
	for name, set := range map[string]func(*Config){
		"addr rate, no burst":      func(c *Config) { c.FloodRateAddr = 1 },
		"negative account rate":    func(c *Config) { c.FloodRateAccount, c.FloodBurstAccount = -1, 1 },
		"burst over the cap":       func(c *Config) { c.FloodRate, c.FloodBurst = 1, MaxFloodBurst+1 },
		"negative strikes":         func(c *Config) { c.FloodStrikes = -1 },
		"strikes without window":   func(c *Config) { c.FloodStrikes = 3 },
		"negative account burst":   func(c *Config) { c.FloodBurstAccount = -1 },
		"negative strike window":   func(c *Config) { c.FloodStrikes, c.FloodStrikeWindow = 3, -time.Second },
		"flood rate, no burst 2":   func(c *Config) { c.FloodRate = 2 },
		"addr rate, huge burst":    func(c *Config) { c.FloodRateAddr, c.FloodBurstAddr = 1, MaxFloodBurst+1 },
		"account rate, zero burst": func(c *Config) { c.FloodRateAccount = 1 },
	} {
		bad := testLimits(Config{})
		set(&bad)
		if _, err := bad.withDefaults(); !errors.Is(err, ErrInvalidLimits) && !strings.Contains(fmt.Sprint(err), "strike") {
			t.Errorf("%s: withDefaults = %v, want a refusal", name, err)
		}
	}
	ok := testLimits(Config{FloodRate: 10, FloodBurst: 20, FloodRateAddr: 50, FloodBurstAddr: 100,
		FloodRateAccount: 10, FloodBurstAccount: 20, FloodStrikes: 50, FloodStrikeWindow: 10 * time.Second})
	if _, err := ok.withDefaults(); err != nil {
		t.Fatalf("the shipped settings refused: %v", err)
	}
}

// BenchmarkFloodSpend is the flood limits' cost per message (the time is
// the message's own, read anyway: not measured here): a
// connection's own bucket only (what there was before the shared ones),
// and with its account's and address's buckets, one connection at a time
// and with every goroutine's connections sharing one address and account
// (the worst contention: 50 tabs of one user flooding at once).
func BenchmarkFloodSpend(b *testing.B) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		parallel bool
	}{
		{"connection", Config{FloodRate: 1e9, FloodBurst: MaxFloodBurst}, false},
		{"shared", Config{FloodRate: 1e9, FloodBurst: MaxFloodBurst, FloodRateAddr: 1e9, FloodBurstAddr: MaxFloodBurst, FloodRateAccount: 1e9, FloodBurstAccount: MaxFloodBurst}, false},
		{"shared-parallel", Config{FloodRate: 1e9, FloodBurst: MaxFloodBurst, FloodRateAddr: 1e9, FloodBurstAddr: MaxFloodBurst, FloodRateAccount: 1e9, FloodBurstAccount: MaxFloodBurst}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := &Server{cfg: tc.cfg,
				floodAddrs:    newFloodTable[netip.Prefix](tc.cfg.FloodRateAddr, tc.cfg.FloodBurstAddr),
				floodAccounts: newFloodTable[string](tc.cfg.FloodRateAccount, tc.cfg.FloodBurstAccount)}
			addr := netip.MustParsePrefix("192.0.2.1/32")
			var refused atomic.Int64
			newMember := func() *member {
				m := &member{account: "u-alice"}
				m.flood.addrKey = addr
				m.flood.bucket = newBucket(tc.cfg.FloodRate, tc.cfg.FloodBurst)
				s.floodOpen(m)
				return m
			}
			b.ReportAllocs()
			if !tc.parallel {
				m, now := newMember(), time.Now()
				for b.Loop() {
					now = now.Add(time.Microsecond)
					if s.spend(m, now) != floodOK {
						refused.Add(1)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					m, now := newMember(), time.Now()
					for pb.Next() {
						now = now.Add(time.Microsecond)
						if s.spend(m, now) != floodOK {
							refused.Add(1)
						}
					}
				})
			}
			if refused.Load() != 0 {
				b.Fatalf("%d refused: the limits are meant to be out of reach", refused.Load())
			}
		})
	}
}
