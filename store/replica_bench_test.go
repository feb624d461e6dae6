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

// BenchmarkApplyBatch (issue 15) measures log records applied per second
// (with fsync) by one consumer, one message per record (a room posted to
// from several nodes: about one record per message): "apply" calls Apply
// for each record, "batch=N" hands ApplyBatch N records at a time (a
// consumer that found N queued up). One op is one record.
func BenchmarkApplyBatch(b *testing.B) {
	run := func(b *testing.B, per int) {
		db := openTemp(b, Options{Replica: true})
		last := map[string]uint64{}
		recs := make([]LogRecord, 0, max(per, 1))
		flush := func() {
			var err error
			if per == 0 {
				err = db.Apply(recs[0].Seq, recs[0].Key, recs[0].Msgs, 0)
			} else {
				err = db.ApplyBatch(recs)
			}
			if err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			room := fmt.Sprint("room", i%8)
			last[room]++
			msgs := []chat.Message{{ID: last[room], Room: room, User: "sender", Text: "a typical short chat message", Time: replicaT0}}
			recs = append(recs, LogRecord{Seq: uint64(i + 1), Key: room, Msgs: msgs})
			if len(recs) >= max(per, 1) {
				flush()
			}
		}
		if len(recs) > 0 {
			flush()
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	}
	b.Run("apply", func(b *testing.B) { run(b, 0) })
	for _, per := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", per), func(b *testing.B) { run(b, per) })
	}
}
