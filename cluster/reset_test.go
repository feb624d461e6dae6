package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStreamReset: a node that applied records of a stream which was then
// deleted and created again (its NATS store lost) is told so by Consume
// (ErrStreamReset) instead of waiting, silently, for sequences the new
// stream already gave to other records.
func TestStreamReset(t *testing.T) {
	n := startNATS(t, nil)
	l := openLog(t, testConfig(n.url()))
	for range 3 {
		if err := l.Publish(context.Background(), "lobby", msgs("alice", "m", 1)); err != nil {
			t.Fatal(err)
		}
	}
	c := collect(t, l, 0)
	got := c.messages(t, 3, 10*time.Second)
	applied := got[len(got)-1].Seq
	c.stop(t)

	if err := l.js.DeleteStream(context.Background(), l.cfg.Stream); err != nil {
		t.Fatal(err)
	}
	fresh := openLog(t, testConfig(n.url())) // creates the stream again, empty
	if err := fresh.Publish(context.Background(), "lobby", msgs("bob", "new", 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := fresh.Consume(ctx, applied, func(e Entry) error {
		t.Errorf("applied %+v from a stream that was created again", e)
		return nil
	})
	if !errors.Is(err, ErrStreamReset) {
		t.Fatalf("Consume after %d on a new stream: %v, want ErrStreamReset", applied, err)
	}
	// The same stream, followed from where it is, is fine.
	c = collect(t, fresh, 0)
	if e := c.messages(t, 1, 10*time.Second); e[0].Msgs[0].Text != "new-0" {
		t.Fatalf("new stream: %+v", e)
	}
}
