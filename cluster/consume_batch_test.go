package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// waitReceived waits, inside an apply call, until l's reader has decoded
// at least n records (so that those beyond the batch are queued); an
// error after 10 s.
func waitReceived(l *Log, n uint64) error {
	deadline := time.Now().Add(10 * time.Second)
	for l.received.Load() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("the reader decoded %d records within 10s, want %d", l.received.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// TestConsumeBatch (issue 15): ConsumeBatch hands over the records queued
// up while apply ran, in the stream's order, at most BatchMaxEntries at
// a time; every record once, each room's ids in order, Applied the last
// one's; it ends with ctx.
func TestConsumeBatch(t *testing.T) {
	ns := startNATS(t, nil)
	pub := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	const n = 300
	rooms := []string{"a", "b", "c"}
	for i := range n {
		if err := pub.Publish(ctx, rooms[i%3], msgs("u", fmt.Sprint("m", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	node := openLog(t, testConfig(ns.url()))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var batches [][]Entry
	err := node.ConsumeBatch(cctx, 0, func(es []Entry) error {
		batches = append(batches, slices.Clone(es))
		if len(batches) == 1 {
			// Let the reader queue more than a batch's worth before the
			// next one is taken.
			if err := waitReceived(node, uint64(len(es))+BatchMaxEntries+1); err != nil {
				return err
			}
		}
		if es[len(es)-1].Seq == n {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ConsumeBatch = %v, want context.Canceled", err)
	}
	if len(batches) < 2 || len(batches[1]) != BatchMaxEntries {
		t.Fatalf("%d batches, the second of %d entries: want %d (as many were queued)", len(batches), len(batches[1]), BatchMaxEntries)
	}
	last := map[string]uint64{}
	seq := uint64(0)
	for _, b := range batches {
		if len(b) == 0 || len(b) > BatchMaxEntries {
			t.Fatalf("a batch of %d entries", len(b))
		}
		for _, e := range b {
			seq++
			if e.Seq != seq || len(e.Msgs) != 1 || e.Msgs[0].ID != last[e.Key]+1 || e.Key != rooms[(seq-1)%3] {
				t.Fatalf("entry %d: %+v (room's last id %d)", seq, e, last[e.Key])
			}
			last[e.Key] = e.Msgs[0].ID
		}
	}
	if seq != n || node.Applied() != n {
		t.Fatalf("%d entries, Applied %d, want %d", seq, node.Applied(), n)
	}
}

// TestConsumeBatchBytes (issue 15): a batch holds at most BatchMaxBytes
// of records: with records of about 300 kB queued, a batch takes three.
func TestConsumeBatchBytes(t *testing.T) {
	ns := startNATS(t, nil)
	pub := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	const n = 8
	for i := range n {
		m := msgs("u", "big", 1)
		m[0].Text = fmt.Sprint(i, strings.Repeat("x", 300_000))
		if err := pub.Publish(ctx, "r", m); err != nil {
			t.Fatal(err)
		}
	}
	node := openLog(t, testConfig(ns.url()))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sizes []int
	err := node.ConsumeBatch(cctx, 0, func(es []Entry) error {
		sizes = append(sizes, len(es))
		if len(sizes) == 1 {
			if err := waitReceived(node, uint64(len(es))+4); err != nil {
				return err
			}
		}
		if es[len(es)-1].Seq == n {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ConsumeBatch = %v, want context.Canceled", err)
	}
	if len(sizes) < 2 || sizes[1] != 3 || slices.Max(sizes) > 3 {
		t.Fatalf("batch sizes %v: want at most 3 records of 300 kB (BatchMaxBytes %d), the second batch 3", sizes, BatchMaxBytes)
	}
}

// TestConsumeBatchError (issue 15): apply's error ends ConsumeBatch with
// that error, and Applied counts no entry of the refused batch, so that
// the next ConsumeBatch from Applied hands the same records again.
func TestConsumeBatchError(t *testing.T) {
	ns := startNATS(t, nil)
	pub := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	for i := range 6 {
		if err := pub.Publish(ctx, "r", msgs("u", fmt.Sprint("m", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	node := openLog(t, testConfig(ns.url()))
	refused := errors.New("disk full")
	var first []uint64
	err := node.ConsumeBatch(ctx, 0, func(es []Entry) error {
		for _, e := range es {
			if e.Seq == 4 {
				first = nil
				for _, f := range es {
					first = append(first, f.Seq)
				}
				return refused
			}
		}
		return nil
	})
	if !errors.Is(err, refused) {
		t.Fatalf("ConsumeBatch = %v, want apply's error", err)
	}
	if len(first) == 0 {
		t.Fatal("no batch held record 4")
	}
	if a := node.Applied(); a != first[0]-1 {
		t.Fatalf("Applied %d after a refused batch %v", a, first)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var again []uint64
	err = node.ConsumeBatch(cctx, node.Applied(), func(es []Entry) error {
		for _, e := range es {
			again = append(again, e.Seq)
		}
		if again[len(again)-1] == 6 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("second ConsumeBatch = %v", err)
	}
	if !slices.Equal(again, seqRange(first[0], 6)) {
		t.Fatalf("after the refusal: %v, want %v", again, seqRange(first[0], 6))
	}
}

// TestConsumeBatchCorrupt (issue 15): a record that does not decode ends
// ConsumeBatch with ErrCorrupt once the records before it are applied;
// none after it is.
func TestConsumeBatchCorrupt(t *testing.T) {
	ns := startNATS(t, nil)
	pub := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	for i := range 3 {
		if err := pub.Publish(ctx, "r", msgs("u", fmt.Sprint("m", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	subj, err := subjectFor(pub.cfg.Stream, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.js.Publish(ctx, subj, []byte("not a record")); err != nil {
		t.Fatal(err)
	}
	node := openLog(t, testConfig(ns.url()))
	var got []uint64
	err = node.ConsumeBatch(ctx, 0, func(es []Entry) error {
		for _, e := range es {
			got = append(got, e.Seq)
		}
		return nil
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ConsumeBatch = %v, want ErrCorrupt", err)
	}
	if !slices.Equal(got, []uint64{1, 2, 3}) || node.Applied() != 3 {
		t.Fatalf("applied %v (Applied %d), want 1 2 3", got, node.Applied())
	}
}

// TestConsumeBatchCancel (issue 15): once ctx ends, ConsumeBatch applies
// none of the records its reader has queued: it returns at once.
func TestConsumeBatchCancel(t *testing.T) {
	ns := startNATS(t, nil)
	pub := openLog(t, testConfig(ns.url()))
	ctx := context.Background()
	for i := range BatchMaxEntries + 20 { // more than a batch: some stay queued
		if err := pub.Publish(ctx, "r", msgs("u", fmt.Sprint("m", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	node := openLog(t, testConfig(ns.url()))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	calls := 0
	var applied uint64
	err := node.ConsumeBatch(cctx, 0, func(es []Entry) error {
		calls++
		if calls > 1 {
			t.Errorf("apply called again after ctx ended (records %d to %d)", es[0].Seq, es[len(es)-1].Seq)
			return nil
		}
		applied = es[len(es)-1].Seq
		if err := waitReceived(node, uint64(len(es))+1); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 || node.Applied() != applied {
		t.Fatalf("ConsumeBatch = %v after %d calls, Applied %d (want %d)", err, calls, node.Applied(), applied)
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}
