package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// Entry is one record of the stream as Consume delivers it: a batch of a
// room's messages, or a redaction.
type Entry struct {
	// Seq is the record's stream sequence: what the caller keeps as
	// "applied" and gives to Consume after a restart.
	Seq uint64
	// Key is the room's name or the conversation's chat.ConversationKey.
	Key string
	// Msgs are a batch's messages, ids contiguous and following the
	// room's previous batch (Room = Key); nil for a redaction.
	Msgs []chat.Message
	// Redact is the id a redaction removes (0 for a batch).
	Redact uint64
	// Time is when the stream stored the record.
	Time time.Time
}

// Consume delivers the stream's records after stream sequence after (0 =
// from the start) to apply, one at a time and in the stream's order,
// which is every room's order on every node. It blocks until ctx ends
// (returning ctx.Err()), the Log is closed (ErrClosed), apply returns an
// error (returned as is: the record was not applied and Applied does not
// count it), or a record does not decode (ErrCorrupt, ErrVersion: the
// caller must not skip it silently), or the stream ends before after
// (ErrStreamReset: it was created again). While NATS is unreachable it
// waits and resumes after the last record applied: no gap, no duplicate.
//
// One Consume runs at a time per Log (else ErrConsuming). Records that
// the stream's limits dropped before this node read them are not
// delivered: Entry.Seq then jumps, and the room's ids jump with it (the
// replica sees a gap, as after its own pruning).
func (l *Log) Consume(ctx context.Context, after uint64, apply func(Entry) error) error {
	if !l.consuming.CompareAndSwap(false, true) {
		return ErrConsuming
	}
	defer l.consuming.Store(false)
	l.applied.Store(after)
	logged := false
	for {
		err := l.consumeFrom(ctx, apply)
		var fatal fatalError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case l.isClosed.Load():
			return ErrClosed
		case errors.As(err, &fatal):
			return fatal.err
		}
		if !logged {
			l.log.Warn("cluster: consuming the stream paused; retrying", "after", l.applied.Load(), "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.cfg.ReconnectWait):
		}
	}
}

// fatalError ends Consume: apply's error or a record that does not
// decode. Any other error of consumeFrom is retried.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// consumeFrom runs one ordered consumer from the record after Applied
// until it fails.
func (l *Log) consumeFrom(ctx context.Context, apply func(Entry) error) error {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: streamSubjects(l.cfg.Stream),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if a := l.applied.Load(); a > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = a + 1
	}
	if err := l.usable(); err != nil {
		return err
	}
	if a := l.applied.Load(); a > 0 {
		// A stream's last sequence never goes back (purges and limits
		// keep it): one below what was applied is another stream.
		info, err := l.stream.Info(ctx)
		if err != nil {
			return l.unavailable("stream info", err)
		}
		if last := info.State.LastSeq; last < a {
			return fatalError{fmt.Errorf("%w: stream %s ends at sequence %d, this node applied up to %d", ErrStreamReset, l.cfg.Stream, last, a)}
		}
	}
	c, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, cfg)
	if err != nil {
		return err
	}
	// A heartbeat a second: a consumer whose server died is noticed and
	// recreated (after the last record delivered) in about two seconds,
	// not the client's default ten.
	it, err := c.Messages(jetstream.PullHeartbeat(time.Second), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	done := make(chan struct{})
	defer close(done)
	var stalled atomic.Bool
	go l.watch(ctx, done, &stalled, it.Stop) // ends when consumeFrom returns
	for {
		msg, err := it.Next()
		if err != nil {
			if stalled.Load() {
				return errStalled
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		key, err := keyOf(l.cfg.Stream, msg.Subject())
		if err != nil {
			return fatalError{fmt.Errorf("stream sequence %d: %w", seq, err)}
		}
		r, err := decodeRecord(key, msg.Data())
		if err != nil {
			return fatalError{fmt.Errorf("room %q, stream sequence %d: %w", key, seq, err)}
		}
		l.learn(key, head{seq: seq, id: r.lastID()})
		e := Entry{Seq: seq, Key: key, Time: md.Timestamp.UTC()}
		if r.kind == kindBatch {
			e.Msgs = r.msgs
		} else {
			e.Redact = r.target
		}
		if err := apply(e); err != nil {
			return fatalError{err}
		}
		l.applied.Store(seq)
	}
}

// stallAfter is how long Consume lets its consumer deliver nothing while
// the stream holds records it has not applied before it recreates it
// (Log.stallAfter; tests shorten it).
const stallAfter = 3 * time.Second

// errStalled: the watchdog stopped a consumer that delivered nothing.
var errStalled = errors.New("cluster: consumer stalled; recreated")

// watch is the watchdog of one consumer: every stallAfter in which
// Applied did not move, it asks the stream for its last sequence, and if
// records beyond Applied exist it marks the consumer stalled and stops it
// (consumeFrom returns, Consume starts a new one after Applied). The
// client library recreates an ordered consumer itself when its server
// goes, but TestClusterServerLoss caught it stuck for 30 s and more after
// the stream's leader was killed; this bounds any such stall, whatever
// its cause. A slow apply only costs a needless restart (no record is
// lost or repeated: the new consumer starts after Applied).
func (l *Log) watch(ctx context.Context, done <-chan struct{}, stalled *atomic.Bool, stop func()) {
	t := time.NewTicker(l.stallAfter)
	defer t.Stop()
	last := l.applied.Load()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		a := l.applied.Load()
		if a != last {
			last = a
			continue
		}
		if l.usable() != nil {
			continue // the connection's own recovery comes first
		}
		ictx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
		info, err := l.stream.Info(ictx)
		cancel()
		if err != nil || info.State.LastSeq <= a || l.applied.Load() != a {
			continue
		}
		l.stalls.Add(1)
		l.log.Warn("cluster: consumer delivered nothing while the stream has more; recreating it",
			"applied", a, "stream_last", info.State.LastSeq)
		stalled.Store(true)
		stop()
		return
	}
}
