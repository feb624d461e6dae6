package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// BenchmarkApply measures log records applied per second (with fsync) by
// one consumer, as cluster mode runs it: one record at a time, each
// durable before the next. batch is the messages per record (1: a quiet
// room's record; 32: a busy room's run); msgs/s counts messages.
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := openTemp(b, Options{Replica: true})
			last := map[string]uint64{}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				room := fmt.Sprint("room", i%8)
				msgs := make([]chat.Message, batch)
				for j := range msgs {
					last[room]++
					msgs[j] = chat.Message{ID: last[room], Room: room, User: "sender", Text: "a typical short chat message", Time: replicaT0}
				}
				if err := db.Apply(uint64(i+1), room, msgs, 0); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "msgs/s")
		})
	}
}
