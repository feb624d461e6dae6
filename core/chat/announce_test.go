package chat

import (
	"testing"
)

func TestAnnounceText(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"alice"}, "alice joined"},
		{[]string{"alice", "bob"}, "alice and bob joined"},
		{[]string{"alice", "bob", "carol"}, "alice, bob and carol joined"},
		{[]string{"alice", "bob", "carol", "dave"}, "alice, bob, carol and 1 other joined"},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o"}, "a, b, c and 12 others joined"},
	}
	for _, tt := range tests {
		if got := announceText(tt.names, "joined"); got != tt.want {
			t.Errorf("announceText(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
}

func TestAnnounceConfig(t *testing.T) {
	cfg, err := testLimits(Config{}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AnnounceBatchMembers != 0 || cfg.AnnounceInterval != 0 {
		t.Fatalf("zero (never coalesce) not kept: %d %v", cfg.AnnounceBatchMembers, cfg.AnnounceInterval)
	}
	if _, err := (testLimits(Config{AnnounceBatchMembers: -1})).withDefaults(); err == nil {
		t.Fatal("negative AnnounceBatchMembers accepted")
	}
	if _, err := New(testLimits(Config{AnnounceBatchMembers: -1}), nil, nil); err == nil {
		t.Fatal("New accepted a negative AnnounceBatchMembers")
	}
}
