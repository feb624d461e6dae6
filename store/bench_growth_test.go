package store

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// BenchmarkAppendGrowing measures commits into a file that grows from
// empty (so bbolt grows its mapping and the file many times on the way)
// while readers replay history: a remap waits for open read transactions,
// and the commit that needs it waits too. 100 senders append b.N messages
// of 200 bytes; 2 readers call Recent(50) about every millisecond. It
// reports msgs/s and the final file size.
func BenchmarkAppendGrowing(b *testing.B) {
	path := tempPath(b)
	db := openAt(b, path, Options{})
	text := string(make([]byte, 200))
	var next atomic.Int64
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Recent("room0", 50); err != nil {
					b.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // a join every millisecond or so, not a spin

			}
		})
	}
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for s := range 100 {
		wg.Go(func() {
			room := fmt.Sprint("room", s%8)
			for next.Add(1) <= int64(b.N) {
				m := &chat.Message{Room: room, User: "sender", Text: text}
				if err := db.Append(context.Background(), []*chat.Message{m}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	readers.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if info, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(info.Size())/(1<<20), "file-MiB")
	}
}
