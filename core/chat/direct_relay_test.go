package chat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Guests' direct messages across nodes (issue 15, direct_relay.go), with
// chattest's PresenceHub as the cluster's roster and relay.

// relayNodes starts one server per name on a new hub, with accounts by
// ?as=ID&n=NAME and, in each node's History, "bo" owning "bob" (as the
// cluster's name owners would say on every node).
func relayNodes(t *testing.T, names ...string) (*chattest.PresenceHub, []*chattest.Server) {
	t.Helper()
	hub := chattest.NewPresenceHub()
	var srv []*chattest.Server
	for _, n := range names {
		h := chattest.NewHistory()
		if err := h.SetNameOwner("bo", "bob"); err != nil {
			t.Fatal(err)
		}
		ts, _ := chattest.StartPresence(t, hub, n, chat.Config{Authenticator: authFunc(memberAuth)}, nil, h)
		srv = append(srv, ts)
	}
	return hub, srv
}

// wantDirect reads c's next direct event and checks it.
func wantDirect(t *testing.T, c *chattest.Client, who string, id uint64, from, to, with, text string) {
	t.Helper()
	e := nextOf(t, c, "direct")
	if e.Num("id") != id || e.Str("from") != from || e.Str("to") != to || e.Str("with") != with || e.Str("text") != text {
		t.Fatalf("%s got %v, want id %v %s→%s with %s %q", who, e, id, from, to, with, text)
	}
}

// Two guests on two nodes write to each other both ways: each gets the
// other's messages and its own echo, each node numbering its own guest's
// copy; each guest lists and pages the conversation on its node; when one
// guest leaves, the other node forgets it too.
func TestRelayDirectGuests(t *testing.T) {
	hub, srv := relayNodes(t, "a", "b")
	gia := joinedJSON(t, srv[0], "/chat/lobby?name=gia")
	gus := joinedJSON(t, srv[1], "/chat/dev?name=gus")
	userOf(t, srv[0], "dev", "gus")
	userOf(t, srv[1], "lobby", "gia")

	gia.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "hi from a"})
	wantDirect(t, gus, "gus", 1, "gia", "gus", "gia", "hi from a")
	wantDirect(t, gia, "gia", 1, "gia", "gus", "gus", "hi from a")
	gus.SendJSON(map[string]string{"type": "direct", "to": "gia", "text": "hi from b"})
	wantDirect(t, gia, "gia", 2, "gus", "gia", "gus", "hi from b")
	wantDirect(t, gus, "gus", 2, "gus", "gia", "gia", "hi from b")
	if n := hub.Relayed(); n != 2 {
		t.Errorf("relayed %d messages, want 2", n)
	}

	for _, v := range []struct {
		c          *chattest.Client
		with, from string
	}{{gia, "gus", "gia"}, {gus, "gia", "gia"}} {
		v.c.SendJSON(map[string]string{"type": "conversations"})
		e := nextOf(t, v.c, "conversations")
		list, _ := e["conversations"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["with"] != v.with || list[0].(map[string]any)["count"] != float64(2) {
			t.Fatalf("conversations: %v", e)
		}
		v.c.SendJSON(map[string]any{"type": "history", "with": v.with})
		h := nextOf(t, v.c, "history")
		msgs, _ := h["messages"].([]any)
		if h.Str("with") != v.with || len(msgs) != 2 || msgs[0].(map[string]any)["from"] != v.from || msgs[1].(map[string]any)["text"] != "hi from b" {
			t.Fatalf("history: %v", h)
		}
	}

	_ = gus.Conn.Close()
	hub.Settle()
	chattest.Eventually(t, "gia's conversation with gus forgotten", func() bool {
		gia.SendJSON(map[string]string{"type": "conversations"})
		e := nextOf(t, gia, "conversations")
		list, _ := e["conversations"].([]any)
		return len(list) == 0
	})
	gia.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "still there?"})
	if e := nextOf(t, gia, "error"); e.Str("code") != "no_such_user" {
		t.Fatalf("to a guest who left: %v", e)
	}
}

