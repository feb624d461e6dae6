package cluster

import "errors"

// The errors of this package. Callers test them with errors.Is: a returned
// error may wrap one of them with details (the room, the sequence).
var (
	// ErrUnavailable: the NATS server cannot be reached now (the connection
	// is down or reconnecting, or JetStream does not answer). Nothing was
	// published. The connection recovers by itself; Config.OnState says
	// when.
	ErrUnavailable = errors.New("cluster: NATS unavailable")
	// ErrUnacknowledged: a record was sent but no acknowledgement came
	// back in time. It may or may not have been stored: the stream (what
	// Consume delivers) says which. The messages of that record have ID 0.
	ErrUnacknowledged = errors.New("cluster: publish not acknowledged")
	// ErrConflict: other publishers kept appending to the same room while
	// this one retried (Config.MaxAttempts exhausted). Nothing of the
	// record was published.
	ErrConflict = errors.New("cluster: too many concurrent publishers on one room")
	// ErrBadKey: a room or conversation key that cannot be published (the
	// empty string, or one longer than 2048 bytes).
	ErrBadKey = errors.New("cluster: invalid room key")
	// ErrTooLarge: one message does not fit in a stream message (the NATS
	// server's max_payload).
	ErrTooLarge = errors.New("cluster: message too large for the stream")
	// ErrNoSuchMessage: Redact was given an id the room never had.
	ErrNoSuchMessage = errors.New("cluster: no such message")
	// ErrCorrupt: a stream record that does not decode (bad checksum,
	// truncated, or a subject this package did not write). Consume stops
	// on it rather than skip a record of the room's history.
	ErrCorrupt = errors.New("cluster: corrupt record")
	// ErrVersion: a record written by a newer moonchat (an unknown
	// encoding version). Consume stops on it: upgrade this node.
	ErrVersion = errors.New("cluster: record of an unknown version")
	// ErrStreamReset: the stream ends before the sequence Consume was
	// asked to start after — it was deleted and created again (its NATS
	// store lost, or removed by hand), so its sequences start again at 1
	// and the records a node already applied are not its records any
	// more. Consume stops on it: following the new stream from the old
	// position would skip its first records without a word.
	ErrStreamReset = errors.New("cluster: the stream ends before the records this node applied (it was created again)")
	// ErrConsuming: Consume was called while another Consume of the same
	// Log is running.
	ErrConsuming = errors.New("cluster: already consuming")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("cluster: closed")
)
