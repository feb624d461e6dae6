// Package cluster is moonchat's room log on NATS JetStream (issue 15): the
// layer that lets several moonchat nodes share rooms. core/chat does not
// import it; cmd/moonchat wires it in when [cluster] nats_url is set.
//
// One JetStream stream (Config.Stream, file storage, Config.Replicas)
// holds every room's records: a room's on subject <stream>.room.<token>, a
// conversation's (chat.ConversationKey) on <stream>.dm.<token>, the token
// being the key in unpadded base64url (subject.go). A record is one
// accepted batch of messages (Publish) or one redaction (Redact), in a
// versioned, checksummed encoding (codec.go).
//
// Ids stay per room and contiguous, as in single-node mode: a batch's
// first id is the room's last id + 1. Any node may publish for any room;
// the stream enforces one order per room with optimistic concurrency
// (Nats-Expected-Last-Subject-Sequence), and a publisher that lost the
// race renumbers and retries. Publish returns once JetStream acknowledged
// the record; it delivers nothing itself. Every node runs Consume, an
// ordered consumer from the stream sequence it last applied, and applies
// each record (its store replica, then its local members): the stream's
// order is the room's order on every node.
//
// docs/cluster.md says what an acknowledged record survives for each
// setting and what the ids are.
package cluster
