package chat_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// Cluster mode (issue 15), the other paths through the log: deletions,
// server posts, direct messages, ignore lists, and a node cut off the log
// (cluster_test.go has the nodes and the helpers).

// A deletion on one node reaches the members of both (the redact event)
// and both replicas, through the log; an admin post and a script's action
// are published like members' messages.
func TestClusterRedactionsAndServerPosts(t *testing.T) {
	b, srv, nodes := twoNodes(t)
	alice, _ := joinRoom(t, srv[0], "/chat/lobby?name=alice")
	bob, _ := joinRoom(t, srv[1], "/chat/lobby?name=bob")
	alice.SendJSON(map[string]string{"type": "message", "text": "oops"})
	liveIDs(t, bob, 1)
	if err := srv[1].Chat.Redact("lobby", 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*chattest.Client{alice, bob} {
		if e := nextOf(t, c, "redact"); e.Num("id") != 1 {
			t.Fatalf("redact event %v", e)
		}
	}
	for k, n := range nodes {
		chattest.Eventually(t, "the redaction applied", func() bool { return n.Applied() == b.Records() })
		if got := n.Hist.All("lobby"); len(got) != 0 {
			t.Fatalf("node %d's replica still holds %v", k, got)
		}
	}
	if err := srv[0].Chat.Redact("lobby", 7); !errors.Is(err, chat.ErrNoSuchMessage) {
		t.Fatalf("redacting a message never sent: %v", err)
	}

	status, body := adminDo(t, srv[1], http.MethodPost, "/api/rooms/lobby/messages", `{"text":"maintenance at noon"}`)
	if status != http.StatusCreated || body == "" {
		t.Fatalf("admin post: %d %s", status, body)
	}
	if err := srv[0].Chat.Action(sessionOf(t, srv[0], "lobby", "alice"), "waves"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*chattest.Client{alice, bob} {
		var got []string
		for len(got) < 2 {
			if e := c.ReadEvent(); e.Str("type") == "message" {
				got = append(got, fmt.Sprintf("%d %s %s %v", e.Num("id"), e.Str("user"), e.Str("text"), e["action"]))
			}
		}
		if want := []string{"2 server maintenance at noon <nil>", "3 alice waves true"}; !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// A direct message between accounts connected to different nodes goes
// through the log: both users' connections get it (the sender's echo
// too, on its own node), both replicas store the conversation. A guest's
// conversation stays on its node: nothing is published.
func TestClusterDirect(t *testing.T) {
	b, srv, nodes := twoNodes(t)
	alice := joinedJSON(t, srv[0], "/chat/lobby?as=ada&n=ada")
	bob := joinedJSON(t, srv[1], "/chat/other?as=bo&n=bo")
	alice.SendJSON(map[string]string{"type": "direct", "to": "bo", "text": "psst"})
	for who, c := range map[string]*chattest.Client{"ada": alice, "bo": bob} {
		e := nextOf(t, c, "direct")
		wantWith := map[string]string{"ada": "bo", "bo": "ada"}[who]
		if e.Num("id") != 1 || e.Str("from") != "ada" || e.Str("to") != "bo" || e.Str("with") != wantWith || e.Str("text") != "psst" {
			t.Fatalf("%s got %v", who, e)
		}
	}
	key := chat.ConversationKey("ada", "bo")
	for _, n := range nodes {
		chattest.Eventually(t, "the conversation applied", func() bool { return len(n.Hist.All(key)) == 1 })
	}

	before := b.Records()
	gus := joinedJSON(t, srv[0], "/chat/lobby?name=gus")
	gil := joinedJSON(t, srv[0], "/chat/lobby?name=gil")
	gus.SendJSON(map[string]string{"type": "direct", "to": "gil", "text": "local"})
	if e := nextOf(t, gil, "direct"); e.Str("text") != "local" {
		t.Fatalf("gil got %v", e)
	}
	if b.Records() != before {
		t.Fatalf("a guests' conversation was published: %d records, %d before", b.Records(), before)
	}
}

// While its node is cut off the log, a member's message, a direct message
// between accounts, an admin post and a deletion are refused at once with
// "unavailable" (counted); nothing is published, the other node carries
// on. Back on, the node catches up with what it missed, in order, and
// accepts posts again.
func TestClusterUnavailable(t *testing.T) {
	b, srv, nodes := twoNodes(t)
	alice, _ := joinRoom(t, srv[0], "/chat/lobby?as=ada&n=ada")
	bob, _ := joinRoom(t, srv[1], "/chat/lobby?as=bo&n=bo")
	alice.SendJSON(map[string]string{"type": "message", "text": "one"})
	liveIDs(t, bob, 1)

	nodes[0].SetConnected(false)
	records := b.Records()
	alice.SendJSON(map[string]string{"type": "message", "text": "lost?"})
	e := nextOf(t, alice, "error")
	if e.Str("code") != "unavailable" || e.Str("text") != "message not sent: this server has lost its cluster connection; try again shortly" {
		t.Fatalf("error event %v", e)
	}
	alice.SendJSON(map[string]string{"type": "direct", "to": "bo", "text": "psst"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "unavailable" {
		t.Fatalf("direct: %v", e)
	}
	alice.SendJSON(map[string]any{"type": "delete", "id": 1})
	if e := nextOf(t, alice, "error"); e.Str("code") != "unavailable" {
		t.Fatalf("delete: %v", e)
	}
	if status, body := adminDo(t, srv[0], http.MethodPost, "/api/rooms/lobby/messages", `{"text":"hello"}`); status != http.StatusServiceUnavailable {
		t.Fatalf("admin post: %d %s", status, body)
	}
	if b.Records() != records {
		t.Fatalf("published while disconnected: %d records, %d before", b.Records(), records)
	}
	if v := metric(t, srv[0], `moonchat_messages_dropped_total{reason="unavailable"}`); v != 3 {
		t.Errorf(`dropped{reason="unavailable"} = %v, want 3 (message, direct, admin post)`, v)
	}
	if v := metric(t, srv[0], `moonchat_direct_messages_total{result="unavailable"}`); v != 1 {
		t.Errorf(`direct{result="unavailable"} = %v, want 1`, v)
	}

	// The other node carries on; the cut-off one does not see it yet.
	bob.SendJSON(map[string]string{"type": "message", "text": "two"})
	if got := liveIDs(t, bob, 1); got[0] != 2 {
		t.Fatalf("bob's message got id %v", got)
	}
	nodes[0].SetConnected(true)
	alice.SendJSON(map[string]string{"type": "message", "text": "three"})
	if got := liveIDs(t, alice, 2); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("alice after reconnecting: %v, want [2 3]", got)
	}
	if got := liveIDs(t, bob, 1); got[0] != 3 {
		t.Fatalf("bob: %v, want 3", got)
	}
}

// A publish that fails while the node stays connected is told to the
// sender as a message the server could not store (store_error), as a
// failed Append is on a single node.
func TestClusterPublishFails(t *testing.T) {
	_, srv, nodes := twoNodes(t)
	alice, _ := joinRoom(t, srv[0], "/chat/lobby?name=alice")
	nodes[0].FailPublish(chattest.ErrStore)
	alice.SendJSON(map[string]string{"type": "message", "text": "hi"})
	if e := nextOf(t, alice, "error"); e.Str("code") != "dropped" || e.Str("text") != "message not sent: the server could not store it" {
		t.Fatalf("error event %v", e)
	}
	if v := metric(t, srv[0], `moonchat_messages_dropped_total{reason="store_error"}`); v != 1 {
		t.Errorf(`dropped{reason="store_error"} = %v, want 1`, v)
	}
	nodes[0].FailPublish(nil)
	alice.SendJSON(map[string]string{"type": "message", "text": "again"})
	if got := liveIDs(t, alice, 1); got[0] != 1 {
		t.Fatalf("id %v, want 1", got)
	}
}

// A cluster node needs a replica.
func TestClusterNeedsHistory(t *testing.T) {
	cfg := chattest.Limits(chat.Config{Broker: chattest.NewBroker().Node(nil)})
	if _, err := chat.New(cfg, nil, nil); err == nil {
		t.Fatal("New accepted a Broker without a History")
	}
}

// An ignore list hides the ignored guest's messages live in cluster mode
// too: the node where the guest posts knows its session (the log carries
// no session), and an account is hidden by its id on every node.
func TestClusterIgnore(t *testing.T) {
	_, srv, _ := twoNodes(t)
	gil, _ := joinRoom(t, srv[0], "/chat/lobby?name=gil")
	gus, _ := joinRoom(t, srv[0], "/chat/lobby?name=gus")
	ada, _ := joinRoom(t, srv[1], "/chat/lobby?as=ada&n=ada")
	bo, _ := joinRoom(t, srv[1], "/chat/lobby?as=bo&n=bo")
	gilID := sessionOf(t, srv[0], "lobby", "gil")
	if err := srv[0].Chat.Ignore(gilID, chat.IgnoreTarget{Session: sessionOf(t, srv[0], "lobby", "gus")}); err != nil {
		t.Fatal(err)
	}
	if err := srv[0].Chat.Ignore(gilID, chat.IgnoreTarget{Account: "ada"}); err != nil {
		t.Fatal(err)
	}
	gus.SendJSON(map[string]string{"type": "message", "text": "from gus"})
	liveIDs(t, bo, 1)
	ada.SendJSON(map[string]string{"type": "message", "text": "from ada"})
	liveIDs(t, bo, 1)
	bo.SendJSON(map[string]string{"type": "message", "text": "from bo"})
	if got := liveIDs(t, gil, 1); got[0] != 3 {
		t.Fatalf("gil's first live message is %v, want 3 (bo's)", got)
	}
}
