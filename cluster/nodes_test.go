package cluster

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestGatherNodes: every node serving its status answers one gathering,
// the asker included; a closed node does not.
func TestGatherNodes(t *testing.T) {
	n := startNATS(t, nil)
	a := openLog(t, testConfig(n.url()))
	b := openLog(t, testConfig(n.url()))
	c := openLog(t, testConfig(n.url()))
	for name, l := range map[string]*Log{"a": a, "b": b, "c": c} {
		if err := l.ServeNodes(func() []byte { return []byte(name) }); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	got, err := a.GatherNodes(context.Background(), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, string(g))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("answers %q, want a and b", names)
	}
	if _, err := c.GatherNodes(context.Background(), time.Second); err == nil {
		t.Error("a closed Log gathered")
	}
}
