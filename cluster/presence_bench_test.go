package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// BenchmarkClaimRelease measures one member's join and leave as the chat
// server makes them, one at a time: Claim of a name with two keys (a
// name and its look-alike form), then Release, on one NATS server in
// this process (loopback, R1).
//
//	go test -run '^$' -bench BenchmarkClaimRelease -benchtime 2000x ./cluster
func BenchmarkClaimRelease(b *testing.B) {
	ns := startNATS(b, nil)
	p := openPresence(b, openNode(b, ns.url(), "a"), PresenceConfig{})
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		name := "user" + strconv.Itoa(i)
		if err := p.Claim(ctx, "lobby", entry(uint64(i+1), name, name, name+"~")); err != nil {
			b.Fatal(err)
		}
		if err := p.Release(ctx, "lobby", uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoster measures the roster at scale: n members claimed by one
// node (8 goroutines, as many members join at once), then another node's
// Watch handing all of them over from the start, then the purge of the
// first node once it is counted dead (RemoteLeft for each on the
// watcher). It reports each phase's time. 100,000 is the scale run's
// room (there spread over 6 nodes: each node watches all of it, and
// purges a sixth when a node dies).
//
//	go test -run '^$' -bench BenchmarkRoster -benchtime 1x ./cluster
func BenchmarkRoster(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				rosterAtScale(b, n)
			}
		})
	}
}

// rosterAtScale is one whole scenario: the timer runs through it, so that
// one iteration (seconds) is past any -benchtime make bench gives (with
// the timer stopped the framework kept raising b.N and never ended).
func rosterAtScale(b *testing.B, n int) {
	ns := startNATS(b, nil)
	la := openNode(b, ns.url(), "a")
	a := openPresence(b, la, testPresence)
	pb := openPresence(b, openNode(b, ns.url(), "b"), testPresence)
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				name := fmt.Sprintf("member-%d", i)
				if err := a.Claim(ctx, "big", entry(uint64(i+1), name, name)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	claimed := time.Since(start)

	joined, left := make(chan struct{}, n), make(chan struct{}, n)
	counter := &countApplier{joined: joined, left: left}
	start = time.Now()
	run(b, func(ctx context.Context) error { return pb.Watch(ctx, counter) })
	for range n {
		<-joined
	}
	watched := time.Since(start)

	run(b, pb.Run)
	la.Close() // a is gone: b purges it after DeadAfter
	start = time.Now()
	for range n {
		<-left
	}
	purged := time.Since(start) - testPresence.DeadAfter
	b.ReportMetric(claimed.Seconds(), "claim-s")
	b.ReportMetric(watched.Seconds(), "watch-s")
	b.ReportMetric(purged.Seconds(), "purge-s")
}

// countApplier signals each call.
type countApplier struct{ joined, left chan struct{} }

func (c *countApplier) RemoteJoined(string, chat.PresenceEntry) { c.joined <- struct{}{} }
func (c *countApplier) RemoteLeft(string, string, uint64)       { c.left <- struct{}{} }
