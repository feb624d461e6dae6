package store

import (
	"context"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatherStore registers db alone in a pedantic registry (which checks that
// Collect sends exactly what Describe announced, with valid names and
// help) and returns each counter's value by name.
func gatherStore(t *testing.T, db *DB) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(db); err != nil {
		t.Fatalf("register: %v", err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := make(map[string]float64)
	for _, f := range fams {
		if f.GetType() != dto.MetricType_COUNTER || len(f.GetMetric()) != 1 {
			t.Errorf("%s: type %v with %d samples, want one counter", f.GetName(), f.GetType(), len(f.GetMetric()))
			continue
		}
		got[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue()
	}
	return got
}

// The store's series count what happened: one commit per grouped Append,
// no corrupt records in a sound file.
func TestCollectorCounts(t *testing.T) {
	db := openTemp(t, Options{})
	before := gatherStore(t, db)
	if len(before) != 2 || before["moonchat_store_corrupt_records_total"] != 0 {
		t.Fatalf("series %v, want moonchat_store_corrupt_records_total and moonchat_store_commits_total", before)
	}
	for i := range 3 {
		if err := db.Append(context.Background(), []*chat.Message{{Room: "r", User: "u", Text: "m"}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	after := gatherStore(t, db)
	if n := after["moonchat_store_commits_total"] - before["moonchat_store_commits_total"]; n != 3 {
		t.Errorf("three sequential appends counted %v commits, want 3", n)
	}
	if after["moonchat_store_commits_total"] != float64(db.Stats().Commits) {
		t.Errorf("commits series %v, Stats %d", after["moonchat_store_commits_total"], db.Stats().Commits)
	}
}
