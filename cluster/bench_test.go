package cluster

import (
	"context"
	"slices"
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
