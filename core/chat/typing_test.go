package chat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// typingEvery is the documented least interval between two relayed
// typing events of one member.
const typingEvery = 2 * time.Second

// nextLive reads c's events until one that is not a system notice,
// presence or the join's history (joins, leaves and moderation notices
// interleave) and returns it.
func nextLive(t *testing.T, c *chattest.Client) chattest.Event {
	t.Helper()
	for {
		if e := c.ReadEvent(); e.Str("type") != "system" && e.Str("type") != "presence" && e.Str("type") != "history" {
			return e
		}
	}
}

// A typing event of a moonchat.v1 client is relayed to the room's other
// moonchat.v1 members as {"type":"typing","room","name"}: not back to the
// sender, never to plain-text members, never stored; at most one per
// member per 2 s (the fake clock's), the excess dropped without an error
// or a flood strike; a muted member's is not relayed. Each "not relayed"
// is shown by ordering: the sender's next chat message (or, muted, its
// next typing after the lift) is what the others get next.
func TestTyping(t *testing.T) {
	hist := chattest.NewHistory()
	clock := &chattest.Clock{}
	ts := modServer(t, hist, clock, nil)
	alice := ts.Dial(t, "/chat/lobby?name=alice", chat.SubprotocolJSON)
	alice.ExpectEvent("welcome")
	bob := ts.Dial(t, "/chat/lobby?name=bob", chat.SubprotocolJSON)
	bob.ExpectEvent("welcome")
	pat := ts.Dial(t, "/chat/lobby?name=pat", "")
	pat.SkipUntil("* pat joined")
	inRoom(t, ts, "lobby", "pat")

	// One relayed; 50 more within the interval dropped silently (the
	// flood limits would refuse and strike 50 messages).
	for range 51 {
		alice.SendJSON(map[string]string{"type": "typing"})
	}
	alice.SendJSON(map[string]string{"type": "message", "text": "first"})
	if e := nextLive(t, bob); e.Str("type") != "typing" || e.Str("room") != "lobby" || e.Str("name") != "alice" || len(e) != 3 {
		t.Fatalf("bob got %v, want alice's typing", e)
	}
	if e := nextLive(t, bob); e.Str("type") != "message" || e.Str("text") != "first" {
		t.Fatalf("bob got %v, want the message (one typing relayed per 2 s)", e)
	}
	if e := nextLive(t, alice); e.Str("type") != "message" || e.Str("text") != "first" {
		t.Fatalf("alice got %v, want her message (no typing echo, no flood error)", e)
	}
	for {
		line := pat.Read()
		if strings.Contains(line, "typing") {
			t.Fatalf("plain client got %q", line)
		}
		if strings.Contains(line, "first") {
			break
		}
	}

	// After the interval the next one is relayed.
	clock.Advance(1999 * time.Millisecond)
	alice.SendJSON(map[string]string{"type": "typing"})
	clock.Advance(time.Millisecond)
	alice.SendJSON(map[string]string{"type": "typing"})
	alice.SendJSON(map[string]string{"type": "message", "text": "second"})
	if e := nextLive(t, bob); e.Str("type") != "typing" || e.Str("name") != "alice" {
		t.Fatalf("bob got %v, want alice's typing", e)
	}
	if e := nextLive(t, bob); e.Str("text") != "second" {
		t.Fatalf("bob got %v, want the message", e)
	}

	// Muted: not relayed. alice's presence request is answered after her
	// typing was handled; the mute is lifted only then.
	if err := ts.Chat.Restrict(chat.KindMute, "lobby", chat.Target{Name: "alice"}, 0, "", "mod"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	alice.SendJSON(map[string]string{"type": "typing"})
	alice.SendJSON(map[string]string{"type": "presence"})
	nextOf(t, alice, "presence")
	if ok, err := ts.Chat.Lift(chat.KindMute, "lobby", chat.Target{Name: "alice"}, "mod"); !ok || err != nil {
		t.Fatalf("lift: %v %v", ok, err)
	}
	clock.Advance(typingEvery) // a relayed muted one would not hold this one back
	alice.SendJSON(map[string]string{"type": "typing"})
	alice.SendJSON(map[string]string{"type": "message", "text": "third"})
	if e := nextLive(t, bob); e.Str("type") != "typing" {
		t.Fatalf("bob got %v, want alice's typing", e)
	}
	if e := nextLive(t, bob); e.Str("text") != "third" {
		t.Fatalf("bob got %v, want the message (a muted member's typing is not relayed)", e)
	}

	if msgs := hist.All("lobby"); len(msgs) != 3 {
		t.Errorf("stored %d messages, want the 3 chat messages only: %+v", len(msgs), msgs)
	}
}
