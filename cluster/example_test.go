package cluster_test

import (
	"context"
	"log"
	"time"

	"github.com/moonchat/moonchat/cluster"
	"github.com/moonchat/moonchat/core/chat"
)

// A node's life with the room log: open it, apply the stream in order
// from the sequence the node's replica last applied (kept with the
// replica), publish accepted batches, and deliver only what
// ConsumeBatch (or Consume, one record at a time) returns. (Compiled, not run: it needs a NATS server.)
func Example() {
	ctx := context.Background()
	var applied uint64 // read from the node's store at start
	l, err := cluster.Open(ctx, cluster.Config{
		URL:      "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222",
		Node:     "node-a",
		Replicas: 3,
		MaxAge:   30 * 24 * time.Hour,
		OnState: func(up bool) {
			// false: refuse posts with a notice until true comes back.
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	go func() {
		err := l.ConsumeBatch(ctx, applied, func(es []cluster.Entry) error {
			// Store each e.Msgs (with their ids) or apply each e.Redact
			// in the replica, with the last e.Seq as the new applied
			// sequence, all in one transaction; then fan each e out, in
			// order, to this node's members of e.Key.
			return nil
		})
		log.Print(err)
	}()

	// A room goroutine, with a batch its hooks accepted:
	batch := []*chat.Message{{Room: "lobby", User: "alice", Text: "hi", Time: time.Now().UTC()}}
	if err := l.Publish(ctx, "lobby", batch); err != nil {
		// Not sent: tell the senders (ErrUnavailable, ErrUnacknowledged,
		// ErrConflict). Messages with an ID were published.
		log.Print(err)
	}
	// batch[0].ID is now the message's id in room "lobby"; the members
	// see it when ConsumeBatch delivers it, on this node as on every other.
}
