package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// BenchmarkAppend measures messages committed per second (with fsync) by
// 1, 10 and 100 concurrent senders, through the group committer
// ("grouped") and with one transaction per message ("ungrouped": each
// sender commits its own message, serialised by bbolt's writer lock).
// Compare msgs/s of the two for the grouping ratio; commits/msg shows how
// many messages shared each fsync.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"grouped", "ungrouped"} {
		for _, senders := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/senders=%d", mode, senders), func(b *testing.B) {
				db := openTemp(b, Options{})
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for s := range senders {
					wg.Go(func() {
						room := fmt.Sprint("room", s%8)
						for next.Add(1) <= int64(b.N) {
							m := &chat.Message{Room: room, User: "sender", Text: "a typical short chat message"}
							var err error
							if mode == "grouped" {
								err = db.Append(context.Background(), []*chat.Message{m})
							} else {
								m.Time = time.Now()
								err = db.commit([]*request{{msgs: []chat.Message{*m}}})
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				b.ReportMetric(float64(db.Stats().Commits)/float64(b.N), "commits/msg")
			})
		}
	}
}

// The 1,000,000-message fixture, built at most once per test binary run
// (big transactions, NoSync) and removed by TestMain.
const fixtureMessages = 1_000_000

var fixture struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func fixturePath(b *testing.B) string {
	fixture.once.Do(func() {
		start := time.Now()
		fixture.dir, fixture.err = os.MkdirTemp("", "moonchat-store-bench-")
		if fixture.err != nil {
			return
		}
		fixture.path = filepath.Join(fixture.dir, "moonchat.db")
		db, err := Open(fixture.path, Options{NoSync: true})
		if err != nil {
			fixture.err = err
			return
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		const batch = 50_000
		for done := 0; done < fixtureMessages && fixture.err == nil; done += batch {
			msgs := make([]*chat.Message, batch)
			for i := range msgs {
				n := done + i + 1
				user := fmt.Sprint("user", n%50)
				if n%100 == 0 {
					user = "rare"
				}
				text := fmt.Sprintf("message number %d with some ordinary chat text", n)
				if n%1000 == 0 {
					text += " needle"
				}
				msgs[i] = &chat.Message{Room: "big", User: user, Text: text, Time: t0.Add(time.Duration(n) * time.Second)}
			}
			fixture.err = db.Append(context.Background(), msgs)
		}
		if err := db.Close(); fixture.err == nil {
			fixture.err = err
		}
		fmt.Fprintf(os.Stderr, "built the %d-message fixture in %v\n", fixtureMessages, time.Since(start).Round(time.Millisecond))
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	return fixture.path
}

func removeFixture() {
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
}

// BenchmarkHistory1M measures history reads on a room of 1,000,000
// messages: join replay (Recent 50), paging back (Before 50 at a random
// ID), resume (After 50 at a random ID), filtered queries and Rooms.
func BenchmarkHistory1M(b *testing.B) {
	path := fixturePath(b)
	db, err := OpenReadOnly(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	randomID := func() uint64 { return 51 + rng.Uint64N(fixtureMessages-100) }
	for _, bc := range []struct {
		name string
		run  func() (int, error)
	}{
		{"Recent50", func() (int, error) { m, err := db.Recent("big", 50); return len(m), err }},
		{"Before50", func() (int, error) { m, err := db.Before("big", randomID(), 50); return len(m), err }},
		{"After50", func() (int, error) { m, _, _, err := db.After("big", randomID(), 50); return len(m), err }},
		{"QueryUser50", func() (int, error) { // 1 in 100 messages match
			m, _, err := db.Query(Query{Room: "big", User: "rare", Before: randomID() + 5000, Limit: 50})
			return len(m), err
		}},
		{"QueryGrep10", func() (int, error) { // 1 in 1000 messages match
			m, _, err := db.Query(Query{Room: "big", Grep: "needle", Before: randomID() + 10000, Limit: 10})
			return len(m), err
		}},
		{"QueryNoMatchFullScan", func() (int, error) { // worst case: reads all 1M records
			m, _, err := db.Query(Query{Room: "big", User: "nobody", Limit: 10})
			return len(m) + 1, err
		}},
		{"Rooms", func() (int, error) { r, err := db.Rooms(); return len(r), err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				n, err := bc.run()
				if err != nil || n == 0 {
					b.Fatalf("%d results, %v", n, err)
				}
			}
		})
	}
}
