package cluster

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// TestRelayDirect: a direct message relayed to another node reaches its
// serve function intact (a relay and a delivery, each on its subject) and
// its answer comes back (an id, a refusal); a node that serves none is
// ErrNoSuchNode, one that does not answer in time an error that is not
// chat.ErrUnavailable, and with NATS gone the relay fails wrapping
// chat.ErrUnavailable.
func TestRelayDirect(t *testing.T) {
	ns := startNATS(t, nil)
	a := openPresence(t, openNode(t, ns.url(), "a"), PresenceConfig{})
	b := openPresence(t, openNode(t, ns.url(), "b"), PresenceConfig{})
	got := make(chan chat.RelayedDirect, 4)
	block := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := b.ServeDirects(ctx, func(d chat.RelayedDirect) chat.RelayAnswer {
		switch d.Text {
		case "slow":
			<-block
		case "ignored":
			return chat.RelayAnswer{Refused: "not_delivered"}
		}
		got <- d
		return chat.RelayAnswer{ID: 7}
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := chat.RelayedDirect{
		FromNode: "a", FromSession: 3, FromName: "gia", FromAccount: "", FromRoles: []string{"guest"},
		ToNode: "b", ToSession: 9, ToName: "gus", Text: "ünïcode \"hi\"\nline",
		Time: time.Date(2026, 12, 3, 7, 0, 0, 123e6, time.UTC),
	}
	ans, err := a.RelayDirect(context.Background(), "b", sent)
	if err != nil || ans != (chat.RelayAnswer{ID: 7}) {
		t.Fatalf("relay: %+v, %v", ans, err)
	}
	if d := <-got; !reflect.DeepEqual(d, sent) {
		t.Fatalf("served %+v, want %+v", d, sent)
	}
	deliver := sent
	deliver.Deliver, deliver.ID, deliver.ToAccount = true, 4, "bo"
	if _, err := a.RelayDirect(context.Background(), "b", deliver); err != nil {
		t.Fatal(err)
	}
	if d := <-got; !reflect.DeepEqual(d, deliver) {
		t.Fatalf("served %+v, want %+v", d, deliver)
	}
	sent.Text = "ignored"
	if ans, err := a.RelayDirect(context.Background(), "b", sent); err != nil || ans.Refused != "not_delivered" {
		t.Fatalf("refused relay: %+v, %v", ans, err)
	}
	if _, err := a.RelayDirect(context.Background(), "nobody", sent); !errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("relay to an unknown node = %v, want ErrNoSuchNode", err)
	}

	sent.Text = "slow"
	short, stop := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = a.RelayDirect(short, "b", sent)
	stop()
	close(block)
	<-got
	if err == nil || errors.Is(err, chat.ErrUnavailable) || errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("relay not answered in time = %v, want a no-answer error", err)
	}

	ns.stop()
	waitFor(t, "a to see NATS gone", func() bool { return a.l.usable() != nil })
	if _, err := a.RelayDirect(context.Background(), "b", sent); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("relay without NATS = %v, want chat.ErrUnavailable", err)
	}
}
