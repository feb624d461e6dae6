package chat

import (
	"testing"
	"time"
)

// TestOwnRecordBounded: a guest connection's record of its own messages
// keeps at most ownMax, the newest, and forgets those older than the
// window as it adds.
func TestOwnRecordBounded(t *testing.T) {
	var o ownRecord
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const window = 15 * time.Minute
	for i := range uint64(ownMax + 10) {
		o.add(i+1, t0, t0, window)
	}
	if len(o.msgs) != ownMax {
		t.Fatalf("%d recorded, want at most %d", len(o.msgs), ownMax)
	}
	if _, ok := o.find(10); ok {
		t.Error("message 10 (beyond the newest ownMax) still recorded")
	}
	if at, ok := o.find(ownMax + 10); !ok || !at.Equal(t0) {
		t.Errorf("newest: %v %v", at, ok)
	}
	later := t0.Add(window + time.Second)
	o.add(1000, later, later, window)
	if len(o.msgs) != 1 || o.msgs[0].id != 1000 {
		t.Errorf("after the window: %+v, want only 1000", o.msgs)
	}
}
