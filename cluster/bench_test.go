package cluster

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats-server/v2/server"
)

// BenchmarkPublish measures Publish of one one-message batch, waited for
// one at a time (what a room's goroutine does), on loopback with the
// servers in this process and their stores in the test's temporary
// directory: R1 is one server, R3 a three-server cluster; "sync-always"
// is the servers' sync_interval: always (fsync before the acknowledgement)
// instead of the default 2 minutes. It reports the latency's p50 and p99.
//
//	go test -run '^$' -bench BenchmarkPublish -benchtime 2000x ./cluster
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name     string
		replicas int
		always   bool
	}{
		{"R1", 1, false},
		{"R1-sync-always", 1, true},
		{"R3", 3, false},
		{"R3-sync-always", 3, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tweak := func(o *server.Options) { o.SyncAlways = bc.always }
			var url string
			if bc.replicas == 1 {
				url = startNATS(b, tweak).url()
			} else {
				url = urls(startCluster(b, bc.replicas, tweak))
			}
			cfg := testConfig(url)
			cfg.Replicas = bc.replicas
			l := openLog(b, cfg)
			waitReplicas(b, l, bc.replicas)
			ctx := context.Background()
			// Warm up: the first publish reads the room's head.
			if err := l.Publish(ctx, "bench", []*chat.Message{{User: "u", Text: "warm-up", Time: time.Now()}}); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				m := []*chat.Message{{User: "alice", Text: "a chat message of ordinary length, about sixty bytes", Time: time.Now()}}
				start := time.Now()
				if err := l.Publish(ctx, "bench", m); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkPublishContended: three nodes publish back to back to the same
// room (R1), the worst case of the optimistic ordering. "publish-only"
// nodes learn the room's end only by reading it after a conflict (a round
// trip the winner does not pay); "consuming" nodes also run Consume, as
// every node does, and take the room's end from it when it is newer. It reports
// the latency's p50, p99 and max, the conflicts per published batch and
// the most conflicts one Publish met.
//
//	go test -run '^$' -bench BenchmarkPublishContended -benchtime 3000x ./cluster
func BenchmarkPublishContended(b *testing.B) {
	b.Run("publish-only", func(b *testing.B) { benchContended(b, false) })
	b.Run("consuming", func(b *testing.B) { benchContended(b, true) })
}

func benchContended(b *testing.B, consume bool) {
	url := startNATS(b, nil).url()
	const nodes = 3
	logs := make([]*Log, nodes)
	for i := range logs {
		cfg := testConfig(url)
		cfg.MaxAttempts = 1000 // measure how many it takes, not where it gives up
		logs[i] = openLog(b, cfg)
		if consume {
			collect(b, logs[i], 0)
		}
	}
	ctx := context.Background()
	lats := make([][]time.Duration, nodes)
	worst := make([]uint64, nodes) // most conflicts one Publish met
	var wg sync.WaitGroup
	b.ResetTimer()
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N / nodes {
				m := []*chat.Message{{User: "alice", Text: "a chat message of ordinary length, about sixty bytes", Time: time.Now()}}
				before := l.Stats().Conflicts
				start := time.Now()
				if err := l.Publish(ctx, "hot", m); err != nil {
					b.Error(err)
					return
				}
				lats[i] = append(lats[i], time.Since(start))
				worst[i] = max(worst[i], l.Stats().Conflicts-before)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	var lat []time.Duration
	var conflicts, records, most uint64
	for i, l := range logs {
		most = max(most, worst[i])
		lat = append(lat, lats[i]...)
		st := l.Stats()
		conflicts += st.Conflicts
		records += st.Records
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(conflicts)/float64(records), "conflicts/batch")
	b.ReportMetric(float64(most), "max-conflicts")
}
