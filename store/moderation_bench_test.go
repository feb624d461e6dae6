package store

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moonchat/moonchat/core/chat"
)

// benchModerationEntries is how many restrictions and audit entries the
// moderation benchmarks start from.
const benchModerationEntries = 100_000

// fillModeration writes n restrictions (bans of accounts "u-0".."u-(n-1)")
// and n audit entries one second apart from t0, one in 100 in room "rare"
// and the others in "lobby", in big transactions through applyMod (the
// committer's own code) without fsync.
func fillModeration(b *testing.B, db *DB, n int, t0 time.Time) {
	b.Helper()
	const chunk = 10_000
	for start := 0; start < n; start += chunk {
		err := db.update(func(tx *bolt.Tx) error {
			for i := start; i < min(start+chunk, n); i++ {
				r := chat.Restriction{Kind: chat.KindBan, Target: chat.Target{Account: fmt.Sprint("u-", i)}, Created: t0, By: "admin", Reason: "spam"}
				key, err := restrictionKey(r.Kind, r.Room, r.Target)
				if err != nil {
					return err
				}
				if err := applyMod(tx, &modOp{bucket: bucketRestrictions, key: key, value: encodeRestriction(key, &r, t0.UnixNano(), 0)}); err != nil {
					return err
				}
				room := "lobby"
				if i%100 == 0 {
					room = "rare"
				}
				e := chat.AuditEntry{Time: t0.Add(time.Duration(i) * time.Second).UTC(), Room: room, By: "mod (u-1)", Action: "ban", Target: fmt.Sprint("u-", i), Reason: "spam"}
				if err := applyMod(tx, &modOp{bucket: bucketAudit, audit: &e}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutRestriction measures one PutRestriction (replacing one of
// 100,000 stored restrictions) with fsync, as the chat server makes it,
// and without fsync (the store's own cost).
func BenchmarkPutRestriction(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			db := openTemp(b, Options{NoSync: noSync})
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			fillModeration(b, db, benchModerationEntries, t0)
			i := 0
			for b.Loop() {
				r := chat.Restriction{Kind: chat.KindBan, Target: chat.Target{Account: fmt.Sprint("u-", i*7919%benchModerationEntries)},
					Created: t0, Expires: t0.Add(time.Hour), By: "mod (u-1)", Reason: "again"}
				if err := db.PutRestriction(r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkAudit measures Audit over a log of 100,000 entries: the newest
// page of every room, of a busy room, of a room with one entry in 100
// (walks 5,000 entries for a page of 50), a page since a recent time, and
// the worst case: a room with no entry at all (scans the whole log).
func BenchmarkAudit(b *testing.B) {
	db := openTemp(b, Options{NoSync: true})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fillModeration(b, db, benchModerationEntries, t0)
	last := t0.Add((benchModerationEntries - 1) * time.Second)
	for _, tc := range []struct {
		name  string
		room  string
		since time.Time
		want  int
	}{
		{"all/newest50", "", time.Time{}, 50},
		{"busy/newest50", "lobby", time.Time{}, 50},
		{"rare/newest50", "rare", time.Time{}, 50},
		{"rare/since1000s", "rare", last.Add(-999 * time.Second), 10},
		{"none/fullscan", "nowhere", time.Time{}, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				got, err := db.Audit(tc.room, tc.since, 50)
				if err != nil || len(got) != tc.want {
					b.Fatalf("Audit = %d entries, %v; want %d", len(got), err, tc.want)
				}
			}
		})
	}
}
