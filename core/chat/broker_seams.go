package chat

import (
	"context"
	"errors"
)

// This file holds the cluster seam (issue 15; docs/cluster.md): the Broker
// a node publishes its rooms' accepted messages to, and the optional
// History interface the node's replica offers. Package cluster implements
// Broker on NATS JetStream; cmd/moonchat wires it (Config.Broker) and runs
// the consumer that feeds the stream back in: for each record, the replica
// first (package store's Apply), then Server.Deliver or Server.Redacted.
// Neither is imported here.
//
// In cluster mode the stream is each room's log and its order: a node
// delivers nothing it has not read back from the stream, its own posts
// included, so every node shows a room's messages in the stream's order.
// Without a Broker (Config.Broker nil) the server is a single node and the
// room goroutine is its own broker: History.Append, then the outbox.

// Broker is the cluster's log of rooms and conversations (Config.Broker).
// Implementations must be safe for concurrent use. *cluster.Log
// implements it.
type Broker interface {
	// Publish appends msgs, one accepted batch of room (or conversation)
	// key, to the log, and returns once the log acknowledged it: durable
	// in the cluster's sense (docs/cluster.md). It sets msgs[i].ID to the
	// key's next ids, contiguous and in slice order. On an error, the
	// messages whose ID it set were published (they will be delivered);
	// those with ID 0 were not, or not knowingly: the chat server tells
	// their senders they were not sent.
	Publish(ctx context.Context, key string, msgs []*Message) error
	// Redact appends a redaction of message id of key to the log; every
	// node removes it from its replica and tells its members when the
	// redaction comes back (Server.Redacted).
	Redact(ctx context.Context, key string, id uint64) error
	// Connected reports whether the node can reach the log now. While it
	// cannot, the chat server refuses posts, direct messages between
	// accounts and deletions at once (ErrUnavailable; the error code
	// "unavailable"), rather than try and fail after a timeout.
	Connected() bool
}

// LastIDer is an optional interface of a History: one that implements it
// (package store's DB) tells the highest id ever stored in a room, past
// redaction and pruning. In cluster mode a room starts from it when its
// goroutine starts (the room's lastDelivered, deliver.go); without it the
// chat server asks Recent for the newest stored message, which is the
// same but for a newest message that was redacted (its id is then
// delivered live if its batch is still on its way: never twice).
type LastIDer interface {
	LastID(key string) uint64
}

// ErrUnavailable is returned, and its text sent to members with the error
// code "unavailable", when a node in cluster mode cannot reach the
// cluster's log (Broker.Connected is false): nothing was published. The
// node reconnects by itself.
var ErrUnavailable = errors.New("this server has lost its cluster connection; try again shortly")

// codeUnavailable is the error code of a post, direct message or deletion
// refused because the node has lost its cluster connection.
const codeUnavailable = "unavailable"

// NoticeBroker is an optional interface of a Broker: one that implements
// it (*cluster.Log) carries room notices to every node, so that
// Host.Broadcast (a script's chat.broadcast, a timer's announcement on the
// one node that runs the timers) reaches the room's members on every node.
// Notices are never stored, in a cluster as on a single node. Without it a
// cluster node's notices reach its own members only.
type NoticeBroker interface {
	// PublishNotice sends text to room's members on every node, this
	// one included: each node hands it to Server.Noticed. An error says
	// nobody was told.
	PublishNotice(room, text string) error
}
