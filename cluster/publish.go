package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// NodeHeader names the node that published a record (Config.Node), for
// debugging; nothing reads it back.
const NodeHeader = "Moonchat-Node"

// Publish appends msgs, one accepted batch of room (or conversation) key,
// to the stream and returns once JetStream acknowledged it: stored on the
// stream's quorum, durable in cluster mode (docs/cluster.md). It sets
// msgs[i].ID to the room's next ids, contiguous and in slice order; every
// other field is published as it is (Room is key; To is not carried).
//
// The batch is one stream record, unless it exceeds the server's
// max_payload: it is then cut into as few records as fit, published in
// order. On an error, the messages whose ID was set are published and
// will be delivered by Consume; those with ID 0 were not (or, with
// ErrUnacknowledged, their fate is unknown until Consume shows them).
//
// Before a record is sent, the room's id reservation (ids.go) is raised
// when the record's ids pass it: one round trip every 1000 ids of a room.
//
// Publish does not deliver anything: every node, this one included, sees
// the batch through Consume. Ordering between nodes is optimistic: the
// record is sent with the stream sequence of the room's last record as
// this node knows it (header Nats-Expected-Last-Subject-Sequence); when
// another node appended first, the stream refuses it and Publish
// re-reads the room's end, renumbers and sends again, at most
// Config.MaxAttempts times (then ErrConflict).
func (l *Log) Publish(ctx context.Context, key string, msgs []*chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	subj, err := subjectFor(l.cfg.Stream, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	bodies := make([]byte, 0, 64*len(msgs))
	ends := make([]int, len(msgs))
	for i, m := range msgs {
		m.ID = 0
		bodies = appendMsg(bodies, m)
		ends[i] = len(bodies)
	}
	for start := 0; start < len(msgs); {
		base := 0
		if start > 0 {
			base = ends[start-1]
		}
		end := start
		for end < len(msgs) && ends[end]-base+recordOverhead <= l.maxRecord {
			end++
		}
		if end == start {
			return fmt.Errorf("%w: %d bytes in room %q (max_payload %d)", ErrTooLarge, ends[start]-base, key, l.nc.MaxPayload())
		}
		count := uint64(end - start)
		part := bodies[base:ends[end-1]]
		last, err := l.write(ctx, key, subj, func(h head) ([]byte, error) {
			// The room's bound covers these ids before they are sent
			// (ids.go): usually known already, at once.
			if err := l.reserve(ctx, key, h.id+count); err != nil {
				return nil, err
			}
			return encodeBatch(h.id+1, int(count), part), nil
		})
		if err != nil {
			return err
		}
		for i := start; i < end; i++ {
			msgs[i].ID = last - count + 1 + uint64(i-start)
		}
		start = end
	}
	return nil
}

// Redact appends a redaction of message id to room key's log: every node
// removes the message from its replica when Consume delivers it (an Entry
// with Redact set). It returns ErrNoSuchMessage when the room never had
// id. The record is ordered with the room's batches: a node applies it
// after the batch it redacts. The batch itself stays in the stream until
// the retention limits drop it (docs/cluster.md).
func (l *Log) Redact(ctx context.Context, key string, id uint64) error {
	subj, err := subjectFor(l.cfg.Stream, key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	fresh := false
	_, err = l.write(ctx, key, subj, func(h head) ([]byte, error) {
		if id == 0 || id > h.id {
			if !fresh {
				// This node's head may be stale: ask the stream before
				// refusing.
				fresh = true
				return nil, errStale
			}
			return nil, fmt.Errorf("%w: room %q has ids 1 to %d, not %d", ErrNoSuchMessage, key, h.id, id)
		}
		return encodeRedact(h.id, id), nil
	})
	return err
}

// errStale asks write to re-read the room's head and build again.
var errStale = errors.New("stale head")

// write publishes the record build makes for the room's current head,
// retrying as Publish describes, and returns the room's last id after the
// record.
func (l *Log) write(ctx context.Context, key, subj string, build func(head) ([]byte, error)) (uint64, error) {
	if err := l.usable(); err != nil {
		return 0, err
	}
	msgID := nuid.Next()
	h, ok := l.known(key)
	if !ok {
		var err error
		if h, _, err = l.readHead(ctx, key, ""); err != nil {
			return 0, err
		}
	}
	if wait := l.yieldWait(key); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("%w: room %q: %v", ErrUnavailable, key, ctx.Err())
		case <-t.C:
		}
	}
	sent := false // a send ended without an answer: the record may be stored
	// fail returns err, as ErrUnacknowledged once the record may be stored.
	fail := func(err error) (uint64, error) {
		if sent && !errors.Is(err, ErrUnacknowledged) {
			return 0, fmt.Errorf("%w: room %q: %v", ErrUnacknowledged, key, err)
		}
		return 0, err
	}
	conflicts := 0
	for {
		data, err := build(h)
		if errors.Is(err, errStale) {
			if h, _, err = l.readHead(ctx, key, ""); err != nil {
				return fail(err)
			}
			continue
		}
		if err != nil {
			return fail(err)
		}
		start := time.Now()
		ack, err := l.send(ctx, subj, msgID, h.seq, data)
		if err == nil {
			l.won(key, time.Since(start))
			if ack.Duplicate {
				// An earlier attempt was stored after all (its answer was
				// lost): that record is this call's.
				l.records.Add(1)
				return l.recordLast(ctx, key, ack.Sequence)
			}
			l.records.Add(1)
			r, _ := decodeRecord(key, data) // our own encoding: cannot fail
			l.learn(key, head{seq: ack.Sequence, id: r.lastID()})
			return r.lastID(), nil
		}
		if wrongLast(err) {
			l.lost(key)
			l.conflicts.Add(1)
			conflicts++
			if conflicts >= l.cfg.MaxAttempts {
				return fail(fmt.Errorf("%w: room %q after %d attempts", ErrConflict, key, conflicts))
			}
			// Consume may already have shown this node the record that
			// got in first: then no read is needed, and this node races
			// the next record on equal terms with the node that won
			// (reading the head first would cost a round trip the winner
			// does not pay, and a busy room could starve this node).
			// An earlier attempt of this call that was stored after all is
			// still found: the stream answers its id's duplicate.
			if k, ok := l.known(key); ok && k.seq > h.seq {
				h = k
				continue
			}
			var own bool
			if h, own, err = l.readHead(ctx, key, msgID); err != nil {
				return fail(err)
			}
			if own {
				l.records.Add(1)
				return h.id, nil
			}
			continue
		}
		uerr := l.unavailable("publishing to "+key, err)
		if errors.Is(uerr, ErrUnavailable) {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				sent = true
			}
			if ctx.Err() != nil || l.usable() != nil {
				return fail(uerr)
			}
			// JetStream is electing a leader, or the answer was lost: the
			// same record again (the same id: stored at most once).
			l.retries.Add(1)
			l.log.Debug("cluster: publish retried", "room", key, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		return fail(uerr)
	}
}

// send publishes one record and waits for its acknowledgement, at most a
// third of the call's time so that a lost answer leaves time to retry.
func (l *Log) send(ctx context.Context, subj, msgID string, expect uint64, data []byte) (*jetstream.PubAck, error) {
	actx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout/3)
	defer cancel()
	m := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
	if l.cfg.Node != "" {
		m.Header.Set(NodeHeader, l.cfg.Node)
	}
	return l.js.PublishMsg(actx, m, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(expect))
}

