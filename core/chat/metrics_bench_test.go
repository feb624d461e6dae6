package chat

import (
	"log/slog"
	"testing"
	"time"
)

// BenchmarkMetricsMessagePath is the metric work the message path does for
// one chat message in a batch of one delivered to 100 members: the counters
// bumped on arrival and delivery and the three histograms observed per
// batch (batch size, broadcast time, message delay) plus the message hook's
// duration. RunParallel, because connection goroutines and room goroutines
// update the same series at once.
func BenchmarkMetricsMessagePath(b *testing.B) {
	m, err := newMetrics(gauges{}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.messagesIn.Add(1)
			m.hookMessage.observeSince(start)
			m.batchSize.observe(1)
			m.messagesOut.Add(100)
			m.framesOut.Add(100)
			m.broadcastTime.observe(0.0004)
			m.messageDelay.observe(0.0007)
		}
	})
}