// A guest and an account on other nodes: the guest's node keeps the
// conversation and sends each message to every node where the account
// is connected, so every connection of the account gets it, in the
// guest's node's ids.
func TestRelayDirectGuestAccount(t *testing.T) {
	hub, srv := relayNodes(t, "a", "b", "c")
	gia := joinedJSON(t, srv[0], "/chat/lobby?name=gia")
	bobB := joinedJSON(t, srv[1], "/chat/dev?as=bo&n=bob")
	bobC := joinedJSON(t, srv[2], "/chat/lobby?as=bo&n=bob")
	for _, ts := range srv {
		if ts != srv[0] {
			userOf(t, ts, "lobby", "gia")
		}
	}
	userOf(t, srv[0], "dev", "bob")
	userOf(t, srv[0], "lobby", "bob")
	hub.Settle()

	gia.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "hello bob"})
	wantDirect(t, gia, "gia", 1, "gia", "bob", "bob", "hello bob")
	wantDirect(t, bobB, "bob on b", 1, "gia", "bob", "gia", "hello bob")
	wantDirect(t, bobC, "bob on c", 1, "gia", "bob", "gia", "hello bob")

	bobB.SendJSON(map[string]string{"type": "direct", "to": "gia", "text": "hello gia"})
	wantDirect(t, gia, "gia", 2, "bob", "gia", "bob", "hello gia")
	wantDirect(t, bobB, "bob on b", 2, "bob", "gia", "gia", "hello gia")
	wantDirect(t, bobC, "bob on c", 2, "bob", "gia", "gia", "hello gia")

	// Kept on the guest's node only: gia pages both messages there.
	gia.SendJSON(map[string]any{"type": "history", "with": "bob"})
	if h := nextOf(t, gia, "history"); len(h["messages"].([]any)) != 2 || h.Str("with_id") != "bo" {
		t.Fatalf("gia's history: %v", h)
	}
	if v := metric(t, srv[1], `moonchat_direct_messages_total{result="sent"}`); v != 1 {
		t.Errorf(`b: direct{result="sent"} = %v, want 1 (counted by the sender's node)`, v)
	}
}

// Refusals cross nodes: a guest who ignores an account does not get its
// message (not_delivered, the same text as on one node), a sender muted
// in every room is refused on its own node (muted), and a guest who left
// between the look-up and the relay is no_such_user.
func TestRelayDirectRefusals(t *testing.T) {
	hub, srv := relayNodes(t, "a", "b")
	joinedJSON(t, srv[0], "/chat/lobby?name=gia")
	bob := joinedJSON(t, srv[1], "/chat/dev?as=bo&n=bob")
	userOf(t, srv[1], "lobby", "gia")
	hub.Settle()

	if err := srv[0].Chat.Ignore(sessionOf(t, srv[0], "lobby", "gia"), chat.IgnoreTarget{Account: "bo"}); err != nil {
		t.Fatal(err)
	}
	bob.SendJSON(map[string]string{"type": "direct", "to": "gia", "text": "ignored"})
	if e := nextOf(t, bob, "error"); e.Str("code") != "not_delivered" || e.Str("text") != "message not delivered to gia" {
		t.Fatalf("ignored: %v", e)
	}
	if v := metric(t, srv[1], `moonchat_direct_messages_total{result="not_delivered"}`); v != 1 {
		t.Errorf(`direct{result="not_delivered"} = %v, want 1`, v)
	}

	if err := srv[1].Chat.Restrict(chat.KindMute, "", chat.Target{Account: "bo"}, time.Hour, "calm down", "mod"); err != nil {
		t.Fatal(err)
	}
	relayed := hub.Relayed()
	bob.SendJSON(map[string]string{"type": "direct", "to": "gia", "text": "muted"})
	if e := nextOf(t, bob, "error"); e.Str("code") != "muted" || !strings.Contains(e.Str("text"), "muted in every room") {
		t.Fatalf("muted: %v", e)
	}
	if hub.Relayed() != relayed {
		t.Errorf("a muted sender's message was relayed")
	}

	// The guest's node answers for a session it does not have (the
	// guest left): the sender is told so.
	ans := srv[0].Chat.ServeDirect(chat.RelayedDirect{FromNode: "b", FromSession: 1, FromName: "x", ToSession: 999999, ToName: "ghost", Text: "hi", Time: time.Now()})
	if ans.Refused != "no_such_user" || ans.ID != 0 {
		t.Fatalf("relay to a session that is gone: %+v", ans)
	}
}