// readHead is fetchHeadOf for write: while JetStream is briefly
// unavailable (a leader election) but the connection is up, it tries
// again every 100 ms until ctx ends.
func (l *Log) readHead(ctx context.Context, key, msgID string) (head, bool, error) {
	for {
		h, own, err := l.fetchHeadOf(ctx, key, msgID)
		if err == nil || !errors.Is(err, ErrUnavailable) || l.usable() != nil {
			return h, own, err
		}
		l.retries.Add(1)
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return h, own, err
		case <-t.C:
		}
	}
}

// wrongLast reports whether err is the stream refusing a record because
// the room's last sequence is not the one expected.
func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// fetchHeadOf is fetchHead that also reports whether the room's last
// record carries msgID (an earlier attempt of this call was stored).
func (l *Log) fetchHeadOf(ctx context.Context, key, msgID string) (head, bool, error) {
	subj, err := subjectFor(l.cfg.Stream, key)
	if err != nil {
		return head{}, false, err
	}
	if err := l.usable(); err != nil {
		return head{}, false, err
	}
	// The stream has AllowDirect off: this get is answered by the
	// stream's leader, never by a replica that may lag behind it.
	m, err := l.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// No record (a new room, or one whose records all expired): the
		// room must be empty for the next record (expected sequence 0),
		// and its ids continue after the higher of this node's floor and
		// the room's reservation, which bounds every id any node ever
		// published for it (ids.go).
		var h head
		if l.cfg.Floor != nil {
			h.id = l.cfg.Floor(key)
		}
		r, err := l.readReservation(ctx, key)
		if err != nil {
			return head{}, false, err
		}
		bound := r.upTo
		if r.history {
			// While the stream holds every record after the
			// reservation's sequence, a room without records never
			// published above the previous bound: its first
			// publishers racing (one reserved, not yet sent) must not
			// make the others skip a block.
			info, err := l.stream.Info(ctx)
			if err != nil {
				return head{}, false, l.unavailable("reading the stream's state for "+key, err)
			}
			if info.State.FirstSeq <= r.at+1 {
				bound = r.prev
			}
		}
		h.id = max(h.id, bound)
		return h, false, nil
	}
	if err != nil {
		return head{}, false, l.unavailable("reading the last record of "+key, err)
	}
	r, err := decodeRecord(key, m.Data)
	if err != nil {
		return head{}, false, fmt.Errorf("room %q, stream sequence %d: %w", key, m.Sequence, err)
	}
	h := head{seq: m.Sequence, id: r.lastID()}
	l.learn(key, h)
	return h, msgID != "" && m.Header.Get(jetstream.MsgIDHeader) == msgID, nil
}

