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
// replica), publish accepted batches, and deliver only what Consume
// returns. (Compiled, not run: it needs a NATS server.)
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
		err := l.Consume(ctx, applied, func(e cluster.Entry) error {
			// Store e.Msgs (with their ids) or apply e.Redact in the
			// replica, with e.Seq as the new applied sequence in the same
			// transaction; then fan e out to this node's members of e.Key.
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
	// see it when Consume delivers it, on this node as on every other.
}
