package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestNotices: a room notice published by one node reaches every node
// serving notices, the publisher included, in order and intact (any room
// name, any text); a node that stopped serving gets nothing more; a
// closed Log publishes nothing.
func TestNotices(t *testing.T) {
	n := startNATS(t, nil)
	a := openLog(t, testConfig(n.url()))
	b := openLog(t, testConfig(n.url()))
	type got struct{ room, text string }
	serve := func(l *Log) (chan got, context.CancelFunc) {
		ch := make(chan got, 16)
		ctx, cancel := context.WithCancel(context.Background())
		if err := l.ServeNotices(ctx, func(room, text string) { ch <- got{room, text} }); err != nil {
			t.Fatal(err)
		}
		return ch, cancel
	}
	fromA, stopA := serve(a)
	defer stopA()
	fromB, stopB := serve(b)
	sent := []got{{"lobby", "be nice"}, {"a.b *>", "ünïcode \"quoted\"\nline"}}
	for _, g := range sent {
		if err := a.PublishNotice(g.room, g.text); err != nil {
			t.Fatal(err)
		}
	}
	for name, ch := range map[string]chan got{"a": fromA, "b": fromB} {
		for i, want := range sent {
			select {
			case g := <-ch:
				if g != want {
					t.Fatalf("node %s notice %d: %q, want %q", name, i, g, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("node %s: notice %d never came", name, i)
			}
		}
	}

	stopB()
	if err := a.PublishNotice("lobby", "after b stopped"); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-fromA:
		if g.text != "after b stopped" {
			t.Fatalf("a got %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a: notice never came")
	}
	// a's notice came; b, no longer serving, must not have it. a flush
	// on b's connection orders the check after the server routed it.
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-fromB:
		t.Fatalf("b got %q after it stopped serving", g)
	default:
	}

	a.Close()
	if err := a.PublishNotice("lobby", "closed"); !errors.Is(err, ErrClosed) {
		t.Fatalf("PublishNotice on a closed Log: %v, want ErrClosed", err)
	}
}