// recordLast reads the record at seq (this call's, stored earlier) and
// returns the room's last id after it.
func (l *Log) recordLast(ctx context.Context, key string, seq uint64) (uint64, error) {
	m, err := l.stream.GetMsg(ctx, seq)
	if err != nil {
		return 0, fmt.Errorf("%w: room %q: stored as %d but unreadable: %v", ErrUnacknowledged, key, seq, err)
	}
	r, err := decodeRecord(key, m.Data)
	if err != nil {
		return 0, fmt.Errorf("room %q, stream sequence %d: %w", key, seq, err)
	}
	l.learn(key, head{seq: seq, id: r.lastID()})
	return r.lastID(), nil
}

// Fairness between nodes publishing to one busy room. Optimistic
// concurrency alone starves: the node that just won knows the room's new
// end from its acknowledgement and sends its next record at once, while a
// node that lost must first learn that end (from Consume or a read), so it
// keeps arriving second (BenchmarkPublishContended, three nodes sending
// one-message batches back to back: single Publish calls refused 56 to
// 161 times in a row). So a node that met a conflict on a room in the
// last contendedFor marks the room contended, and while it is, after each
// record it gets in, it holds its next record for the room for that
// record's round trip: the window in which the others learn the new end
// and send theirs (then: at most 5 to 40 refusals in a row, at the price
// of the room's records per second; a room goroutine's batches grow
// meanwhile, so its messages per second suffer less). Uncontended rooms
// never wait.
const (
	contendedFor = time.Second
	maxYield     = 20 * time.Millisecond
)

// yield is a room's contention state on this node.
type yield struct {
	contended time.Time // the last conflict met on the room
	until     time.Time // no record for the room before this
}

// lost notes a conflict on key.
func (l *Log) lost(key string) {
	l.mu.Lock()
	y := l.yields[key]
	y.contended = time.Now()
	l.yields[key] = y
	l.mu.Unlock()
}

// won notes a record of key stored after a round trip of rtt.
func (l *Log) won(key string, rtt time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	y, ok := l.yields[key]
	if !ok {
		return
	}
	now := time.Now()
	if now.Sub(y.contended) > contendedFor {
		delete(l.yields, key) // quiet again
		return
	}
	y.until = now.Add(min(rtt, maxYield))
	l.yields[key] = y
}

// yieldWait is how long a record of key must wait now.
func (l *Log) yieldWait(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	y, ok := l.yields[key]
	if !ok {
		return 0
	}
	return time.Until(y.until)
}
