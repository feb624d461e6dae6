package store

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// logGen produces a deterministic cluster log: three rooms and one
// conversation, batches of 1 to 3 messages, every 11th record of a key
// jumping 3 ids (records the log dropped), every 7th a redaction of the
// key's last id but one, and log positions with holes (every 13th
// position skipped, as a stream's deleted messages leave). The parent
// (the model) and the crash child both replay it from the start.
type logGen struct {
	n    uint64
	last map[string]uint64
}

type logRecord struct {
	seq    uint64
	key    string
	msgs   []chat.Message
	redact uint64
}

var genKeys = []string{"r0", "r1", "r2", chat.ConversationKey("acc-a", "acc-b")}

func newLogGen() *logGen { return &logGen{last: map[string]uint64{}} }

func (g *logGen) next() logRecord {
	g.n++
	n := g.n
	rec := logRecord{seq: n + n/13, key: genKeys[n%uint64(len(genKeys))]}
	if n%7 == 0 && g.last[rec.key] > 1 {
		rec.redact = g.last[rec.key] - 1
		return rec
	}
	id := g.last[rec.key] + 1
	if n%11 == 0 {
		id += 3
	}
	for i := range int(n%3) + 1 {
		rec.msgs = append(rec.msgs, chat.Message{
			ID: id + uint64(i), Room: rec.key, User: "u",
			Text: fmt.Sprintf("m%d-%d", n, i), Time: replicaT0.Add(time.Duration(n) * time.Millisecond),
		})
	}
	g.last[rec.key] = id + uint64(len(rec.msgs)) - 1
	return rec
}

// logModel is what a replica holds after the log up to a position: key →
// id → text.
type logModel map[string]map[uint64]string

func (m logModel) apply(r logRecord) {
	if m[r.key] == nil {
		m[r.key] = map[uint64]string{}
	}
	for _, msg := range r.msgs {
		m[r.key][msg.ID] = msg.Text
	}
	if r.redact != 0 {
		delete(m[r.key], r.redact)
	}
}

// modelAt replays the log up to position applied.
func modelAt(applied uint64) (logModel, []logRecord) {
	g, m := newLogGen(), logModel{}
	var recs []logRecord
	for {
		r := g.next()
		if r.seq > applied {
			return m, recs
		}
		m.apply(r)
		recs = append(recs, r)
	}
}

// runApplyCrash is the STORE_HELPER=applycrash child: it opens path as a
// replica, applies the last 5 records at or below Applied again (no-ops),
// then the log from Applied on, printing "ack SEQ" after each Apply
// returns, until killed.
func runApplyCrash(path string) error {
	db, err := Open(path, Options{Replica: true})
	if err != nil {
		return err
	}
	_, done := modelAt(db.Applied())
	for _, r := range done[max(len(done)-5, 0):] {
		if err := db.Apply(r.seq, r.key, r.msgs, r.redact); err != nil {
			return fmt.Errorf("repeating record %d: %w", r.seq, err)
		}
	}
	g := newLogGen()
	deadline := time.Now().Add(crashChildLimit)
	for time.Now().Before(deadline) {
		r := g.next()
		if r.seq <= db.Applied() {
			continue
		}
		if err := db.Apply(r.seq, r.key, r.msgs, r.redact); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(os.Stdout, "ack %d\n", r.seq); err != nil {
			return err
		}
	}
	return db.Close()
}

// TestCrashLosesNoAppliedRecord SIGKILLs a child applying the log after
// 30, 300 and 1000 acknowledged records, reopening the same file each time:
// Applied is at least the last record acknowledged, the file holds exactly
// the log's effect up to Applied (every record all or nothing, redactions
// and holes included), each key's LastID is the log's, and Check passes.
// Each new child first applies its predecessor's last records again.
func TestCrashLosesNoAppliedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	path := tempPath(t)
	for _, killAt := range []int{30, 300, 1000} {
		cmd, _, out, stderr := startHelper(t, "applycrash", path)
		var last uint64
		read := func(line string) {
			if _, err := fmt.Sscanf(line, "ack %d", &last); err != nil {
				t.Fatalf("child printed %q: %v (stderr: %s)", line, err, stderr)
			}
		}
		for range killAt {
			read(readLine(t, out, 30*time.Second, stderr))
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := out.ReadString('\n')
			if err != nil {
				break // EOF: the child is dead
			}
			read(strings.TrimSuffix(line, "\n"))
		}
		if err := cmd.Wait(); err == nil {
			t.Fatalf("child exited cleanly before the kill (stderr: %s)", stderr)
		}

		db := openAt(t, path, Options{Replica: true, LockTimeout: 10 * time.Second})
		applied := db.Applied()
		if applied < last {
			t.Fatalf("kill at %d: Applied %d, but record %d was acknowledged", killAt, applied, last)
		}
		want, recs := modelAt(applied)
		if recs[len(recs)-1].seq != applied {
			t.Fatalf("Applied %d is not a log position (last record at or below it: %d)", applied, recs[len(recs)-1].seq)
		}
		g := newLogGen()
		for range recs {
			g.next() // g.last: each key's LastID after the records applied
		}
		for _, key := range genKeys {
			msgs, err := db.Recent(key, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint64]string{}
			for _, m := range msgs {
				got[m.ID] = m.Text
			}
			if !maps.Equal(got, want[key]) {
				t.Fatalf("kill at %d, Applied %d: %s holds ids %v, the log's effect is %v",
					killAt, applied, key, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want[key])))
			}
			if db.LastID(key) != g.last[key] {
				t.Errorf("%s: LastID %d, want %d", key, db.LastID(key), g.last[key])
			}
		}
		if err := db.Check(); err != nil {
			t.Errorf("Check after kill: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill after %d acks: last acknowledged %d, Applied %d, the file is the log's effect up to it", killAt, last, applied)
	}
}
