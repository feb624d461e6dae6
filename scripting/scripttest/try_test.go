package scripttest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// TestTry: a candidate replaces the current script of its name and runs
// beside the others; a message it would rewrite, drop, answer or act on is
// reported with what it did — the kick, the broadcast and the kv write
// recorded, the sender still there for their next message — and an
// untouched message is not; the tests (*_test.lua) of the current
// scripts are not loaded.
func TestTry(t *testing.T) {
	current := fstest.MapFS{
		"upper.lua":       {Data: []byte(`chat.on("message", function(m) if m.text == "shout" then return "SHOUT" end end)`)},
		"filter.lua":      {Data: []byte(`chat.on("message", function(m) return false, "old filter drops everything" end)`)},
		"filter_test.lua": {Data: []byte(`error("a test is never loaded as a script")`)},
	}
	cand := map[string][]byte{"filter.lua": []byte(`
chat.on("message", function(m)
  if m.text == "spam" then
    chat.kv.set("last", m.user.name)
    chat.broadcast(m.room, m.user.name .. " was warned")
    chat.kick(m.user, "spam")
    return false, "no spam"
  end
  if m.text == "ping" then chat.send(m.user, "pong") end
end)`)}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	msgs := []chat.Message{
		{ID: 1, Room: "lobby", User: "bob", Text: "spam", Time: t0},
		{ID: 2, Room: "lobby", User: "bob", Text: "shout", Time: t0.Add(time.Second)},
		{ID: 3, Room: "lobby", User: "carol", Text: "ping", Time: t0.Add(2 * time.Second), Account: &chat.Account{ID: "acc-c"}},
		{ID: 4, Room: "lobby", User: "carol", Text: "nothing to see", Time: t0.Add(3 * time.Second)},
	}
	rep, err := Try(context.Background(), TryConfig{Current: current, Candidates: cand}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Scripts, []string{"filter.lua", "upper.lua"}) || !slices.Equal(rep.Candidates, []string{"filter.lua"}) {
		t.Errorf("scripts %v, candidates %v", rep.Scripts, rep.Candidates)
	}
	if rep.Messages != 4 || rep.Dropped != 1 || rep.Rewritten != 1 || rep.Answered != 1 || rep.Failed != 0 || len(rep.Changes) != 3 {
		t.Fatalf("report %+v", rep)
	}
	spam := rep.Changes[0]
	if spam.Outcome != "dropped" || spam.Reason != "no spam" ||
		!slices.Equal(spam.Effects, []string{"kv filter.lua last = bob", "broadcast lobby: * bob was warned", "kick bob: spam", "broadcast lobby: * bob left"}) {
		t.Errorf("spam: %+v", spam)
	}
	if c := rep.Changes[1]; c.ID != 2 || c.Outcome != "rewritten" || c.After != "SHOUT" || len(c.Effects) != 0 {
		t.Errorf("shout (bob back after the kick): %+v", c)
	}
	if c := rep.Changes[2]; c.ID != 3 || c.Outcome != "kept" || !slices.Equal(c.Answers, []string{"pong"}) {
		t.Errorf("ping: %+v", c)
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 {
		t.Errorf("p50 %v p99 %v", rep.P50, rep.P99)
	}
}

// TestTryScriptError: a candidate that does not load is an error naming
// its file and line; one that fails on a message reports it as failed,
// with the error.
func TestTryScriptError(t *testing.T) {
	_, err := Try(context.Background(), TryConfig{Candidates: map[string][]byte{"bad.lua": []byte("chat.on(\"message\",")}}, nil)
	if err == nil || !strings.Contains(err.Error(), "bad.lua:") {
		t.Errorf("a script that does not compile: %v", err)
	}
	rep, err := Try(context.Background(), TryConfig{Candidates: map[string][]byte{"bad.lua": []byte(`chat.on("message", function(m) error("no") end)`)}},
		[]chat.Message{{ID: 1, Room: "r", User: "u", Text: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 1 || len(rep.Changes) != 1 || rep.Changes[0].Outcome != "failed" || len(rep.Changes[0].Errors) != 1 ||
		!strings.Contains(rep.Changes[0].Errors[0], "bad.lua:1: no") {
		t.Errorf("report %+v", rep)
	}
}

// TestTryRules: the room rules decide chat.may in a dry run as on the
// server: an account (role "user") moderates where the rule says so, a
// guest does not.
func TestTryRules(t *testing.T) {
	rule := chat.DefaultRoomRule("*")
	rule.Moderate = []string{chat.RoleUser}
	rules, err := chat.NewRoomRules([]chat.RoomRule{rule})
	if err != nil {
		t.Fatal(err)
	}
	cand := map[string][]byte{"may.lua": []byte(`chat.on("message", function(m)
  chat.send(m.user, tostring(chat.may(m.user, "moderate")))
end)`)}
	msgs := []chat.Message{
		{ID: 1, Room: "lobby", User: "acc", Text: "a", Account: &chat.Account{ID: "acc-1"}},
		{ID: 2, Room: "lobby", User: "guest", Text: "b"},
	}
	rep, err := Try(context.Background(), TryConfig{Candidates: cand, Rules: rules}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != 2 || !slices.Equal(rep.Changes[0].Answers, []string{"true"}) || !slices.Equal(rep.Changes[1].Answers, []string{"false"}) {
		t.Errorf("changes %+v", rep.Changes)
	}
}