// Fail closed: with the cluster unreachable a direct message to another
// node's guest is refused at once with "unavailable"; a node that does
// not answer is "relay_failed" (counted), its own error text. Nothing is
// kept on the sender's side either way.
func TestRelayDirectUnavailable(t *testing.T) {
	hub, srv := relayNodes(t, "a", "b")
	gia := joinedJSON(t, srv[0], "/chat/lobby?name=gia")
	gus := joinedJSON(t, srv[1], "/chat/dev?name=gus")
	userOf(t, srv[0], "dev", "gus")

	hub.SetAvailable(false)
	gia.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "cut off"})
	if e := nextOf(t, gia, "error"); e.Str("code") != "unavailable" || e.Str("text") != "message not sent: this server has lost its cluster connection; try again shortly" {
		t.Fatalf("unavailable: %v", e)
	}
	hub.SetAvailable(true)
	if v := metric(t, srv[0], `moonchat_direct_messages_total{result="unavailable"}`); v != 1 {
		t.Errorf(`direct{result="unavailable"} = %v, want 1`, v)
	}

	hub.Node("b").ServeDirects(nil) // b stops answering
	gia.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "anyone?"})
	if e := nextOf(t, gia, "error"); e.Str("code") != "unavailable" || e.Str("text") != "message not sent: gus's server did not answer; try again shortly" {
		t.Fatalf("no answer: %v", e)
	}
	if v := metric(t, srv[0], `moonchat_direct_messages_total{result="relay_failed"}`); v != 1 {
		t.Errorf(`direct{result="relay_failed"} = %v, want 1`, v)
	}
	gia.SendJSON(map[string]string{"type": "conversations"})
	if e := nextOf(t, gia, "conversations"); len(e["conversations"].([]any)) != 0 {
		t.Fatalf("a refused message was kept: %v", e)
	}

	hub.Node("b").ServeDirects(srv[1].Chat.ServeDirect)
	gia.SendJSON(map[string]string{"type": "direct", "to": "gus", "text": "back"})
	wantDirect(t, gus, "gus", 1, "gia", "gus", "gia", "back")
}

// On nodes with a log (Broker) as well, a node cut off the log refuses at
// once, with "unavailable", a message to another node's guest and one
// between its guest and an account connected to another node (that node
// would not get it); a guest's message to an account connected nowhere
// else stays on its node and goes, as on a single node.
func TestRelayDirectLogUnavailable(t *testing.T) {
	b := chattest.NewBroker()
	hub := chattest.NewPresenceHub()
	var srv [2]*chattest.Server
	var nodes [2]*chattest.Node
	for i, name := range []string{"a", "b"} {
		h := chattest.NewHistory()
		for _, own := range [][2]string{{"bo", "bob"}, {"cy", "cy"}} {
			if err := h.SetNameOwner(own[0], own[1]); err != nil {
				t.Fatal(err)
			}
		}
		pn := hub.Node(name)
		srv[i], nodes[i] = chattest.StartNode(t, b, chat.Config{Presence: pn, Authenticator: authFunc(memberAuth)}, nil, h)
		pn.ServeDirects(srv[i].Chat.ServeDirect)
		t.Cleanup(pn.Watch(srv[i].Chat))
	}
	gia := joinedJSON(t, srv[0], "/chat/lobby?name=gia")
	joinedJSON(t, srv[1], "/chat/dev?name=gus")
	bob := joinedJSON(t, srv[1], "/chat/dev?as=bo&n=bob")
	userOf(t, srv[0], "dev", "gus")
	userOf(t, srv[0], "dev", "bob")

	gia.SendJSON(map[string]string{"type": "direct", "to": "bob", "text": "connected"})
	wantDirect(t, bob, "bob", 1, "gia", "bob", "gia", "connected")

	nodes[0].SetConnected(false)
	relayed := hub.Relayed()
	for _, to := range []string{"gus", "bob"} {
		gia.SendJSON(map[string]string{"type": "direct", "to": to, "text": "cut off"})
		if e := nextOf(t, gia, "error"); e.Str("code") != "unavailable" || e.Str("text") != "message not sent: this server has lost its cluster connection; try again shortly" {
			t.Fatalf("to %s: %v", to, e)
		}
	}
	if hub.Relayed() != relayed {
		t.Errorf("relayed while cut off the log")
	}
	if v := metric(t, srv[0], `moonchat_direct_messages_total{result="unavailable"}`); v != 2 {
		t.Errorf(`direct{result="unavailable"} = %v, want 2`, v)
	}
	gia.SendJSON(map[string]string{"type": "direct", "to": "cy", "text": "for later"})
	wantDirect(t, gia, "gia", 1, "gia", "cy", "cy", "for later")
}
